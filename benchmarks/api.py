"""HTTP API latency: the reports over HTTP from a running ``cloudmeter serve`` beside the same reports in-process.

    python benchmarks/api.py [--quick] [--json] [--runs N] [--vms N] [--days N] [--data-dir DIR]
                             [--budget S] [--timeout S] [--memory-gb G]

Data: ``--vms`` simulated VMs (default 10,000) over ``--days`` days (default 90) of HOURLY rows, made by the real
pipeline, as ``cloudmeter demo`` does: the simulator at ``interval_s = 3600`` (one sample per VM-hour: 1-minute
samples of that world would not fit here), one inventory refresh, then ``jobs.capture`` a day at a time with one
``StreamRollup``, so samples, hourly and daily rows, placements and resource history are what production writes;
then ``VACUUM ANALYZE``. Loading 10,000 x 90 takes about 20 minutes (its time and rows/s are printed), so the
embedded database lives in ``--data-dir`` and is REUSED when that directory already holds the same world (vms,
days, seed, window): the marker ``api-bench.json`` beside the database says which, written once the load has
finished. Without ``--data-dir`` a temporary directory is used and removed at the end (nothing is reused). The
free disk is checked before loading, and the database's size printed.

Then, for each report, ``python -m cloudmeter serve`` starts as a separate process on that database
(``CLOUDMETER_DSN``: the embedded server's DSN), and one httpx client (keep-alive, sequential requests, a
warm-up request first) times up to ``--runs`` requests, all over explicit ``from``/``to``, with a viewer token:

- utilization: ``/api/v1/capacity/utilization`` by cluster over the whole window
- headroom: ``/api/v1/capacity/headroom`` by cluster for a 4 vCPU / 8 GB flavor (the CLI's default limits),
  whole window
- forecast: ``/api/v1/capacity/forecast`` (limit 90 %), whole window
- chargeback: ``/api/v1/chargeback`` by project (monthly, the server's rate card: the sample card), the last
  30 days of the window

Beside each, the median time of the function the endpoint calls (``cloudmeter.reports.views``) on the same
database, without HTTP, in a worker process (so that one killed for its memory does not end this one), and the
ratio of the HTTP p50 to it (what HTTP, serialisation and the server add). Each answer's JSON is checked to be
the worker's. No run starts after ``--budget`` seconds (default 300) per report and side, no request may take
more than ``--timeout`` (900), and the server or worker is killed once its resident memory passes
``--memory-gb`` (6): a report that needs more is reported as failed, instead of the OOM killer choosing among the
machine's processes. Prints the load average with the figures (other work on the machine moves them), and the
goals of issue 22: p95 under 0.3 s (utilization, headroom) and 3 s (chargeback).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final, TypeVar

import harness  # benchmarks/harness.py, beside this script
import httpx
import psycopg

from cloudmeter.collectors.simulator import SimulatorCollector, SimulatorConfig
from cloudmeter.demo import VMS_PER_HOST
from cloudmeter.model import Window
from cloudmeter.reports import serialize, views
from cloudmeter.scheduler import jobs
from cloudmeter.scheduler.pipeline import StreamRollup
from cloudmeter.storage import managers, tokens
from cloudmeter.storage.database import Database

T = TypeVar("T")
MANAGER: Final = "api-bench"
MARKER: Final = "api-bench.json"
SEED: Final = 7
#: The world's window ends here (midnight UTC), so its days are whole and every run reads the same hours.
END: Final = datetime(2026, 11, 1, tzinfo=UTC)
SAMPLE_INTERVAL_S: Final = 3600
CAPTURE_STEP_S: Final = 86_400
CHARGEBACK_DAYS: Final = 30
#: Database bytes per VM-hour (samples, hourly rows of every level, daily rows, indexes): 580 measured at
#: 10,000 x 90, 640 on --quick, with a margin; the load refuses to start without this much free disk (x 1.2).
BYTES_PER_VM_HOUR: Final = 800
#: Headroom's flavor (the CLI has no default: README's example, the simulator's m1.large).
FLAVOR_VCPUS, FLAVOR_MEMORY_GB = 4, 8.0
SERVER_START_S: Final = 120.0
#: How often the watchdog reads a process's resident memory.
WATCH_S: Final = 0.05


@dataclass(frozen=True)
class World:
    """What the database holds: ``vms`` simulated VMs over ``days`` days ending at ``END``, drawn from ``seed``."""

    vms: int
    days: int
    seed: int

    @property
    def window(self) -> Window:
        return Window(END - timedelta(days=self.days), END)

    def key(self) -> dict[str, object]:
        return {**asdict(self), "start": self.window.start.isoformat(), "end": self.window.end.isoformat()}


@dataclass(frozen=True)
class Loaded:
    """The rows the load wrote and how long it took (``reused``: an earlier run's, read from the marker)."""

    samples: int
    hourly_rows: int
    daily_rows: int
    load_s: float
    reused: bool


def ensure_world(db: Database, world: World, data_dir: Path) -> Loaded:
    """The world in ``db``: reused when the marker in ``data_dir`` names it and the manager's captures reach its
    end, else (re)loaded and marked."""
    marker = data_dir / MARKER
    stored = json.loads(marker.read_text()) if marker.is_file() else None
    if stored is not None and stored.get("world") == world.key():
        with db.connection() as conn:
            row = managers.get_manager(conn, MANAGER)
        if row is not None and row.captured_until == world.window.end:
            return Loaded(stored["samples"], stored["hourly_rows"], stored["daily_rows"], stored["load_s"], True)
    marker.unlink(missing_ok=True)
    check_disk(data_dir, world)
    loaded = load(db, world)
    marker.write_text(json.dumps({"world": world.key(), **asdict(loaded)}, indent=1))
    return loaded


def check_disk(data_dir: Path, world: World) -> None:
    """Stop unless ``data_dir``'s file system has room for the world (an estimate per VM-hour)."""
    needed = world.vms * world.days * 24 * BYTES_PER_VM_HOUR
    free = shutil.disk_usage(data_dir).free
    print(f"disk: {free / 1e9:.1f} GB free in {data_dir}, the world needs about {needed / 1e9:.1f} GB", flush=True)
    if free < needed * 1.2:
        raise SystemExit(f"not enough free disk in {data_dir}: {free / 1e9:.1f} GB, need {needed * 1.2 / 1e9:.1f} GB")


def load(db: Database, world: World) -> Loaded:
    """Replace manager ``api-bench`` by the simulated world, refresh, then capture a day at a time with in-stream
    rollups (as ``cloudmeter.demo.run_demo``, but at one sample per VM-hour)."""
    window = world.window
    hosts = max(4, world.vms // (2 * VMS_PER_HOST))  # the demo's two clusters, hosts not overcommitted
    config = SimulatorConfig(
        kind="simulator",
        vms=world.vms,
        hosts_per_cluster=hosts,
        start=window.start,
        horizon_days=world.days,
        interval_s=SAMPLE_INTERVAL_S,
        seed=world.seed,
    )
    collector = SimulatorCollector(MANAGER, config, clock=lambda: window.end)
    began = time.perf_counter()
    db.migrate()
    with db.connection() as conn:
        managers.remove_manager(conn, MANAGER)
        manager_id = managers.add_manager(conn, MANAGER, "simulator", config.public_fields())
        managers.set_enabled(conn, MANAGER, False)
    jobs.refresh_inventory(db, manager_id, collector)
    stream = StreamRollup(db, manager_id, ("UTC",))
    samples = 0
    steps = window.split(CAPTURE_STEP_S)
    for n, step in enumerate(steps, 1):
        samples += jobs.capture(db, manager_id, collector, step, stream=stream).rows
        if n % 10 == 0 or n == len(steps):
            spent = time.perf_counter() - began
            print(f"  loaded {n}/{len(steps)} days: {samples:,} samples in {spent:.0f} s", file=sys.stderr, flush=True)
    load_s = time.perf_counter() - began
    vacuum(db)
    counts = stream.counts
    return Loaded(samples, counts.hourly, sum(counts.daily.values()), round(load_s, 1), False)


def vacuum(db: Database) -> None:
    """VACUUM ANALYZE the database (statistics and visibility maps as a running server's autovacuum would have
    them), on its own autocommit connection."""
    with contextlib.closing(db.dedicated_connection()) as conn:
        conn.execute("VACUUM ANALYZE")


def sizes(conn: psycopg.Connection) -> dict[str, int]:
    """Bytes of the database and of its three metric tables (all partitions, indexes and TOAST)."""
    found = {"database": conn.execute("SELECT pg_database_size(current_database())").fetchone()}
    for table in ("metric_samples", "metric_hourly", "metric_daily"):
        found[table] = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree(%s::regclass)", (table,)
        ).fetchone()
    return {name: int(row[0]) if row else 0 for name, row in found.items()}


# --- processes: the server, and the worker that computes the reports in-process ---------------------------------


def resident_bytes(pid: int) -> int | None:
    """Process ``pid``'s resident memory (VmRSS), None once it has ended."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


class Watchdog:
    """Watches process ``pid`` every ``WATCH_S`` and kills it (SIGKILL) once its resident memory passes
    ``cap_bytes`` (0: never), so that a report needing more fails here instead of the machine's OOM killer
    choosing among everyone's processes. (An address-space rlimit is no way to do it: polars' jemalloc then
    loops on failed thread creation, writing gigabytes of log.) ``peak_bytes``: the most it saw."""

    def __init__(self, pid: int, cap_bytes: int) -> None:
        self.pid, self.cap_bytes = pid, cap_bytes
        self.peak_bytes = 0
        self.killed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"watchdog-{pid}", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_S):
            rss = resident_bytes(self.pid)
            if rss is None:
                return
            self.peak_bytes = max(self.peak_bytes, rss)
            if self.cap_bytes and rss > self.cap_bytes:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.killed = True
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def why(self) -> str:
        """What to add to an error: that the process was killed for its memory, if it was."""
        return (
            f"; killed at {self.peak_bytes / 2**30:.1f} GB, over the {self.cap_bytes / 2**30:g} GB cap"
            if self.killed
            else ""
        )


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    """A running ``cloudmeter serve``: its process, base URL, log and watchdog."""

    process: subprocess.Popen[bytes]
    base: str
    log: Path
    watchdog: Watchdog

    def last_lines(self, count: int = 3) -> str:
        with self.log.open("rb") as log:
            log.seek(max(0, self.log.stat().st_size - 4000))
            text = log.read().decode(errors="replace")
        return " | ".join([line for line in text.splitlines() if line.strip()][-count:])


@contextlib.contextmanager
def served(dsn: str, log: Path, cap_bytes: int) -> Iterator[Server]:
    """``python -m cloudmeter serve`` on a free port of 127.0.0.1 with ``CLOUDMETER_DSN=dsn`` (no other
    CLOUDMETER_ setting: no config file), killed past ``cap_bytes`` of memory, its output in ``log``; yields
    it once it answers, and stops it (SIGTERM, then SIGKILL) afterwards."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDMETER_")}
    env["CLOUDMETER_DSN"] = dsn
    command = [sys.executable, "-m", "cloudmeter", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        watchdog = Watchdog(process.pid, cap_bytes)
        try:
            server = Server(process, f"http://127.0.0.1:{port}", log, watchdog)
            wait_until_up(server)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            watchdog.stop()


def wait_until_up(server: Server) -> None:
    """Return once the server answers HTTP at all; stop if it exits or takes longer than ``SERVER_START_S``."""
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"cloudmeter serve exited ({server.process.returncode}): {server.last_lines(20)}")
        with contextlib.suppress(httpx.TransportError):
            httpx.get(f"{server.base}/api/v1/openapi.json", timeout=5)
            return
        time.sleep(0.2)
    raise SystemExit(f"cloudmeter serve did not answer within {SERVER_START_S:.0f} s: {server.last_lines(20)}")


# --- the measurements --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """One endpoint: its query and the in-process call of the function it calls; ``goal_s``: issue 22's p95."""

    name: str
    path: str
    query: dict[str, str | int | float]
    compute: Callable[[psycopg.Connection], views.Shown]
    goal_s: float | None


def reports(world: World) -> list[Report]:
    """The four timed reports, over explicit windows (the API's default ends at the wall clock's hour)."""
    window = world.window
    whole = views.Period(window.start.isoformat(), window.end.isoformat(), world.days, "UTC")
    month_start = max(window.start, window.end - timedelta(days=CHARGEBACK_DAYS))
    month = views.Period(month_start.isoformat(), window.end.isoformat(), CHARGEBACK_DAYS, "UTC")
    span = {"from": whole.start or "", "to": whole.end or ""}
    utilization = views.Utilization("cluster", whole)
    headroom = views.Headroom(FLAVOR_VCPUS, FLAVOR_MEMORY_GB, period=whole)
    forecast = views.Forecast(90.0, whole)
    chargeback = views.Chargeback("project", "monthly", None, month)
    card = views.rate_card(None)  # the server's card: [api] rates unset
    return [
        Report(
            "utilization",
            "/api/v1/capacity/utilization",
            {"level": "cluster", **span},
            lambda conn: views.utilization(conn, utilization),
            0.3,
        ),
        Report(
            "headroom",
            "/api/v1/capacity/headroom",
            {"vcpus": FLAVOR_VCPUS, "memory_gb": FLAVOR_MEMORY_GB, **span},
            lambda conn: views.headroom_report(conn, headroom),
            0.3,
        ),
        Report(
            "forecast",
            "/api/v1/capacity/forecast",
            {"limit": 90.0, **span},
            lambda conn: views.forecast_report(conn, forecast),
            None,
        ),
        Report(
            "chargeback",
            "/api/v1/chargeback",
            {"group_by": "project", "interval": "monthly", "from": month.start or "", "to": month.end or ""},
            lambda conn: views.chargeback_report(conn, chargeback, card),
            3.0,
        ),
    ]


@dataclass(frozen=True)
class Limits:
    """How far one side (HTTP or in-process) of one report goes: ``runs`` timed calls after a warm-up, but no new
    call once ``budget_s`` has passed (one at least); ``timeout_s``: the longest a single call may take;
    ``memory_bytes``: the resident memory past which the process computing it is killed (0: no cap)."""

    runs: int
    budget_s: float
    timeout_s: float
    memory_bytes: int


@dataclass(frozen=True)
class Timed:
    """One side's times (seconds, the warm-up left out), or why it stopped; the answer's row count and the
    SHA-256 of its JSON; the most memory the process computing it held."""

    times: tuple[float, ...] = ()
    error: str | None = None
    rows: int | None = None
    digest: str | None = None
    peak_rss_bytes: int | None = None

    @property
    def p50(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    @property
    def p95(self) -> float | None:
        """The 95th percentile (linear between the nearest ranks, never outside the times seen)."""
        if len(self.times) < 2:
            return self.times[0] if self.times else None
        return statistics.quantiles(self.times, n=20, method="inclusive")[-1]


def repeat(call: Callable[[], T], limits: Limits) -> tuple[list[float], T | None, str | None]:
    """A warm-up call, then timed calls as ``limits`` allow: the times, the last answer, and the error that
    stopped them (None when none did), with how long the failed call had run."""
    began = time.perf_counter()
    times: list[float] = []
    last: T | None = None
    start = began
    try:
        last = call()
        while len(times) < limits.runs and (not times or time.perf_counter() - began < limits.budget_s):
            start = time.perf_counter()
            last = call()
            times.append(time.perf_counter() - start)
    except Exception as exc:
        failed = f"{type(exc).__name__}: {str(exc)[:300]}, after {time.perf_counter() - start:.1f} s"
        return times, last, failed
    return times, last, None


def over_http(server: Server, secret: str, report: Report, limits: Limits) -> Timed:
    """``report`` requested from ``server`` by one keep-alive httpx client, sequentially."""
    headers = {"Authorization": f"Bearer {secret}"}
    with httpx.Client(base_url=server.base, headers=headers, timeout=limits.timeout_s) as client:

        def call() -> bytes:
            answer = client.get(report.path, params=report.query)
            if answer.status_code != httpx.codes.OK:
                raise RuntimeError(f"HTTP {answer.status_code}: {answer.text[:200]}")
            return answer.content

        times, body, error = repeat(call, limits)
    if error:
        error += server.watchdog.why() or f" (server: {server.last_lines()})"
    rows = len(json.loads(body)) if body is not None else None
    digest = hashlib.sha256(body).hexdigest() if body is not None else None
    return Timed(tuple(times), error, rows, digest, server.watchdog.peak_bytes)


def in_process_worker(dsn: str, world: World, name: str, limits: Limits, send: Connection) -> None:
    """In a worker process: ``name``'s report computed by its ``views`` function, timed, sent back as Timed."""
    report = next(r for r in reports(world) if r.name == name)
    try:
        with Database(dsn, Path(tempfile.gettempdir()), pool_size=1) as db:

            def call() -> views.Shown:
                with db.connection() as conn:
                    return report.compute(conn)

            times, shown, error = repeat(call, limits)
    except Exception as exc:
        times, shown, error = [], None, f"{type(exc).__name__}: {str(exc)[:300]}"
    text = serialize.to_json(serialize.ordered(shown.frame)).encode() if shown is not None else None
    digest = hashlib.sha256(text).hexdigest() if text is not None else None
    send.send(Timed(tuple(times), error, shown.frame.height if shown else None, digest))


def in_process(dsn: str, world: World, report: Report, limits: Limits) -> Timed:
    """``report`` computed by the function its endpoint calls, in a fresh worker process on the same database
    (so that a report killed for its memory does not end this process)."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    worker = context.Process(target=in_process_worker, args=(dsn, world, report.name, limits, send), daemon=True)
    worker.start()
    send.close()
    assert worker.pid is not None
    watchdog = Watchdog(worker.pid, limits.memory_bytes)
    began = time.perf_counter()
    deadline = SERVER_START_S + limits.budget_s + 2 * limits.timeout_s
    try:
        if receive.poll(deadline):
            timed: Timed = receive.recv()
            return replace(timed, peak_rss_bytes=watchdog.peak_bytes)
        return Timed(error=f"no answer within {deadline:.0f} s", peak_rss_bytes=watchdog.peak_bytes)
    except EOFError:
        worker.join(10)
        error = (
            f"the worker ended without an answer (exit code {worker.exitcode}) "
            f"{time.perf_counter() - began:.1f} s after it started{watchdog.why()}"
        )
        return Timed(error=error, peak_rss_bytes=watchdog.peak_bytes)
    finally:
        if worker.is_alive():
            worker.kill()
        worker.join()
        watchdog.stop()


@dataclass(frozen=True)
class Figures:
    """One report, over HTTP and in-process."""

    http: Timed
    direct: Timed

    @property
    def ratio(self) -> float | None:
        p50, direct = self.http.p50, self.direct.p50
        return p50 / direct if p50 is not None and direct else None

    @property
    def same_json(self) -> bool | None:
        return self.http.digest == self.direct.digest if self.http.digest and self.direct.digest else None


def token(db: Database) -> tuple[str, str]:
    """A new viewer token and its name (unique per run: names stay taken after revoking)."""
    name = f"api-bench-{os.getpid()}-{time.time_ns()}"
    with db.connection() as conn:
        return name, tokens.create_token(conn, name, "viewer")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def shown(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = harness.parser(__doc__, "300 VMs, 31 days", 10_000)
    parser.set_defaults(runs=20)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument(
        "--data-dir", type=Path, help="keep the database here and reuse it (default: a temporary directory)"
    )
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per report and side: no new run after")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one request or call may take")
    parser.add_argument(
        "--memory-gb", type=float, default=6.0, help="kill the server or worker past this resident memory (0: never)"
    )
    args = parser.parse_args()
    vms, days = (300, 31) if args.quick else (args.vms, args.days)
    world = World(vms, days, SEED)
    limits = Limits(args.runs, args.budget, args.timeout, int(args.memory_gb * 2**30))
    figures: dict[str, Figures] = {}
    with contextlib.ExitStack() as stack:
        data_dir = args.data_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cloudmeter-api-")))
        data_dir.mkdir(parents=True, exist_ok=True)
        db = stack.enter_context(Database(None, data_dir))
        print(f"{world.vms:,} VMs x {world.days} days of hourly rows in {data_dir}", flush=True)
        loaded = ensure_world(db, world, data_dir)
        with db.connection() as conn:
            dsn = conn.info.dsn  # the embedded server's socket, no password: a second process connects with it
            stored = sizes(conn)
        disk_free = shutil.disk_usage(data_dir).free
        name, secret = token(db)
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cloudmeter-api-log-")))
        load_before = load_average()
        for report in reports(world):
            print(f"  timing {report.name}", file=sys.stderr, flush=True)
            with served(dsn, logs / f"{report.name}.log", limits.memory_bytes) as server:
                http = over_http(server, secret, report, limits)
            figures[report.name] = Figures(http, in_process(dsn, world, report, limits))
        load_after = load_average()
        with db.connection() as conn:
            tokens.revoke_token(conn, name)

    rows = loaded.samples + loaded.hourly_rows + loaded.daily_rows
    how = "reused: loaded by an earlier run in" if loaded.reused else "loaded in"
    print(
        f"{loaded.samples:,} samples, {loaded.hourly_rows:,} hourly rows, {loaded.daily_rows:,} daily rows; "
        f"{how} {loaded.load_s:,.0f} s: {loaded.samples / loaded.load_s:,.0f} samples/s, "
        f"{rows / loaded.load_s:,.0f} rows written/s"
    )
    in_tables = ", ".join(f"{table} {size / 1e9:.2f} GB" for table, size in stored.items())
    print(f"database {in_tables}; {disk_free / 1e9:.1f} GB disk free")
    print(f"load average (1/5/15 min) before {load_before}, after {load_after}; {os.cpu_count()} cores")
    print(
        f"httpx: one keep-alive client, up to {args.runs} sequential requests after a warm-up (none started after "
        f"{args.budget:g} s); in-process: the views function, median; killed past {args.memory_gb:g} GB resident"
    )
    print(
        f"{'endpoint':<13}{'n':>4}{'p50 s':>9}{'p95 s':>9}{'in-proc s':>11}{'ratio':>7}{'goal p95':>10}{'met':>5}"
        f"{'rows':>6}{'peak GB':>9}{'same':>6}"
    )
    result: dict[str, Any] = {
        "vms": world.vms,
        "days": world.days,
        "samples": loaded.samples,
        "hourly_rows": loaded.hourly_rows,
        "daily_rows": loaded.daily_rows,
        "load_s": loaded.load_s,
        "load_reused": loaded.reused,
        "load_samples_per_s": round(loaded.samples / loaded.load_s),
        "database_bytes": stored["database"],
        "disk_free_bytes": disk_free,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "runs": args.runs,
        "memory_cap_bytes": limits.memory_bytes,
    }
    notes = []
    for report in reports(world):
        f = figures[report.name]
        met = None if report.goal_s is None else f.http.p95 is not None and f.http.p95 < report.goal_s
        goal = "" if report.goal_s is None else f"< {report.goal_s:g} s"
        peak = max(f.http.peak_rss_bytes or 0, f.direct.peak_rss_bytes or 0) / 2**30
        same = {None: "-", True: "yes", False: "NO"}[f.same_json]
        answer = {None: "", True: "yes", False: "no"}[met]
        print(
            f"{report.name:<13}{len(f.http.times):>4}{shown(f.http.p50):>9}{shown(f.http.p95):>9}"
            f"{shown(f.direct.p50):>11}{shown(f.ratio, 2):>7}{goal:>10}{answer:>5}"
            f"{f.http.rows if f.http.rows is not None else '-':>6}{peak:>9.2f}{same:>6}"
        )
        notes += [
            f"{report.name} {side}: {t.error}" for side, t in (("HTTP", f.http), ("in-process", f.direct)) if t.error
        ]
        key = report.name
        result |= {
            f"{key}_http_runs": len(f.http.times),
            f"{key}_http_p50_s": f.http.p50,
            f"{key}_http_p95_s": f.http.p95,
            f"{key}_http_error": f.http.error,
            f"{key}_in_process_runs": len(f.direct.times),
            f"{key}_in_process_median_s": f.direct.p50,
            f"{key}_in_process_error": f.direct.error,
            f"{key}_http_p50_over_in_process": f.ratio,
            f"{key}_goal_p95_s": report.goal_s,
            f"{key}_goal_met": met,
            f"{key}_rows": f.http.rows,
            f"{key}_same_json": f.same_json,
            f"{key}_server_peak_rss_bytes": f.http.peak_rss_bytes,
            f"{key}_in_process_peak_rss_bytes": f.direct.peak_rss_bytes,
        }
    print("peak GB: the most memory the server or the in-process worker held; same: HTTP's JSON is in-process's")
    for note in notes:
        print(note)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
