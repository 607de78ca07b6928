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
from cloudmeter.errors import BadPayload
from cloudmeter.model import METRICS, InventoryItem, Placement, ResourceRef, SampleBatch, Window, as_utc, epoch_s

MIB: Final = 1 << 20
NS_PER_S: Final = 1e9


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
    """A flavor's allocation, from configuration."""

    vcpus: int
    memory_mib: int


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
    flavor_names: list[str] = field(default_factory=list)
    metrics: list[MetricRef] = field(default_factory=list)

    def groups(self, max_metrics: int) -> list[Layout]:
        """Sub-layouts of whole VMs with at most ``max_metrics`` metrics each (one request each)."""
        by_vm: dict[int, list[MetricRef]] = defaultdict(list)
        for metric in self.metrics:
            by_vm[metric.vm].append(metric)
        groups: list[Layout] = []
        current = Layout()
        for vm, metrics in sorted(by_vm.items()):
            if current.metrics and len(current.metrics) + len(metrics) > max_metrics:
                groups.append(current)
                current = Layout()
            index = len(current.refs)
            current.refs.append(self.refs[vm])
            current.flavor_names.append(self.flavor_names[vm])
            current.metrics.extend(MetricRef(m.metric_id, index, m.role) for m in metrics)
        if current.metrics:
            groups.append(current)
        return groups


def vm_ref(instance: Mapping[str, Any]) -> ResourceRef:
    """The reference of a Ceilometer ``instance`` resource."""
    return ResourceRef("vm", str(instance["id"]))


def layout(instances: Iterable[Mapping[str, Any]], devices: Iterable[Mapping[str, Any]]) -> Layout:
    """The capture layout of ``instances`` and their disks and NICs (``devices``, each with ``instance_id``)."""
    result = Layout()
    index: dict[str, int] = {}
    for instance in instances:
        index[str(instance["id"])] = len(result.refs)
        result.refs.append(vm_ref(instance))
        result.flavor_names.append(str(instance.get("flavor_name") or ""))
        _add_metrics(result, index[str(instance["id"])], instance, METERS["instance"])
    for device in devices:
        vm = index.get(str(device.get("instance_id")))
        if vm is not None:
            _add_metrics(result, vm, device, METERS[str(device["type"])])
    return result


def _add_metrics(result: Layout, vm: int, resource: Mapping[str, Any], meters: Mapping[str, Role]) -> None:
    for name, metric_id in (resource.get("metrics") or {}).items():
        if name in meters:
            result.metrics.append(MetricRef(str(metric_id), vm, meters[name]))


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


def _series(
    metrics: Sequence[MetricRef], measures: Mapping[str, Sequence[Sequence[Any]]], parse: _Timestamps, manager: str
) -> dict[Role, _Series]:
    collected: dict[Role, tuple[list[int], list[int], list[float], list[int]]] = {}
    for metric in metrics:
        vms, times, values, starts = collected.setdefault(metric.role, ([], [], [], [0]))
        points = measures.get(metric.metric_id, ())
        try:
            if points:
                stamps, _granularities, readings = zip(*points, strict=True)
                times.extend(map(parse, stamps))
                values.extend(np.nan if value is None else float(value) for value in readings)
        except (TypeError, ValueError) as exc:
            raise BadPayload(manager, f"metric {metric.metric_id} has a malformed measure: {exc}") from exc
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


def _latest(series: _Series | None, n_vms: int) -> npt.NDArray[np.float64]:
    """Each VM's last known (non-NaN) reading in ``series``, NaN if none."""
    latest = np.full(n_vms, np.nan)
    if series is None:
        return latest
    known = ~np.isnan(series.values)
    order = np.lexsort((series.ts[known], series.vm[known]))
    vms, values = series.vm[known][order], series.values[known][order]
    latest[vms] = values  # later readings of a VM overwrite earlier ones
    return latest


def allocations(
    group: Layout, series: Mapping[Role, _Series], flavors: Mapping[str, Flavor]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """vCPUs and memory (MiB) per VM: the latest ``vcpus``/``memory`` reading, else the configured flavor."""
    vcpus = _latest(series.get(Role.VCPUS), len(group.refs))
    memory = _latest(series.get(Role.MEMORY), len(group.refs))
    for vm, name in enumerate(group.flavor_names):
        flavor = flavors.get(name)
        if flavor is not None:
            vcpus[vm] = flavor.vcpus if np.isnan(vcpus[vm]) else vcpus[vm]
            memory[vm] = flavor.memory_mib if np.isnan(memory[vm]) else memory[vm]
    return vcpus, memory


def latest_allocations(
    group: Layout,
    measures: Mapping[str, Sequence[Sequence[Any]]],
    flavors: Mapping[str, Flavor],
    manager: str,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``allocations`` straight from an aggregates payload."""
    return allocations(group, _series(group.metrics, measures, _Timestamps(), manager), flavors)


def parse_measures(
    group: Layout,
    measures: Mapping[str, Sequence[Sequence[Any]]],
    window: Window,
    *,
    max_span_s: int,
    interval_s: int,
    flavors: Mapping[str, Flavor],
    manager: str,
) -> SampleBatch:
    """One SampleBatch of the VMs of ``group`` with timestamps in ``window``.

    ``measures`` (metric id -> ``[[timestamp, granularity, mean]]``, as ``/v1/aggregates`` answers) may start
    before the window: earlier readings only serve as the predecessors of the first counter readings inside it.
    """
    series = _series(group.metrics, measures, _Timestamps(), manager)
    vcpus, memory_mib = allocations(group, series, flavors)
    columns: dict[Role, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}
    for role in _ROW_ROLES:
        found = series.get(role)
        if found is None:
            continue
        values = found.values
        if role != Role.MEM_USAGE:
            values = counter_rates(found.starts, found.ts, found.values, max_span_s)
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
    for role, (vm, _ts, values) in columns.items():
        where = rows[offset : offset + len(vm)]
        offset += len(vm)
        if role == Role.CPU:
            cores = values / NS_PER_S
            out[where, METRICS.index("cpu_used_cores")] = cores
            out[where, METRICS.index("cpu_usage_pct")] = 100.0 * cores / vcpus[vm]
        elif role == Role.MEM_USAGE:
            out[where, METRICS.index("mem_used_bytes")] = values * MIB
            out[where, METRICS.index("mem_usage_pct")] = 100.0 * values / memory_mib[vm]
        else:  # a sum over devices: unknown as soon as one device present at that time is unknown
            column = _RATE_COLUMNS[role]
            out[where, column] = 0.0
            np.add.at(out[:, column], where, values)
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


@dataclass(frozen=True)
class Topology:
    """Where hosts sit: the configured host -> cluster map, the provider and the region."""

    provider: ResourceRef
    region: ResourceRef
    host_clusters: Mapping[str, str]


def _moment(value: Any) -> datetime | None:
    return as_utc(datetime.fromisoformat(str(value))) if value else None


def _allocation(
    revision: Mapping[str, Any], current_flavor: str, current: tuple[float, float], flavors: Mapping[str, Flavor]
) -> tuple[int | None, int | None]:
    """vCPUs and memory bytes of one revision: its flavor's from configuration, else the measured current ones."""
    flavor = flavors.get(str(revision.get("flavor_name") or ""))
    if flavor is not None:
        return flavor.vcpus, flavor.memory_mib * MIB
    if str(revision.get("flavor_id")) != current_flavor:
        return None, None  # resized since: the measured allocation belongs to another flavor
    vcpus, memory_mib = current
    return (None if np.isnan(vcpus) else int(vcpus)), (None if np.isnan(memory_mib) else int(memory_mib * MIB))


def vm_item(
    revisions: Sequence[Mapping[str, Any]],
    current: tuple[float, float],
    flavors: Mapping[str, Flavor],
) -> InventoryItem:
    """One VM from its Gnocchi revisions (oldest first): a placement per revision whose host, flavor or project
    differs from the previous one, from its ``revision_start`` (the first from the instance's start)."""
    latest = revisions[-1]
    created = _moment(latest.get("created_at")) or _moment(latest["started_at"])
    assert created is not None
    placements: list[Placement] = []
    for revision in revisions:
        host = revision.get("host")
        parent = ResourceRef("host", str(host)) if host else None
        vcpus, memory = _allocation(revision, str(latest.get("flavor_id")), current, flavors)
        placement = Placement(
            created if not placements else _moment(revision["revision_start"]) or created,
            parent,
            vcpus,
            memory,
            revision.get("project_id"),
        )
        if not placements or _state(placements[-1]) != _state(placement):
            placements.append(placement)
    last = placements[-1]
    tags = {
        key: str(latest[key])
        for key in ("flavor_name", "flavor_id", "image_ref", "availability_zone", "server_group")
        if latest.get(key)
    }
    return InventoryItem(
        vm_ref(latest),
        str(latest.get("display_name") or latest["id"]),
        parent=last.parent,
        vcpus=last.vcpus,
        memory_bytes=last.memory_bytes,
        project=last.project,
        tags=tags,
        created_at=created,
        retired_at=_moment(latest.get("ended_at")) or _moment(latest.get("deleted_at")),
        history=tuple(placements),
    )


def _state(placement: Placement) -> tuple[Any, ...]:
    return (placement.parent, placement.vcpus, placement.memory_bytes, placement.project)


def infrastructure(
    vms: Sequence[InventoryItem], revisions: Iterable[Mapping[str, Any]], topology: Topology
) -> list[InventoryItem]:
    """The region, the provider, the clusters and the hosts the VMs were ever placed on.

    A host's cluster is its entry in ``host_clusters``, else the availability zone last seen on an instance on
    it, else none (the host sits right under the provider).
    """
    first_seen: dict[str, datetime] = {}
    zones: dict[str, str] = {}
    for vm in vms:
        for placement in vm.history:
            if placement.parent is not None:
                host = placement.parent.ems_ref
                first_seen[host] = min(first_seen.get(host, placement.valid_from), placement.valid_from)
    for revision in revisions:
        if revision.get("host") and revision.get("availability_zone"):
            zones[str(revision["host"])] = str(revision["availability_zone"])
    start = min(first_seen.values(), default=min((vm.created_at for vm in vms if vm.created_at), default=None))
    items = [
        InventoryItem(topology.region, topology.region.ems_ref, created_at=start),
        InventoryItem(topology.provider, topology.provider.ems_ref, parent=topology.region, created_at=start),
    ]
    clusters: dict[str, datetime] = {}
    for host, since in sorted(first_seen.items()):
        cluster = topology.host_clusters.get(host) or zones.get(host)
        parent = ResourceRef("cluster", cluster) if cluster else topology.provider
        if cluster:
            clusters[cluster] = min(clusters.get(cluster, since), since)
        items.append(InventoryItem(ResourceRef("host", host), host, parent=parent, created_at=since))
    items.extend(
        InventoryItem(ResourceRef("cluster", name), name, parent=topology.provider, created_at=since)
        for name, since in sorted(clusters.items())
    )
    return items
