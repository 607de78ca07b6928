"""EC2 inventory parsing: ``describe_instances`` and ``describe_instance_types`` answers to cloudmeter's topology.

Pure functions over the documented response shapes; the API calls live in ``collector`` and ``api``.

Topology (``model.KINDS``): ``vm`` (instance id) -> ``host`` (dedicated host id, when the instance runs on one)
-> ``cluster`` -> ``provider`` (the manager) -> ``region``. An instance's cluster is the value of the configured
``cluster_tag`` when it carries that tag (ems_ref ``TAG=VALUE``), otherwise its availability zone (ems_ref the
zone's name); a dedicated host's cluster is always its zone. The project is the owning account.

An answer that does not follow the documented shapes raises ``PayloadError`` naming the place (the collector
adds the manager); an instance type whose vCPUs or memory are outside what the resources table holds is left out
(its instances' allocation is unknown).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cloudmeter.errors import PayloadError
from cloudmeter.model import Inventory, InventoryItem, ResourceRef, as_utc

MIB: Final = 1 << 20
#: The largest allocations the resources table holds (vcpus integer, memory_bytes bigint).
MAX_VCPUS: Final = 2**31 - 1
MAX_MEMORY_MIB: Final = 2**42
#: The time EC2 writes into ``StateTransitionReason``, e.g. "User initiated (2024-05-01 10:00:00 GMT)".
_TRANSITION_TIME: Final = re.compile(r"\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (?:GMT|UTC)\)")
#: States whose ``StateTransitionReason`` time is when the instance stopped running.
_ENDED_STATES: Final = frozenset({"stopping", "stopped", "shutting-down", "terminated"})
#: Facts added to each VM's tags; AWS reserves the ``aws:`` prefix, so they never collide with user tags.
INSTANCE_TYPE_TAG: Final = "aws:instance-type"
ZONE_TAG: Final = "aws:availability-zone"


@dataclass(frozen=True)
class InstanceType:
    """What an instance type allocates."""

    vcpus: int
    memory_bytes: int


@dataclass(frozen=True)
class Instance:
    """The facts about one EC2 instance that inventory and capture use."""

    ref: ResourceRef
    name: str
    instance_type: str
    zone: str
    host_id: str | None
    owner: str
    tags: Mapping[str, str]
    detailed_monitoring: bool
    #: The earliest of the last launch and the root volume's attachment (which survives stop and start).
    started_at: datetime
    #: When it stopped running, for a stopped or terminated instance whose transition time EC2 gives.
    ended_at: datetime | None
    terminated: bool

    def alive_during(self, start: datetime, end: datetime) -> bool:
        """Whether the instance may have run at some time in ``[start, end)``."""
        return self.started_at < end and (self.ended_at is None or self.ended_at > start)


def expect_object(value: Any, where: str) -> dict[str, Any]:
    """``value``, which the documented shape says is an object (a structure)."""
    return PayloadError.expect(value, dict, where, "an object")


def expect_text(item: Mapping[str, Any], key: str, where: str) -> str | None:
    """``item[key]``: a string, or None when it is absent."""
    value = item.get(key)
    return None if value is None else PayloadError.expect(value, str, f"{where}.{key}", "a string")


def _list(value: Any, where: str) -> list[Any]:
    return PayloadError.expect(value, list, where, "a list")


def expect_pairs(value: Any, where: str, name: str) -> list[tuple[str, str]]:
    """The ``(name, Value)`` of a list of tags or dimensions (``name``: Key or Name); incomplete ones are left out."""
    pairs: list[tuple[str, str]] = []
    for k, entry in enumerate(_list(value, where)):
        item = expect_object(entry, f"{where}[{k}]")
        key, text = expect_text(item, name, f"{where}[{k}]"), expect_text(item, "Value", f"{where}[{k}]")
        if key is not None and text is not None:
            pairs.append((key, text))
    return pairs


def _time(value: Any, where: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise PayloadError.unexpected(where, value, "a time with a time zone")
    try:
        return as_utc(value)
    except OverflowError as exc:
        raise PayloadError.unexpected(where, value, "a time after year 1") from exc


def _count(item: Mapping[str, Any], key: str, where: str, most: int) -> int | None:
    """``item[key]``, a whole number; None when absent or not from 1 to ``most``."""
    value = item.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise PayloadError.unexpected(f"{where}.{key}", value, "a whole number")
    return value if value is not None and 1 <= value <= most else None


def parse_instance_types(infos: Iterable[Any]) -> dict[str, InstanceType]:
    """vCPUs and memory by instance type name, from ``describe_instance_types``."""
    found: dict[str, InstanceType] = {}
    for k, value in enumerate(infos):
        where = f"InstanceTypes[{k}]"
        info = expect_object(value, where)
        name = expect_text(info, "InstanceType", where)
        cpu, memory = (expect_object(info.get(key, {}), f"{where}.{key}") for key in ("VCpuInfo", "MemoryInfo"))
        vcpus = _count(cpu, "DefaultVCpus", f"{where}.VCpuInfo", MAX_VCPUS)
        memory_mib = _count(memory, "SizeInMiB", f"{where}.MemoryInfo", MAX_MEMORY_MIB)
        if name and vcpus and memory_mib:
            found[name] = InstanceType(vcpus, memory_mib * MIB)
    return found


def parse_instances(reservations: Iterable[Any]) -> list[Instance]:
    """Every instance of ``describe_instances`` reservations (pending, running, stopped, recently terminated)."""
    found: list[Instance] = []
    for r, value in enumerate(reservations):
        where = f"Reservations[{r}]"
        reservation = expect_object(value, where)
        owner = expect_text(reservation, "OwnerId", where) or ""
        for i, instance in enumerate(_list(reservation.get("Instances", []), f"{where}.Instances")):
            found.append(_instance(instance, owner, f"{where}.Instances[{i}]"))
    return found


def _instance(value: Any, owner: str, where: str) -> Instance:
    instance = expect_object(value, where)
    instance_id = expect_text(instance, "InstanceId", where)
    if not instance_id:
        raise PayloadError.unexpected(f"{where}.InstanceId", instance_id, "an instance id")
    tags = dict(expect_pairs(instance.get("Tags", []), f"{where}.Tags", "Key"))
    placement = expect_object(instance.get("Placement", {}), f"{where}.Placement")
    state = expect_text(expect_object(instance.get("State", {}), f"{where}.State"), "Name", f"{where}.State")
    monitoring = expect_object(instance.get("Monitoring", {}), f"{where}.Monitoring")
    launched = _time(instance.get("LaunchTime"), f"{where}.LaunchTime")
    root = expect_text(instance, "RootDeviceName", where)
    attached: list[datetime] = []
    for m, entry in enumerate(_list(instance.get("BlockDeviceMappings", []), f"{where}.BlockDeviceMappings")):
        at = f"{where}.BlockDeviceMappings[{m}]"
        mapping = expect_object(entry, at)
        ebs = expect_object(mapping.get("Ebs", {}), f"{at}.Ebs")
        if expect_text(mapping, "DeviceName", at) == root and "AttachTime" in ebs:
            attached.append(_time(ebs["AttachTime"], f"{at}.Ebs.AttachTime"))
    reason = expect_text(instance, "StateTransitionReason", where) or ""
    return Instance(
        ref=ResourceRef("vm", instance_id),
        name=tags.get("Name") or instance_id,
        instance_type=expect_text(instance, "InstanceType", where) or "",
        zone=expect_text(placement, "AvailabilityZone", f"{where}.Placement") or "",
        host_id=expect_text(placement, "HostId", f"{where}.Placement") or None,
        owner=owner,
        tags=tags,
        detailed_monitoring=expect_text(monitoring, "State", f"{where}.Monitoring") == "enabled",
        started_at=min([launched, *attached]),
        ended_at=_transition_time(reason) if state in _ENDED_STATES else None,
        terminated=state == "terminated",
    )


def _transition_time(reason: str) -> datetime | None:
    """The time in a ``StateTransitionReason``; None when it gives none (or an impossible one)."""
    match = _TRANSITION_TIME.search(reason)
    try:
        return datetime.fromisoformat(match[1]).replace(tzinfo=UTC) if match else None
    except ValueError:
        return None


@dataclass
class _Node:
    """An infrastructure resource, created when its earliest VM was."""

    name: str
    parent: ResourceRef | None
    created_at: datetime | None = None

    def saw(self, moment: datetime) -> None:
        self.created_at = moment if self.created_at is None else min(self.created_at, moment)


def build_inventory(
    manager: str,
    region: str,
    cluster_tag: str | None,
    instances: Iterable[Instance],
    types: Mapping[str, InstanceType],
    observed_at: datetime,
) -> Inventory:
    """Region, provider, clusters, dedicated hosts and VMs (see the module docstring for the topology).

    A terminated instance is retired when EC2 says it stopped, or at ``observed_at`` if it does not say.
    No placement history is reported: EC2 keeps none, so changes are recorded from the refresh that sees them.
    """
    region_ref, provider_ref = ResourceRef("region", region), ResourceRef("provider", manager)
    nodes: dict[ResourceRef, _Node] = {region_ref: _Node(region, None), provider_ref: _Node(manager, region_ref)}
    vms: list[InventoryItem] = []
    for instance in instances:
        zone_ref = ResourceRef("cluster", instance.zone)
        tagged = instance.tags.get(cluster_tag) if cluster_tag else None
        cluster_ref = ResourceRef("cluster", f"{cluster_tag}={tagged}") if tagged else zone_ref
        if instance.host_id:
            host_ref = ResourceRef("host", instance.host_id)
            chain = [(host_ref, _Node(instance.host_id, zone_ref)), (zone_ref, _Node(instance.zone, provider_ref))]
        else:
            chain = [(cluster_ref, _Node(tagged or instance.zone, provider_ref))]
        for ref, node in [*chain, (provider_ref, nodes[provider_ref]), (region_ref, nodes[region_ref])]:
            nodes.setdefault(ref, node).saw(instance.started_at)
        vms.append(_vm_item(instance, chain[0][0], types.get(instance.instance_type), observed_at))
    order = {kind: rank for rank, kind in enumerate(("region", "provider", "cluster", "host"))}
    infrastructure = [
        InventoryItem(ref, node.name, parent=node.parent, created_at=node.created_at)
        for ref, node in sorted(nodes.items(), key=lambda entry: (order[entry[0].kind], entry[0].ems_ref))
    ]
    return Inventory(observed_at=observed_at, items=(*infrastructure, *vms))


def _vm_item(
    instance: Instance, parent: ResourceRef, instance_type: InstanceType | None, observed_at: datetime
) -> InventoryItem:
    retired_at = (instance.ended_at or observed_at) if instance.terminated else None
    return InventoryItem(
        instance.ref,
        instance.name,
        parent=parent,
        vcpus=instance_type.vcpus if instance_type else None,
        memory_bytes=instance_type.memory_bytes if instance_type else None,
        project=instance.owner or None,
        tags={**instance.tags, INSTANCE_TYPE_TAG: instance.instance_type, ZONE_TAG: instance.zone},
        created_at=instance.started_at,
        retired_at=retired_at,
    )
