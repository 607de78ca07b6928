"""A small, hand-computable Kubernetes cluster for report tests, captured through the real jobs.

Region ``r1``, provider ``k8s`` (the manager), cluster ``prod`` with nodes ``n1`` and ``n2``: each 4 cores and
16 GiB, allocatable 3.5 cores and 14 GiB. Containers send a sample every 5 minutes, the same value all day:

| pod (uid) | node | namespace | container | CPU request / limit | memory request | cores used | memory used |
|---|---|---|---|---|---|---|---|
| web-0 (u-web-0) | n1 | shop | app | 0.5 / 1 | 1 GiB | 0.25 | 0.5 GiB |
| web-0 (u-web-0) | n1 | shop | POD | none | none | (1000 B/s in and out) | |
| web-1 (u-web-1) | n2 | shop | app | 0.5 / 1 | 1 GiB | 0.75 | 0.75 GiB |
| job-0 (u-job-0) | n2 | batch | worker | none | 2 GiB | 1.5 | 1 GiB |

job-0 runs from START + 6 h to START + 18 h (then it is deleted); the others all day.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import numpy as np

from cloudmeter.collectors.base import ManagerConfig
from cloudmeter.model import (
    METRICS,
    Inventory,
    InventoryItem,
    Placement,
    Requests,
    ResourceRef,
    SampleBatch,
    Window,
    epoch_s,
)
from cloudmeter.scheduler import jobs
from cloudmeter.scheduler.pipeline import StreamRollup
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database

GIB = 1 << 30
START = datetime(2026, 3, 2, tzinfo=UTC)
END = START + timedelta(days=1)
INTERVAL_S = 300
NET_BPS = 1000.0
ALLOCATABLE_CORES, ALLOCATABLE_GIB = 3.5, 14

CLUSTER, PROVIDER, REGION = ResourceRef("cluster", "prod"), ResourceRef("provider", "k8s"), ResourceRef("region", "r1")
N1, N2 = ResourceRef("host", "n1"), ResourceRef("host", "n2")
WEB = Requests(cpu_request_cores=0.5, cpu_limit_cores=1.0, memory_request_bytes=GIB)
#: pod -> (node, namespace, start, end)
PODS = {
    "web-0": (N1, "shop", START, None),
    "web-1": (N2, "shop", START, None),
    "job-0": (N2, "batch", START + timedelta(hours=6), START + timedelta(hours=18)),
}
#: container ems_ref -> (pod, requests, cores used, memory used GiB, network bytes/s each way)
CONTAINERS: dict[str, tuple[str, Requests | None, float | None, float | None, float | None]] = {
    "u-web-0/app": ("web-0", WEB, 0.25, 0.5, None),
    "u-web-0/POD": ("web-0", None, None, None, NET_BPS),
    "u-web-1/app": ("web-1", WEB, 0.75, 0.75, None),
    "u-job-0/worker": ("job-0", Requests(memory_request_bytes=2 * GIB), 1.5, 1.0, None),
}


class KubeConfig(ManagerConfig):
    """Nothing to configure."""


class FixedKube:
    """The cluster above, as a collector."""

    kind: ClassVar[str] = "fixedkube"
    config_model: ClassVar[type[ManagerConfig]] = KubeConfig
    retention_s: ClassVar[int | None] = None
    name = "k8s"

    def verify(self) -> None:
        """Always fine."""

    def inventory(self) -> Inventory:
        """Region, provider, cluster, nodes, pods and containers."""

        def item(ref: ResourceRef, parent: ResourceRef | None, **kw: object) -> InventoryItem:
            return InventoryItem(ref, ref.ems_ref, parent, created_at=START, **kw)  # type: ignore[arg-type]

        allocatable = {"allocatable_cpu_cores": str(ALLOCATABLE_CORES), "allocatable_memory_bytes": str(14 * GIB)}
        items = [item(REGION, None), item(PROVIDER, REGION), item(CLUSTER, PROVIDER)]
        items += [item(node, CLUSTER, vcpus=4, memory_bytes=16 * GIB, tags=allocatable) for node in (N1, N2)]
        for pod, (node, namespace, start, end) in PODS.items():
            ref = ResourceRef("pod", f"u-{pod}")
            items.append(InventoryItem(ref, pod, node, project=namespace, created_at=start, retired_at=end))
        for ems_ref, (pod, requests, *_) in CONTAINERS.items():
            _, namespace, start, end = PODS[pod]
            memory = requests.memory_request_bytes if requests else None
            parent = ResourceRef("pod", f"u-{pod}")
            items.append(
                InventoryItem(
                    ResourceRef("container", ems_ref), ems_ref.split("/")[1], parent, None, memory,
                    project=namespace, created_at=start, retired_at=end, requests=requests,
                    history=(Placement(start, parent, None, memory, namespace, requests),),
                )
            )  # fmt: skip
        return Inventory(END, tuple(items))

    def capture(self, window: Window) -> Iterator[SampleBatch]:
        """Every container's samples on the 5-minute grid in ``window``."""
        refs = tuple(ResourceRef("container", ref) for ref in CONTAINERS)
        idx, ts, values = [], [], []
        first = -(-window.start_s // INTERVAL_S) * INTERVAL_S
        for k, (pod, requests, cores, mem_gib, net) in enumerate(CONTAINERS.values()):
            _, _, start, end = PODS[pod]
            for t in range(max(first, epoch_s(start)), min(window.end_s, epoch_s(end or END)), INTERVAL_S):
                row = dict.fromkeys(METRICS, np.nan)
                if cores is not None and mem_gib is not None:
                    row |= {"cpu_used_cores": cores, "mem_used_bytes": mem_gib * GIB}
                if requests and requests.cpu_request_cores and cores is not None:
                    row["cpu_usage_pct"] = 100 * cores / requests.cpu_request_cores
                if requests and requests.memory_request_bytes and mem_gib is not None:
                    row["mem_usage_pct"] = 100 * mem_gib * GIB / requests.memory_request_bytes
                if net is not None:
                    row |= {"net_rx_bps": net, "net_tx_bps": net}
                idx.append(k)
                ts.append(t)
                values.append([row[m] for m in METRICS])
        if ts:
            yield SampleBatch(
                refs, np.array(idx, np.int32), np.array(ts, np.int64), np.array(values, np.float64), INTERVAL_S
            )


def load(db: Database) -> int:
    """Refresh and capture the day (hourly and daily rollups in UTC); the manager id."""
    collector = FixedKube()
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, "k8s", "fixedkube", {})
    jobs.refresh_inventory(db, manager_id, collector)
    jobs.capture(db, manager_id, collector, Window(START, END), stream=StreamRollup(db, manager_id, ("UTC",)))
    return manager_id
