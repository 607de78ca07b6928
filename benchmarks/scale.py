"""Scale: the daemon's CPU and memory per 5-minute capture cycle for 1,000, 10,000 and 100,000 simulated VMs.

    python benchmarks/scale.py [--quick] [--json] [--runs N] [--sizes N ...] [--profile N]

Each size runs in a fresh process (so its peak RSS is its own) on its own embedded PostgreSQL 18 (default
settings: shared_buffers 128MB, max_wal_size 1GB, data checksums). A simulated manager (kind ``simulator``:
1-minute samples of 8 metrics, 20 VMs a host, 50 hosts a cluster, one time zone) is refreshed, captured once as a
new daemon would (the last hour), then run through the daemon's capture cycle (``scheduler.cycle.capture_cycle``:
fetch through ``bounded.Bounded``, raw samples through the pipeline's writer, in-stream rollups, marks, the
recency check) every 5 minutes of simulated time for ``--runs`` hours (default 1): per hour 11 steady cycles
(the first one, warm, left out) and the cycle that crosses into the next hour, closing the hourly rows of every
level. With the default ``capture_overlap_s`` (600) each cycle reads 15 minutes: 5 new, 10 re-read.

The simulator's work is taken out of the timed part: before each cycle its batches for that cycle's window
are generated (timed alone: "left out") and the cycle is served them by a replaying source. A cycle's time is
the simulated ``now``: ``capture_cycle`` reads ``datetime.now`` through its module, so this script gives that
module a ``datetime`` whose ``now`` is the simulated one.

Measured per cycle: the daemon's CPU (user + system of this process, every thread: ``getrusage``); the
PostgreSQL server's CPU (the postmaster and every process under it from ``/proc``: backends, WAL writer,
checkpointer, autovacuum; until 0.3 s after the cycle, so its background writes count); WAL bytes; bytes the
server passed to ``write()`` (WAL, data files, temporary files); peak RSS (VmHWM, reset before the cycle).
Per size: medians over the steady cycles, the hour-crossing cycle, the mean over an hour (11 steady + 1
crossing), an inventory refresh of the unchanged cloud (the daemon runs one every 15 minutes), the whole
process's peak RSS, the server's memory (PSS) and bytes per stored row (``pg_total_relation_size`` of every
partition, indexes included). The last column is the growth per added VM from the smallest size to the largest.

``cpu_fraction_<size>`` is the hour's mean daemon CPU per cycle / 300 s (the goal: under 0.25 at 100,000 VMs);
``cpu_fraction_with_refresh_<size>`` adds a third of a refresh. ``--quick`` runs 1,000 and 10,000 VMs (under two
minutes). ``--profile N`` runs N VMs once under cProfile (CPU time) and prints where the steady cycles' time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

from rich.console import Console
from rich.table import Table

from cloudmeter.collectors.simulator import SimulatorCollector, SimulatorConfig
from cloudmeter.collectors.simulator.world import DELETE_SHARE
from cloudmeter.config import Settings
from cloudmeter.model import Inventory, SampleBatch, Window
from cloudmeter.scheduler import bounded, cycle, jobs
from cloudmeter.scheduler.cycle import Leased, capture_cycle
from cloudmeter.scheduler.windows import CapturePlan, next_window
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database

SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
CYCLE_S = 300
#: Steady cycles an hour holds besides the one that crosses into the next.
PER_HOUR = 3600 // CYCLE_S
#: Capture cycles per inventory refresh (``refresh_interval_s`` 900 / ``capture_interval_s`` 300).
REFRESHES = 3
WORLD_START = datetime(2026, 6, 15, tzinfo=UTC)
#: The hour the last cycle crosses into (a day and 11 hours into the world), 7 s late as a daemon's jitter.
CROSSING = WORLD_START + timedelta(days=1, hours=11, seconds=7)
VMS_PER_HOST = 20
HOSTS_PER_CLUSTER = 50
SETTLE_S = 0.3  # after a cycle, for the server's background writes to land in the cycle's share
TABLES = ("metric_samples", "metric_hourly", "metric_daily", "resource_intervals", "resources", "resource_history")

console = Console(width=130)
progress = Console(stderr=True, log_path=False)


# the clock -------------------------------------------------------------------------------------------------


class SimulatedClock(datetime):
    """``datetime`` whose ``now`` is the simulated time (``capture_cycle`` asks its module's ``datetime``)."""

    current: ClassVar[datetime] = WORLD_START

    @classmethod
    def now(cls, tz: object = None) -> SimulatedClock:  # type: ignore[override]
        del tz
        c = cls.current
        return cls(c.year, c.month, c.day, c.hour, c.minute, c.second, c.microsecond, tzinfo=UTC)


# the source ------------------------------------------------------------------------------------------------


class Replay:
    """A collector serving batches generated before the timed part: the daemon's work without the source's."""

    kind: ClassVar[str] = "simulator"
    retention_s: ClassVar[int | None] = None

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: Inventory | None = None
        self.window: Window | None = None
        self.batches: list[SampleBatch] = []

    def verify(self) -> None:
        """Nothing to check."""

    def inventory(self) -> Inventory:
        """The inventory read beforehand."""
        assert self.seen is not None
        return self.seen

    def capture(self, window: Window) -> Iterator[SampleBatch]:
        """The batches generated for ``window``, each dropped once handed over."""
        assert window == self.window, (window, self.window)
        while self.batches:
            yield self.batches.pop(0)


# measuring -------------------------------------------------------------------------------------------------

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def self_cpu_s() -> float:
    """User + system CPU of this process, every thread."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()  # fields from the 3rd (state) on


def server_cpu_s(postmaster: int) -> float:
    """CPU of the PostgreSQL server: the postmaster's own and its reaped children's, plus its live children's."""
    total = 0.0
    for pid in _children(postmaster):
        try:
            fields = _stat(pid)
        except OSError:  # gone meanwhile (its time is in the postmaster's cutime and cstime)
            continue
        total += (int(fields[11]) + int(fields[12])) * TICK_S  # utime, stime
    fields = _stat(postmaster)
    return total + sum(int(fields[k]) for k in (11, 12, 13, 14)) * TICK_S  # + cutime, cstime


def server_written(postmaster: int) -> dict[int, int]:
    """Bytes each live PostgreSQL process has handed to ``write()`` (WAL, data files, temporary files)."""
    written = {}
    for pid in [postmaster, *_children(postmaster)]:
        try:
            with open(f"/proc/{pid}/io") as f:
                written[pid] = next(int(line.split()[1]) for line in f if line.startswith("wchar:"))
        except OSError:
            continue
    return written


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(_stat(int(entry))[1]) == parent:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def written_since(before: dict[int, int], after: dict[int, int]) -> int:
    """Bytes written between two ``server_written`` (a process that ended meanwhile is not counted)."""
    return sum(n - before.get(pid, 0) for pid, n in after.items())


def hwm_mb() -> float:
    """Peak RSS (VmHWM) of this process since the last ``reset_hwm``, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def reset_hwm() -> None:
    """Restart VmHWM from the current RSS (Linux ``clear_refs`` 5)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mb() -> float:
    """Peak RSS of this process over its life, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def server_pss_mb(postmaster: int) -> float:
    """The PostgreSQL server's memory: the proportional set size of all its processes (shared memory once)."""
    total = 0
    for pid in [postmaster, *_children(postmaster)]:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
    return total / 1024


def wal_lsn(db: Database) -> int:
    """The server's current WAL position in bytes."""
    with db.connection() as conn:
        row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
    assert row is not None
    return int(row[0])


def table_sizes(db: Database) -> dict[str, tuple[int, int]]:
    """Per table: rows and bytes on disk (every partition, its indexes and TOAST)."""
    sizes = {}
    with db.connection() as conn:
        for table in TABLES:
            found = conn.execute(
                f"SELECT (SELECT count(*) FROM {table}), "
                f"(SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree('{table}'))"
            ).fetchone()
            assert found is not None
            sizes[table] = (int(found[0]), int(found[1]))
    return sizes


# one size --------------------------------------------------------------------------------------------------


@dataclass
class Cycle:
    """One measured capture cycle."""

    now: datetime
    rows: int
    daemon_s: float
    server_s: float
    wal_bytes: int
    written_bytes: int
    simulator_s: float
    wall_s: float
    peak_rss_mb: float


def simulator_config(vms: int) -> SimulatorConfig:
    """About ``vms`` live VMs, 20 a host, 50 hosts a cluster, 1-minute samples. The world's changes (creations,
    deletions, migrations) all happen on its first day; the cycles run on the second, with about 10% more VMs
    drawn than live then (the simulator deletes 10% of them)."""
    drawn = round(vms / (1 - DELETE_SHARE))
    hosts = max(1, drawn // VMS_PER_HOST)
    clusters = max(1, hosts // HOSTS_PER_CLUSTER)
    return SimulatorConfig(
        kind="simulator",
        vms=drawn,
        seed=11,
        start=WORLD_START,
        horizon_days=1,
        clusters=clusters,
        hosts_per_cluster=max(1, hosts // clusters),
    )


def cycle_times(hours: int) -> list[datetime]:
    """The cycles' simulated ``now``: a first capture ``hours`` before ``CROSSING``, then every 5 minutes up to it
    (each hour 11 steady cycles and one that crosses into the next)."""
    if hours < 1:
        raise SystemExit("--runs (hours of cycles) must be at least 1")
    return [CROSSING - timedelta(seconds=CYCLE_S * k) for k in range(PER_HOUR * hours, -1, -1)]


def crosses(times: list[datetime], k: int) -> bool:
    """Whether cycle ``k`` (not the first capture) is the first of a new hour: it closes the last one."""
    return k > 0 and times[k].replace(minute=0, second=0) != times[k - 1].replace(minute=0, second=0)


def run_size(vms: int, hours: int, profile: bool) -> dict[str, float]:
    """Everything measured at ``vms`` VMs (in this process)."""
    times = cycle_times(hours)
    config = simulator_config(vms)
    end = times[-1]
    simulator = SimulatorCollector("scale", config, clock=lambda: end)  # every VM the run will see exists
    replay = Replay("scale")
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, Database(None, Path(tmp)) as db:
        db.migrate()
        with open(Path(tmp) / "postgres" / "postmaster.pid") as f:
            postmaster = int(f.readline())
        settings = Settings(data_dir=Path(tmp))
        plan = CapturePlan(
            settings.schedule.capture_overlap_s,
            settings.schedule.initial_capture_s,
            settings.schedule.max_window_s,
            None,
        )
        with db.connection() as conn:
            manager_id = managers.register_manager(conn, "scale", "simulator", config.public_fields())
        began = time.process_time()
        replay.seen = simulator.inventory()
        figures["simulator_inventory_s"] = time.process_time() - began
        figures["live_vms"] = sum(1 for i in replay.seen.items if i.ref.kind == "vm" and i.retired_at is None)
        progress.log(
            f"{vms:,} VMs: inventory of {len(replay.seen.items):,} resources, {figures['live_vms']:,} live VMs"
        )
        jobs.refresh_inventory(db, manager_id, replay)
        stop = threading.Event()
        leased = Leased("scale", manager_id, replay)  # type: ignore[arg-type]  # a Collector in all but name
        cycle.datetime = SimulatedClock  # type: ignore[misc]
        cycles: list[Cycle] = []
        profiler = cProfile.Profile(time.process_time) if profile else None  # CPU time, every thread
        try:
            for k, now in enumerate(times):
                steady = k >= 2 and not crosses(times, k)
                cycles.append(
                    one_cycle(
                        db,
                        settings,
                        plan,
                        leased,
                        replay,
                        simulator,
                        now,
                        stop,
                        postmaster,
                        profiler if steady else None,
                    )
                )
                c = cycles[-1]
                what = "first capture" if k == 0 else "warm" if k == 1 else "crossing" if crosses(times, k) else ""
                progress.log(
                    f"{vms:,} VMs: cycle {k} at {now:%H:%M:%S} {what}: {c.rows:,} rows, daemon {c.daemon_s:.2f} s, "
                    f"server {c.server_s:.2f} s, WAL {c.wal_bytes / 1e6:.0f} MB, written {c.written_bytes / 1e6:.0f} "
                    f"MB, simulator {c.simulator_s:.2f} s (left out), peak RSS {c.peak_rss_mb:,.0f} MiB, "
                    f"wall {c.wall_s:.1f} s"
                )
            figures["server_pss_mb"] = server_pss_mb(postmaster)
            # an inventory refresh of the unchanged cloud, as the daemon runs every refresh_interval_s
            s0, d0 = server_cpu_s(postmaster), self_cpu_s()
            jobs.refresh_inventory(db, manager_id, bounded.Bounded(replay, 600.0, stop))  # type: ignore[arg-type]
            d1 = self_cpu_s()
            time.sleep(SETTLE_S)
            figures["refresh_daemon_s"], figures["refresh_db_s"] = d1 - d0, server_cpu_s(postmaster) - s0
        finally:
            cycle.datetime = datetime  # type: ignore[misc]
        sizes = table_sizes(db)
    if profiler is not None:
        stats = pstats.Stats(profiler, stream=sys.stderr).strip_dirs()
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
    steady = [c for k, c in enumerate(cycles) if k >= 2 and not crosses(times, k)]
    crossing = [c for k, c in enumerate(cycles) if crosses(times, k)]
    for key, pick in (
        ("cpu_s", lambda c: c.daemon_s),
        ("db_cpu_s", lambda c: c.server_s),
        ("wal_bytes", lambda c: float(c.wal_bytes)),
        ("written_bytes", lambda c: float(c.written_bytes)),
        ("rows", lambda c: float(c.rows)),
        ("simulator_s", lambda c: c.simulator_s),
        ("wall_s", lambda c: c.wall_s),
    ):
        values, closing = [pick(c) for c in steady], statistics.median(pick(c) for c in crossing)
        figures[f"{key}_per_cycle"] = statistics.median(values)
        figures[f"{key}_per_cycle_mean"] = statistics.fmean(values)
        figures[f"{key}_crossing"] = closing
        figures[f"{key}_hour"] = (statistics.median(values) * (PER_HOUR - 1) + closing) / PER_HOUR
    figures["peak_rss_steady_mb"] = max(c.peak_rss_mb for c in steady)
    figures["peak_rss_crossing_mb"] = max(c.peak_rss_mb for c in crossing)
    figures["first_capture_cpu_s"] = cycles[0].daemon_s
    figures["first_capture_db_cpu_s"] = cycles[0].server_s
    figures["first_capture_rows"] = cycles[0].rows
    figures["peak_rss_mb"] = peak_rss_mb()
    for table, (rows, size) in sizes.items():
        figures[f"{table}_rows"] = rows
        figures[f"{table}_bytes"] = size
    figures["vms"] = vms
    figures["hours"] = hours
    figures["resources"] = sizes["resources"][0]
    return figures


def one_cycle(
    db: Database,
    settings: Settings,
    plan: CapturePlan,
    leased: Leased,
    replay: Replay,
    simulator: SimulatorCollector,
    now: datetime,
    stop: threading.Event,
    postmaster: int,
    profiler: cProfile.Profile | None,
) -> Cycle:
    """Generate the batches of the cycle at ``now`` (timed alone), then run the daemon's cycle on them."""
    with db.connection() as conn:
        captured_until = managers.manager_by_id(conn, leased.id).captured_until
    window = next_window(captured_until, now, plan)
    assert window is not None
    began = time.process_time()
    replay.window, replay.batches = window, list(simulator.capture(window))
    simulator_s = time.process_time() - began
    SimulatedClock.current = now
    lsn, written = wal_lsn(db), server_written(postmaster)
    s0 = server_cpu_s(postmaster)
    reset_hwm()
    w0, d0 = time.perf_counter(), self_cpu_s()
    if profiler is not None:
        profiler.enable()
    with db.connection() as conn:  # the daemon reads the row before each job
        row = managers.manager_by_id(conn, leased.id)
    rows = capture_cycle(db, settings, leased, row, bounded.Bounded(replay, 600.0, stop), stop)  # type: ignore[arg-type]
    if profiler is not None:
        profiler.disable()
    d1, w1, peak = self_cpu_s(), time.perf_counter(), hwm_mb()
    time.sleep(SETTLE_S)
    server_s = server_cpu_s(postmaster) - s0
    wal, wrote = wal_lsn(db) - lsn, written_since(written, server_written(postmaster))
    return Cycle(now, rows, d1 - d0, server_s, wal, wrote, simulator_s, w1 - w0, peak)


# the whole run ---------------------------------------------------------------------------------------------


def child(vms: int, runs: int) -> dict[str, float]:
    """Run one size in a fresh interpreter (this script with ``--child``); its figures."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(vms), "--runs", str(runs)],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def short(vms: int) -> str:
    """``1k``, ``10k``, ``100k``, ``1M``."""
    return f"{vms // 1_000_000}M" if vms >= 1_000_000 and vms % 1_000_000 == 0 else f"{vms // 1000}k"


def summary(results: dict[int, dict[str, float]]) -> dict[str, float]:
    """The JSON figures: per size, and the goal's."""
    out: dict[str, float] = {}
    for vms, f in results.items():
        s = short(vms)
        out[f"cpu_s_per_cycle_{s}"] = f["cpu_s_per_cycle"]
        out[f"cpu_s_crossing_{s}"] = f["cpu_s_crossing"]
        out[f"cpu_s_hour_mean_{s}"] = f["cpu_s_hour"]
        out[f"cpu_fraction_{s}"] = f["cpu_s_hour"] / CYCLE_S
        out[f"db_cpu_s_per_cycle_{s}"] = f["db_cpu_s_per_cycle"]
        out[f"db_cpu_s_crossing_{s}"] = f["db_cpu_s_crossing"]
        out[f"db_cpu_s_hour_mean_{s}"] = f["db_cpu_s_hour"]
        out[f"peak_rss_mb_{s}"] = f["peak_rss_mb"]
        out[f"peak_rss_steady_mb_{s}"] = f["peak_rss_steady_mb"]
        out[f"peak_rss_crossing_mb_{s}"] = f["peak_rss_crossing_mb"]
        out[f"written_mb_per_cycle_{s}"] = f["written_bytes_hour"] / 1e6
        out[f"cpu_fraction_with_refresh_{s}"] = (f["cpu_s_hour"] + f["refresh_daemon_s"] / REFRESHES) / CYCLE_S
        out[f"simulator_s_per_cycle_{s}"] = f["simulator_s_per_cycle"]
        out[f"rows_per_cycle_{s}"] = f["rows_per_cycle"]
        out[f"wal_mb_per_cycle_{s}"] = f["wal_bytes_hour"] / 1e6
        out[f"refresh_cpu_s_{s}"] = f["refresh_daemon_s"]
        out[f"refresh_db_cpu_s_{s}"] = f["refresh_db_s"]
        out[f"live_vms_{s}"] = f["live_vms"]
        for table in ("metric_samples", "metric_hourly"):
            rows = f[f"{table}_rows"]
            out[f"{table}_rows_{s}"] = rows
            out[f"{table}_bytes_per_row_{s}"] = f[f"{table}_bytes"] / rows if rows else 0.0
        out[f"hourly_rows_per_hour_{s}"] = f["metric_hourly_rows"] / (f["hours"] + 1)  # the first capture closes one
    return out


def print_table(results: dict[int, dict[str, float]], hours: int, wall: float) -> None:
    """The table of medians, per size."""
    steady = (PER_HOUR - 1) * hours - 1
    table = Table(
        title=f"scale: the daemon's 5-minute capture cycle, medians of {steady} steady cycles and {hours} crossing "
        f"an hour ({wall:.0f} s)"
    )
    table.add_column("figure")
    sizes = sorted(results)
    for vms in sizes:
        table.add_column(f"{vms:,} VMs", justify="right")
    table.add_column("per added VM", justify="right")

    def row(label: str, key: str, fmt: Callable[[float], str], per_vm: str = "") -> None:
        table.add_row(label, *(fmt(results[v][key]) for v in sizes), per_vm)

    def slope(key: str, scale: float, unit: str) -> str:
        if len(sizes) < 2:
            return ""
        lo, hi = sizes[0], sizes[-1]
        return f"{(results[hi][key] - results[lo][key]) / (hi - lo) * scale:.3g} {unit}"

    seconds = lambda x: f"{x:.3f}"  # noqa: E731
    row("live VMs (the simulator deletes some)", "live_vms", lambda x: f"{x:,.0f}")
    row("rows per cycle (5 new minutes + 10 re-read)", "rows_per_cycle", lambda x: f"{x:,.0f}")
    row("daemon CPU s, steady cycle", "cpu_s_per_cycle", seconds, slope("cpu_s_per_cycle", 1e6, "us"))
    row("daemon CPU s, hour-crossing cycle", "cpu_s_crossing", seconds, slope("cpu_s_crossing", 1e6, "us"))
    row("daemon CPU s, mean over an hour", "cpu_s_hour", seconds, slope("cpu_s_hour", 1e6, "us"))
    row("  as a share of one core", "cpu_s_hour", lambda x: f"{x / CYCLE_S:.2%}")
    row("PostgreSQL CPU s, steady cycle", "db_cpu_s_per_cycle", seconds, slope("db_cpu_s_per_cycle", 1e6, "us"))
    row("PostgreSQL CPU s, hour-crossing cycle", "db_cpu_s_crossing", seconds, slope("db_cpu_s_crossing", 1e6, "us"))
    row("PostgreSQL CPU s, mean over an hour", "db_cpu_s_hour", seconds, slope("db_cpu_s_hour", 1e6, "us"))
    row("WAL MB per cycle (hour mean)", "wal_bytes_hour", lambda x: f"{x / 1e6:.1f}", slope("wal_bytes_hour", 1, "B"))
    row(
        "PostgreSQL write() MB per cycle (hour mean)",
        "written_bytes_hour",
        lambda x: f"{x / 1e6:.1f}",
        slope("written_bytes_hour", 1, "B"),
    )
    row("left out: simulator CPU s per cycle", "simulator_s_per_cycle", seconds)
    row(
        "inventory refresh (every 15 min): daemon CPU s",
        "refresh_daemon_s",
        seconds,
        slope("refresh_daemon_s", 1e6, "us"),
    )
    row("inventory refresh: PostgreSQL CPU s", "refresh_db_s", seconds, slope("refresh_db_s", 1e6, "us"))
    table.add_row(
        "daemon share of one core, capture + refresh",
        *(f"{(results[v]['cpu_s_hour'] + results[v]['refresh_daemon_s'] / REFRESHES) / CYCLE_S:.2%}" for v in sizes),
        "",
    )
    row(
        "peak RSS MiB, steady cycles",
        "peak_rss_steady_mb",
        lambda x: f"{x:,.0f}",
        slope("peak_rss_steady_mb", 1024, "KiB"),
    )
    row(
        "peak RSS MiB, hour-crossing cycle",
        "peak_rss_crossing_mb",
        lambda x: f"{x:,.0f}",
        slope("peak_rss_crossing_mb", 1024, "KiB"),
    )
    row("peak RSS MiB, whole process", "peak_rss_mb", lambda x: f"{x:,.0f}", slope("peak_rss_mb", 1024, "KiB"))
    row("PostgreSQL memory MiB (PSS of its processes)", "server_pss_mb", lambda x: f"{x:,.0f}")
    for name in ("metric_samples", "metric_hourly"):
        table.add_row(
            f"{name}: bytes per row (indexes included)",
            *(f"{results[v][f'{name}_bytes'] / max(results[v][f'{name}_rows'], 1):.0f}" for v in sizes),
            "",
        )
    console.print(table)


def main() -> None:
    """Parse the options; run each size in its own process (or, with ``--child``, this one); print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000 VMs only")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--runs", type=int, default=1, help="hours of 5-minute cycles measured (each 12)")
    parser.add_argument("--sizes", type=int, nargs="+", help="VM counts (default 1,000 10,000 100,000)")
    parser.add_argument("--profile", type=int, metavar="N", help="profile N VMs' steady cycles instead")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    runs = args.runs
    if args.child is not None:
        print(json.dumps(run_size(args.child, runs, profile=False)))
        return
    if args.profile is not None:
        run_size(args.profile, runs, profile=True)
        return
    started = time.perf_counter()
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    results = {vms: child(vms, runs) for vms in sizes}
    print_table(results, runs, time.perf_counter() - started)
    if args.json:
        print(json.dumps(summary(results)))


if __name__ == "__main__":
    main()
