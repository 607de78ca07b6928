"""A small, hand-computable cloud for report tests, captured through the real jobs (refresh, capture, rollups).

Region ``r1``, provider ``lab`` (the manager), cluster ``c1`` with hosts ``h1`` and ``h2``, cluster ``c2`` with
host ``h3``; each host has 16 vCPUs and 64 GiB. VMs (two samples an hour, the same value within an hour):

| VM | host | vCPUs | memory | disk | project | tags | cores used | memory used |
|---|---|---|---|---|---|---|---|---|
| vm-a | h1 | 4 | 8 GiB | 100 GiB | alpha | env=prod, team=web | 2.0 | 4 GiB |
| vm-b | h2 | 2 | 4 GiB | 20 GiB | alpha | env=dev, team=data | 0.0625 | 1 GiB |
| vm-c | h3 | 8 | 16 GiB | 50 GiB | beta | env=prod, team=ml | (hour of day) / 4 | 12 GiB |
| vm-d | h1 | 2 | 4 GiB | 10 GiB | beta | none | 1.0 | 2 GiB |

vm-d lives from START + 12 h to START + 36 h and sends nothing from 20:00 to 24:00 on the first day. vm-a
sends 0.25 MiB/s in and out (1.7578125 GiB an hour); the others no network. ``growth`` adds that many cores per
day to vm-c (for forecasts).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import numpy as np

from cloudmeter.collectors.base import ManagerConfig
from cloudmeter.model import METRICS, Inventory, InventoryItem, Placement, ResourceRef, SampleBatch, Window, epoch_s
from cloudmeter.scheduler import jobs
from cloudmeter.scheduler.pipeline import StreamRollup
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database

GIB = 1 << 30
START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
INTERVAL_S = 1800
NET_BPS = 262144.0  # each direction, vm-a


def hours(n: float) -> datetime:
    return START + timedelta(hours=n)


REGION = ResourceRef("region", "r1")
PROVIDER = ResourceRef("provider", "lab")
C1, C2 = ResourceRef("cluster", "c1"), ResourceRef("cluster", "c2")
H1, H2, H3 = ResourceRef("host", "h1"), ResourceRef("host", "h2"), ResourceRef("host", "h3")
#: name -> (host, vcpus, memory GiB, disk GiB, project, tags, created, retired)
VMS: dict[str, tuple[ResourceRef, int, int, int, str, dict[str, str], datetime, datetime | None]] = {
    "vm-a": (H1, 4, 8, 100, "alpha", {"env": "prod", "team": "web"}, START, None),
    "vm-b": (H2, 2, 4, 20, "alpha", {"env": "dev", "team": "data"}, START, None),
    "vm-c": (H3, 8, 16, 50, "beta", {"env": "prod", "team": "ml"}, START, None),
    "vm-d": (H1, 2, 4, 10, "beta", {}, hours(12), hours(36)),
}


class FixedConfig(ManagerConfig):
    """Nothing to configure but the growth of vm-c."""

    growth: float = 0.0


class FixedCloud:
    """The cloud above, as a collector."""

    kind: ClassVar[str] = "fixed"
    config_model: ClassVar[type[ManagerConfig]] = FixedConfig
    retention_s: ClassVar[int | None] = None

    def __init__(self, growth: float, now: datetime) -> None:
        self.name = "lab"
        self.growth = growth
        self.now = now

    def verify(self) -> None:
        """Always fine."""

    def inventory(self) -> Inventory:
        """Region, provider, clusters, hosts and VMs, all from START."""

        def fixed(ref: ResourceRef, parent: ResourceRef | None, vcpus: int | None = None) -> InventoryItem:
            memory = 64 * GIB if vcpus else None
            return InventoryItem(
                ref,
                ref.ems_ref,
                parent,
                vcpus,
                memory,
                created_at=START,
                history=(Placement(START, parent, vcpus, memory),),
            )

        items = [
            fixed(REGION, None),
            fixed(PROVIDER, REGION),
            fixed(C1, PROVIDER),
            fixed(C2, PROVIDER),
            fixed(H1, C1, 16),
            fixed(H2, C1, 16),
            fixed(H3, C2, 16),
        ]
        for name, (host, vcpus, mem, disk, project, tags, created, retired) in VMS.items():
            items.append(
                InventoryItem(
                    ResourceRef("vm", name),
                    name,
                    host,
                    vcpus,
                    mem * GIB,
                    disk * GIB,
                    project,
                    tags,
                    created,
                    retired if retired and retired <= self.now else None,
                    (Placement(created, host, vcpus, mem * GIB, project),),
                )
            )
        return Inventory(self.now, tuple(items))

    def values(self, name: str, ts_s: int) -> list[float] | None:
        """The metrics of VM ``name`` at ``ts_s`` (None: no sample)."""
        _, vcpus, mem, _, _, _, created, retired = VMS[name]
        if ts_s < epoch_s(created) or (retired and ts_s >= epoch_s(retired)):
            return None
        hour = (ts_s - epoch_s(START)) // 3600
        if name == "vm-d" and 20 <= hour < 24:
            return None
        day = hour // 24
        cores = {"vm-a": 2.0, "vm-b": 0.0625, "vm-c": (hour % 24) / 4 + self.growth * day, "vm-d": 1.0}[name]
        used = {"vm-a": 4, "vm-b": 1, "vm-c": 12, "vm-d": 2}[name] * GIB
        net = NET_BPS if name == "vm-a" else 0.0
        return [100 * cores / vcpus, cores, float(used), 100 * used / (mem * GIB), 0.0, 0.0, net, net]

    def capture(self, window: Window) -> Iterator[SampleBatch]:
        """Every VM's samples on the half-hour grid in ``window``."""
        refs = tuple(ResourceRef("vm", name) for name in VMS)
        idx, ts, values = [], [], []
        first = -(-window.start_s // INTERVAL_S) * INTERVAL_S
        for k, name in enumerate(VMS):
            for t in range(first, window.end_s, INTERVAL_S):
                row = self.values(name, t)
                if row is not None:
                    idx.append(k)
                    ts.append(t)
                    values.append(row)
        if ts:
            yield SampleBatch(
                refs,
                np.array(idx, np.int32),
                np.array(ts, np.int64),
                np.array(values, np.float64).reshape(-1, len(METRICS)),
                INTERVAL_S,
            )


def load(db: Database, days: int = 2, growth: float = 0.0) -> int:
    """Refresh and capture ``days`` days of the cloud (hourly and daily rollups, UTC and Berlin); the manager id."""
    end = START + timedelta(days=days)
    collector = FixedCloud(growth, now=end)
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, "lab", "fixed", {})
    jobs.refresh_inventory(db, manager_id, collector)
    stream = StreamRollup(db, manager_id, ("UTC", "Europe/Berlin"))
    for step in Window(START, end).split(86400):
        jobs.capture(db, manager_id, collector, step, stream=stream)
    return manager_id
