"""Pure parsing of what Gnocchi answers (Ceilometer's resources and measures) into cloudmeter's vocabulary.

No I/O here: the collector fetches, these functions convert, and tests feed them documented payloads.

Ceilometer's meters and how they become ``METRICS``:

    cpu                        instance          cumulative ns     -> cpu_used_cores, cpu_usage_pct (over vcpus)
    memory.usage               instance          MiB (gauge)       -> mem_used_bytes, mem_usage_pct (over memory)
    vcpus, memory              instance          gauges            -> the allocation the percentages divide by
    disk.device.read.bytes     instance_disk     cumulative bytes  -> disk_read_bps, summed over the VM's disks
    disk.device.write.bytes    instance_disk     cumulative bytes  -> disk_write_bps
    network.incoming.bytes     instance_nic      cumulative bytes  -> net_rx_bps, summed over the VM's NICs
    network.outgoing.bytes     instance_nic      cumulative bytes  -> net_tx_bps

An answer that does not follow Gnocchi's documented shapes raises ``PayloadError`` naming the place (the
collector adds the manager). A reading that is not finite is missing (NaN, stored as NULL), and so is a result
too large for a double; a ``vcpus``/``memory`` reading outside what the resources table holds is no allocation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from cloudmeter.collectors.counters import counter_rates
from cloudmeter.collectors.openstack.policy import polling_interval
from cloudmeter.errors import PayloadError
from cloudmeter.model import METRICS, ResourceRef, SampleBatch, Window, as_utc, epoch_s

MIB: Final = 1 << 20
NS_PER_S: Final = 1e9
#: The largest allocations the resources table holds (vcpus integer, memory_bytes bigint).
MAX_VCPUS: Final = 2**31 - 1
MAX_MEMORY_MIB: Final = 2**42


class Role(IntEnum):
    """What a Ceilometer metric means to cloudmeter."""

    CPU = 0
    MEM_USAGE = 1
    VCPUS = 2
    MEMORY = 3
    DISK_READ = 4
    DISK_WRITE = 5
    NET_RX = 6
    NET_TX = 7


#: Ceilometer meter names by the resource type that carries them.
METERS: Final[dict[str, dict[str, Role]]] = {
    "instance": {"cpu": Role.CPU, "memory.usage": Role.MEM_USAGE, "vcpus": Role.VCPUS, "memory": Role.MEMORY},
    "instance_disk": {"disk.device.read.bytes": Role.DISK_READ, "disk.device.write.bytes": Role.DISK_WRITE},
    "instance_network_interface": {"network.incoming.bytes": Role.NET_RX, "network.outgoing.bytes": Role.NET_TX},
}
_RATE_COLUMNS: Final = {
    Role.DISK_READ: METRICS.index("disk_read_bps"),
    Role.DISK_WRITE: METRICS.index("disk_write_bps"),
    Role.NET_RX: METRICS.index("net_rx_bps"),
    Role.NET_TX: METRICS.index("net_tx_bps"),
}
_ROW_ROLES: Final = (Role.CPU, Role.MEM_USAGE, *_RATE_COLUMNS)


@dataclass(frozen=True)
class Flavor:
    """A flavor's allocation."""

    vcpus: int
    memory_mib: int


@dataclass(frozen=True)
class Flavors:
    """Known flavors: the configuration's by name (an override), then Nova's by id."""

    by_name: Mapping[str, Flavor] = field(default_factory=dict)
    by_id: Mapping[str, Flavor] = field(default_factory=dict)

    def find(self, attributes: Mapping[str, Any], where: str) -> Flavor | None:
        """The flavor an instance (or one of its revisions) names, if known."""
        name = attribute_text(attributes, "flavor_name", where) or ""
        return self.by_name.get(name) or self.by_id.get(attribute_text(attributes, "flavor_id", where) or "")


@dataclass(frozen=True)
class MetricRef:
    """One Gnocchi metric of one VM."""

    metric_id: str
    vm: int
    role: Role


@dataclass
class Layout:
    """The VMs of a capture and their metrics, from a search of instances and their disks and NICs."""

    refs: list[ResourceRef] = field(default_factory=list)
    flavors: list[Flavor | None] = field(default_factory=list)
    metrics: list[MetricRef] = field(default_factory=list)
    #: When each VM ended (epoch seconds; None while alive): its series' newest measures are from then.
    ends: list[int | None] = field(default_factory=list)

    def by_vm(self) -> dict[int, list[MetricRef]]:
        """Each VM's metrics, VMs in order."""
        found: dict[int, list[MetricRef]] = defaultdict(list)
        for metric in self.metrics:
            found[metric.vm].append(metric)
        return dict(sorted(found.items()))

    def groups(self, max_metrics: int, vms: Iterable[int] | None = None) -> list[Layout]:
        """Sub-layouts of whole VMs (all, or ``vms``) with at most ``max_metrics`` metrics each (one request each)."""
        by_vm = self.by_vm()
        groups: list[Layout] = []
        current = Layout()
        for vm in by_vm if vms is None else sorted(set(vms) & by_vm.keys()):
            metrics = by_vm[vm]
            if current.metrics and len(current.metrics) + len(metrics) > max_metrics:
                groups.append(current)
                current = Layout()
            index = len(current.refs)
            current.refs.append(self.refs[vm])
            current.flavors.append(self.flavors[vm])
            current.ends.append(self.ends[vm])
            current.metrics.extend(MetricRef(m.metric_id, index, m.role) for m in metrics)
        if current.metrics:
            groups.append(current)
        return groups


def attribute_text(resource: Mapping[str, Any], key: str, where: str) -> str | None:
    """``resource[key]``: a string, or None when it is absent, null or empty."""
    value = resource.get(key)
    return None if value is None else PayloadError.expect(value, str, f"{where} {key}", "a string") or None


def attribute_time(resource: Mapping[str, Any], key: str, where: str) -> datetime | None:
    """``resource[key]``: an ISO 8601 time with a time zone, or None when it is absent, null or empty."""
    text = attribute_text(resource, key, where)
    try:
        return None if text is None else as_utc(datetime.fromisoformat(text))
    except (ValueError, OverflowError) as exc:
        raise PayloadError.unexpected(f"{where} {key}", text, "an ISO 8601 time with a time zone") from exc


def found_at(kind: str, position: int) -> str:
    """Where a search's answer holds its ``position``-th resource."""
    return f"/v1/search/resource/{kind}[{position}]"


def resource_of(value: Any, where: str) -> tuple[str, Mapping[str, Any]]:
    """The id and attributes of the resource ``where`` names."""
    resource = PayloadError.expect(value, dict, where, "an object")
    found = resource.get("id")
    if not isinstance(found, str) or not found:
        raise PayloadError.unexpected(f"{where} id", found, "a resource id")
    return found, resource


def resource_ids(resources: Iterable[Any], kind: str) -> list[str]:
    """The ids of the resources a search of type ``kind`` answered."""
    return [resource_of(resource, found_at(kind, k))[0] for k, resource in enumerate(resources)]


def layout(instances: Iterable[Any], devices: Mapping[str, Iterable[Any]], flavors: Flavors) -> Layout:
    """The capture layout of ``instances`` and their disks and NICs (``devices``: resource type -> what a search of
    it answered, each with ``instance_id``), with the flavors known of them."""
    result = Layout()
    index: dict[str, int] = {}
    for k, value in enumerate(instances):
        instance_id, instance = resource_of(value, found_at("instance", k))
        index[instance_id] = vm = len(result.refs)
        result.refs.append(ResourceRef("vm", instance_id))
        result.flavors.append(flavors.find(instance, f"instance {instance_id}"))
        ended = attribute_time(instance, "ended_at", f"instance {instance_id}")
        result.ends.append(None if ended is None else epoch_s(ended))
        _add_metrics(result, vm, instance, METERS["instance"], f"instance {instance_id}")
    for kind, found in devices.items():
        for k, value in enumerate(found):
            device_id, device = resource_of(value, found_at(kind, k))
            owner = index.get(attribute_text(device, "instance_id", f"{kind} {device_id}") or "")
            if owner is not None:
                _add_metrics(result, owner, device, METERS[kind], f"{kind} {device_id}")
    return result


def _add_metrics(result: Layout, vm: int, resource: Mapping[str, Any], meters: Mapping[str, Role], where: str) -> None:
    for name, metric_id in PayloadError.expect(
        resource.get("metrics") or {}, dict, f"{where} metrics", "an object"
    ).items():
        if name in meters:
            if not isinstance(metric_id, str) or not metric_id:
                raise PayloadError.unexpected(f"{where} metrics.{name}", metric_id, "a metric id")
            result.metrics.append(MetricRef(metric_id, vm, meters[name]))


class _Timestamps:
    """ISO 8601 timestamps to epoch seconds; a window has few distinct ones, so each is parsed once."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        seconds = self._seen.get(text)
        if seconds is None:
            seconds = self._seen[text] = epoch_s(datetime.fromisoformat(text))
        return seconds


@dataclass(frozen=True)
class _Series:
    """All series of one role, concatenated: ``starts`` delimit each metric's points."""

    vm: npt.NDArray[np.int64]
    ts: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    starts: npt.NDArray[np.int64]


def _series(metrics: Sequence[MetricRef], measures: Mapping[str, Any], parse: _Timestamps) -> dict[Role, _Series]:
    collected: dict[Role, tuple[list[int], list[int], list[float], list[int]]] = {}
    for metric in metrics:
        vms, times, values, starts = collected.setdefault(metric.role, ([], [], [], [0]))
        points = measures.get(metric.metric_id, [])
        where = f"/v1/aggregates metric {metric.metric_id}"
        if not isinstance(points, list):
            raise PayloadError.unexpected(f"{where} measures", points, "a list of [timestamp, granularity, value]")
        try:
            if points:
                stamps, _granularities, readings = zip(*points, strict=True)
                times.extend(map(parse, stamps))
                values.extend(np.nan if value is None else float(value) for value in readings)
        except (TypeError, ValueError, OverflowError) as exc:
            raise _malformed(where, points, parse) from exc
        vms.extend([metric.vm] * (len(times) - len(vms)))
        starts.append(len(times))
    return {
        role: _Series(
            np.asarray(vms, dtype=np.int64),
            np.asarray(times, dtype=np.int64),
            np.asarray(values, dtype=np.float64),
            np.asarray(starts, dtype=np.int64),
        )
        for role, (vms, times, values, starts) in collected.items()
    }


def _malformed(where: str, points: list[Any], parse: _Timestamps) -> PayloadError:
    """What is wrong with the first measure of ``points`` that is not ``[ISO 8601 time, granularity, number]``."""
    for k, point in enumerate(points):
        at = f"{where} measures[{k}]"
        if not isinstance(point, list) or len(point) != 3:
            return PayloadError.unexpected(at, point, "[timestamp, granularity, value]")
        stamp, _granularity, value = point
        try:
            parse(stamp)
        except (TypeError, ValueError, OverflowError):
            return PayloadError.unexpected(f"{at} timestamp", stamp, "an ISO 8601 time with a time zone")
        try:
            float(0.0 if value is None else value)
        except (TypeError, ValueError, OverflowError):
            return PayloadError.unexpected(f"{at} value", value, "a number a double holds, or null")
    return PayloadError(where, "has measures that cannot be read")


def _as_of(
    series: _Series | None, vm: npt.NDArray[np.int64], ts: npt.NDArray[np.int64], most: float
) -> npt.NDArray[np.float64]:
    """Each (``vm``, ``ts``)'s reading in ``series`` from 1 to ``most`` (others are no allocation): the last one at
    or before ``ts``, else the VM's first after it; NaN if the VM has none."""
    found = np.full(len(vm), np.nan)
    if series is None or not len(vm):
        return found
    known = (series.values >= 1) & (series.values <= most)
    if not known.any():
        return found
    base = min(int(series.ts[known].min()), int(ts.min()))
    span = max(int(series.ts[known].max()), int(ts.max())) - base + 1
    keys = series.vm[known] * span + (series.ts[known] - base)
    order = np.argsort(keys, kind="stable")
    keys, values, owners = keys[order], series.values[known][order], series.vm[known][order]
    at = np.searchsorted(keys, vm * span + (ts - base), side="right") - 1
    before = (at >= 0) & (owners[np.clip(at, 0, None)] == vm)
    after = np.clip(at + 1, 0, len(keys) - 1)
    use = np.where(before, np.clip(at, 0, None), after)
    return np.where(owners[use] == vm, values[use], np.nan)


def allocations(
    group: Layout, series: Mapping[Role, _Series], vm: npt.NDArray[np.int64], ts: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """vCPUs and memory (MiB) of each (``vm``, ``ts``): the VM's known flavor's, else its ``vcpus``/``memory``
    reading as of then (a resize shows in the readings from its poll on)."""
    vcpus = _as_of(series.get(Role.VCPUS), vm, ts, MAX_VCPUS)
    memory = _as_of(series.get(Role.MEMORY), vm, ts, MAX_MEMORY_MIB)
    flavors = [(k, f) for k, f in enumerate(group.flavors) if f is not None]
    if flavors:
        known = np.asarray([k for k, _ in flavors])
        sizes = np.full((len(group.flavors), 2), np.nan)
        sizes[known] = [(f.vcpus, f.memory_mib) for _, f in flavors]
        fixed = ~np.isnan(sizes[vm, 0])
        vcpus[fixed], memory[fixed] = sizes[vm[fixed], 0], sizes[vm[fixed], 1]
    return vcpus, memory


def readings(measures: Mapping[str, Any], metric_id: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """One metric's buckets in an aggregates payload: their starts (epoch seconds) and means (NaN if null)."""
    found = _series([MetricRef(metric_id, 0, Role.VCPUS)], measures, _Timestamps()).get(Role.VCPUS)
    return (found.ts, found.values) if found is not None else (np.empty(0, np.int64), np.empty(0))


@dataclass(frozen=True)
class Polling:
    """How to read a group's readings: the granularity read, the polling interval when configured, and the
    interval to assume when the readings do not show it (fewer than two in a row)."""

    granularity_s: int
    configured_s: int | None = None
    fallback_s: int = 300

    def interval_s(self, series: _Series | None) -> int:
        """The configured polling interval, else the one ``series`` shows, else the fallback; at least one
        granularity."""
        found = self.configured_s
        if found is None and series is not None:
            found = polling_interval(series.starts, series.ts, self.granularity_s)
        return max(found or self.fallback_s, self.granularity_s)


def parse_measures(group: Layout, measures: Mapping[str, Any], window: Window, polling: Polling) -> SampleBatch:
    """One SampleBatch of the VMs of ``group`` with timestamps in ``window``; its ``interval_s`` is the shortest
    polling interval of its meters (``polling`` says how each is found).

    ``measures`` (metric id -> ``[[timestamp, granularity, mean]]``, as ``/v1/aggregates`` answers) may start
    before the window: earlier readings only serve as the predecessors of the first counter readings inside it.
    A counter's rate needs its previous reading at most two of its polling intervals before (one missed poll).
    """
    series = _series(group.metrics, measures, _Timestamps())
    intervals = {role: polling.interval_s(series.get(role)) for role in _ROW_ROLES if role in series}
    interval_s = min(intervals.values(), default=polling.interval_s(None))
    columns: dict[Role, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}
    for role in _ROW_ROLES:
        found = series.get(role)
        if found is None:
            continue
        values = found.values
        if role != Role.MEM_USAGE:
            values = counter_rates(found.starts, found.ts, found.values, 2 * intervals[role])
        inside = (found.ts >= window.start_s) & (found.ts < window.end_s)
        if inside.any():
            columns[role] = (found.vm[inside], found.ts[inside], values[inside])
    if not columns:
        return _empty(group, interval_s)
    all_vm = np.concatenate([vm for vm, _, _ in columns.values()])
    all_ts = np.concatenate([ts for _, ts, _ in columns.values()])
    span = int(all_ts.max() - all_ts.min()) + 1
    base = int(all_ts.min())
    keys, rows = np.unique(all_vm * span + (all_ts - base), return_inverse=True)
    out = np.full((len(keys), len(METRICS)), np.nan)
    offset = 0
    with np.errstate(over="ignore"):  # a result too large for a double is missing, like a non-finite reading
        for role, (vm, ts, values) in columns.items():
            where = rows[offset : offset + len(vm)]
            offset += len(vm)
            if role == Role.CPU:
                cores = values / NS_PER_S
                out[where, METRICS.index("cpu_used_cores")] = cores
                out[where, METRICS.index("cpu_usage_pct")] = 100.0 * cores / allocations(group, series, vm, ts)[0]
            elif role == Role.MEM_USAGE:
                out[where, METRICS.index("mem_used_bytes")] = values * MIB
                out[where, METRICS.index("mem_usage_pct")] = 100.0 * values / allocations(group, series, vm, ts)[1]
            else:  # a sum over devices: unknown as soon as one device present at that time is unknown
                column = _RATE_COLUMNS[role]
                out[where, column] = 0.0
                np.add.at(out[:, column], where, values)
    out[~np.isfinite(out)] = np.nan
    vm_index = (keys // span).astype(np.int32)
    return SampleBatch(tuple(group.refs), vm_index, keys % span + base, out, interval_s)


def _empty(group: Layout, interval_s: int) -> SampleBatch:
    return SampleBatch(
        tuple(group.refs),
        np.empty(0, dtype=np.int32),
        np.empty(0, dtype=np.int64),
        np.empty((0, len(METRICS))),
        interval_s,
    )
