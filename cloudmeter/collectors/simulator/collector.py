"""A deterministic synthetic cloud: the collector behind the demo, the tests and the benchmarks (kind ``simulator``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from cloudmeter.collectors.base import ManagerConfig
from cloudmeter.collectors.simulator.config import SimulatorConfig
from cloudmeter.collectors.simulator.world import (
    BATCH_ROWS,
    ENVS,
    FLAVORS,
    GIB,
    HOST_MEMORY_BYTES,
    HOST_VCPUS,
    MASK64,
    PROJECTS,
    TEAMS,
    build_world,
    ceil_to,
    fill,
    intervals,
)
from cloudmeter.errors import CollectorAuthError, SourceUnavailable
from cloudmeter.model import (
    METRICS,
    Inventory,
    InventoryItem,
    Placement,
    ResourceRef,
    SampleBatch,
    Window,
    as_utc,
    epoch_s,
    from_epoch_s,
)


class SimulatorCollector:
    """A seeded synthetic cloud implementing the ``Collector`` protocol.

    ``clock`` only decides what inventory sees (creations, deletions and migrations up to now); the world
    and its samples depend on the config alone.
    """

    kind: ClassVar[str] = "simulator"
    config_model: ClassVar[type[ManagerConfig]] = SimulatorConfig
    retention_s: ClassVar[int | None] = None

    def __init__(
        self,
        name: str,
        config: SimulatorConfig,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        batch_rows: int = BATCH_ROWS,
    ) -> None:
        self.name = name
        self.config = config
        self._clock = clock
        self._batch_rows = batch_rows
        self._world = build_world(config)
        self._region = ResourceRef("region", config.region)
        self._provider = ResourceRef("provider", name)
        self._clusters = tuple(ResourceRef("cluster", f"{name}-cluster-{c}") for c in range(config.clusters))
        self._hosts = tuple(
            ResourceRef("host", f"{name}-host-{c}-{h}")
            for c in range(config.clusters)
            for h in range(config.hosts_per_cluster)
        )
        self._vm_refs = tuple(ResourceRef("vm", f"{name}-vm-{k:05d}") for k in range(config.vms))
        flavor = self._world.flavor
        self._vcpus = np.asarray([FLAVORS[f][1] for f in flavor], np.float64)
        self._memory_bytes = np.asarray([FLAVORS[f][2] * GIB for f in flavor], np.float64)
        self._interval_s = intervals(config)

    def interval_of(self, vm: int) -> int:
        """The interval VM ``vm`` (its index) is sent at."""
        return int(self._interval_s[vm])

    def verify(self) -> None:
        """Succeed, unless the config asks for a failure."""
        self._fail_if_asked()

    def inventory(self) -> Inventory:
        """Region, provider, clusters, hosts and the VMs created up to the clock's now."""
        self._fail_if_asked()
        now = as_utc(self._clock())
        now_s = epoch_s(now)
        if now_s < epoch_s(self.config.start):
            return Inventory(observed_at=now, items=())
        vms = np.flatnonzero(self._world.created_s <= now_s)
        items = (*self._infrastructure(), *(self._vm_item(int(k), now_s) for k in vms))
        return Inventory(observed_at=now, items=items)

    def capture(self, window: Window) -> Iterator[SampleBatch]:
        """Samples of every live VM on the ``interval_s`` grid in ``window``, at most ``batch_rows`` a batch."""
        self._fail_if_asked()
        return self._batches(window)

    def _fail_if_asked(self) -> None:
        if self.config.fail == "auth":
            raise CollectorAuthError(
                self.name, 'simulated credential rejection (fail = "auth"); remove `fail` from its config'
            )
        if self.config.fail == "unavailable":
            raise SourceUnavailable(self.name, 'simulated outage (fail = "unavailable"); remove `fail` from its config')

    def _infrastructure(self) -> Iterator[InventoryItem]:
        """The region, provider, clusters and hosts: all exist from ``start`` on and never move."""
        start = self.config.start
        yield InventoryItem(self._region, self.config.region, created_at=start, history=(Placement(start, None),))
        yield self._fixed(self._provider, self._region)
        for cluster in self._clusters:
            yield self._fixed(cluster, self._provider)
        for index, host in enumerate(self._hosts):
            yield self._fixed(
                host, self._clusters[index // self.config.hosts_per_cluster], HOST_VCPUS, HOST_MEMORY_BYTES
            )

    def _fixed(
        self, ref: ResourceRef, parent: ResourceRef, vcpus: int | None = None, memory_bytes: int | None = None
    ) -> InventoryItem:
        """A resource that exists from ``start`` on under ``parent``."""
        start = self.config.start
        return InventoryItem(
            ref,
            ref.ems_ref,
            parent=parent,
            vcpus=vcpus,
            memory_bytes=memory_bytes,
            created_at=start,
            history=(Placement(start, parent, vcpus, memory_bytes),),
        )

    def _vm_item(self, k: int, now_s: int) -> InventoryItem:
        """VM ``k`` as seen at ``now_s`` (which is at or after its creation)."""
        w = self._world
        flavor, vcpus, memory_gib = FLAVORS[int(w.flavor[k])]
        project, team, env = PROJECTS[int(w.project[k])], TEAMS[int(w.team[k])], ENVS[int(w.env[k])]
        moved = int(np.count_nonzero(w.migrated_s[k] <= now_s))
        since = (w.created_s[k], *w.migrated_s[k][:moved])
        history = tuple(
            Placement(from_epoch_s(int(t)), self._hosts[w.host[k, i]], vcpus, memory_gib * GIB, project)
            for i, t in enumerate(since)
        )
        retired_s = int(w.retired_s[k])
        return InventoryItem(
            self._vm_refs[k],
            f"{team}-{env}-{k:05d}",
            parent=history[-1].parent,
            vcpus=vcpus,
            memory_bytes=memory_gib * GIB,
            disk_bytes=int(w.disk_gib[k]) * GIB,
            project=project,
            tags={"flavor": flavor, "env": env, "team": team},
            created_at=history[0].valid_from,
            retired_at=from_epoch_s(retired_s) if retired_s <= now_s else None,
            history=history,
        )

    def _batches(self, window: Window) -> Iterator[SampleBatch]:
        """Cut ``window`` into time chunks of at most ``batch_rows`` slots, then each into VM groups."""
        interval = self.config.interval_s
        step = self._batch_rows * interval
        chunk_start = ceil_to(window.start_s, interval)
        for lo in range(chunk_start, window.end_s, step):
            yield from self._chunk(lo, min(lo + step, window.end_s))

    def _chunk(self, lo: int, hi: int) -> Iterator[SampleBatch]:
        """Batches for ``lo`` to ``hi`` (exclusive): each VM's rows on its own interval's grid within one batch, a
        batch per interval."""
        for interval in np.unique(self._interval_s).tolist():
            yield from self._chunk_at(lo, hi, interval)

    def _chunk_at(self, lo: int, hi: int, interval: int) -> Iterator[SampleBatch]:
        """The batches of the VMs sent at ``interval``."""
        w = self._world
        first = -(-np.maximum(lo, w.created_s) // interval) * interval
        last = np.minimum(hi, w.retired_s)
        counts = np.where(self._interval_s == interval, np.maximum((last - first + interval - 1) // interval, 0), 0)
        live = np.flatnonzero(counts)
        ends = np.cumsum(counts[live])
        begin = 0
        while begin < len(live):
            done = ends[begin - 1] if begin else 0
            end = int(np.searchsorted(ends, done + self._batch_rows, side="right"))
            group = live[begin:end]
            batch = self._batch(group, first[group], counts[group], interval)
            if len(batch):  # gaps can empty a small batch
                yield batch
            begin = end

    def _batch(
        self, group: npt.NDArray[np.int64], first: npt.NDArray[np.int64], counts: npt.NDArray[np.int64], interval: int
    ) -> SampleBatch:
        """The samples of VMs ``group``, ``counts`` slots of ``interval`` each from ``first`` on."""
        size = int(counts.sum())
        idx, ts = np.empty(size, np.int32), np.empty(size, np.int64)
        values = np.empty((size, len(METRICS)), np.float64)
        w = self._world
        rows = fill(
            np.uint64(self.config.seed & MASK64),
            group,
            first,
            counts,
            interval,
            self._vcpus,
            self._memory_bytes,
            w.has_memory,
            w.profile,
            idx,
            ts,
            values,
        )
        return SampleBatch(
            refs=tuple(self._vm_refs[k] for k in group),
            resource_idx=idx[:rows],
            ts_s=ts[:rows],
            values=values[:rows],
            interval_s=interval,
        )
