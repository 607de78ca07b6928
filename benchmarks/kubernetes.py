"""Kubernetes: capture of 1,000 pods x 24 h at 60 s from a real Prometheus, the time split by who spends it.

    python benchmarks/kubernetes.py [--quick] [--json] [--runs N] [--pods N] [--hours N]

The world is tests/kubernetes/world.py's series made bigger (``world.series`` with pods of this script's): ``--pods``
pods (``--quick``: 100 pods x 6 h) in namespaces of 50 on nodes of 50, each with one container (CPU and memory
requests, CPU and filesystem counters, memory working set) and its sandbox's network on one interface; cAdvisor
scraped every 30 s (kube-prometheus' kubelet interval), kube-state-metrics every 120 s, for ``--hours`` hours.
``promtool tsdb create-blocks-from openmetrics --max-block-duration=72h`` writes it and Prometheus 2.42 serves it,
as tests/kubernetes/conftest.py does. Medians of ``--runs`` runs:

- capture: ``KubernetesCollector.capture`` of the whole span at ``step_s`` 60 (one query_range per namespace and
  metric, 1,440 steps each), split into prometheus (Prometheus' answer, until the whole body is received and
  un-gzipped; ``first byte`` is until its headers, when the query is evaluated), json (httpx's
  ``response.json()``), convert (``parse.combine`` and ``parse.to_batch``: the decoded answers into SampleBatch)
  and rest (the rest of capture: building queries, the requests and namespaces it reads first, batching).
- storage: the real capture job (``jobs.capture``: samples through the writer into the embedded PostgreSQL, rolled
  up in-stream, marks) of the same window for a manager of its own, refreshed first (outside the timing): rows/s
  of the whole job, and of its storage part alone (the job less the collector's capture inside it).

``convert_vs_fetch`` is convert / (prometheus + json) (the goal: under 0.10).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness  # benchmarks/harness.py, beside this script
import httpx

from cloudmeter.collectors.kubernetes import KubernetesCollector, KubernetesConfig
from cloudmeter.collectors.kubernetes import collector as collector_module
from cloudmeter.model import Inventory, SampleBatch, Window, from_epoch_s
from cloudmeter.scheduler import jobs
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.kubernetes import world  # the tests' series machinery
from tests.kubernetes.conftest import PROMETHEUS, PROMTOOL
from tests.loopback import free_port

STEP_S = 60
CADVISOR_S = 30
KSM_S = 120
PER_NAMESPACE = 50
PER_NODE = 50


def pods(count: int, start: int, end: int) -> tuple[list[world.Pod], list[world.Node], dict[str, dict[str, str]]]:
    """``count`` pods running through ``[start, end)``, their nodes and namespaces (varied, deterministic rates)."""
    nodes = [world.Node(f"node-{k:03d}", 32, 128 * world.GIB, 31.5, 126 * world.GIB, f"z{k % 3}")
             for k in range(-(-count // PER_NODE))]  # fmt: skip
    namespaces = {f"ns-{k:03d}": {"team": f"team-{k % 7}"} for k in range(-(-count // PER_NAMESPACE))}
    made = []
    for k in range(count):
        uid = f"0b1c2d3e-{k // 65536:04x}-4000-8000-{k:012x}"
        cores = 0.05 + (k % 40) * 0.025
        app = world.Container("app", cores, float((64 + k % 200) * world.MIB), cpu_request=0.5, cpu_limit=2.0,
                              memory_request=256 * world.MIB, memory_limit=1 * world.GIB,
                              fs_read_bps=1024.0 * (k % 9), fs_write_bps=512.0 * (k % 5))  # fmt: skip
        made.append(
            world.Pod(uid, f"ns-{k // PER_NAMESPACE:03d}", f"app-{k:05d}", nodes[k // PER_NODE].name, "ReplicaSet",
                      f"app-{k // 10:04d}", start - 3600, start - 3590, start, end - KSM_S, (app,),
                      (1000.0 + k,), (500.0 + k,), {"app": f"app-{k % 13}"})
        )  # fmt: skip
    return made, nodes, namespaces


def make_world(where: Path, count: int, hours: int) -> tuple[Path, int, float, float]:
    """TSDB blocks of ``count`` pods x ``hours`` from world.START; (blocks, samples, write s, promtool s)."""
    start, end = world.START, world.START + hours * 3600 + 600
    made, nodes, namespaces = pods(count, start, end)
    source = where / "world.om"
    began = time.perf_counter()
    found = world.series(made, nodes, namespaces, (start, end), scrape=CADVISOR_S, ksm_scrape=KSM_S)
    samples = world.write_openmetrics(source, found)
    written = time.perf_counter() - began
    blocks = where / "blocks"
    began = time.perf_counter()
    subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=72h", str(source),
                    str(blocks)], check=True, capture_output=True)  # fmt: skip
    source.unlink()
    return blocks, samples, written, time.perf_counter() - began


@contextmanager
def prometheus(blocks: Path, where: Path) -> Iterator[str]:
    """Prometheus 2.42 over a copy of ``blocks`` on a free loopback port; its URL."""
    data = where / "data"
    shutil.copytree(blocks, data)
    config = where / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")
    port = free_port()
    with (where / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={data}",
             "--storage.tsdb.retention.time=100y", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while not _ready(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"prometheus did not start: {(where / 'prometheus.log').read_text()[-2000:]}")
                time.sleep(0.05)
            yield url
        finally:
            process.terminate()
            process.wait(30)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@dataclass
class Tally:
    """Seconds spent waiting for Prometheus (to its headers, to the whole body), decoding JSON and converting."""

    first_byte_s: float = 0.0
    answer_s: float = 0.0
    json_s: float = 0.0
    convert_s: float = 0.0
    calls: int = 0
    bytes: int = 0


class TimedTransport(httpx.HTTPTransport):
    """httpx's transport, reading each answer's body before handing it on, so the wait for it is timed here."""

    def __init__(self, tally: Tally) -> None:
        super().__init__()
        self.tally = tally

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        began = time.perf_counter()
        response = super().handle_request(request)
        headed = time.perf_counter()
        content = response.read()  # the client's own read() then finds it read
        self.tally.first_byte_s += headed - began
        self.tally.answer_s += time.perf_counter() - began
        self.tally.calls += 1
        self.tally.bytes += len(content)
        return response


@contextmanager
def tallied(tally: Tally) -> Iterator[None]:
    """Time ``httpx.Response.json`` and the collector's conversion (``combine``, ``to_batch``) into ``tally``."""
    decode, combine, to_batch = httpx.Response.json, collector_module.combine, collector_module.to_batch  # type: ignore[attr-defined]

    def timed(function: Callable[..., Any], field: str) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                setattr(tally, field, getattr(tally, field) + time.perf_counter() - began)

        return run

    httpx.Response.json = timed(decode, "json_s")  # type: ignore[method-assign]
    collector_module.combine = timed(combine, "convert_s")  # type: ignore[attr-defined]
    collector_module.to_batch = timed(to_batch, "convert_s")  # type: ignore[attr-defined]
    try:
        yield
    finally:
        httpx.Response.json = decode  # type: ignore[method-assign]
        collector_module.combine, collector_module.to_batch = combine, to_batch  # type: ignore[attr-defined]


def collector(url: str, tally: Tally, now: int, hours: int) -> KubernetesCollector:
    config = KubernetesConfig(prometheus_url=url, cluster=world.CLUSTER, step_s=STEP_S, timeout_s=3600,
                              lookback_h=hours + 1)  # fmt: skip
    return KubernetesCollector("bench", config, transport=TimedTransport(tally), clock=lambda: from_epoch_s(now))


def one_capture(url: str, window: Window, now: int) -> dict[str, float]:
    tally = Tally()
    made = collector(url, tally, now, (now - window.start_s) // 3600)
    with tallied(tally):
        began = time.perf_counter()
        rows = sum(len(batch) for batch in made.capture(window))
        total = time.perf_counter() - began
    made.close()
    return {
        "total": total,
        "first_byte": tally.first_byte_s,
        "prometheus": tally.answer_s,
        "json": tally.json_s,
        "convert": tally.convert_s,
        "rest": total - tally.answer_s - tally.json_s - tally.convert_s,
        "calls": float(tally.calls),
        "mb": tally.bytes / 1e6,
        "rows": float(rows),
    }


class TimedSource:
    """A collector whose capture's own time (fetching and converting) is summed, so the job's rest is storage's;
    its inventory is one read before (Prometheus takes minutes over a day of 1,000 pods' series)."""

    def __init__(self, inner: KubernetesCollector, inventory: Inventory) -> None:
        self.inner = inner
        self.name = inner.name
        self.capture_s = 0.0
        self._inventory = inventory

    def inventory(self) -> Inventory:
        return self._inventory

    def capture(self, window: Window) -> Iterator[SampleBatch]:
        batches = self.inner.capture(window)
        while True:
            began = time.perf_counter()
            batch = next(batches, None)
            self.capture_s += time.perf_counter() - began
            if batch is None:
                return
            yield batch


def one_store(db: Database, url: str, window: Window, now: int, name: str, seen: Inventory) -> dict[str, float]:
    source = TimedSource(collector(url, Tally(), now, (now - window.start_s) // 3600), seen)
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, name, "kubernetes", {})
    jobs.refresh_inventory(db, manager_id, source)
    began = time.perf_counter()
    done = jobs.capture(db, manager_id, source, window)
    job = time.perf_counter() - began
    source.inner.close()
    return {"job": job, "storage": job - source.capture_s, "rows": float(done.rows)}


def main() -> None:
    args_parser = harness.parser(__doc__, "100 pods x 6 h instead of 1,000 x 24 h", 0)
    args_parser.add_argument("--pods", type=int, default=1000)
    args_parser.add_argument("--hours", type=int, default=24)
    args = args_parser.parse_args()
    count, hours = (100, 6) if args.quick else (args.pods, args.hours)
    window = Window(from_epoch_s(world.START), from_epoch_s(world.START + hours * 3600))
    now = window.end_s + 300
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        blocks, samples, write_s, promtool_s = make_world(where, count, hours)
        with prometheus(blocks, where) as url, Database(None, where / "pg") as db:
            db.migrate()
            one_capture(url, Window(window.start, from_epoch_s(window.start_s + 3600)), now)  # warm both sides
            captures = _medians([one_capture(url, window, now) for _ in range(args.runs)])
            began = time.perf_counter()
            seen = collector(url, Tally(), now, hours).inventory()
            inventory_s = time.perf_counter() - began
            hour = Window(window.start, from_epoch_s(window.start_s + 3600))
            one_store(db, url, hour, now, "warm", seen)  # the JIT
            stores = _medians([one_store(db, url, window, now, f"k8s-{k}", seen) for k in range(args.runs)])
    c, s = captures, stores
    fetch = c["prometheus"] + c["json"]
    print(f"{count:,} pods x {hours} h: {samples:,} samples written in {write_s:.1f} s, promtool {promtool_s:.1f} s")
    print(f"capture at {STEP_S} s (medians of {args.runs}): {c['calls']:.0f} calls, {c['mb']:.1f} MB of JSON, "
          f"{c['rows']:,.0f} rows")  # fmt: skip
    print(f"  {'':<12}{'s':>8}{'of total':>10}{'vs fetch':>10}")
    for name in ("total", "prometheus", "first_byte", "json", "convert", "rest"):
        print(f"  {name:<12}{c[name]:>8.2f}{c[name] / c['total']:>10.3f}{c[name] / fetch:>10.3f}")
    print(f"  convert / fetch (prometheus + json): {c['convert'] / fetch:.3f} (goal: under 0.10)")
    print(f"inventory ({len(seen.items):,} resources, look-back {hours + 1} h, once): {inventory_s:.1f} s")
    print(f"into storage (jobs.capture, embedded PostgreSQL, medians of {args.runs}): {s['rows']:,.0f} rows")
    print(f"  job {s['job']:.2f} s ({s['rows'] / s['job']:,.0f} rows/s); its storage part {s['storage']:.2f} s "
          f"({s['rows'] / s['storage']:,.0f} rows/s)")  # fmt: skip
    if args.json:
        figures = {"pods": float(count), "hours": float(hours), "samples": float(samples)}
        figures |= {f"capture_{name}_s": c[name] for name in ("total", "prometheus", "first_byte", "json", "convert",
                                                              "rest")}  # fmt: skip
        figures |= {"inventory_s": inventory_s, "capture_rows": c["rows"], "capture_calls": c["calls"],
                    "capture_json_mb": c["mb"], "convert_vs_fetch": c["convert"] / fetch}  # fmt: skip
        figures |= {"store_job_s": s["job"], "store_storage_s": s["storage"], "store_rows_per_s": s["rows"] / s["job"],
                    "storage_rows_per_s": s["rows"] / s["storage"]}  # fmt: skip
        print(json.dumps(figures))


def _medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(r[name] for r in runs) for name in runs[0]}


if __name__ == "__main__":
    main()
