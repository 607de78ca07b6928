"""AWS clients and their calls: credentials (keys, the default chain or an assumed role), throttling retried,
botocore's failures translated into cloudmeter's:

    NoCredentialsError, InvalidClientTokenId, SignatureDoesNotMatch, ...  -> CollectorAuthError (invalid credentials)
    AccessDenied, UnauthorizedOperation, HTTP 403                       -> CollectorAuthError (names the action)
    Throttling, ThrottlingException, RequestLimitExceeded (retries spent) -> Throttled
    connection failures, HTTP 5xx, unparsable answers                   -> SourceUnavailable, or ConfigError
                                                                           when botocore knows no such region
    any other refusal                                                   -> CollectorError
"""

from __future__ import annotations

import difflib
import functools
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

import boto3
import botocore.session
import botocore.utils
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

from cloudmeter.collectors import usage
from cloudmeter.collectors.aws.config import AwsConfig
from cloudmeter.errors import (
    CloudmeterError,
    CollectorAuthError,
    CollectorError,
    ConfigError,
    SourceUnavailable,
    Throttled,
)
from cloudmeter.redact import mask_logs, relay

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_sts import STSClient

# botocore logs at DEBUG the headers it sends (X-Amz-Security-Token), what it signs and every answer (AssumeRole's
# temporary credentials)
mask_logs("botocore.endpoint", "botocore.auth", "botocore.parsers")

_T = TypeVar("_T")
_Page = TypeVar("_Page", bound=Mapping[str, Any])

#: Attempts of one call while AWS throttles it, and the backoff between them (seconds, doubling, jittered).
ATTEMPTS: Final = 5
BACKOFF_INITIAL_S: Final = 1.0
BACKOFF_MAX_S: Final = 20.0
#: The retry hint a ``Throttled`` carries once the attempts are spent.
THROTTLED_RETRY_AFTER_S: Final = 60.0

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


class AwsAPI:
    """The calls of one manager: connected on first use, throttling retried with ``sleep`` between attempts."""

    def __init__(
        self,
        name: str,
        config: AwsConfig,
        clients: AwsClients | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.config = config
        self._clients = clients
        self._sleep = sleep

    @property
    def clients(self) -> AwsClients:
        """The AWS clients, connected on first use."""
        if self._clients is None:
            self._clients = connect(self.config)
        return self._clients

    def call(self, action: str, call: Callable[[AwsClients], _T]) -> _T:
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
            raise self.translate(exc, action) from exc

    def pages(self, action: str, call: Callable[[dict[str, Any], AwsClients], _Page]) -> Iterator[_Page]:
        """Every page of ``call(token, clients)``, which passes ``token`` (the NextToken, if any) on as kwargs."""
        token: dict[str, Any] = {}
        while True:
            page = self.call(action, functools.partial(call, token))
            yield page
            next_token = page.get("NextToken")
            if not next_token:
                return
            token = {"NextToken": next_token}

    def dry_run(self, action: str, call: Callable[[AwsClients], object]) -> None:
        """Check that ``action`` is allowed with a DryRun call (DryRunOperation means it would succeed)."""

        def attempt(clients: AwsClients) -> None:
            try:
                call(clients)
            except ClientError as exc:
                if _code(exc) != "DryRunOperation":
                    raise

        self.call(action, attempt)

    def unknown_region(self, reason: str) -> ConfigError:
        region = self.config.region
        guess = difflib.get_close_matches(region, sorted(known_regions()), n=1)
        hint = f"did you mean {guess[0]!r}? " if guess else ""
        return ConfigError(
            f"manager {self.name!r}: unknown AWS region {region!r} ({reason}); {hint}set `region` to a region "
            "the account uses, e.g. us-east-1 (`aws ec2 describe-regions` lists them)"
        )

    def translate(self, exc: BotoCoreError | ClientError | ResponseParserError, action: str) -> CloudmeterError:
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
            return self.unknown_region(f"{action} failed: {failure}")
        return SourceUnavailable(
            self.name, f"{action} failed: {failure}; check the network and endpoint_url, or retry later"
        )
