"""AWS payloads shaped like the documented EC2 and CloudWatch responses, and a plain reference conversion.

Shared by the CloudWatch collector's tests and ``benchmarks/cloudwatch.py``. The reference works one datapoint
at a time with dicts, from the metric definitions in the README, independently of ``collectors.aws.parse``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from cloudmeter.collectors.aws import AwsClients, AwsConfig, connect
from cloudmeter.model import SampleBatch

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.literals import StatusCodeType
    from mypy_boto3_cloudwatch.type_defs import DimensionTypeDef, MetricDataResultTypeDef, MetricOutputTypeDef

GIB = 1 << 30
#: Documented facts of the instance types the tests use: vCPUs and memory in MiB.
TYPES = {"m5.large": (2, 8192), "t3.micro": (2, 1024), "c5.xlarge": (4, 8192)}
#: (metric name, statistic) of every query per instance, in the order the collector sends them.
QUERIES = (
    ("CPUUtilization", "Average"),
    ("NetworkIn", "Sum"),
    ("NetworkOut", "Sum"),
    ("DiskReadBytes", "Sum"),
    ("EBSReadBytes", "Sum"),
    ("DiskWriteBytes", "Sum"),
    ("EBSWriteBytes", "Sum"),
)


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def stub_clients(region: str = "us-east-1") -> AwsClients:
    """The collector's clients, to be wrapped in botocore Stubbers (no network is reached)."""
    return connect(AwsConfig(region=region, access_key_id="AKIDSTUB", secret_access_key="stub-secret"))


def instance(
    instance_id: str,
    instance_type: str = "m5.large",
    *,
    launched: datetime,
    zone: str = "us-east-1a",
    detailed: bool = True,
    state: str = "running",
    tags: Mapping[str, str] | None = None,
    host_id: str | None = None,
    reason: str = "",
    root_attached: datetime | None = None,
) -> dict[str, Any]:
    """One ``Instances`` element of a DescribeInstances reservation."""
    placement = {"AvailabilityZone": zone, "Tenancy": "host" if host_id else "default"}
    if host_id:
        placement["HostId"] = host_id
    return {
        "InstanceId": instance_id,
        "InstanceType": instance_type,
        "LaunchTime": launched,
        "Placement": placement,
        "Monitoring": {"State": "enabled" if detailed else "disabled"},
        "State": {"Code": 16, "Name": state},
        "StateTransitionReason": reason,
        "Tags": [{"Key": key, "Value": value} for key, value in (tags or {}).items()],
        "RootDeviceName": "/dev/xvda",
        "BlockDeviceMappings": [
            {
                "DeviceName": "/dev/xvda",
                "Ebs": {"AttachTime": root_attached or launched, "VolumeId": "vol-0abc", "Status": "attached"},
            }
        ],
    }


def reservations(instances: Iterable[dict[str, Any]], owner: str = "111122223333") -> dict[str, Any]:
    """A DescribeInstances response with one reservation per instance."""
    return {
        "Reservations": [
            {"ReservationId": f"r-{k:04d}", "OwnerId": owner, "Instances": [item]} for k, item in enumerate(instances)
        ]
    }


def instance_types(names: Iterable[str]) -> dict[str, Any]:
    """A DescribeInstanceTypes response for ``names`` (from ``TYPES``)."""
    return {
        "InstanceTypes": [
            {
                "InstanceType": name,
                "VCpuInfo": {"DefaultVCpus": TYPES[name][0]},
                "MemoryInfo": {"SizeInMiB": TYPES[name][1]},
            }
            for name in sorted(names)
        ]
    }


def result(
    query_id: str, points: Sequence[tuple[int, float]], status: StatusCodeType = "Complete"
) -> MetricDataResultTypeDef:
    """One MetricDataResults element (timestamps newest first, CloudWatch's default ScanBy)."""
    ordered = sorted(points, reverse=True)
    return {
        "Id": query_id,
        "Label": query_id,
        "Timestamps": [at(ts) for ts, _ in ordered],
        "Values": [value for _, value in ordered],
        "StatusCode": status,
    }


def agent_metric(**dimensions: str) -> MetricOutputTypeDef:
    """A ListMetrics element for the CloudWatch agent's memory metric."""
    return {
        "Namespace": "CWAgent",
        "MetricName": "mem_used_percent",
        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
    }


def by_instance(instance_ids: Iterable[str]) -> dict[str, list[DimensionTypeDef]]:
    """The one-dimension set (InstanceId) of each instance."""
    return {iid: [{"Name": "InstanceId", "Value": iid}] for iid in instance_ids}


def queries(
    instance_ids: Sequence[str], period: int, memory: Mapping[str, list[DimensionTypeDef]] | None = None
) -> list[dict[str, Any]]:
    """The MetricDataQueries the collector must send for ``instance_ids`` at ``period``, in order."""
    wanted = [
        (iid, name, stat, [{"Name": "InstanceId", "Value": iid}])
        for iid in instance_ids
        for name, stat in (
            *QUERIES,
            *((("mem_used_percent", "Average"),) if memory and iid in memory else ()),
        )
    ]
    return [
        {
            "Id": f"q{k}",
            "MetricStat": {
                "Metric": {
                    "Namespace": "CWAgent" if name == "mem_used_percent" else "AWS/EC2",
                    "MetricName": name,
                    "Dimensions": memory[iid] if memory and name == "mem_used_percent" else dims,
                },
                "Period": period,
                "Stat": stat,
            },
        }
        for k, (iid, name, stat, dims) in enumerate(wanted)
    ]


Series = Mapping[tuple[str, str], Sequence[tuple[int, float]]]
Samples = dict[tuple[str, int], list[float]]


def samples(batches: Iterable[SampleBatch]) -> Samples:
    """Every row of ``batches`` by (instance id, period start)."""
    return {
        (b.refs[i].ems_ref, int(t)): v.tolist()
        for b in batches
        for i, t, v in zip(b.resource_idx, b.ts_s, b.values, strict=True)
    }


def assert_samples(got: Samples, want: Samples) -> None:
    """Same keys and bitwise the same values (NaN equal to NaN)."""
    assert sorted(got) == sorted(want)
    np.testing.assert_array_equal([got[k] for k in sorted(got)], [want[k] for k in sorted(got)])


def reference_samples(
    series: Series,
    vcpus: Mapping[str, float],
    memory_bytes: Mapping[str, float],
    period: int,
    start_s: int,
    end_s: int,
) -> Samples:
    """Samples by (instance, period start) from datapoints by (instance, metric name), one at a time.

    Each datapoint is its period's statistic already (CloudWatch aggregates); timestamps round down to the
    period. cpu_used_cores and mem_used_bytes scale by the instance's vCPUs and memory; byte counts per
    period become bytes per second; disk sums instance store and EBS; a missing metric is NaN.
    """
    raw: dict[tuple[str, int], dict[str, float]] = {}
    for (iid, metric), points in series.items():
        for ts, value in points:
            start = ts - ts % period
            if start_s <= start < end_s:
                raw.setdefault((iid, start), {})[metric] = value
    samples = {}
    for (iid, start), values in raw.items():

        def rate(*names: str, values: dict[str, float] = values) -> float:
            present = [values[name] for name in names if name in values]
            return sum(present) / period if present else math.nan

        cpu = values.get("CPUUtilization", math.nan)
        mem = values.get("mem_used_percent", math.nan)
        samples[(iid, start)] = [
            cpu,
            cpu / 100 * vcpus[iid],
            mem / 100 * memory_bytes[iid],
            mem,
            rate("DiskReadBytes", "EBSReadBytes"),
            rate("DiskWriteBytes", "EBSWriteBytes"),
            rate("NetworkIn"),
            rate("NetworkOut"),
        ]
    return samples
