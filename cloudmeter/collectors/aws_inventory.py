"""EC2 inventory parsing: ``describe_instances`` and ``describe_instance_types`` answers to cloudmeter's topology.

Pure functions over the documented response shapes; the API calls live in ``collectors/cloudwatch.py``.

Topology (``model.KINDS``): ``vm`` (instance id) -> ``host`` (dedicated host id, when the instance runs on one)
-> ``cluster`` -> ``provider`` (the manager) -> ``region``. An instance's cluster is the value of the configured
``cluster_tag`` when it carries that tag (ems_ref ``TAG=VALUE``), otherwise its availability zone (ems_ref the
zone's name); a dedicated host's cluster is always its zone. The project is the owning account.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from cloudmeter.model import Inventory, InventoryItem, ResourceRef, as_utc

if TYPE_CHECKING:
    from mypy_boto3_ec2.type_defs import InstanceTypeDef, InstanceTypeInfoTypeDef, ReservationTypeDef

MIB: Final = 1 << 20
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


def parse_instance_types(infos: Iterable[InstanceTypeInfoTypeDef]) -> dict[str, InstanceType]:
    """vCPUs and memory by instance type name, from ``describe_instance_types``."""
    return {
        info["InstanceType"]: InstanceType(info["VCpuInfo"]["DefaultVCpus"], info["MemoryInfo"]["SizeInMiB"] * MIB)
        for info in infos
        if "InstanceType" in info and "VCpuInfo" in info and "MemoryInfo" in info
    }


def parse_instances(reservations: Iterable[ReservationTypeDef]) -> list[Instance]:
    """Every instance of ``describe_instances`` reservations (pending, running, stopped, recently terminated)."""
    return [
        _instance(instance, reservation.get("OwnerId", ""))
        for reservation in reservations
        for instance in reservation.get("Instances", [])
    ]


def _instance(instance: InstanceTypeDef, owner: str) -> Instance:
    tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", []) if "Key" in tag and "Value" in tag}
    placement = instance.get("Placement", {})
    state = instance.get("State", {}).get("Name", "")
    launched = as_utc(instance["LaunchTime"])
    root = instance.get("RootDeviceName")
    attached = [
        as_utc(mapping["Ebs"]["AttachTime"])
        for mapping in instance.get("BlockDeviceMappings", [])
        if mapping.get("DeviceName") == root and "AttachTime" in mapping.get("Ebs", {})
    ]
    return Instance(
        ref=ResourceRef("vm", instance["InstanceId"]),
        name=tags.get("Name") or instance["InstanceId"],
        instance_type=instance.get("InstanceType", ""),
        zone=placement.get("AvailabilityZone", ""),
        host_id=placement.get("HostId") or None,
        owner=owner,
        tags=tags,
        detailed_monitoring=instance.get("Monitoring", {}).get("State") == "enabled",
        started_at=min([launched, *attached]),
        ended_at=_transition_time(instance.get("StateTransitionReason", "")) if state in _ENDED_STATES else None,
        terminated=state == "terminated",
    )


def _transition_time(reason: str) -> datetime | None:
    match = _TRANSITION_TIME.search(reason)
    return datetime.fromisoformat(match[1]).replace(tzinfo=UTC) if match else None


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
