"""vSphere's inventory as cloudmeter's resources (pure: what ``api.VsphereAPI.retrieve`` read goes in).

ems_ref is the managed object id (``vm-44``, ``host-21``, ``domain-c27``), as ManageIQ keeps it; a VM's
instanceUuid is kept in its tags. Topology: vm -> host -> cluster -> provider -> region. The provider is the
manager's part of one datacenter (ems_ref the datacenter's id, named ``MANAGER/DATACENTER``); its region is the
datacenter's name, or the configured ``region`` for all of them. A standalone host (its parent a plain
ComputeResource) sits right under its datacenter's provider. Template VMs are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from cloudmeter.errors import PayloadError
from cloudmeter.model import Inventory, InventoryItem, ResourceRef, as_utc

MIB: Final = 1024 * 1024

#: Properties read per object type.
DATACENTER_PATHS: Final = ("name",)
CLUSTER_PATHS: Final = ("name",)
FOLDER_PATHS: Final = ("name", "parent")
HOST_PATHS: Final = (
    "name",
    "parent",
    "hardware.systemInfo.uuid",
    "summary.hardware.numCpuCores",
    "summary.hardware.cpuMhz",
    "summary.hardware.memorySize",
    "runtime.powerState",
    "runtime.connectionState",
    "runtime.inMaintenanceMode",
)
VM_PATHS: Final = (
    "name",
    "parent",
    "resourcePool",
    "config.template",
    "config.instanceUuid",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "config.guestFullName",
    "config.createDate",
    "summary.storage.committed",
    "summary.storage.uncommitted",
    "runtime.host",
    "runtime.powerState",
)


@dataclass(frozen=True)
class Host:
    """A host as capture needs it too: its MHz per core turns cpu.usagemhz into cores."""

    moid: str
    name: str
    datacenter: str
    cluster: str | None
    cores: int | None
    mhz_per_core: int | None
    memory_bytes: int | None
    tags: Mapping[str, str]

    @property
    def ref(self) -> ResourceRef:
        return ResourceRef("host", self.moid)


@dataclass(frozen=True)
class Vm:
    moid: str
    name: str
    datacenter: str
    host: str | None
    vcpus: int | None
    memory_bytes: int | None
    disk_bytes: int | None
    created_at: datetime | None
    tags: Mapping[str, str]

    @property
    def ref(self) -> ResourceRef:
        return ResourceRef("vm", self.moid)


@dataclass(frozen=True)
class Removed:
    """A VM vCenter's events say was removed."""

    moid: str
    name: str
    host: str | None
    at: datetime


def _text(flat: Mapping[str, Any], path: str, where: str) -> str | None:
    value = flat.get(path)
    if value is None:
        return None
    return PayloadError.expect(value, str, f"{where}.{path}", "a string")


def _count(flat: Mapping[str, Any], path: str, where: str) -> int | None:
    value = flat.get(path)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PayloadError.unexpected(f"{where}.{path}", value, "a whole number >= 0")
    return int(value)  # pyVmomi's xsd:long is a subclass of int, which psycopg will not mix with int in a list


def _moment(flat: Mapping[str, Any], path: str, where: str) -> datetime | None:
    value = flat.get(path)
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise PayloadError.unexpected(f"{where}.{path}", value, "a time with its zone")
    return as_utc(value)


def _moid(flat: Mapping[str, Any], k: int, kind: str) -> str:
    return PayloadError.expect(flat.get("moid"), str, f"{kind}[{k}].moid", "a managed object id")


def folder_paths(folders: Sequence[Mapping[str, Any]], kind: str) -> dict[str, str]:
    """The path of each folder (or resource pool) by id: names from the topmost one read, joined by ``/``."""
    names = {_moid(f, k, kind): _text(f, "name", f"{kind}[{k}]") or "" for k, f in enumerate(folders)}
    parents = {_moid(f, k, kind): f.get("parent") for k, f in enumerate(folders)}
    paths: dict[str, str] = {}
    for moid in names:
        parts: list[str] = []
        seen: set[str] = set()
        at: Any = moid
        while at in names and at not in seen:
            seen.add(at)
            parts.append(names[at])
            at = parents[at]
        paths[moid] = "/".join(reversed(parts))
    return paths


def parse_hosts(flats: Sequence[Mapping[str, Any]], datacenter: str, clusters: set[str]) -> list[Host]:
    hosts = []
    for k, flat in enumerate(flats):
        where = f"HostSystem[{k}]"
        parent = _text(flat, "parent", where)
        cores, mhz = _count(flat, "summary.hardware.numCpuCores", where), _count(flat, "summary.hardware.cpuMhz", where)
        tags = {
            "power_state": _text(flat, "runtime.powerState", where),
            "connection_state": _text(flat, "runtime.connectionState", where),
            "maintenance": str(bool(flat.get("runtime.inMaintenanceMode"))).lower(),
            "hardware_uuid": _text(flat, "hardware.systemInfo.uuid", where),
            "cpu_mhz_per_core": None if mhz is None else str(mhz),
            "cpu_capacity_mhz": None if mhz is None or cores is None else str(mhz * cores),
            "datacenter": datacenter,
        }
        hosts.append(
            Host(
                moid=_moid(flat, k, "HostSystem"),
                name=_text(flat, "name", where) or _moid(flat, k, "HostSystem"),
                datacenter=datacenter,
                cluster=parent if parent in clusters else None,
                cores=cores or None,
                mhz_per_core=mhz or None,
                memory_bytes=_count(flat, "summary.hardware.memorySize", where) or None,
                tags={key: value for key, value in tags.items() if value is not None},
            )
        )
    return hosts


def parse_vms(
    flats: Sequence[Mapping[str, Any]], datacenter: str, folders: Mapping[str, str], pools: Mapping[str, str]
) -> list[Vm]:
    """The VMs of one datacenter, templates left out."""
    vms = []
    for k, flat in enumerate(flats):
        if flat.get("config.template"):
            continue
        where = f"VirtualMachine[{k}]"
        memory_mb = _count(flat, "config.hardware.memoryMB", where)
        committed = _count(flat, "summary.storage.committed", where)
        uncommitted = _count(flat, "summary.storage.uncommitted", where)
        tags = {
            "instance_uuid": _text(flat, "config.instanceUuid", where),
            "guest_os": _text(flat, "config.guestFullName", where),
            "folder": folders.get(_text(flat, "parent", where) or ""),
            "resource_pool": pools.get(_text(flat, "resourcePool", where) or ""),
            "power_state": _text(flat, "runtime.powerState", where),
            "datacenter": datacenter,
        }
        vms.append(
            Vm(
                moid=_moid(flat, k, "VirtualMachine"),
                name=_text(flat, "name", where) or _moid(flat, k, "VirtualMachine"),
                datacenter=datacenter,
                host=_text(flat, "runtime.host", where),
                vcpus=_count(flat, "config.hardware.numCPU", where) or None,
                memory_bytes=memory_mb * MIB if memory_mb else None,
                disk_bytes=None if committed is None else committed + (uncommitted or 0),
                created_at=_moment(flat, "config.createDate", where),
                tags={key: value for key, value in tags.items() if value},
            )
        )
    return vms


@dataclass(frozen=True)
class Datacenter:
    moid: str
    name: str
    clusters: Mapping[str, str]  # id -> name
    hosts: Sequence[Host]
    vms: Sequence[Vm]


def build_inventory(
    manager: str,
    region: str | None,
    datacenters: Sequence[Datacenter],
    removed: Iterable[Removed],
    observed_at: datetime,
) -> Inventory:
    """Regions, providers (one per datacenter), clusters, hosts and VMs; VMs removed lately as retired.

    A VM's creation is its config.createDate (vSphere 6.7 on); a host, cluster, provider or region was there by
    the creation of the first VM under it, the earliest time known of it (else the persister dates it from
    the first refresh that sees it).
    """
    items: dict[ResourceRef, InventoryItem] = {}
    born: dict[ResourceRef, datetime] = {}

    def since(ref: ResourceRef, moment: datetime | None) -> None:
        if moment is not None and (ref not in born or moment < born[ref]):
            born[ref] = moment

    for dc in datacenters:
        region_ref = ResourceRef("region", region or dc.name)
        provider = ResourceRef("provider", dc.moid)
        items.setdefault(region_ref, InventoryItem(region_ref, region_ref.ems_ref))
        items[provider] = InventoryItem(provider, f"{manager}/{dc.name}", region_ref, tags={"datacenter": dc.name})
        for moid, name in sorted(dc.clusters.items()):
            ref = ResourceRef("cluster", moid)
            items[ref] = InventoryItem(ref, name, parent=provider, tags={"datacenter": dc.name})
        for host in dc.hosts:
            above = ResourceRef("cluster", host.cluster) if host.cluster else provider
            items[host.ref] = InventoryItem(
                host.ref, host.name, above, vcpus=host.cores, memory_bytes=host.memory_bytes, tags=host.tags
            )
        for vm in dc.vms:
            on = ResourceRef("host", vm.host) if vm.host else None
            items[vm.ref] = InventoryItem(
                vm.ref, vm.name, on, vcpus=vm.vcpus, memory_bytes=vm.memory_bytes, disk_bytes=vm.disk_bytes,
                tags=vm.tags, created_at=vm.created_at,
            )  # fmt: skip
            above_vm = on
            while above_vm is not None and above_vm in items:
                since(above_vm, vm.created_at)
                above_vm = items[above_vm].parent
    for ref, moment in born.items():
        items[ref] = replace(items[ref], created_at=moment)
    for gone in sorted(removed, key=lambda r: r.at):
        ref = ResourceRef("vm", gone.moid)
        if ref in items:
            continue  # an event about an id that lives again is stale
        last = ResourceRef("host", gone.host) if gone.host else None
        items[ref] = InventoryItem(ref, gone.name, last if last in items else None, retired_at=as_utc(gone.at))
    return Inventory(as_utc(observed_at), tuple(items.values()))


def parse_removed(events: Iterable[Any]) -> list[Removed]:
    """VmRemovedEvent events (``vm.vm``, ``vm.name``, ``host.host``, ``createdTime``) as removed VMs."""
    found: dict[str, Removed] = {}
    for k, event in enumerate(events):
        where = f"QueryEvents[{k}]"
        vm = getattr(event, "vm", None)
        moid = getattr(getattr(vm, "vm", None), "_moId", None)
        at = getattr(event, "createdTime", None)
        if not isinstance(moid, str) or not isinstance(at, datetime) or at.tzinfo is None:
            raise PayloadError.unexpected(where, event, "a VmRemovedEvent with vm.vm and createdTime")
        host = getattr(getattr(getattr(event, "host", None), "host", None), "_moId", None)
        found[moid] = Removed(moid, str(getattr(vm, "name", "") or moid), host, at)
    return list(found.values())
