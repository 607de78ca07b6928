"""AWS: EC2 inventory and CloudWatch metrics of one account and region (manager kind ``aws``).

This module makes the API calls (boto3) and translates their failures; parsing lives in ``aws_inventory``
and ``aws_metrics``. Every call goes through ``CloudWatchCollector._call``, which retries throttling with
exponential backoff and turns botocore's exceptions into cloudmeter's:

    NoCredentialsError, InvalidClientTokenId, SignatureDoesNotMatch, ...  -> CollectorAuthError (invalid credentials)
    AccessDenied, UnauthorizedOperation, HTTP 403                       -> CollectorAuthError (names the action)
    Throttling, ThrottlingException, RequestLimitExceeded (retries spent) -> Throttled
    connection failures, HTTP 5xx, unparsable answers                   -> SourceUnavailable, or ConfigError
                                                                           when botocore knows no such region
    any other refusal                                                   -> CollectorError
    an answer that does not follow its documented shape (PayloadError)  -> BadPayload
"""

from __future__ import annotations

import difflib
import functools
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, TypeVar, cast

import boto3
import botocore.session
import botocore.utils
import numpy as np
import tenacity
from botocore.config import Config as BotoConfig
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    Credentials,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError
from botocore.parsers import ResponseParserError
from pydantic import ConfigDict, Field, field_validator, model_validator

from cloudmeter.collectors import usage
from cloudmeter.collectors.aws_inventory import (
    Instance,
    InstanceType,
    build_inventory,
    parse_instance_types,
    parse_instances,
)
from cloudmeter.collectors.aws_metrics import (
    AGENT_MEMORY_METRIC,
    AGENT_NAMESPACE,
    BASIC_PERIOD_S,
    DETAILED_PERIOD_S,
    EC2_NAMESPACE,
    Datapoints,
    Request,
    floor_to,
    memory_dimensions,
    periods_by_age,
    plan_requests,
    time_slices,
)
from cloudmeter.collectors.base import ManagerConfig, Secret
from cloudmeter.errors import (
    CloudmeterError,
    CollectorAuthError,
    CollectorError,
    ConfigError,
    PayloadError,
    SourceUnavailable,
    Throttled,
)
from cloudmeter.model import Inventory, SampleBatch, Window, as_utc, epoch_s, from_epoch_s
from cloudmeter.redact import mask_logs, relay

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import DimensionTypeDef, MetricDataQueryTypeDef, MetricDataResultTypeDef
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.literals import InstanceTypeType
    from mypy_boto3_sts import STSClient

log = logging.getLogger(__name__)
# botocore logs at DEBUG the headers it sends (X-Amz-Security-Token), what it signs and every answer (AssumeRole's
# temporary credentials)
mask_logs("botocore.endpoint", "botocore.auth", "botocore.parsers")

_T = TypeVar("_T")
_Page = TypeVar("_Page", bound=Mapping[str, Any])

#: How long CloudWatch keeps EC2 metrics (at one-hour resolution): 455 days.
RETENTION_S: Final = 455 * 86400
#: GetMetricData price: US$0.01 per 1,000 metrics requested.
USD_PER_METRIC: Final = 0.01 / 1000
#: Attempts of one call while AWS throttles it, and the backoff between them (seconds, doubling, jittered).
ATTEMPTS: Final = 5
BACKOFF_INITIAL_S: Final = 1.0
BACKOFF_MAX_S: Final = 20.0
#: The retry hint a ``Throttled`` carries once the attempts are spent.
THROTTLED_RETRY_AFTER_S: Final = 60.0
#: Most instance types one describe_instance_types call may name.
TYPES_PER_CALL: Final = 100
_REGION: Final = re.compile(r"^[a-z]{2}(-[a-z0-9]+)+-\d+$")
_ROLE_ARN: Final = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
_INVALID_CREDENTIALS: Final = frozenset(
    {
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "AuthFailure",
        "InvalidAccessKeyId",
        "ExpiredToken",
        "ExpiredTokenException",
    }
)
_DENIED: Final = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
_THROTTLING: Final = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
)


class AwsConfig(ManagerConfig):
    """One AWS account and region. Without keys, boto3's default credential chain is used."""

    model_config = ConfigDict(hide_input_in_errors=True)  # the input holds the secret

    kind: Literal["aws"] = "aws"
    region: str
    access_key_id: str | None = None
    secret_access_key: Secret | None = None
    #: A role to assume (sts:AssumeRole) with the credentials above; refreshed before it expires.
    role_arn: str | None = None
    #: One endpoint for STS, EC2 and CloudWatch, e.g. a moto server or a VPC endpoint.
    endpoint_url: str | None = Field(default=None, pattern=r"^https?://")
    #: A tag whose value is an instance's cluster (e.g. aws:autoscaling:groupName); the zone otherwise.
    cluster_tag: str | None = Field(default=None, min_length=1)

    @field_validator("region")
    @classmethod
    def _region_format(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region name; use one like us-east-1 or eu-west-2")
        return value

    @field_validator("role_arn")
    @classmethod
    def _role_format(cls, value: str | None) -> str | None:
        if value is not None and not _ROLE_ARN.match(value):
            raise ValueError("must look like arn:aws:iam::123456789012:role/NAME")
        return value

    @model_validator(mode="after")
    def _keys_in_pairs(self) -> AwsConfig:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError(
                "give both access_key_id and secret_access_key, or neither to use the default credential chain"
            )
        return self


@dataclass(frozen=True)
class AwsClients:
    """The three clients a collector uses."""

    sts: STSClient
    ec2: EC2Client
    cloudwatch: CloudWatchClient


class _Provided(CredentialProvider):
    """A credential provider that hands out credentials it was given."""

    METHOD = "assume-role"

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Credentials:
        return self._credentials


def connect(config: AwsConfig, session: botocore.session.Session | None = None) -> AwsClients:
    """Clients with the config's credentials (or ``session``'s), assuming ``role_arn`` when set.

    botocore's own retries are off: throttling is retried by the collector, other failures by the scheduler.
    ``session`` (default: a new one) is the collector's own: its timestamp parser is set to ``parse_timestamp``.
    """
    if session is None:
        session = botocore.session.Session()
        if config.access_key_id and config.secret_access_key:
            session.set_credentials(config.access_key_id, config.secret_access_key.get_secret_value())
    if config.role_arn:
        session = _assume_role(session, config, config.role_arn)
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
    options: dict[str, Any] = {
        "region_name": config.region,
        "endpoint_url": config.endpoint_url,
        "config": BotoConfig(retries={"total_max_attempts": 1}, connect_timeout=10, read_timeout=60),
    }
    typed = boto3.Session(botocore_session=session)
    return AwsClients(
        sts=typed.client("sts", **options),
        ec2=typed.client("ec2", **options),
        cloudwatch=typed.client("cloudwatch", **options),
    )


def parse_timestamp(value: str | float) -> datetime:
    """botocore's timestamp parser, except that epoch numbers become UTC datetimes directly.

    CloudWatch answers GetMetricData in JSON with epoch-second timestamps, which botocore turns into
    local-time datetimes at about 8 µs apiece, ten times what the rest of the conversion costs.
    """
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return botocore.utils.parse_timestamp(value)


def _assume_role(source: botocore.session.Session, config: AwsConfig, role_arn: str) -> botocore.session.Session:
    """A session whose credentials come from sts:AssumeRole with ``source``'s, fetched on first use."""
    credentials = source.get_credentials()
    if credentials is None:
        raise NoCredentialsError()
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=functools.partial(
            source.create_client, region_name=config.region, endpoint_url=config.endpoint_url
        ),
        source_credentials=credentials,
        role_arn=role_arn,
        extra_args={"RoleSessionName": "cloudmeter"},
    )
    role = botocore.session.Session()
    assumed = DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method=_Provided.METHOD)
    role.register_component("credential_provider", CredentialResolver([_Provided(assumed)]))
    return role


@functools.cache
def known_regions() -> frozenset[str]:
    """The regions this botocore knows, in every partition."""
    session = botocore.session.get_session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("ec2", partition)
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _is_throttling(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and _code(exc) in _THROTTLING


class CloudWatchCollector:
    """EC2 instances and their CloudWatch metrics, implementing the ``Collector`` protocol.

    ``clients`` (default: ``connect(config)`` on first use), ``clock`` and ``sleep`` (the backoff between
    throttled attempts) are seams for tests.
    """

    kind: ClassVar[str] = "aws"
    config_model: ClassVar[type[ManagerConfig]] = AwsConfig
    retention_s: ClassVar[int | None] = RETENTION_S

    def __init__(
        self,
        name: str,
        config: AwsConfig,
        *,
        clients: AwsClients | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.config = config
        self._clients = clients
        self._clock = clock
        self._sleep = sleep
        self._types: dict[str, InstanceType] = {}

    def verify(self) -> None:
        """Check credentials, region and every permission capture and inventory need, with cheap calls.

        sts:GetCallerIdentity, ec2:DescribeRegions, dry runs of ec2:DescribeInstances and
        ec2:DescribeInstanceTypes, cloudwatch:ListMetrics, and a one-metric cloudwatch:GetMetricData
        (US$0.00001).
        """
        identity = self._call("sts:GetCallerIdentity", lambda c: c.sts.get_caller_identity())
        regions = self._call("ec2:DescribeRegions", lambda c: c.ec2.describe_regions(AllRegions=True))
        self._check_region({r.get("RegionName", ""): r.get("OptInStatus", "") for r in regions.get("Regions", [])})
        self._dry_run("ec2:DescribeInstances", lambda c: c.ec2.describe_instances(DryRun=True, MaxResults=5))
        self._dry_run("ec2:DescribeInstanceTypes", lambda c: c.ec2.describe_instance_types(DryRun=True, MaxResults=5))
        self._call("cloudwatch:ListMetrics", lambda c: c.cloudwatch.list_metrics(Namespace=AGENT_NAMESPACE))
        end_s = floor_to(epoch_s(self._clock()), BASIC_PERIOD_S)
        probe: MetricDataQueryTypeDef = {
            "Id": "probe",
            "MetricStat": {
                "Metric": {"Namespace": EC2_NAMESPACE, "MetricName": "CPUUtilization"},
                "Period": BASIC_PERIOD_S,
                "Stat": "Average",
            },
        }
        self._call(
            "cloudwatch:GetMetricData",
            lambda c: c.cloudwatch.get_metric_data(
                MetricDataQueries=[probe], StartTime=from_epoch_s(end_s - BASIC_PERIOD_S), EndTime=from_epoch_s(end_s)
            ),
        )
        log.info(
            "manager %r verified: account %s as %s in %s",
            self.name,
            identity.get("Account"),
            identity.get("Arn"),
            self.config.region,
        )

    def inventory(self) -> Inventory:
        """Region, provider, clusters, dedicated hosts and every instance EC2 lists (recently terminated too)."""
        observed_at = as_utc(self._clock())
        instances = self._instances()
        types = self._instance_types({i.instance_type for i in instances})
        return build_inventory(self.name, self.config.region, self.config.cluster_tag, instances, types, observed_at)

    def capture(self, window: Window) -> Iterator[SampleBatch]:
        """Samples of every instance that ran in ``window``: a batch per GetMetricData request and time slice.

        Periods follow CloudWatch's retention (60 s for data younger than 15 days, 300 s to 63 days, 3600 s
        beyond) and the instance's monitoring (at least 300 s without detailed monitoring). Logs the cost.
        """
        now_s = epoch_s(self._clock())
        instances = [i for i in self._instances() if i.alive_during(window.start, window.end)]
        if not instances:
            return
        types = self._instance_types({i.instance_type for i in instances})
        memory = self._memory_dimensions()
        tally = _Tally()
        for start_s, end_s, age_period in periods_by_age(window.start_s, window.end_s, now_s):
            for period, members in _by_period(instances, age_period).items():
                yield from self._capture_group(members, types, memory, period, (start_s, end_s), tally)
        log.info(
            "manager %r: GetMetricData calls: %d, metrics requested: %d, about US$%.5f (US$0.01 per 1,000)",
            self.name,
            tally.calls,
            tally.metrics,
            tally.metrics * USD_PER_METRIC,
        )

    def _capture_group(
        self,
        members: list[Instance],
        types: Mapping[str, InstanceType],
        memory: Mapping[str, list[DimensionTypeDef]],
        period: int,
        span: tuple[int, int],
        tally: _Tally,
    ) -> Iterator[SampleBatch]:
        """Batches of instances ``members`` at ``period`` for periods starting in ``span`` (epoch seconds)."""
        known = [types.get(i.instance_type) for i in members]
        vcpus = np.array([t.vcpus if t else np.nan for t in known], np.float64)
        memory_bytes = np.array([t.memory_bytes if t else np.nan for t in known], np.float64)
        for request in plan_requests([i.ref.ems_ref for i in members], memory, period):
            refs = tuple(i.ref for i in members[request.first : request.stop])
            rows = slice(request.first, request.stop)
            for lo, hi in time_slices(*span, period):
                points = self._metric_data(request, lo, hi, tally)
                batch = points.batch(refs, vcpus[rows], memory_bytes[rows], period, max(lo, span[0]), min(hi, span[1]))
                if len(batch):
                    yield batch

    def _metric_data(self, request: Request, lo: int, hi: int, tally: _Tally) -> Datapoints:
        """The datapoints of ``request`` from ``lo`` to ``hi`` (epoch seconds), following NextToken."""
        points = Datapoints(request)
        start, end = from_epoch_s(lo), from_epoch_s(hi)
        for page in self._pages(
            "cloudwatch:GetMetricData",
            lambda token, c: c.cloudwatch.get_metric_data(
                MetricDataQueries=request.queries, StartTime=start, EndTime=end, **token
            ),
        ):
            tally.calls += 1
            tally.metrics += len(request.queries)
            usage.metrics(self.name, len(request.queries))
            results = page.get("MetricDataResults", [])
            self._check_statuses(results)
            with self._parsing("GetMetricData"):
                points.add(results)
        return points

    def _check_statuses(self, results: list[MetricDataResultTypeDef]) -> None:
        """Fail on results CloudWatch marks Forbidden or InternalError (PartialData continues with NextToken)."""
        for result in results:
            status, label = result.get("StatusCode"), result.get("Label", result.get("Id", "?"))
            if status == "Forbidden":
                raise CollectorAuthError(
                    self.name, f"cloudwatch:GetMetricData answered Forbidden for {label!r}; allow reading it"
                )
            if status == "InternalError":
                raise SourceUnavailable(self.name, f"CloudWatch had an internal error reading {label!r}; retry later")

    def _instances(self) -> list[Instance]:
        pages = self._pages("ec2:DescribeInstances", lambda token, c: c.ec2.describe_instances(**token))
        with self._parsing("DescribeInstances"):
            return parse_instances(r for page in pages for r in page.get("Reservations", []))

    def _instance_types(self, names: set[str]) -> dict[str, InstanceType]:
        """vCPUs and memory of instance types ``names``; each type is asked for once per collector."""
        missing = sorted(names - self._types.keys() - {""})
        for k in range(0, len(missing), TYPES_PER_CALL):
            self._types.update(self._describe_types(missing[k : k + TYPES_PER_CALL]))
        return {name: self._types[name] for name in names if name in self._types}

    def _describe_types(self, names: list[str]) -> dict[str, InstanceType]:
        pages = self._pages(
            "ec2:DescribeInstanceTypes",
            lambda token, c: c.ec2.describe_instance_types(
                InstanceTypes=cast("list[InstanceTypeType]", names), **token
            ),
        )
        with self._parsing("DescribeInstanceTypes"):
            return parse_instance_types(info for page in pages for info in page.get("InstanceTypes", []))

    def _memory_dimensions(self) -> dict[str, list[DimensionTypeDef]]:
        pages = self._pages(
            "cloudwatch:ListMetrics",
            lambda token, c: c.cloudwatch.list_metrics(
                Namespace=AGENT_NAMESPACE, MetricName=AGENT_MEMORY_METRIC, Dimensions=[{"Name": "InstanceId"}], **token
            ),
        )
        with self._parsing("ListMetrics"):
            return memory_dimensions(m for page in pages for m in page.get("Metrics", []))

    @contextmanager
    def _parsing(self, call: str) -> Iterator[None]:
        """A parser's PayloadError about ``call``'s answer as this manager's BadPayload."""
        try:
            yield
        except PayloadError as exc:
            raise exc.bad_payload(self.name, call) from exc

    @property
    def clients(self) -> AwsClients:
        """The AWS clients, connected on first use."""
        if self._clients is None:
            self._clients = connect(self.config)
        return self._clients

    def _call(self, action: str, call: Callable[[AwsClients], _T]) -> _T:
        """``call(clients)``, retried while AWS throttles it; failures become cloudmeter errors naming ``action``."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_is_throttling),
            stop=tenacity.stop_after_attempt(ATTEMPTS),
            wait=tenacity.wait_exponential_jitter(initial=BACKOFF_INITIAL_S, max=BACKOFF_MAX_S),
            sleep=self._sleep,
            reraise=True,
        )
        usage.request(self.name, action)
        try:
            return retrying(lambda: call(self.clients))
        except (BotoCoreError, ClientError, ResponseParserError) as exc:
            raise self._translate(exc, action) from exc

    def _pages(self, action: str, call: Callable[[dict[str, Any], AwsClients], _Page]) -> Iterator[_Page]:
        """Every page of ``call(token, clients)``, which passes ``token`` (the NextToken, if any) on as kwargs."""
        token: dict[str, Any] = {}
        while True:
            page = self._call(action, functools.partial(call, token))
            yield page
            next_token = page.get("NextToken")
            if not next_token:
                return
            token = {"NextToken": next_token}

    def _dry_run(self, action: str, call: Callable[[AwsClients], object]) -> None:
        """Check that ``action`` is allowed with a DryRun call (DryRunOperation means it would succeed)."""

        def attempt(clients: AwsClients) -> None:
            try:
                call(clients)
            except ClientError as exc:
                if _code(exc) != "DryRunOperation":
                    raise

        self._call(action, attempt)

    def _check_region(self, opt_in: Mapping[str, str]) -> None:
        region = self.config.region
        if region not in opt_in:
            raise self._unknown_region(f"EC2 lists no region {region!r}")
        if opt_in[region] == "not-opted-in":
            raise ConfigError(
                f"manager {self.name!r}: region {region!r} is not enabled for this account; enable it in the "
                "AWS console (Account, AWS Regions) or set `region` to an enabled one"
            )

    def _unknown_region(self, reason: str) -> ConfigError:
        region = self.config.region
        guess = difflib.get_close_matches(region, sorted(known_regions()), n=1)
        hint = f"did you mean {guess[0]!r}? " if guess else ""
        return ConfigError(
            f"manager {self.name!r}: unknown AWS region {region!r} ({reason}); {hint}set `region` to a region "
            "the account uses, e.g. us-east-1 (`aws ec2 describe-regions` lists them)"
        )

    def _translate(self, exc: BotoCoreError | ClientError | ResponseParserError, action: str) -> CloudmeterError:
        """The cloudmeter error for a botocore failure of ``action`` (see the module docstring); what AWS or
        botocore said is relayed without the secret key (nor any other long opaque token)."""
        known = [self.config.secret_access_key.get_secret_value()] if self.config.secret_access_key else []
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return CollectorAuthError(
                self.name,
                "no AWS credentials found: set access_key_id and secret_access_key, or give the default "
                "credential chain some (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, an instance "
                "profile)",
            )
        if isinstance(exc, ClientError):
            code = _code(exc)
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if exc.operation_name == "AssumeRole":
                action = f"sts:AssumeRole on {self.config.role_arn}"
            if code in _INVALID_CREDENTIALS:
                return CollectorAuthError(
                    self.name,
                    f"invalid credentials: AWS answered {code} to {action}; check access_key_id and "
                    "secret_access_key (or the default credential chain)",
                )
            if code in _DENIED or status == 403:
                return CollectorAuthError(
                    self.name,
                    f"missing permission {action} (AWS answered {code or status}); allow it in the IAM policy of "
                    "the user or role cloudmeter uses",
                )
            if code in _THROTTLING:
                return Throttled(
                    self.name,
                    f"AWS still throttled {action} after {ATTEMPTS} attempts; capture less often or raise the quota",
                    THROTTLED_RETRY_AFTER_S,
                )
            if status < 500:
                said = f"{code}: {exc.response.get('Error', {}).get('Message', '')}"
                return CollectorError(self.name, f"AWS refused {action}: {relay(said, known)}")
        failure = "its answer could not be parsed" if isinstance(exc, ResponseParserError) else relay(str(exc), known)
        if self.config.region not in known_regions():
            return self._unknown_region(f"{action} failed: {failure}")
        return SourceUnavailable(
            self.name, f"{action} failed: {failure}; check the network and endpoint_url, or retry later"
        )


@dataclass
class _Tally:
    """GetMetricData calls and metrics requested in one capture."""

    calls: int = 0
    metrics: int = 0


def _by_period(instances: list[Instance], age_period: int) -> dict[int, list[Instance]]:
    """Instances by the period they are read at: the age's, or coarser without detailed monitoring."""
    groups: dict[int, list[Instance]] = {}
    for instance in instances:
        finest = DETAILED_PERIOD_S if instance.detailed_monitoring else BASIC_PERIOD_S
        groups.setdefault(max(age_period, finest), []).append(instance)
    return dict(sorted(groups.items()))
