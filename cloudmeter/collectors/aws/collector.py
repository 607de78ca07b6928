"""AWS: EC2 inventory and CloudWatch metrics of one account and region (manager kind ``aws``).

The calls go through ``api.AwsAPI`` (throttling retried, failures translated); parsing lives in ``inventory``
and ``parse``. An answer that does not follow its documented shape (PayloadError) becomes BadPayload here.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar, Final, cast

import numpy as np
import numpy.typing as npt

from cloudmeter.collectors import usage
from cloudmeter.collectors.aws.api import AwsAPI, AwsClients
from cloudmeter.collectors.aws.config import AwsConfig
from cloudmeter.collectors.aws.inventory import (
    Instance,
    InstanceType,
    build_inventory,
    parse_instance_types,
    parse_instances,
)
from cloudmeter.collectors.aws.parse import (
    AGENT_MEMORY_METRIC,
    AGENT_NAMESPACE,
    BASIC_PERIOD_S,
    DETAILED_PERIOD_S,
    EC2_NAMESPACE,
    Datapoints,
    Request,
    ceil_to,
    floor_to,
    memory_dimensions,
    periods_by_age,
    plan_requests,
    time_slices,
)
from cloudmeter.collectors.base import ManagerConfig, payload_errors
from cloudmeter.errors import CollectorAuthError, ConfigError, SourceUnavailable
from cloudmeter.model import Inventory, SampleBatch, Window, as_utc, epoch_s, from_epoch_s

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.type_defs import DimensionTypeDef, MetricDataQueryTypeDef, MetricDataResultTypeDef
    from mypy_boto3_ec2.literals import InstanceTypeType

log = logging.getLogger(__name__)

#: How long CloudWatch keeps EC2 metrics (at one-hour resolution): 455 days.
RETENTION_S: Final = 455 * 86400
#: GetMetricData price: US$0.01 per 1,000 metrics requested.
USD_PER_METRIC: Final = 0.01 / 1000
_NEVER: Final = np.iinfo(np.int64).max
#: Most instance types one describe_instance_types call may name.
TYPES_PER_CALL: Final = 100


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
        self.api = AwsAPI(name, config, clients, sleep)
        self._clock = clock
        self._types: dict[str, InstanceType] = {}

    def verify(self) -> None:
        """Check credentials, region and every permission capture and inventory need, with cheap calls.

        sts:GetCallerIdentity, ec2:DescribeRegions, dry runs of ec2:DescribeInstances and
        ec2:DescribeInstanceTypes, cloudwatch:ListMetrics, and a one-metric cloudwatch:GetMetricData
        (US$0.00001).
        """
        identity = self.api.call("sts:GetCallerIdentity", lambda c: c.sts.get_caller_identity())
        regions = self.api.call("ec2:DescribeRegions", lambda c: c.ec2.describe_regions(AllRegions=True))
        self._check_region({r.get("RegionName", ""): r.get("OptInStatus", "") for r in regions.get("Regions", [])})
        self.api.dry_run("ec2:DescribeInstances", lambda c: c.ec2.describe_instances(DryRun=True, MaxResults=5))
        self.api.dry_run(
            "ec2:DescribeInstanceTypes", lambda c: c.ec2.describe_instance_types(DryRun=True, MaxResults=5)
        )
        self.api.call("cloudwatch:ListMetrics", lambda c: c.cloudwatch.list_metrics(Namespace=AGENT_NAMESPACE))
        end_s = floor_to(epoch_s(self._clock()), BASIC_PERIOD_S)
        probe: MetricDataQueryTypeDef = {
            "Id": "probe",
            "MetricStat": {
                "Metric": {"Namespace": EC2_NAMESPACE, "MetricName": "CPUUtilization"},
                "Period": BASIC_PERIOD_S,
                "Stat": "Average",
            },
        }
        self.api.call(
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
        listed = self._instances()
        groups: list[tuple[int, int, int, list[Instance]]] = []
        for start_s, end_s, age_period in periods_by_age(window.start_s, window.end_s, now_s):
            for period, members in _by_period(listed, age_period).items():
                reach = from_epoch_s(ceil_to(window.end_s, period))  # where the last period starting in it ends
                alive = [i for i in members if i.alive_during(window.start, reach)]
                if alive:
                    groups.append((start_s, end_s, period, alive))
        if not groups:
            return
        types = self._instance_types({i.instance_type for *_, alive in groups for i in alive})
        memory = self._memory_dimensions()
        tally = _Tally()
        for start_s, end_s, period, alive in groups:
            yield from self._capture_group(alive, types, memory, period, (start_s, end_s), tally)
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
        started_s = np.array([epoch_s(i.started_at) for i in members], np.int64)
        ended_s = np.array(
            [_NEVER if i.ended_at is None else math.ceil(i.ended_at.timestamp()) for i in members], np.int64
        )
        for request in plan_requests([i.ref.ems_ref for i in members], memory, period):
            refs = tuple(i.ref for i in members[request.first : request.stop])
            rows = slice(request.first, request.stop)
            for lo, hi in time_slices(*span, period):
                points = self._metric_data(request, lo, hi, tally)
                batch = points.batch(refs, vcpus[rows], memory_bytes[rows], period, max(lo, span[0]), min(hi, span[1]))
                batch = _while_alive(batch, started_s[rows], ended_s[rows])
                if len(batch):
                    yield batch

    def _metric_data(self, request: Request, lo: int, hi: int, tally: _Tally) -> Datapoints:
        """The datapoints of ``request`` from ``lo`` to ``hi`` (epoch seconds), following NextToken."""
        points = Datapoints(request)
        start, end = from_epoch_s(lo), from_epoch_s(hi)
        for page in self.api.pages(
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
        pages = self.api.pages("ec2:DescribeInstances", lambda token, c: c.ec2.describe_instances(**token))
        with self._parsing("DescribeInstances"):
            return parse_instances(r for page in pages for r in page.get("Reservations", []))

    def _instance_types(self, names: set[str]) -> dict[str, InstanceType]:
        """vCPUs and memory of instance types ``names``; each type is asked for once per collector."""
        missing = sorted(names - self._types.keys() - {""})
        for k in range(0, len(missing), TYPES_PER_CALL):
            self._types.update(self._describe_types(missing[k : k + TYPES_PER_CALL]))
        return {name: self._types[name] for name in names if name in self._types}

    def _describe_types(self, names: list[str]) -> dict[str, InstanceType]:
        pages = self.api.pages(
            "ec2:DescribeInstanceTypes",
            lambda token, c: c.ec2.describe_instance_types(
                InstanceTypes=cast("list[InstanceTypeType]", names), **token
            ),
        )
        with self._parsing("DescribeInstanceTypes"):
            return parse_instance_types(info for page in pages for info in page.get("InstanceTypes", []))

    def _memory_dimensions(self) -> dict[str, list[DimensionTypeDef]]:
        pages = self.api.pages(
            "cloudwatch:ListMetrics",
            lambda token, c: c.cloudwatch.list_metrics(
                Namespace=AGENT_NAMESPACE, MetricName=AGENT_MEMORY_METRIC, Dimensions=[{"Name": "InstanceId"}], **token
            ),
        )
        with self._parsing("ListMetrics"):
            return memory_dimensions(m for page in pages for m in page.get("Metrics", []))

    def _parsing(self, call: str) -> AbstractContextManager[None]:
        """A parser's PayloadError about ``call``'s answer as this manager's BadPayload."""
        return payload_errors(self.name, call)

    @property
    def clients(self) -> AwsClients:
        """The AWS clients, connected on first use."""
        return self.api.clients

    def _check_region(self, opt_in: Mapping[str, str]) -> None:
        region = self.config.region
        if region not in opt_in:
            raise self.api.unknown_region(f"EC2 lists no region {region!r}")
        if opt_in[region] == "not-opted-in":
            raise ConfigError(
                f"manager {self.name!r}: region {region!r} is not enabled for this account; enable it in the "
                "AWS console (Account, AWS Regions) or set `region` to an enabled one"
            )


@dataclass
class _Tally:
    """GetMetricData calls and metrics requested in one capture."""

    calls: int = 0
    metrics: int = 0


def _while_alive(batch: SampleBatch, started_s: npt.NDArray[np.int64], ended_s: npt.NDArray[np.int64]) -> SampleBatch:
    """The rows of ``batch`` whose period overlaps its instance's life (``started_s``/``ended_s`` per ref, as
    ``Instance.alive_during``). CloudWatch still publishes the minutes an instance takes to stop after the time
    EC2 gives for it; kept, they would be captured or not depending on where capture windows are cut (a window
    starting after that time leaves the instance out), and they would fall after the inventory's retired_at."""
    idx, ts = batch.resource_idx, batch.ts_s
    keep = (started_s[idx] < ts + batch.interval_s) & (ts < ended_s[idx])
    if keep.all():
        return batch
    return SampleBatch(batch.refs, idx[keep], ts[keep], batch.values[keep], batch.interval_s)


def _by_period(instances: list[Instance], age_period: int) -> dict[int, list[Instance]]:
    """Instances by the period they are read at: the age's, or coarser without detailed monitoring."""
    groups: dict[int, list[Instance]] = {}
    for instance in instances:
        finest = DETAILED_PERIOD_S if instance.detailed_monitoring else BASIC_PERIOD_S
        groups.setdefault(max(age_period, finest), []).append(instance)
    return dict(sorted(groups.items()))
