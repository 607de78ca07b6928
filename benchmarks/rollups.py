"""Rollups: the numba kernels against a bandwidth probe, polars and DuckDB; capture against COPY and SQL.

    python benchmarks/rollups.py [--quick] [--json] [--runs N] [--only kernel|pipeline|warm ...]

Every figure is the median of ``--runs`` runs (after a warm-up that compiles the JIT and warms the servers).

1. kernel: one UTC day of 20-second samples (180 an hour) of 4 metrics for 10,000 VMs (43.2M rows, 2% NaN),
   the same arrays for everyone. A numba streaming sum over the bytes the kernels read (the bandwidth
   probe); ``kernels.segments`` + ``kernels.segment_stats`` per (VM, hour); the roofline of that exact work
   (``kernels.segments`` + the loop of ``segment_stats`` without its NaN handling); polars and DuckDB computing
   the same mean/min/max/count per (VM, hour); ``kernels.segment_percentile`` against polars' linear quantile.
2. pipeline: 10,000 simulated VMs, one day of 1-minute samples captured in 288 windows of 5 minutes with
   in-stream rollups (hourly, daily in UTC and America/New_York) on the embedded PostgreSQL; in the same
   run a bare binary COPY of the same rows in the same batches, then the hourly and daily rollups in SQL.
   The pipeline time is split by timing its source (the simulator), its rollup engine (fed from memory; in the
   pipeline it runs in a thread beside the writes, as a daemon's does) and its binary encoding alone; the rest is
   PostgreSQL (COPY, upserts, bookkeeping) less what ran beside it.
3. rebuild: after each pipeline run, ``jobs.rollup`` of the day from the stored raw rows.
4. warm: a fresh interpreter imports ``cloudmeter.rollups.kernels`` and calls each kernel once on tiny
   arrays (the first time may compile and fill numba's cache; the runs after it are reported).

``--quick`` shrinks sizes about 20x (500 VMs in 1, 1,000 VMs in 2) for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import duckdb
import numba
import numpy as np
import numpy.typing as npt
import polars as pl
import psycopg
from psycopg import sql
from rich.console import Console
from rich.table import Table

from cloudmeter.collectors.simulator import SimulatorCollector, SimulatorConfig
from cloudmeter.model import METRICS, ResourceRef, SampleBatch, Window
from cloudmeter.rollups import kernels
from cloudmeter.rollups.engine import Roller, leaf_series
from cloudmeter.rollups.stream import OpenHours, merge
from cloudmeter.rollups.topology import Topology
from cloudmeter.rollups.zones import HOUR_S
from cloudmeter.scheduler import jobs
from cloudmeter.scheduler.pipeline import RollupCounts, StreamRollup
from cloudmeter.storage import managers, pgbinary, readers, writer
from cloudmeter.storage.database import Database
from cloudmeter.storage.schema import TIME_SERIES_TABLES

Int32s = npt.NDArray[np.int32]
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bytes = npt.NDArray[np.uint8]
Timings = dict[str, float]
_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")

ROOT = Path(__file__).resolve().parents[1]
DAY = datetime(2026, 6, 16, tzinfo=UTC)
DAY_S = 86_400
Q = 0.95
TIME_ZONES = ("UTC", "America/New_York")
#: Kernel section: samples an hour (20-second grid) and metrics.
KERNEL_PER_HOUR = 180
KERNEL_METRICS = 4
NAN_SHARE = 0.02
#: Pipeline section: capture step (a daemon's interval) and sample interval.
STEP_S = 300
INTERVAL_S = 60
SQL_ROLLUPS = ("sql_hourly", "sql_daily_utc", "sql_daily_new_york")

console = Console(width=120)
progress = Console(stderr=True, log_path=False)


def _parallel_jit(fn: _F) -> _F:
    """``numba.njit(parallel=True)`` with the function's own signature kept for type checkers."""
    return cast(_F, numba.njit(parallel=True)(fn))


def measured(action: Callable[[], _T]) -> tuple[float, _T]:
    """Wall time of one call of ``action``, and what it returned."""
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def timed(action: Callable[[], object]) -> float:
    """Wall time of one call of ``action``."""
    return measured(action)[0]


def medians(runs: list[Timings]) -> Timings:
    """Per key, the median over runs."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def repeat(label: str, runs: int, one_run: Callable[[], Timings]) -> Timings:
    """Medians of ``runs`` calls of ``one_run``, with progress on stderr."""
    results = []
    for k in range(runs):
        results.append(one_run())
        progress.log(f"{label}: run {k + 1}/{runs}: " + ", ".join(f"{n} {s:.3f}s" for n, s in results[-1].items()))
    return medians(results)


def mrows(rows: int, seconds: float) -> str:
    """A rate in millions of rows a second."""
    return f"{rows / seconds / 1e6:.2f}M rows/s"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Report:
    """What gets printed: median times by section, ratios against their targets, and the JSON figures.

    Figures are keyed ``<section>.<key>``; the section is the one last ``start``-ed.
    """

    key: str = ""
    title: str = ""
    lines: list[tuple[str, str, float, str]] = field(default_factory=list)
    ratios: list[tuple[str, float, str, str]] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def start(self, key: str, title: str) -> None:
        """Begin a section."""
        self.key, self.title = key, title

    def time(self, key: str, label: str, seconds: float, rate: str = "") -> None:
        """A median time, and what it means as a rate."""
        self.lines.append((self.title, label, seconds, rate))
        self.figure(f"{key}_s", seconds)

    def ratio(self, key: str, label: str, value: float, target: float | None = None) -> None:
        """A ratio where higher is better, and the issue's target for it (its minimum)."""
        met = "" if target is None else ("yes" if value >= target else "NO")
        self.ratios.append((label, value, "" if target is None else f">= {target:g}", met))
        self.figure(key, value)

    def limit(self, key: str, label: str, seconds: float, target: float) -> None:
        """A time with a target maximum."""
        self.ratios.append((label, seconds, f"< {target:g} s", "yes" if seconds < target else "NO"))
        self.figure(key, seconds)

    def figure(self, key: str, value: float) -> None:
        """A figure of the JSON line."""
        self.figures[f"{self.key}.{key}" if self.key else key] = value

    def peak_rss(self) -> None:
        """Note the process's peak RSS so far (it only grows: later sections include earlier ones)."""
        self.figure("peak_rss_mb", peak_rss_mb())
        self.notes.append(f"peak RSS after {self.title}: {peak_rss_mb():,.0f} MiB")

    def print(self, title: str) -> None:
        """Both tables."""
        times = Table(title=title)
        for column in ("section", "measure", "median s", "rate"):
            times.add_column(column, justify="right" if column in ("median s", "rate") else "left")
        for section, label, seconds, rate in self.lines:
            times.add_row(section, label, f"{seconds:.3f}", rate)
        console.print(times)
        ratios = Table(title="ratios and targets")
        for column in ("figure", "value", "target", "met"):
            ratios.add_column(column, justify="left" if column == "figure" else "right")
        for label, value, target, met in self.ratios:
            ratios.add_row(label, f"{value:.2f}", target, met)
        console.print(ratios)
        for note in self.notes:
            console.print(note, highlight=False)


# 1. kernel --------------------------------------------------------------------------------------------------


@_parallel_jit
def _stream_sum(words: Ints, ts: Ints, rid: Int32s, parts: int) -> int:
    """Every element of the three arrays summed as integers in ``parts`` parallel chunks.

    The float64 values come in as their int64 words: integer adds vectorise, so this runs at memory speed
    (an ordered float sum would be bound by the add latency instead).
    """
    total = np.int64(0)
    for p in numba.prange(parts):
        acc = np.int64(0)
        for i in range(words.shape[0] * p // parts, words.shape[0] * (p + 1) // parts):
            acc += words[i]
        for i in range(ts.shape[0] * p // parts, ts.shape[0] * (p + 1) // parts):
            acc += ts[i] + rid[i]
        total += acc
    return int(total)


@_parallel_jit
def _roofline_stats(
    values: Floats, ts: Ints, starts: Ints, total: Floats, count: Int32s, low: Floats, high: Floats, high_ts: Ints
) -> None:
    """``kernels.segment_stats``' loop for four metrics without its NaN handling: every value adds and counts.

    The same reads, registers and min/max/argmax as the kernel's, so its time is what the kernel would take
    on data without NaN: the roofline of this work on this machine (NaN input gives NaN sums here).
    """
    for s in numba.prange(starts.shape[0] - 1):
        lo, hi = numba.uint64(starts[s]), numba.uint64(starts[s + 1])
        s0 = s1 = s2 = s3 = 0.0
        n0 = n1 = n2 = n3 = np.inf
        x0 = x1 = x2 = x3 = -np.inf
        i0 = i1 = i2 = i3 = lo
        for i in range(lo, hi):
            v0, v1, v2, v3 = values[i, 0], values[i, 1], values[i, 2], values[i, 3]
            s0 += v0
            s1 += v1
            s2 += v2
            s3 += v3
            n0 = v0 if v0 < n0 else n0
            n1 = v1 if v1 < n1 else n1
            n2 = v2 if v2 < n2 else n2
            n3 = v3 if v3 < n3 else n3
            i0 = i if v0 > x0 else i0
            i1 = i if v1 > x1 else i1
            i2 = i if v2 > x2 else i2
            i3 = i if v3 > x3 else i3
            x0 = v0 if v0 > x0 else x0
            x1 = v1 if v1 > x1 else x1
            x2 = v2 if v2 > x2 else x2
            x3 = v3 if v3 > x3 else x3
        total[s, 0], total[s, 1], total[s, 2], total[s, 3] = s0, s1, s2, s3
        count[s, 0] = count[s, 1] = count[s, 2] = count[s, 3] = hi - lo
        low[s, 0], low[s, 1], low[s, 2], low[s, 3] = n0, n1, n2, n3
        high[s, 0], high[s, 1], high[s, 2], high[s, 3] = x0, x1, x2, x3
        high_ts[s, 0], high_ts[s, 1], high_ts[s, 2], high_ts[s, 3] = ts[i0], ts[i1], ts[i2], ts[i3]


@dataclass(frozen=True)
class KernelData:
    """Rows sorted by (rid, ts) on a 20-second grid over ``DAY``, and the UTC hour edges."""

    rid: Int32s
    ts: Ints
    values: Floats
    edges: Ints

    @property
    def nbytes(self) -> int:
        """The bytes the kernels read: values, ts and rid."""
        return self.values.nbytes + self.ts.nbytes + self.rid.nbytes


def kernel_data(vms: int) -> KernelData:
    """``vms`` VMs times 24 h of ``KERNEL_PER_HOUR`` samples of ``KERNEL_METRICS`` metrics, ``NAN_SHARE`` NaN."""
    per_vm = KERNEL_PER_HOUR * 24
    start = int(DAY.timestamp())
    rid = np.repeat(np.arange(vms, dtype=np.int32), per_vm)
    ts = np.tile(start + (3600 // KERNEL_PER_HOUR) * np.arange(per_vm, dtype=np.int64), vms)
    rng = np.random.default_rng(0)
    values = rng.random((len(rid), KERNEL_METRICS)) * 100
    values[rng.random(values.shape, dtype=np.float32) < NAN_SHARE] = np.nan
    return KernelData(rid, ts, values, np.arange(start, start + DAY_S + 1, HOUR_S, dtype=np.int64))


class KernelBench:
    """The contestants of section 1 over one ``KernelData``: our outputs preallocated, frames built once."""

    def __init__(self, data: KernelData) -> None:
        self.data = data
        self.starts, buckets = kernels.segments(data.rid, data.ts, data.edges)
        shape = (len(buckets), KERNEL_METRICS)
        self.sum, self.min, self.max, self.p95 = (np.zeros(shape) for _ in range(4))
        self.count, self.max_ts = np.zeros(shape, np.int32), np.zeros(shape, np.int64)
        self.roofline_out = (np.zeros(shape), np.zeros(shape, np.int32), np.zeros(shape), np.zeros(shape))
        self.roofline_ts = np.zeros(shape, np.int64)
        self.threads = numba.get_num_threads()
        names = [f"m{j}" for j in range(KERNEL_METRICS)]
        self.frame = pl.DataFrame(
            {
                "rid": data.rid,
                "hour": data.ts // HOUR_S * HOUR_S,
                **{name: pl.Series(data.values[:, j]).fill_nan(None) for j, name in enumerate(names)},
            }
        )
        self.stats_exprs = [
            expr
            for name in names
            for expr in (
                pl.col(name).mean().alias(f"{name}_avg"),
                pl.col(name).min().alias(f"{name}_min"),
                pl.col(name).max().alias(f"{name}_max"),
                pl.col(name).count().alias(f"{name}_count"),
            )
        ]
        self.p95_exprs = [pl.col(name).quantile(Q, "linear").alias(f"{name}_p95") for name in names]
        self.duck = duckdb.connect()
        self.duck.execute("SET threads = 2")
        self.duck.register("samples", self.frame.to_arrow())
        columns = ", ".join(f"avg({n}), min({n}), max({n}), count({n})" for n in names)
        self.duck_query = f"SELECT rid, hour, {columns} FROM samples GROUP BY rid, hour"
        self.polars_result = pl.DataFrame()

    def probe(self) -> None:
        """The bandwidth probe over the same bytes, on as many threads as the kernels."""
        words = self.data.values.reshape(-1).view(np.int64)
        _stream_sum(words, self.data.ts, self.data.rid, self.threads)

    def segments(self) -> None:
        """Ours, first pass: segment boundaries."""
        self.starts, _ = kernels.segments(self.data.rid, self.data.ts, self.data.edges)

    def stats(self) -> None:
        """Ours, second pass: sum, count, min, max and time of the max per segment and metric."""
        d = self.data
        kernels.segment_stats(d.values, d.ts, self.starts, self.sum, self.count, self.min, self.max, self.max_ts)

    def both(self) -> None:
        """Ours, both passes."""
        self.segments()
        self.stats()

    def roofline(self) -> None:
        """Both passes, the second without NaN handling: the roofline of ``both``."""
        d = self.data
        starts, _ = kernels.segments(d.rid, d.ts, d.edges)
        _roofline_stats(d.values, d.ts, starts, *self.roofline_out, self.roofline_ts)

    def percentile(self) -> None:
        """Ours: the exact linear p95 per segment and metric."""
        kernels.segment_percentile(self.data.values, self.starts, self.count, Q, self.p95)

    def polars_stats(self) -> None:
        """polars: mean, min, max, count per (rid, hour)."""
        self.polars_result = self.frame.group_by("rid", "hour").agg(self.stats_exprs)

    def polars_p95(self) -> None:
        """polars: the linear p95 per (rid, hour)."""
        self.frame.group_by("rid", "hour").agg(self.p95_exprs)

    def duckdb_stats(self) -> None:
        """DuckDB: mean, min, max, count per (rid, hour), fetched as an Arrow table."""
        self.duck.sql(self.duck_query).to_arrow_table()

    def run(self) -> Timings:
        """One timing of everything, in a fixed order."""
        return {
            "probe": timed(self.probe),
            "segments": timed(self.segments),
            "stats": timed(self.stats),
            "ours": timed(self.both),
            "roofline": timed(self.roofline),
            "polars": timed(self.polars_stats),
            "duckdb": timed(self.duckdb_stats),
            "ours_p95": timed(self.percentile),
            "polars_p95": timed(self.polars_p95),
        }

    def check(self, samples: int = 25) -> None:
        """Ours against np.percentile (exact) on random segments, and against polars' stats (every row)."""
        self.both()
        self.percentile()
        rng = np.random.default_rng(1)
        for s in rng.integers(0, len(self.starts) - 1, samples):
            rows = self.data.values[self.starts[s] : self.starts[s + 1]]
            for j in range(KERNEL_METRICS):
                column = rows[:, j][~np.isnan(rows[:, j])]
                want = np.percentile(column, 100 * Q) if len(column) else np.nan
                assert np.array_equal(self.p95[s, j], want, equal_nan=True), (s, j, self.p95[s, j], want)
        self.polars_stats()
        theirs = self.polars_result.sort("rid", "hour")
        assert theirs.height == len(self.count), (theirs.height, len(self.count))
        for j in range(KERNEL_METRICS):
            assert np.array_equal(theirs[f"m{j}_count"].to_numpy(), self.count[:, j])
            assert np.array_equal(theirs[f"m{j}_min"].to_numpy(), self.min[:, j], equal_nan=True)
            assert np.array_equal(theirs[f"m{j}_max"].to_numpy(), self.max[:, j], equal_nan=True)
            mean = np.where(self.count[:, j] > 0, self.sum[:, j] / np.maximum(self.count[:, j], 1), np.nan)
            np.testing.assert_allclose(theirs[f"m{j}_avg"].to_numpy(), mean, rtol=1e-12)


def kernel_section(report: Report, vms: int, runs: int) -> None:
    """Section 1."""
    KernelBench(kernel_data(20)).run()  # compile and warm up
    data = kernel_data(vms)
    bench = KernelBench(data)
    bench.check()
    m = repeat("kernel", runs, bench.run)
    rows, gb = len(data.ts), data.nbytes / 1e9
    report.start("kernel", f"kernel, {rows / 1e6:.1f}M rows")
    report.time("probe", "probe: streaming sum of values, ts, rid", m["probe"], f"{gb / m['probe']:.1f} GB/s")
    report.time("segments", "ours: segments", m["segments"], mrows(rows, m["segments"]))
    report.time("stats", "ours: segment_stats", m["stats"], mrows(rows, m["stats"]))
    report.time("ours", "ours: segments + segment_stats", m["ours"], f"{gb / m['ours']:.1f} GB/s effective")
    report.time(
        "roofline", "roofline: the same without NaN handling", m["roofline"], f"{gb / m['roofline']:.1f} GB/s effective"
    )
    report.time("polars", "polars group_by mean/min/max/count", m["polars"], mrows(rows, m["polars"]))
    report.time("duckdb", "DuckDB GROUP BY (Arrow scan)", m["duckdb"], mrows(rows, m["duckdb"]))
    report.time("ours_p95", "ours: segment_percentile 0.95", m["ours_p95"], mrows(rows, m["ours_p95"]))
    report.time("polars_p95", "polars quantile(0.95, linear)", m["polars_p95"], mrows(rows, m["polars_p95"]))
    report.figure("rows", rows)
    report.figure("threads", bench.threads)
    report.figure("probe_gb_per_s", gb / m["probe"])
    report.figure("ours_gb_per_s", gb / m["ours"])
    report.ratio("roofline_vs_probe", "kernel: probe time / roofline", m["probe"] / m["roofline"])
    report.peak_rss()
    report.start("", report.title)  # the figures: keys without a section
    report.ratio("kernel_vs_probe", "kernel: probe time / ours", m["probe"] / m["ours"], 0.8)
    report.ratio("kernel_vs_roofline", "kernel: roofline time / ours", m["roofline"] / m["ours"])
    report.ratio("kernel_vs_polars", "kernel: polars time / ours", m["polars"] / m["ours"], 20)
    report.ratio("kernel_vs_duckdb", "kernel: DuckDB time / ours", m["duckdb"] / m["ours"], 8)
    report.ratio("p95_vs_polars", "kernel: polars p95 time / ours p95", m["polars_p95"] / m["ours_p95"], 10)


# 2. pipeline and 3. rebuild ---------------------------------------------------------------------------------

Batch = tuple[Int32s, Ints, Floats]


def stored_ids(batch: SampleBatch, ids: dict[ResourceRef, int]) -> Int32s:
    """The stored resource id of every row of ``batch``."""
    lookup = np.array([ids[ref] for ref in batch.refs], dtype=np.int32)
    return lookup[batch.resource_idx]


def encode(batch: Batch) -> Bytes:
    """``batch`` as the binary COPY stream of ``metric_samples`` (what the writer sends)."""
    columns = writer.sample_columns(*batch)
    return pgbinary.encode([(c.kind, c.values, c.valid) for c in columns])


def _concat(parts: list[Batch]) -> Batch:
    """One batch of several (a window's, should the simulator split it)."""
    rid, ts, values = zip(*parts, strict=True)
    return np.concatenate(rid), np.concatenate(ts), np.concatenate(values)


def _sql_rollup(table: str, bucket: sql.Composable, tz: str | None, expected: int) -> sql.Composed:
    """``INSERT INTO table ... SELECT bucket, resource_id, avg/min/max/p95 of every metric ... GROUP BY``."""
    stats = ("avg", "min", "max", "p95")
    targets = ["ts", *(["tz"] if tz else []), "resource_id", *(f"{m}_{s}" for m in METRICS for s in stats)]
    aggregates = [
        sql.SQL("avg({0}), min({0}), max({0}), percentile_cont({1}) WITHIN GROUP (ORDER BY {0})").format(
            sql.Identifier(m), sql.Literal(Q)
        )
        for m in METRICS
    ]
    return sql.SQL(
        "INSERT INTO {table} ({targets}, sample_count, expected_count) "
        "SELECT {bucket}, {tz}resource_id, {aggregates}, count(*), {expected} FROM metric_samples GROUP BY 1, {key}"
    ).format(
        table=sql.Identifier(table),
        targets=sql.SQL(", ").join(map(sql.Identifier, targets)),
        bucket=bucket,
        tz=sql.SQL("{}, ").format(sql.Literal(tz)) if tz else sql.SQL(""),
        aggregates=sql.SQL(", ").join(aggregates),
        expected=sql.Literal(expected),
        key=sql.SQL("3" if tz else "2"),
    )


def sql_rollups() -> dict[str, sql.Composed]:
    """The SQL baselines: the hourly rollup, and the daily rollup in each time zone, all from raw rows."""
    statements = {"sql_hourly": _sql_rollup("metric_hourly", sql.SQL("date_trunc('hour', ts)"), None, 60)}
    for name, tz in zip(SQL_ROLLUPS[1:], TIME_ZONES, strict=True):
        local = sql.SQL("date_trunc('day', ts AT TIME ZONE {0}) AT TIME ZONE {0}").format(sql.Literal(tz))
        statements[name] = _sql_rollup("metric_daily", local, tz, 1440)
    return statements


@dataclass
class Cloud:
    """A simulated manager with its inventory stored, the day's capture windows, and their rows in memory."""

    db: Database
    manager_id: int
    collector: SimulatorCollector
    windows: list[Window]
    batches: list[Batch]
    payloads: list[Bytes]
    topology: Topology

    @property
    def rows(self) -> int:
        """Raw rows of the day."""
        return sum(len(b[1]) for b in self.batches)


def make_cloud(db: Database, name: str, vms: int, hours: int = 24) -> Cloud:
    """Register manager ``name``: ``vms`` simulated VMs (on 100 hosts) over ``DAY``; refresh; pre-generate the
    rows of its first ``hours`` and encode them."""
    end = DAY + timedelta(days=1)
    config = SimulatorConfig(
        kind="simulator", vms=vms, start=DAY, horizon_days=1, seed=11, clusters=4, hosts_per_cluster=25
    )
    collector = SimulatorCollector(name, config, clock=lambda: end)
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, name, "simulator", config.public_fields())
    jobs.refresh_inventory(db, manager_id, collector)
    ids = jobs.resource_ids(db, manager_id)
    windows = Window(DAY, DAY + timedelta(hours=hours)).split(STEP_S)
    batches = [
        _concat([(stored_ids(b, ids), b.ts_s, b.values) for b in collector.capture(window)]) for window in windows
    ]
    partitions = db.native_partitions()
    with db.connection() as conn:
        topology = readers.read_topology(conn, manager_id)
        if partitions is not None:  # the bare COPY and the SQL rollups write into these
            for table in TIME_SERIES_TABLES:
                partitions.ensure(conn, table, DAY - timedelta(days=1), end)
    return Cloud(db, manager_id, collector, windows, batches, [encode(b) for b in batches], topology)


@contextmanager
def session(db: Database) -> Iterator[psycopg.Connection]:
    """A connection in autocommit mode (each statement its own transaction)."""
    with db.connection() as conn:
        conn.autocommit = True
        try:
            yield conn
        finally:
            conn.autocommit = False


def reset(cloud: Cloud, *, raw: bool = True) -> None:
    """Empty the rollup tables (and with ``raw`` the samples, forgetting the manager's progress); checkpoint.

    The checkpoint keeps the writes of one step from being flushed during the next.
    """
    with session(cloud.db) as conn:
        conn.execute("TRUNCATE metric_hourly, metric_daily, metric_hourly_packs, rollup_dirty")
        if raw:
            conn.execute("TRUNCATE metric_samples")
            conn.execute(
                "UPDATE managers SET captured_until = NULL, captured = '{}', rolled_until = NULL, "
                "sample_interval_s = NULL "
                "WHERE id = %s",
                (cloud.manager_id,),
            )
        conn.execute("CHECKPOINT")


def capture_day(cloud: Cloud) -> tuple[int, RollupCounts]:
    """The pipeline: every window captured as a daemon would, one in-stream rollup across them.

    Returns the raw rows captured and the rollup rows written.
    """
    stream = StreamRollup(cloud.db, cloud.manager_id, TIME_ZONES, background=True)
    rows = sum(jobs.capture(cloud.db, cloud.manager_id, cloud.collector, w, stream=stream).rows for w in cloud.windows)
    stream.wait()
    return rows, stream.counts


def generate_day(cloud: Cloud) -> int:
    """The source alone: the simulator over the same windows."""
    return sum(len(batch) for window in cloud.windows for batch in cloud.collector.capture(window))


def roll_day(cloud: Cloud) -> int:
    """The rollup engine alone, fed the same batches from memory as the stream is; returns the rows it made."""
    roller = Roller(cloud.topology, INTERVAL_S, TIME_ZONES)
    open_hours = OpenHours(cloud.windows[0].start_s)
    made = 0
    for window, batch in zip(cloud.windows, cloud.batches, strict=True):
        open_hours.add(*batch)
        for hour in range(open_hours.start_s, window.end_s - window.end_s % HOUR_S, HOUR_S):
            rid, ts, values = merge(open_hours.pop(hour))
            leaves = [leaf_series(roller.topology, rid, ts, values)] if len(ts) else []
            made += sum(len(rows) for rows in (*roller.roll(hour, hour + HOUR_S, leaves), *roller.close(hour + HOUR_S)))
    return made


def encode_day(cloud: Cloud) -> None:
    """The binary encoding alone, each batch dropped once encoded (as the writer does once it is sent)."""
    for batch in cloud.batches:
        encode(batch)


def bare_copy(cloud: Cloud) -> None:
    """The pre-encoded rows, one binary COPY (and transaction) per capture window, into ``metric_samples``."""
    with cloud.db.connection() as conn:
        for payload in cloud.payloads:
            with conn.transaction(), conn.cursor().copy("COPY metric_samples FROM STDIN (FORMAT binary)") as copy:
                copy.write(payload.data)


def pipeline_run(cloud: Cloud) -> Timings:
    """One run of sections 2 and 3: pipeline, rebuild, source/engine/encode alone, bare COPY, SQL rollups."""
    day = Window(cloud.windows[0].start, cloud.windows[-1].end)
    reset(cloud)
    result: Timings = {}
    result["pipeline"], (captured, streamed) = measured(lambda: capture_day(cloud))
    reset(cloud, raw=False)
    result["rebuild"], rebuilt = measured(lambda: jobs.rollup(cloud.db, cloud.manager_id, day, TIME_ZONES))
    result["source"] = timed(lambda: generate_day(cloud))
    result["engine"], made = measured(lambda: roll_day(cloud))
    if captured != cloud.rows or rebuilt != streamed or made != streamed.hourly + sum(streamed.daily.values()):
        raise SystemExit(f"rows: {cloud.rows} raw, {captured} captured; streamed {streamed}, rebuilt {rebuilt}, {made}")
    result["encode"] = timed(lambda: encode_day(cloud))
    reset(cloud)
    result["copy"] = timed(lambda: bare_copy(cloud))
    with session(cloud.db) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("ANALYZE metric_samples")
        for name, statement in sql_rollups().items():
            result[name] = timed(partial(conn.execute, statement))
    return result


def server_settings(db: Database) -> str:
    """The server settings that matter here."""
    names = ("server_version", "shared_buffers", "work_mem", "max_wal_size", "synchronous_commit")
    with db.connection() as conn:
        row = conn.execute("SELECT " + ", ".join(f"current_setting('{n}')" for n in names)).fetchone()
    return ", ".join(f"{n} {v}" for n, v in zip(names, row or (), strict=True))


def pipeline_section(report: Report, db: Database, vms: int, runs: int) -> None:
    """Sections 2 and 3."""
    pipeline_run(make_cloud(db, "bench-warm", 20, hours=2))  # compile and warm up
    cloud = make_cloud(db, "bench", vms)
    m = repeat("pipeline", runs, lambda: pipeline_run(cloud))
    rows = cloud.rows
    report.start("pipeline", f"pipeline, {rows / 1e6:.2f}M rows")
    windows = len(cloud.windows)
    report.time(
        "pipeline", f"capture + in-stream rollups, {windows} windows", m["pipeline"], mrows(rows, m["pipeline"])
    )
    report.time("source", "  part: source (simulator alone)", m["source"], mrows(rows, m["source"]))
    report.time("engine", "  part: rollup engine (from memory)", m["engine"], mrows(rows, m["engine"]))
    report.time("encode", "  part: binary COPY encoding", m["encode"], mrows(rows, m["encode"]))
    rest = m["pipeline"] - m["source"] - m["engine"] - m["encode"]
    report.time("rest", "  rest: PostgreSQL, bookkeeping, less overlap", rest, mrows(rows, rest))
    report.time("copy", f"bare binary COPY, same {windows} batches", m["copy"], mrows(rows, m["copy"]))
    report.time("sql_hourly", "SQL hourly rollup (INSERT ... SELECT)", m["sql_hourly"], mrows(rows, m["sql_hourly"]))
    copy_sql = m["copy"] + m["sql_hourly"]
    report.time("copy_sql_hourly", "COPY + SQL hourly", copy_sql, mrows(rows, copy_sql))
    for key, tz in zip(SQL_ROLLUPS[1:], TIME_ZONES, strict=True):
        report.time(key, f"SQL daily rollup ({tz})", m[key], mrows(rows, m[key]))
    sql_all = sum(m[key] for key in SQL_ROLLUPS)
    report.notes.append(f"embedded PostgreSQL: {server_settings(db)}")
    report.figure("rows", rows)
    report.figure("rows_per_s", rows / m["pipeline"])
    report.figure("copy_rows_per_s", rows / m["copy"])
    top_ratio(report, "pipeline_vs_copy", "pipeline: bare COPY time / pipeline", m["copy"] / m["pipeline"], 0.70)
    top_ratio(
        report,
        "pipeline_vs_copy_sql_hourly",
        "pipeline: (COPY + SQL hourly) time / pipeline",
        copy_sql / m["pipeline"],
        1.0,
    )
    report.ratio(
        "copy_sql_all_vs_pipeline",
        "pipeline: (COPY + SQL hourly + daily) time / pipeline",
        (m["copy"] + sql_all) / m["pipeline"],
    )
    report.peak_rss()
    report.start("rebuild", "rebuild")
    report.time("rebuild", "jobs.rollup of the day from storage", m["rebuild"], mrows(rows, m["rebuild"]))
    report.time("sql_all", "SQL hourly + daily (both zones)", sql_all, mrows(rows, sql_all))
    report.figure("rows_per_s", rows / m["rebuild"])
    top_ratio(report, "rebuild_vs_sql", "rebuild: SQL hourly + daily time / rebuild", sql_all / m["rebuild"], 3.0)


def top_ratio(report: Report, key: str, label: str, value: float, target: float) -> None:
    """A ratio of the issue's whose JSON key names its section itself (``pipeline_vs_copy``, not prefixed)."""
    section, report.key = report.key, ""
    report.ratio(key, label, value, target)
    report.key = section


# 4. warm start ----------------------------------------------------------------------------------------------

#: Run by a fresh interpreter: import the kernels, call each once on tiny arrays; print both times.
WARM_START = """
import time
start = time.perf_counter()
import numpy as np
from cloudmeter.rollups import kernels
imported = time.perf_counter()
rid, ts = np.zeros(4, np.int32), np.arange(4, dtype=np.int64) * 60
values, edges = np.ones((4, 2)), np.array([0, 3600], np.int64)
def floats(): return np.zeros((1, 2))
def ints(): return np.zeros((1, 2), np.int64)
counts, target = np.zeros((1, 2), np.int32), np.zeros(1, np.int32)
kernels.is_sorted_unique(rid, ts)
starts, buckets = kernels.segments(rid, ts, edges)
kernels.segment_stats(values, ts, starts, floats(), counts, floats(), floats(), ints())
kernels.segment_percentile(values, starts, counts, 0.95, floats())
kernels.percentile_from_top(np.ones(2), kernels.top_needed(4, 0.95), 0.95)
partials = (floats(), counts, floats(), floats(), ints())
kernels.merge_partials(target, *partials, *partials)
heaps, fill = np.zeros((1, 2, 3)), np.zeros((1, 2), np.int32)
kernels.push_tops(values, starts, target, np.array([0, 1], np.int64), heaps, fill)
kernels.heap_percentiles(heaps, fill, counts, 0.95, floats())
kernels.slot_sums(
    values, ts, np.ones(4, np.int32), np.zeros(4, np.int32), np.ones((4, 2)), np.array([0, 1], np.int64), 0, 60,
    np.zeros((1, 60, 2)), np.zeros((1, 60, 2), np.int32), np.zeros((1, 60, 2)), np.zeros((1, 60), np.int32),
)
print(imported - start, time.perf_counter() - imported)
"""


def warm_start() -> Timings:
    """One fresh interpreter running ``WARM_START``: import time and first-call (JIT or cache load) time."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", WARM_START], cwd=ROOT, capture_output=True, text=True, check=True)
    total = time.perf_counter() - started
    imported, calls = map(float, done.stdout.split())
    return {"import": imported, "calls": calls, "process": total}


def warm_section(report: Report, runs: int) -> None:
    """Section 4."""
    first = warm_start()  # may compile and fill numba's cache
    m = repeat("warm", runs, warm_start)
    report.start("warm", "warm start")
    report.time("first_calls", "first process: first kernel calls (may compile)", first["calls"])
    report.time("import", "import cloudmeter.rollups.kernels", m["import"])
    report.time("calls", "first call of every kernel (cached JIT)", m["calls"])
    report.time("process", "whole interpreter", m["process"])
    report.start("", report.title)  # the figure: a key without a section
    report.limit("warm_jit_s", "warm: first call of every kernel (s)", m["calls"], 0.2)


# main -------------------------------------------------------------------------------------------------------

SECTIONS = ("kernel", "pipeline", "warm")


def main() -> None:
    """Parse the options, run the sections, print the tables (and the JSON line)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="about 20x smaller, for a smoke run")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS, help="run only these sections")
    args = parser.parse_args()
    report = Report()
    started = time.perf_counter()
    if "kernel" in args.only:
        kernel_section(report, 500 if args.quick else 10_000, args.runs)
    if "pipeline" in args.only:
        with tempfile.TemporaryDirectory() as tmp, Database(None, Path(tmp)) as db:
            db.migrate()
            pipeline_section(report, db, 1_000 if args.quick else 10_000, args.runs)
    if "warm" in args.only:
        warm_section(report, args.runs)
    report.start("", "everything")
    report.figure("runs", args.runs)
    report.peak_rss()
    wall = time.perf_counter() - started
    report.figure("wall_s", wall)
    threads = f"numba {numba.get_num_threads()} threads, polars {pl.thread_pool_size()}, DuckDB 2"
    report.print(f"rollups: medians of {args.runs} runs ({threads}; {wall:.0f} s in all)")
    if args.json:
        print(json.dumps(report.figures))


if __name__ == "__main__":
    main()
