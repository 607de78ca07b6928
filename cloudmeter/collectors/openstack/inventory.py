"""Pure parsing of Ceilometer's instances and their revisions into inventory items. No I/O here.

Each Gnocchi revision of an instance (``history=true``) holds its host, flavor and project from its
``revision_start`` until the next revision begins (the last until the instance ended, or now). A revision's
allocation is its flavor's when the flavor is known (the configuration's ``flavors`` by name, else Nova's by
id), else the last ``vcpus``/``memory`` reading inside the revision (read by the collector from the day before
it ended), so a VM deleted long ago keeps the allocation it had. Hosts take their capacity from Nova's
hypervisors and their cluster from the configuration, else Nova's aggregates, else the availability zone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from cloudmeter.collectors.openstack.nova_parse import HostCapacity
from cloudmeter.collectors.openstack.parse import (
    MIB,
    Flavors,
    attribute_text,
    attribute_time,
    found_at,
    resource_ids,
    resource_of,
)
from cloudmeter.errors import PayloadError
from cloudmeter.model import InventoryItem, Placement, ResourceRef, epoch_s

#: vCPUs and memory bytes, None where unknown.
Allocation = tuple[int | None, int | None]


@dataclass(frozen=True)
class Topology:
    """Where hosts sit and what they hold: the configured host -> cluster map (an override), Nova's aggregates
    and hypervisors' capacity (host -> vCPUs and memory MiB), the provider and the region."""

    provider: ResourceRef
    region: ResourceRef
    host_clusters: Mapping[str, str]
    aggregates: Mapping[str, str] = field(default_factory=dict)
    capacity: Mapping[str, HostCapacity] = field(default_factory=dict)


class Revision(NamedTuple):
    """One revision of an instance: when it began and ended (None while current) and its attributes."""

    start: datetime
    end: datetime | None
    instance_id: str
    attributes: Mapping[str, Any]

    @property
    def where(self) -> str:
        return f"instance {self.instance_id}"


def _started(value: Any, where: str) -> tuple[datetime, str, Mapping[str, Any]]:
    instance_id, attributes = resource_of(value, where)
    start = attribute_time(attributes, "revision_start", f"instance {instance_id}")
    if start is None:
        raise PayloadError.unexpected(f"instance {instance_id} revision_start", None, "an ISO 8601 time")
    return start, instance_id, attributes


def _ended(attributes: Mapping[str, Any], where: str) -> datetime | None:
    return attribute_time(attributes, "ended_at", where) or attribute_time(attributes, "deleted_at", where)


def revisions(instances: Sequence[Any], history: Iterable[Any]) -> dict[str, list[Revision]]:
    """Each instance of a search's answer -> its revisions (a search of them with history, in any order; an
    instance without any from itself), oldest first, each ending where the next begins."""
    found: dict[str, list[Any]] = defaultdict(list)
    for k, revision in enumerate(history):
        found[resource_of(revision, f"{found_at('instance', k)} (history)")[0]].append(revision)
    result: dict[str, list[Revision]] = {}
    for i, instance_id in enumerate(resource_ids(instances, "instance")):
        listed = found.get(instance_id) or [instances[i]]
        ordered = sorted((_started(v, f"instance revision [{k}]") for k, v in enumerate(listed)), key=lambda r: r[0])
        last = ordered[-1]
        ends = [start for start, _, _ in ordered[1:]] + [_ended(last[2], f"instance {last[1]}")]
        result[instance_id] = [
            Revision(start, end, found_id, attributes)
            for (start, found_id, attributes), end in zip(ordered, ends, strict=True)
        ]
    return result


def last_reading(
    ts: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    granularity_s: int,
    revision: Revision,
    most: float,
) -> float:
    """The reading of ``revision`` in buckets of ``granularity_s`` starting at ``ts`` (NaN if none): the last
    whole mean from 1 to ``most`` of a bucket inside the revision, else of one overlapping it. A bucket that
    straddles a resize averages two allocations, so a mean that is not whole is none."""
    start_s = epoch_s(revision.start)
    end_s = epoch_s(revision.end) if revision.end is not None else np.iinfo(np.int64).max
    usable = (ts + granularity_s > start_s) & (ts < end_s) & (values >= 1) & (values <= most)
    usable &= np.where(usable, values, 0.0) % 1 == 0  # whole; out-of-range values (inf) are out already
    if not usable.any():
        return np.nan
    inside = (ts >= start_s) & (ts + granularity_s <= end_s)
    best = np.lexsort((ts[usable], inside[usable]))[-1]  # inside first, then the latest
    return float(values[usable][best])


def allocation(revision: Revision, flavors: Flavors, vcpus: float = np.nan, memory_mib: float = np.nan) -> Allocation:
    """vCPUs and memory bytes of ``revision``: its known flavor's, else its readings (NaN: unknown)."""
    flavor = flavors.find(revision.attributes, revision.where)
    if flavor is not None:
        return flavor.vcpus, flavor.memory_mib * MIB
    return (None if np.isnan(vcpus) else round(vcpus)), (None if np.isnan(memory_mib) else round(memory_mib * MIB))


def vm_item(revisions: Sequence[Revision], allocations: Mapping[datetime, Allocation]) -> InventoryItem:
    """One VM from its revisions (oldest first) and their allocations by revision start: a placement per
    revision whose host, allocation or project differs from the previous one (the first from the instance's
    start)."""
    latest, where, instance_id = revisions[-1].attributes, revisions[-1].where, revisions[-1].instance_id
    created = attribute_time(latest, "created_at", where) or attribute_time(latest, "started_at", where)
    if created is None:
        raise PayloadError.unexpected(f"{where} started_at", None, "an ISO 8601 time (or created_at)")
    placements: list[Placement] = []
    shared = _shared_by_flavor(revisions, allocations)
    for revision in revisions:
        host = attribute_text(revision.attributes, "host", revision.where)
        vcpus, memory = shared[revision.start]
        placement = Placement(
            revision.start if placements else created,
            ResourceRef("host", host) if host else None,
            vcpus,
            memory,
            attribute_text(revision.attributes, "project_id", revision.where),
        )
        if not placements or _state(placements[-1]) != _state(placement):
            placements.append(placement)
    last = placements[-1]
    tags = {
        key: value
        for key in ("flavor_name", "flavor_id", "image_ref", "availability_zone", "server_group")
        if (value := attribute_text(latest, key, where))
    }
    return InventoryItem(
        ResourceRef("vm", instance_id),
        attribute_text(latest, "display_name", where) or instance_id,
        parent=last.parent,
        vcpus=last.vcpus,
        memory_bytes=last.memory_bytes,
        project=last.project,
        tags=tags,
        created_at=created,
        retired_at=_ended(latest, where),
        history=tuple(placements),
    )


def _shared_by_flavor(
    revisions: Sequence[Revision], allocations: Mapping[datetime, Allocation]
) -> dict[datetime, Allocation]:
    """Each revision's allocation; one unknown (no reading inside it, as a revision opened by the deletion) is the
    latest known of a revision of the same flavor: a flavor's vCPUs and memory never change."""
    known: dict[str | None, list[int | None]] = {}
    for revision in revisions:
        flavor = attribute_text(revision.attributes, "flavor_id", revision.where)
        latest = known.setdefault(flavor, [None, None])
        for k, value in enumerate(allocations.get(revision.start, (None, None))):
            latest[k] = latest[k] if value is None else value
    result: dict[datetime, Allocation] = {}
    for revision in revisions:
        own = allocations.get(revision.start, (None, None))
        other = known[attribute_text(revision.attributes, "flavor_id", revision.where)]
        result[revision.start] = (
            own[0] if own[0] is not None else other[0],
            own[1] if own[1] is not None else other[1],
        )
    return result


def vm_items(
    by_instance: Mapping[str, Sequence[Revision]], allocations: Mapping[tuple[str, datetime], Allocation]
) -> list[InventoryItem]:
    """``vm_item`` of every instance of ``revisions``' answer; ``allocations`` by (instance id, revision start)."""
    return [
        vm_item(found, {r.start: allocations.get((instance_id, r.start), (None, None)) for r in found})
        for instance_id, found in by_instance.items()
    ]


def _state(placement: Placement) -> tuple[Any, ...]:
    return (placement.parent, placement.vcpus, placement.memory_bytes, placement.project)


def infrastructure(vms: Sequence[InventoryItem], history: Iterable[Any], topology: Topology) -> list[InventoryItem]:
    """The region, the provider, the clusters and the hosts: those the VMs were ever placed on and those Nova
    lists, each with Nova's capacity where known.

    A host's cluster is its entry in ``host_clusters``, else its Nova aggregate, else the availability zone last
    seen on an instance on it, else none (the host sits right under the provider).
    """
    first_seen: dict[str, datetime | None] = dict.fromkeys(topology.capacity)
    zones: dict[str, str] = {}
    for vm in vms:
        for placement in vm.history:
            if placement.parent is not None:
                host, placed = placement.parent.ems_ref, placement.valid_from
                earlier = first_seen.get(host)
                first_seen[host] = placed if earlier is None else min(earlier, placed)
    for k, value in enumerate(history):
        where = f"{found_at('instance', k)} (history)"
        attributes = PayloadError.expect(value, dict, where, "an object")
        placed_on = attribute_text(attributes, "host", where)
        zone = attribute_text(attributes, "availability_zone", where)
        if placed_on and zone:
            zones[placed_on] = zone
    known = [since for since in first_seen.values() if since is not None]
    start = min(known, default=min((vm.created_at for vm in vms if vm.created_at), default=None))
    items = [
        InventoryItem(topology.region, topology.region.ems_ref, created_at=start),
        InventoryItem(topology.provider, topology.provider.ems_ref, parent=topology.region, created_at=start),
    ]
    clusters: dict[str, datetime | None] = {}
    for host, since in sorted(first_seen.items()):
        cluster = topology.host_clusters.get(host) or topology.aggregates.get(host) or zones.get(host)
        parent = ResourceRef("cluster", cluster) if cluster else topology.provider
        if cluster:
            earlier = clusters.get(cluster)
            clusters[cluster] = since if earlier is None or since is None else min(earlier, since)
        capacity = topology.capacity.get(host)
        items.append(
            InventoryItem(
                ResourceRef("host", host),
                host,
                parent=parent,
                vcpus=capacity.vcpus if capacity else None,
                memory_bytes=capacity.memory_mib * MIB if capacity and capacity.memory_mib is not None else None,
                created_at=since,
            )
        )
    items.extend(
        InventoryItem(ResourceRef("cluster", name), name, parent=topology.provider, created_at=since)
        for name, since in sorted(clusters.items())
    )
    return items
