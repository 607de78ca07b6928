"""A Kubernetes cluster's kube-state-metrics and cAdvisor series as Prometheus would hold them, written as OpenMetrics
for ``promtool tsdb create-blocks-from openmetrics``.

Three hours from ``START`` (2026-12-01 00:00 UTC), kube-state-metrics scraped every 15 s at whole multiples of 15 s,
cAdvisor (the kubelets) every 15 s at 5 s past them (so ``rate`` extrapolates at both ends of its range). Every
series carries ``cluster="prod"``; a second cluster ``staging`` (one node, one pod) shares the Prometheus.

Cluster prod: nodes node-a (4 cores), node-b and node-c (8 cores); namespaces shop (team=web) and batch (team=data).

- shop/web-1 (U_WEB1, node-a): ``app`` (cpu request 0.5, limit 1; memory request 256 MiB, limit 512 MiB), 0.25
  cores, restarted at START+90.5 min (a new container id: a new cAdvisor series from 0); ``sidecar`` (no requests or
  limits, and no filesystem series), 0.05 cores; the pod's network on two interfaces.
- shop/web-2 (U_WEB2, node-b): ``app`` (requests only), 0.1 cores; its kubelet misses every scrape between
  START+60 min and START+75 min (the gap).
- batch/job-1 (U_JOB, node-c, a Job): ``worker`` (requests 1 core / 512 MiB, limits 2 / 1 GiB) uses 1.5 cores,
  above its request; its counter resets within the series at START+60.5 min; Succeeded from START+95 min and
  deleted at START+100 min.
- batch/db-0 (a StatefulSet's pod): uid U_DB_OLD on node-b until deleted at START+45 min, then rescheduled as
  U_DB_NEW on node-c from START+46 min: the same pod name, two uids.
- batch/idle-1 (U_IDLE, node-a): ``idle`` with requests, counters that never grow (rates are 0, not missing).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

START: Final = 1796083200  # 2026-12-01 00:00:00 UTC
NODES_CREATED: Final = START - 30 * 86400  # every node joined the cluster 30 days before the world starts
END: Final = START + 3 * 3600  # the collectors' "now"
SCRAPE: Final = 15
CADVISOR_OFFSET: Final = 5
CLUSTER: Final = "prod"
OTHER_CLUSTER: Final = "staging"
MIB: Final = 1024 * 1024
GIB: Final = 1024 * MIB

U_WEB1: Final = "0a1b2c3d-0000-4000-8000-000000000001"
U_WEB2: Final = "0a1b2c3d-0000-4000-8000-000000000002"
U_JOB: Final = "0a1b2c3d-0000-4000-8000-000000000003"
U_DB_OLD: Final = "0a1b2c3d-0000-4000-8000-000000000004"
U_DB_NEW: Final = "0a1b2c3d-0000-4000-8000-000000000005"
U_IDLE: Final = "0a1b2c3d-0000-4000-8000-000000000006"
U_STAGING: Final = "0a1b2c3d-0000-4000-8000-000000000099"

GAP: Final = (START + 3600, START + 4500)  # web-2's cAdvisor scrapes strictly inside are missing
RESTART: Final = START + 5430  # web-1/app's new container starts from 0 (mid-step)
RESET: Final = START + 3630  # job-1/worker's counter restarts from 0 in the same series (mid-step)
JOB_SUCCEEDED: Final = START + 5700
JOB_DELETED: Final = START + 6000  # its last scrapes are before this
DB_MOVED: Final = START + 2700  # U_DB_OLD's last scrapes are before this
DB_NEW_CREATED: Final = START + 2760
DB_NEW_STARTED: Final = START + 2770


@dataclass(frozen=True)
class Node:
    name: str
    cores: int
    memory_bytes: int
    allocatable_cores: float
    allocatable_memory_bytes: int
    zone: str
    cluster: str = CLUSTER


@dataclass(frozen=True)
class Container:
    name: str
    cpu_cores: float  # the counter's slope
    memory_bytes: float
    cpu_request: float | None = None
    cpu_limit: float | None = None
    memory_request: int | None = None
    memory_limit: int | None = None
    fs_read_bps: float | None = 4096.0  # None: cAdvisor has no filesystem series for it
    fs_write_bps: float | None = 1024.0
    restart_at: int | None = None  # a new container (new id, counter from 0) from then on
    memory_after_restart: float | None = None
    reset_at: int | None = None  # the counter restarts from 0 in the same series


@dataclass(frozen=True)
class Pod:
    uid: str
    namespace: str
    name: str
    node: str
    owner_kind: str
    owner_name: str
    created: int
    started: int
    first: int  # first kube-state-metrics scrape
    last: int  # last kube-state-metrics scrape (inclusive)
    containers: tuple[Container, ...]
    net_rx_bps: tuple[float, ...]  # per interface (eth0, eth1, ...)
    net_tx_bps: tuple[float, ...]
    labels: dict[str, str] = field(default_factory=dict)
    succeeded_at: int | None = None
    gap: tuple[int, int] | None = None
    cluster: str = CLUSTER


NODES: Final = (
    Node("node-a", 4, 16 * GIB, 3.5, 15 * GIB, "z1"),
    Node("node-b", 8, 32 * GIB, 7.5, 31 * GIB, "z1"),
    Node("node-c", 8, 32 * GIB, 7.5, 31 * GIB, "z2"),
    Node("stg-node", 2, 8 * GIB, 2.0, 8 * GIB, "z9", cluster=OTHER_CLUSTER),
)
NAMESPACES: Final = {"shop": {"team": "web"}, "batch": {"team": "data"}}

_LIVE = END - SCRAPE  # the last scrape of what still runs at END
PODS: Final = (
    Pod(U_WEB1, "shop", "web-1", "node-a", "ReplicaSet", "web-7d9", START - 3600, START - 3590, START, _LIVE,
        (Container("app", 0.25, 200 * MIB, 0.5, 1.0, 256 * MIB, 512 * MIB, restart_at=RESTART,
                   memory_after_restart=150 * MIB),
         Container("sidecar", 0.05, 30 * MIB, fs_read_bps=None, fs_write_bps=None)),
        (800.0, 200.0), (400.0, 100.0), {"app": "web"}),
    Pod(U_WEB2, "shop", "web-2", "node-b", "ReplicaSet", "web-7d9", START - 3600, START - 3590, START, _LIVE,
        (Container("app", 0.1, 100 * MIB, 0.25, None, 128 * MIB, None),), (300.0,), (100.0,), {"app": "web"},
        gap=GAP),
    Pod(U_JOB, "batch", "job-1", "node-c", "Job", "job-1", START + 1190, START + 1200, START + 1200,
        JOB_DELETED - SCRAPE,
        (Container("worker", 1.5, 400 * MIB, 1.0, 2.0, 512 * MIB, 1 * GIB, 8192.0, 2048.0, reset_at=RESET),),
        (5000.0,), (2000.0,), {"job-name": "job-1"}, succeeded_at=JOB_SUCCEEDED),
    Pod(U_DB_OLD, "batch", "db-0", "node-b", "StatefulSet", "db", START - 7200, START - 7190, START,
        DB_MOVED - SCRAPE, (Container("db", 0.2, 700 * MIB, 0.5, 0.5, 1 * GIB, 1 * GIB),), (100.0,), (100.0,),
        {"app": "db"}),
    Pod(U_DB_NEW, "batch", "db-0", "node-c", "StatefulSet", "db", DB_NEW_CREATED, DB_NEW_STARTED, DB_NEW_CREATED,
        _LIVE, (Container("db", 0.2, 700 * MIB, 0.5, 0.5, 1 * GIB, 1 * GIB),), (100.0,), (100.0,), {"app": "db"}),
    Pod(U_IDLE, "batch", "idle-1", "node-a", "ReplicaSet", "idle-5c", START - 3600, START - 3590, START, _LIVE,
        (Container("idle", 0.0, 10 * MIB, 0.1, None, 64 * MIB, None, 0.0, 0.0),), (0.0,), (0.0,), {"app": "idle"}),
    Pod(U_STAGING, "shop", "web-1", "stg-node", "ReplicaSet", "web-1b2", START - 3600, START - 3590, START, _LIVE,
        (Container("app", 0.3, 50 * MIB, 0.5, None, 64 * MIB, None),), (10.0,), (10.0,), cluster=OTHER_CLUSTER),
)  # fmt: skip


def pod(uid: str) -> Pod:
    return next(p for p in PODS if p.uid == uid)


def container_id(p: Pod, c: Container, generation: int) -> str:
    return f"{p.uid[-4:]}{c.name}{generation}".encode().hex()[:24].ljust(24, "0")


def cgroup(p: Pod, cid: str) -> str:
    return f"/kubepods/burstable/pod{p.uid}/{cid}"


@dataclass(frozen=True)
class Series:
    name: str
    labels: dict[str, str]
    samples: list[tuple[int, float]]


def _ksm_times(p: Pod, scrape: int = SCRAPE) -> range:
    return range(p.first, p.last + 1, scrape)


def cadvisor_times(p: Pod, scrape: int = SCRAPE) -> list[int]:
    """The kubelet's scrapes of ``p``: from its start to its last kube-state-metrics scrape, minus the gap."""
    base = max(p.first, p.started)
    times = range(base + (CADVISOR_OFFSET - base) % scrape, p.last + CADVISOR_OFFSET + 1, scrape)
    return [t for t in times if not (p.gap and p.gap[0] < t < p.gap[1])]


def _counts(slope: float, since: int, times: list[int], reset_at: int | None) -> list[tuple[int, float]]:
    """A counter growing by ``slope`` per second from 0 at ``since`` (again from 0 at ``reset_at``)."""
    return [(t, slope * (t - (since if reset_at is None or t < reset_at else reset_at))) for t in times]


def container_series(
    p: Pod, c: Container, scrape: int = SCRAPE
) -> Iterator[tuple[str, str, list[tuple[int, float]], str]]:
    """(metric, cgroup id, samples, container id) of one container's cAdvisor series (scraped every ``scrape`` s)."""
    times = cadvisor_times(p, scrape)
    pieces: list[tuple[int, list[int], int]] = []
    if c.restart_at is not None:
        pieces = [(p.started, [t for t in times if t < c.restart_at], 0),
                  (c.restart_at, [t for t in times if t >= c.restart_at], 1)]  # fmt: skip
    else:
        pieces = [(p.started, times, 0)]
    for since, ts, generation in pieces:
        cid = container_id(p, c, generation)
        ident = cgroup(p, cid)
        memory = c.memory_after_restart if generation and c.memory_after_restart is not None else c.memory_bytes

        yield "container_cpu_usage_seconds_total", ident, _counts(c.cpu_cores, since, ts, c.reset_at), cid
        yield "container_memory_working_set_bytes", ident, [(t, memory) for t in ts], cid
        if c.fs_read_bps is not None and c.fs_write_bps is not None:
            yield "container_fs_reads_bytes_total", ident, _counts(c.fs_read_bps, since, ts, c.reset_at), cid
            yield "container_fs_writes_bytes_total", ident, _counts(c.fs_write_bps, since, ts, c.reset_at), cid


def sandbox_id(p: Pod) -> str:
    return cgroup(p, f"{p.uid[-4:]}sandbox".encode().hex()[:24])


def network_series(p: Pod, scrape: int = SCRAPE) -> Iterator[tuple[str, str, list[tuple[int, float]]]]:
    """(metric, interface, samples) of the pod sandbox's network counters (scraped every ``scrape`` s)."""
    times = cadvisor_times(p, scrape)
    for metric, slopes in (("container_network_receive_bytes_total", p.net_rx_bps),
                           ("container_network_transmit_bytes_total", p.net_tx_bps)):  # fmt: skip
        for k, slope in enumerate(slopes):
            yield metric, f"eth{k}", [(t, slope * (t - p.started)) for t in times]


def series(
    pods: Sequence[Pod] = PODS,
    nodes: Sequence[Node] = NODES,
    namespaces: Mapping[str, Mapping[str, str]] = NAMESPACES,
    span: tuple[int, int] = (START, END),
    scrape: int = SCRAPE,
    ksm_scrape: int = SCRAPE,
) -> Iterator[Series]:
    """Every series of the world (by default this module's; a benchmark passes a bigger one): kube-state-metrics
    scraped every ``ksm_scrape`` seconds in ``span``, cAdvisor every ``scrape``."""
    found: list[Series] = []

    def add(name: str, labels: dict[str, str], samples: list[tuple[int, float]]) -> None:
        found.append(Series(name, labels, samples))

    whole = range(*span, ksm_scrape)
    for n in nodes:
        base = {"cluster": n.cluster, "node": n.name}
        add("kube_node_info", base | {"kubelet_version": "v1.29.4", "provider_id": f"kind://{n.name}"},
            [(t, 1.0) for t in whole])  # fmt: skip
        add("kube_node_labels", base | {"label_topology_kubernetes_io_zone": n.zone}, [(t, 1.0) for t in whole])
        add("kube_node_created", base, [(t, float(NODES_CREATED)) for t in whole])
        for kind, cores, memory in (("capacity", n.cores, n.memory_bytes),
                                    ("allocatable", n.allocatable_cores, n.allocatable_memory_bytes)):  # fmt: skip
            add(f"kube_node_status_{kind}", base | {"resource": "cpu", "unit": "core"},
                [(t, float(cores)) for t in whole])  # fmt: skip
            add(f"kube_node_status_{kind}", base | {"resource": "memory", "unit": "byte"},
                [(t, float(memory)) for t in whole])  # fmt: skip
    for cluster in sorted({n.cluster for n in nodes}, key=lambda c: c != CLUSTER):
        for ns, labels in namespaces.items():
            tags = {f"label_{k}": v for k, v in labels.items()}
            add("kube_namespace_labels", {"cluster": cluster, "namespace": ns} | tags, [(t, 1.0) for t in whole])
    yield from found
    for p in pods:
        found.clear()
        base = {"cluster": p.cluster, "namespace": p.namespace, "pod": p.name, "uid": p.uid}
        ksm = list(_ksm_times(p, ksm_scrape))
        add("kube_pod_info", base | {"node": p.node, "created_by_kind": p.owner_kind,
                                     "created_by_name": p.owner_name, "host_ip": "10.0.0.1"},
            [(t, 1.0) for t in ksm])  # fmt: skip
        add("kube_pod_labels", base | {f"label_{k.replace('-', '_')}": v for k, v in p.labels.items()},
            [(t, 1.0) for t in ksm])  # fmt: skip
        add("kube_pod_created", base, [(t, float(p.created)) for t in ksm])
        add("kube_pod_start_time", base, [(t, float(p.started)) for t in ksm])
        for phase in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
            add("kube_pod_status_phase", base | {"phase": phase}, [(t, float(phase == _phase(p, t))) for t in ksm])
        for c in p.containers:
            cbase = base | {"container": c.name}
            gens = [0, 1] if c.restart_at is not None else [0]
            for g in gens:
                ts = [t for t in ksm if c.restart_at is None or (t < c.restart_at) == (g == 0)]
                add("kube_pod_container_info", cbase | {"container_id": f"containerd://{container_id(p, c, g)}",
                                                        "image": f"registry.example/{c.name}:1"},
                    [(t, 1.0) for t in ts])  # fmt: skip
            amounts: tuple[tuple[str, float | None, int | None], ...]
            amounts = (("requests", c.cpu_request, c.memory_request),
                       ("limits", c.cpu_limit, c.memory_limit))  # fmt: skip
            for metric, cpu, asked in amounts:
                if cpu is not None:
                    add(f"kube_pod_container_resource_{metric}", cbase | {"node": p.node, "resource": "cpu",
                                                                          "unit": "core"},
                        [(t, cpu) for t in ksm])  # fmt: skip
                if asked is not None:
                    add(f"kube_pod_container_resource_{metric}", cbase | {"node": p.node, "resource": "memory",
                                                                          "unit": "byte"},
                        [(t, float(asked)) for t in ksm])  # fmt: skip
            for metric, ident, samples, cid in container_series(p, c, scrape):
                labels = base | {"container": c.name, "id": ident, "image": f"registry.example/{c.name}:1",
                                 "name": cid, "node": p.node}  # fmt: skip
                del labels["uid"]
                add(metric, labels, samples)
        for metric, interface, samples in network_series(p, scrape):
            labels = {"cluster": p.cluster, "namespace": p.namespace, "pod": p.name, "container": "POD",
                      "id": sandbox_id(p), "interface": interface, "node": p.node}  # fmt: skip
            add(metric, labels, samples)
        yield from found


def _phase(p: Pod, t: int) -> str:
    return "Succeeded" if p.succeeded_at is not None and t >= p.succeeded_at else "Running"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def write_openmetrics(path: Path, found: Iterable[Series] | None = None) -> int:
    """The world (or the series ``found``) as OpenMetrics (families contiguous, each series in time order,
    ``# EOF``); samples written. Each family is spooled to a file of its own first, so a world of any size is
    written as its series are made."""
    count = 0
    with tempfile.TemporaryDirectory(dir=path.parent) as spool:
        families: dict[str, Path] = {}
        files = {}
        try:
            for s in series() if found is None else found:
                if s.name not in files:
                    families[s.name] = Path(spool) / f"{len(families)}.om"
                    files[s.name] = families[s.name].open("w")
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(s.labels.items()))
                head = f"{s.name}{{{labels}}} "
                files[s.name].writelines(f"{head}{v!r} {t}\n" for t, v in s.samples)
                count += len(s.samples)
        finally:
            for each in files.values():
                each.close()
        with path.open("w") as out:
            for name in sorted(families):
                with families[name].open() as family:
                    while chunk := family.read(1 << 20):
                        out.write(chunk)
            out.write("# EOF\n")
    return count
