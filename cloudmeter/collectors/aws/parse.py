"""CloudWatch GetMetricData for EC2 instances: periods, query plans and the conversion of answers to samples.

Pure functions over the documented request and response shapes; the API calls live in
``collector`` and ``api``. Per instance and period (timestamps are period starts):

    cpu_usage_pct    AWS/EC2 CPUUtilization, Average
    cpu_used_cores   cpu_usage_pct / 100 * the instance type's vCPUs
    mem_usage_pct    CWAgent mem_used_percent, Average (NaN when the CloudWatch agent publishes none)
    mem_used_bytes   mem_usage_pct / 100 * the instance type's memory
    disk_read_bps    (AWS/EC2 DiskReadBytes + EBSReadBytes), Sum / period
    disk_write_bps   (AWS/EC2 DiskWriteBytes + EBSWriteBytes), Sum / period
    net_rx_bps       AWS/EC2 NetworkIn, Sum / period
    net_tx_bps       AWS/EC2 NetworkOut, Sum / period

A period with no datapoint for a metric is NaN, never 0, and so is a statistic that is not finite or a result
too large for a double. An answer that does not follow the documented shapes raises ``PayloadError`` naming the
place (the collector adds the manager).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from cloudmeter.collectors.aws.inventory import expect_object, expect_pairs
from cloudmeter.errors import PayloadError
from cloudmeter.model import METRICS, ResourceRef, SampleBatch

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.type_defs import DimensionTypeDef, MetricDataQueryTypeDef, MetricStatTypeDef

DAY_S: Final = 86400
#: Most queries one GetMetricData request may hold.
MAX_QUERIES: Final = 500
#: Most periods one request (and so one SampleBatch) spans; longer windows are cut into slices.
MAX_PERIODS: Final = 1440
EC2_NAMESPACE: Final = "AWS/EC2"
AGENT_NAMESPACE: Final = "CWAgent"
AGENT_MEMORY_METRIC: Final = "mem_used_percent"
#: The series read per instance, one raw column each: (namespace, metric, statistic).
SERIES: Final[tuple[tuple[str, str, str], ...]] = (
    (EC2_NAMESPACE, "CPUUtilization", "Average"),
    (EC2_NAMESPACE, "NetworkIn", "Sum"),
    (EC2_NAMESPACE, "NetworkOut", "Sum"),
    (EC2_NAMESPACE, "DiskReadBytes", "Sum"),
    (EC2_NAMESPACE, "EBSReadBytes", "Sum"),
    (EC2_NAMESPACE, "DiskWriteBytes", "Sum"),
    (EC2_NAMESPACE, "EBSWriteBytes", "Sum"),
    (AGENT_NAMESPACE, AGENT_MEMORY_METRIC, "Average"),
)
_CPU, _NET_IN, _NET_OUT, _DISK_READ, _EBS_READ, _DISK_WRITE, _EBS_WRITE, _MEMORY = range(len(SERIES))
#: Finest period CloudWatch serves for data younger than each age, youngest first; older data: ``COARSEST_S``.
RETENTION: Final = ((15 * DAY_S, 60), (63 * DAY_S, 300))
COARSEST_S: Final = 3600
#: How much younger than a retention limit a cut between two periods is, so a request sent later still qualifies.
AGE_MARGIN_S: Final = 600
#: Finest period per monitoring kind: detailed monitoring publishes every minute, basic every five.
DETAILED_PERIOD_S: Final = 60
BASIC_PERIOD_S: Final = 300


def floor_to(seconds: int, step: int) -> int:
    """The last multiple of ``step`` at or before ``seconds``."""
    return seconds // step * step


def ceil_to(seconds: int, step: int) -> int:
    """The first multiple of ``step`` at or after ``seconds``."""
    return -(-seconds // step) * step


def periods_by_age(start_s: int, end_s: int, now_s: int) -> list[tuple[int, int, int]]:
    """Cut ``[start_s, end_s)`` where CloudWatch's finest period changes with age: ``(start, end, period)``.

    CloudWatch returns nothing unless the period is a multiple of 300 s for a StartTime 15 to 63 days ago and
    of 3600 s beyond. Cuts fall on whole hours at least ``AGE_MARGIN_S`` younger than each limit. Oldest first.
    """
    cuts = [ceil_to(now_s - age + AGE_MARGIN_S, COARSEST_S) for age, _ in reversed(RETENTION)]
    edges = [start_s, *(min(max(cut, start_s), end_s) for cut in cuts), end_s]
    periods = [COARSEST_S, *(period for _, period in reversed(RETENTION))]
    return [(a, b, p) for a, b, p in zip(edges[:-1], edges[1:], periods, strict=True) if a < b]


def time_slices(start_s: int, end_s: int, period: int) -> list[tuple[int, int]]:
    """Request ranges covering ``[start_s, end_s)``: StartTime rounded down to the period, ``MAX_PERIODS`` each."""
    first, last = floor_to(start_s, period), ceil_to(end_s, period)
    step = period * MAX_PERIODS
    return [(lo, min(lo + step, last)) for lo in range(first, last, step)]


def memory_dimensions(metrics: Iterable[Any]) -> dict[str, list[DimensionTypeDef]]:
    """The dimension set of each instance's agent memory metric, from ``list_metrics``.

    The agent's dimensions depend on its config (InstanceId alone, or with ImageId, InstanceType, ...) and
    GetMetricData matches them exactly; when an instance has several sets, the smallest is used.
    """
    found: dict[str, list[DimensionTypeDef]] = {}
    for k, value in enumerate(metrics):
        where = f"Metrics[{k}]"
        metric = expect_object(value, where)
        dimensions: list[DimensionTypeDef] = [
            {"Name": name, "Value": text}
            for name, text in expect_pairs(metric.get("Dimensions", []), f"{where}.Dimensions", "Name")
        ]
        instance = next((d["Value"] for d in dimensions if d["Name"] == "InstanceId"), None)
        if instance is not None and (instance not in found or _smaller(dimensions, found[instance])):
            found[instance] = dimensions
    return found


def _smaller(a: list[DimensionTypeDef], b: list[DimensionTypeDef]) -> bool:
    def key(dimensions: list[DimensionTypeDef]) -> tuple[int, list[tuple[str, str]]]:
        return len(dimensions), sorted((d["Name"], d["Value"]) for d in dimensions)

    return key(a) < key(b)


@dataclass(frozen=True)
class Request:
    """The queries of one GetMetricData request for instances ``[first, stop)`` of a list.

    Query ``q{k}`` answers raw column ``columns[k]`` of instance ``first + rows[k]``.
    """

    first: int
    stop: int
    queries: list[MetricDataQueryTypeDef]
    rows: npt.NDArray[np.int64]
    columns: npt.NDArray[np.int64]


def plan_requests(
    instance_ids: Sequence[str], memory: Mapping[str, list[DimensionTypeDef]], period: int
) -> list[Request]:
    """Queries for every instance at ``period``, packed into requests of at most ``MAX_QUERIES``.

    An instance's queries stay in one request; memory is queried only where the agent publishes it.
    """
    requests: list[Request] = []
    pending: list[tuple[int, int, MetricDataQueryTypeDef]] = []
    first = 0
    for index, instance in enumerate(instance_ids):
        own: list[DimensionTypeDef] = [{"Name": "InstanceId", "Value": instance}]
        wanted = [(column, own) for column in range(_MEMORY)]
        if instance in memory:
            wanted.append((_MEMORY, memory[instance]))
        if len(pending) + len(wanted) > MAX_QUERIES:
            requests.append(_request(first, index, pending))
            pending, first = [], index
        for column, dimensions in wanted:
            namespace, name, stat = SERIES[column]
            metric_stat: MetricStatTypeDef = {
                "Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": dimensions},
                "Period": period,
                "Stat": stat,
            }
            pending.append((index - first, column, {"Id": f"q{len(pending)}", "MetricStat": metric_stat}))
    if pending:
        requests.append(_request(first, len(instance_ids), pending))
    return requests


def _request(first: int, stop: int, pending: list[tuple[int, int, MetricDataQueryTypeDef]]) -> Request:
    return Request(
        first,
        stop,
        [query for _, _, query in pending],
        np.array([row for row, _, _ in pending], np.int64),
        np.array([column for _, column, _ in pending], np.int64),
    )


class Datapoints:
    """The datapoints of one request's answers, gathered page by page (NextToken) as flat arrays."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self._queries = {query["Id"]: k for k, query in enumerate(request.queries)}
        self._parts: list[tuple[int, npt.NDArray[np.int64], npt.NDArray[np.float64]]] = []

    def add(self, results: Iterable[Any]) -> None:
        """Keep one page's results; PayloadError on a malformed one (an unknown Id, unequal Timestamps and
        Values, a timestamp that is no time or a value that is no number)."""
        for position, value in enumerate(results):
            where = f"MetricDataResults[{position}]"
            result = expect_object(value, where)
            query_id = result.get("Id")
            k = self._queries.get(query_id, -1) if isinstance(query_id, str) else -1
            if k < 0:
                raise PayloadError.unexpected(
                    f"{where}.Id", query_id, f"one of the request's {len(self._queries)} query Ids"
                )
            stamps = PayloadError.expect(result.get("Timestamps", []), list, f"{where}.Timestamps", "a list")
            values = PayloadError.expect(result.get("Values", []), list, f"{where}.Values", "a list")
            if len(stamps) != len(values):
                raise PayloadError(f"result {query_id!r}", f"has {len(stamps)} timestamps but {len(values)} values")
            try:
                ts = np.fromiter((stamp.timestamp() for stamp in stamps), np.float64, len(stamps))
                readings = np.asarray(values, np.float64)
            except (AttributeError, TypeError, ValueError, OverflowError) as exc:
                raise _malformed(where, stamps, values) from exc
            if readings.ndim != 1:
                raise _malformed(where, stamps, values)
            self._parts.append((k, np.rint(ts).astype(np.int64), readings))

    def batch(
        self,
        refs: tuple[ResourceRef, ...],
        vcpus: npt.NDArray[np.float64],
        memory_bytes: npt.NDArray[np.float64],
        period: int,
        start_s: int,
        end_s: int,
    ) -> SampleBatch:
        """The samples of periods starting in ``[start_s, end_s)``, rows sorted by (instance, period start).

        ``refs``, ``vcpus`` and ``memory_bytes`` (NaN = unknown) describe the request's instances in order.
        """
        sizes = [len(ts) for _, ts, _ in self._parts]
        queries = np.repeat(np.array([k for k, _, _ in self._parts], np.int64), sizes)
        ts = np.concatenate([np.empty(0, np.int64), *(t for _, t, _ in self._parts)]) // period * period
        values = np.concatenate([np.empty(0), *(v for _, _, v in self._parts)])
        keep = (ts >= start_s) & (ts < end_s)
        rows, columns = self.request.rows[queries[keep]], self.request.columns[queries[keep]]
        ts, values = ts[keep], values[keep]
        order = np.lexsort((ts, rows))
        rows, columns, ts, values = rows[order], columns[order], ts[order], values[order]
        first = np.ones(len(ts), np.bool_)
        first[1:] = (rows[1:] != rows[:-1]) | (ts[1:] != ts[:-1])
        raw = np.full((int(first.sum()), len(SERIES)), np.nan)
        raw[np.cumsum(first) - 1, columns] = values
        return SampleBatch(
            refs=refs,
            resource_idx=rows[first].astype(np.int32),
            ts_s=ts[first],
            values=to_metrics(raw, vcpus[rows[first]], memory_bytes[rows[first]], period),
            interval_s=period,
        )


def _malformed(where: str, stamps: list[Any], values: list[Any]) -> PayloadError:
    """What is wrong with the first timestamp that is no time, or else the first value that is no number."""
    for j, stamp in enumerate(stamps):
        if not isinstance(stamp, datetime) or stamp.tzinfo is None:
            return PayloadError.unexpected(f"{where}.Timestamps[{j}]", stamp, "a time with a time zone")
    for j, value in enumerate(values):
        try:
            float(0.0 if value is None else value)
        except (TypeError, ValueError, OverflowError):
            return PayloadError.unexpected(f"{where}.Values[{j}]", value, "a number a double holds")
    return PayloadError(where, "has Timestamps or Values that cannot be read")


def to_metrics(
    raw: npt.NDArray[np.float64], vcpus: npt.NDArray[np.float64], memory_bytes: npt.NDArray[np.float64], period: int
) -> npt.NDArray[np.float64]:
    """``METRICS`` columns from raw statistics (columns as in ``SERIES``), with each row's allocations.

    A statistic that is not finite is missing, and so is a result too large for a double.
    """
    raw = np.where(np.isfinite(raw), raw, np.nan)
    cpu, memory = raw[:, _CPU], raw[:, _MEMORY]
    with np.errstate(over="ignore"):
        columns = {
            "cpu_usage_pct": cpu,
            "cpu_used_cores": cpu / 100.0 * vcpus,
            "mem_used_bytes": memory / 100.0 * memory_bytes,
            "mem_usage_pct": memory,
            "disk_read_bps": _sum_present(raw[:, _DISK_READ], raw[:, _EBS_READ]) / period,
            "disk_write_bps": _sum_present(raw[:, _DISK_WRITE], raw[:, _EBS_WRITE]) / period,
            "net_rx_bps": raw[:, _NET_IN] / period,
            "net_tx_bps": raw[:, _NET_OUT] / period,
        }
    out = np.column_stack([columns[metric] for metric in METRICS])
    out[~np.isfinite(out)] = np.nan
    return out


def _sum_present(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``a + b`` where NaN counts as 0 unless both are NaN."""
    total: npt.NDArray[np.float64] = np.where(np.isnan(a) & np.isnan(b), np.nan, np.nan_to_num(a) + np.nan_to_num(b))
    return total
