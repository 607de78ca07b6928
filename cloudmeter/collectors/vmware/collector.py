"""VMware vSphere: vCenter (or standalone ESXi) inventory and PerformanceManager metrics, manager kind ``vmware``.

Fetching happens here and in ``api``; converting in ``inventory`` and ``parse``. Capture reads VMs and hosts
with QueryPerf, ``entities_per_query`` entities per call, at the interval vCenter still keeps for each part of
the window (``parse.plan``): realtime 20 s for the last hour, then the historical levels it lists (300 s for a
day, 1800 s for a week, 7200 s for a month by default), each UTC hour at one level.

A VM's cpu.usagemhz becomes cores with the MHz per core of the host it ran on. Which host that was is known
from the placements this collector has seen (each inventory and capture reads them); before the first one, the
first known host stands for it. A migration between two reads is dated at the read that sees it.

vCenter's VM events (``events``: migrations, resizes, power, creation, removal) date such changes exactly; the
handler asks ``inventory_of`` for what an event leaves unknown: the same reading and parsing as ``inventory``,
restricted to the objects named (and the hosts, clusters and datacenters above them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final

import numpy as np
from pyVmomi import vim

from cloudmeter.collectors.base import EventSource, ManagerConfig, payload_errors
from cloudmeter.collectors.vmware.api import Flat, VsphereAPI
from cloudmeter.collectors.vmware.config import VmwareConfig
from cloudmeter.collectors.vmware.events import VsphereEvents
from cloudmeter.collectors.vmware.inventory import (
    CLUSTER_PATHS,
    DATACENTER_PATHS,
    FOLDER_PATHS,
    HOST_PATHS,
    VM_PATHS,
    Datacenter,
    Host,
    Vm,
    build_inventory,
    folder_paths,
    parse_hosts,
    parse_removed,
    parse_vms,
)
from cloudmeter.collectors.vmware.parse import (
    HOST_COUNTERS,
    REALTIME,
    VM_COUNTERS,
    Entity,
    levels_kept,
    plan,
    query_range,
    to_batch,
)
from cloudmeter.errors import ConfigError
from cloudmeter.model import Inventory, ResourceRef, SampleBatch, Window, epoch_s, from_epoch_s

log = logging.getLogger(__name__)

#: vCenter's config.vpxd.stats.maxQueryMetrics while it is unset.
DEFAULT_MAX_QUERY_METRICS: Final = 64
#: The types above a VM or host that a targeted read keeps.
_ABOVE: Final = ("ClusterComputeResource", "Folder", "ResourcePool")
#: Kept when vCenter lists no historical level (vcsim): its default "past month".
DEFAULT_RETENTION_S: Final = 30 * 86400


class VsphereCollector:
    """Inventory and metrics of one vCenter, implementing the ``Collector`` protocol.

    ``connect`` (pyVim's SmartConnect) and ``clock`` are seams for tests.
    """

    kind: ClassVar[str] = "vmware"
    config_model: ClassVar[type[ManagerConfig]] = VmwareConfig

    def __init__(
        self,
        name: str,
        config: VmwareConfig,
        *,
        connect: Callable[..., Any] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.name = name
        self.config = config
        self._connect = connect
        self.api = self._new_api()
        self._clock = clock
        self._counters: dict[str, int] | None = None
        self._levels: list[tuple[int, int]] | None = None
        self._limit: int | None = None
        #: VM id -> [(seen from, host id)], the placements this collector has read.
        self._placements: dict[str, list[tuple[int, str]]] = {}

    def __repr__(self) -> str:
        return f"VsphereCollector({self.name!r}, {self.config.host}:{self.config.port})"

    @property
    def retention_s(self) -> int:
        """How long vCenter keeps the coarsest level capture reads (30 days by default)."""
        return max((kept for _, kept in self._statistics_levels()[1:]), default=DEFAULT_RETENTION_S)

    def verify(self) -> None:
        """Log in and read ``content.about``; the configured datacenters must exist."""
        about = self.api.about()
        self._datacenters()
        log.info(
            "manager %r verified: %s (%s) at %s:%d as %s",
            self.name,
            getattr(about, "fullName", "?"),
            getattr(about, "apiType", "?"),
            self.config.host,
            self.config.port,
            self.config.username,
        )

    def close(self) -> None:
        """Log out of vCenter (the next call logs in again)."""
        self.api.close()

    def inventory(self) -> Inventory:
        """Datacenters, clusters, hosts and VMs (templates left out); VMs removed lately as retired."""
        observed_at = self._clock()
        found = self._read()
        since = observed_at - timedelta(days=self.config.retired_lookback_days)
        with payload_errors(self.name, "QueryEvents"):
            removed = parse_removed(self.api.removed_vms(since))
        return build_inventory(self.name, self.config.region, found, removed, observed_at)

    def events(self) -> EventSource | None:
        """vCenter's VM events, on a session of their own; None when the ``events`` setting turns them off."""
        if not self.config.events:
            return None
        return VsphereEvents(self._new_api(), self.config.datacenters)

    def inventory_of(self, refs: list[ResourceRef]) -> Inventory:
        """These VMs and hosts as vCenter has them now, with the hosts, clusters, provider and region above them;
        those it no longer has (or in datacenters not read) are left out, other kinds of refs ignored."""
        observed_at = self._clock()
        vm_ids = sorted({ref.ems_ref for ref in refs if ref.kind == "vm"})
        found = []
        with payload_errors(self.name, "RetrievePropertiesEx"):
            vms = self.api.properties(vim.VirtualMachine, vm_ids, VM_PATHS)
            host_ids = {ref.ems_ref for ref in refs if ref.kind == "host"}
            host_ids |= {str(vm["runtime.host"]) for vm in vms if vm.get("runtime.host")}
            hosts = self.api.properties(vim.HostSystem, sorted(host_ids), HOST_PATHS)
            objects = [vim.VirtualMachine(vm["moid"]) for vm in vms]
            objects += [vim.ResourcePool(vm["resourcePool"]) for vm in vms if vm.get("resourcePool")]
            objects += [vim.HostSystem(host["moid"]) for host in hosts]
            entities = {str(entity["moid"]): entity for entity in self.api.lineage(objects, FOLDER_PATHS)}
            for moid, inside in sorted(_by_datacenter(entities).items()):
                name = str(entities[moid].get("name") or moid)
                if self.config.datacenters and name not in self.config.datacenters:
                    continue
                of_type = {kind: [f for f in inside if f["type"] == kind] for kind in _ABOVE}
                ids = {f["moid"] for f in inside}
                clusters = {str(f["moid"]): str(f.get("name") or f["moid"]) for f in of_type["ClusterComputeResource"]}
                folders = folder_paths(of_type["Folder"], "Folder")
                pools = folder_paths(of_type["ResourcePool"], "ResourcePool")
                mine_hosts = [host for host in hosts if host["moid"] in ids]
                mine_vms = [vm for vm in vms if vm["moid"] in ids]
                found.append(self._datacenter(moid, name, clusters, mine_hosts, folders, pools, mine_vms))
        return build_inventory(self.name, self.config.region, found, [], observed_at)

    def capture(self, window: Window) -> Iterator[SampleBatch]:
        """Samples of every VM and host starting in ``window``: a batch per QueryPerf call."""
        now_s = epoch_s(self._clock())
        pieces = plan(window.start_s, window.end_s, now_s, self._statistics_levels())
        if not pieces:
            return
        found = self._read()
        counters = self._counter_ids()
        hosts = {h.moid: h for dc in found for h in dc.hosts}
        groups = [
            (vim.VirtualMachine, VM_COUNTERS, [self._vm_entity(vm, hosts) for dc in found for vm in dc.vms]),
            (vim.HostSystem, HOST_COUNTERS, [_host_entity(h) for h in hosts.values()]),
        ]
        calls, limit = 0, self._max_query_metrics()
        for a, b, interval in pieces:
            for kind, names, entities in groups:
                ids = {counters[name]: name for name in names if name in counters}
                per = self.config.entities_per_query
                if interval != REALTIME[0] and limit > 0:
                    per = max(1, min(per, limit // max(len(ids), 1)))
                for k in range(0, len(entities), per):
                    chunk = entities[k : k + per]
                    specs = _specs(kind, chunk, ids, a, b, interval)
                    answers = self.api.query_perf(specs)
                    calls += 1
                    with payload_errors(self.name, "QueryPerf"):
                        batch = to_batch(answers, ids, {e.ref.ems_ref: e for e in chunk}, (a, b), interval)
                    if len(batch):
                        yield batch
        log.info("manager %r: %d QueryPerf calls for %s", self.name, calls, window)

    # ---- reading -------------------------------------------------------------------------------------------

    def _datacenters(self) -> list[tuple[str, str]]:
        """(id, name) of the datacenters to read; a ConfigError naming those that exist for a wrong name."""
        with payload_errors(self.name, "RetrievePropertiesEx"):
            listed = [(str(f["moid"]), str(f.get("name"))) for f in self.api.retrieve(vim.Datacenter, DATACENTER_PATHS)]
        wanted = self.config.datacenters
        unknown = sorted(set(wanted) - {name for _, name in listed})
        if unknown:
            raise ConfigError(
                f"manager {self.name!r}: no datacenter named {', '.join(map(repr, unknown))}; "
                f"{self.api.where} has {', '.join(sorted(name for _, name in listed)) or 'none'}: fix datacenters"
            )
        return sorted(dc for dc in listed if not wanted or dc[1] in wanted)

    def _new_api(self) -> VsphereAPI:
        return (
            VsphereAPI(self.name, self.config, self._connect) if self._connect else VsphereAPI(self.name, self.config)
        )

    def _read(self) -> list[Datacenter]:
        found = []
        for moid, name in self._datacenters():
            box = vim.Datacenter(moid)
            with payload_errors(self.name, "RetrievePropertiesEx"):
                clusters = {
                    str(f["moid"]): str(f.get("name") or f["moid"])
                    for f in self.api.retrieve(vim.ClusterComputeResource, CLUSTER_PATHS, [box])
                }
                found.append(
                    self._datacenter(
                        moid,
                        name,
                        clusters,
                        self.api.retrieve(vim.HostSystem, HOST_PATHS, [box]),
                        folder_paths(self.api.retrieve(vim.Folder, FOLDER_PATHS, [box]), "Folder"),
                        folder_paths(self.api.retrieve(vim.ResourcePool, FOLDER_PATHS, [box]), "ResourcePool"),
                        self.api.retrieve(vim.VirtualMachine, VM_PATHS, [box]),
                    )
                )
        return found

    def _datacenter(
        self,
        moid: str,
        name: str,
        clusters: dict[str, str],
        hosts: Sequence[Flat],
        folders: dict[str, str],
        pools: dict[str, str],
        vms: Sequence[Flat],
    ) -> Datacenter:
        """One datacenter's hosts and VMs parsed from what was read; the VMs' placements remembered."""
        parsed = parse_vms(vms, name, folders, pools)
        self._remember(parsed, epoch_s(self._clock()))
        return Datacenter(moid, name, clusters, parse_hosts(hosts, name, set(clusters)), parsed)

    def _remember(self, vms: Sequence[Vm], now_s: int) -> None:
        for vm in vms:
            seen = self._placements.setdefault(vm.moid, [])
            if vm.host and (not seen or seen[-1][1] != vm.host):
                seen.append((now_s if seen else 0, vm.host))

    def _vm_entity(self, vm: Vm, hosts: dict[str, Host]) -> Entity:
        placements = self._placements.get(vm.moid) or [(0, vm.host or "")]
        mhz = [_mhz(hosts.get(host)) for _, host in placements]
        return Entity(
            vm.ref,
            float(vm.memory_bytes or np.nan),
            np.array([since for since, _ in placements], np.int64),
            np.array(mhz, np.float64),
        )

    def _max_query_metrics(self) -> int:
        """Metrics one historical QueryPerf may ask for (vCenter's maxQueryMetrics; 64 while unset); <= 0: any."""
        if self._limit is None:
            found = self.api.max_query_metrics()
            self._limit = DEFAULT_MAX_QUERY_METRICS if found is None else found
        return self._limit

    def _counter_ids(self) -> dict[str, int]:
        if self._counters is None:
            self._counters = self.api.counters()
            missing = sorted((set(VM_COUNTERS) | set(HOST_COUNTERS)) - set(self._counters))
            if missing:
                log.warning("manager %r: vSphere has no counter %s; those metrics stay NULL", self.name, missing)
        return self._counters

    def _statistics_levels(self) -> list[tuple[int, int]]:
        if self._levels is None:
            self._levels = levels_kept(self.api.historical_intervals())
        return self._levels


def _by_datacenter(entities: dict[str, Flat]) -> dict[str, list[Flat]]:
    """The entities (read with their ``type`` and ``parent``) under each datacenter, by the datacenter's id."""
    found: dict[str, list[Flat]] = {}
    for moid, entity in entities.items():
        at: str | None = moid
        seen: set[str] = set()
        while at in entities and at not in seen and entities[at]["type"] != "Datacenter":
            seen.add(at)
            parent = entities[at].get("parent")
            at = None if parent is None else str(parent)
        if at in entities and entities[at]["type"] == "Datacenter" and at != moid:
            found.setdefault(at, []).append(entity)
    return found


def _mhz(host: Host | None) -> float:
    return float(host.mhz_per_core) if host and host.mhz_per_core else np.nan


def _host_entity(host: Host) -> Entity:
    return Entity(
        host.ref,
        float(host.memory_bytes or np.nan),
        np.zeros(1, np.int64),
        np.array([_mhz(host)], np.float64),
    )


def _specs(kind: type, entities: Sequence[Entity], ids: dict[int, str], a: int, b: int, interval: int) -> list[Any]:
    start, end = query_range(a, b, interval)
    metrics = [vim.PerformanceManager.MetricId(counterId=key, instance="") for key in sorted(ids)]
    realtime = interval == REALTIME[0]
    return [
        vim.PerformanceManager.QuerySpec(
            entity=kind(entity.ref.ems_ref),
            metricId=metrics,
            intervalId=interval,
            startTime=from_epoch_s(start),
            endTime=from_epoch_s(end),
            maxSample=(b - a) // interval + 1 if realtime else None,
            format="normal",
        )
        for entity in entities
    ]
