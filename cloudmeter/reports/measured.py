"""The ``host_measured`` view of capacity utilization: what hosts measure of themselves beside the sum of their VMs.

vSphere measures a host as a whole (hypervisor overhead and load outside VMs included); the vmware collector
stores those samples as the host's own raw rows in ``metric_samples``. The rollups never use them (a host's hourly
rows are the sum of its VMs: the data contract), so this view reads them raw, with one query that averages each
host's samples per UTC hour. A cluster's measured figure in an hour is the sum over the hosts placed under it for
most of that hour (``reports.placement`` majority), known only when every one of them has samples that hour (a
partial sum would be an understatement, not a measurement).

Per host or cluster over the window: ``measured_*`` (avg, p95 and peak of the hourly averages: the peak is the
highest hourly average, not a sample), ``vms_*`` (the VMs' sum: the same figures as the ``vms`` view, its peak
sample-level), ``overhead_*`` = measured - VMs' sum (avg and p95 of the hourly differences, in hours where both are
known), ``measured_hours`` (hours with a measured figure) and ``measured_coverage_pct`` (those over the hours in the
window while the host, or a host of the cluster, existed: at most 100). Missing is NULL, never 0: a host that does
not measure itself (OpenStack, AWS, simulator) has NULL measured and overhead columns.

Raw samples are kept ``retention.raw_days``: the view covers at most that, and ``notes`` says so.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
import polars as pl
import psycopg

from cloudmeter.errors import ConfigError
from cloudmeter.model import Window
from cloudmeter.reports import capacity, placement
from cloudmeter.reports.inputs import GIB, ancestor, check_hour_window, resources

LEVELS: Final = ("host", "cluster")
HOURS_RAW: Final = """
    SELECT resource_id,
           (extract(epoch FROM date_bin('1 hour', ts, '2000-01-01T00:00:00Z'::timestamptz)) * 1000000)::int8,
           avg(cpu_used_cores)::float8, avg(mem_used_bytes)::float8, count(*)::int4
    FROM metric_samples WHERE resource_id = ANY(%s) AND ts >= %s AND ts < %s
    GROUP BY 1, 2"""
_HOURS_SCHEMA: Final = {
    "host_id": pl.Int32, "ts_us": pl.Int64, "cpu": pl.Float64, "mem": pl.Float64, "samples": pl.Int32,
}  # fmt: skip


def check_level(level: str) -> capacity.Level:
    """``level`` if the view has it (host or cluster), else a ConfigError naming the fix."""
    if level not in LEVELS:
        raise ConfigError(
            f"--view host_measured is per host or cluster, not {level!r}; give --level host or --level cluster"
        )
    return capacity.check_level(level)


def _host_hours(conn: psycopg.Connection, window: Window, level: capacity.Level, info: pl.DataFrame) -> pl.DataFrame:
    """One row per (host, hour) the host was placed in: its group at ``level`` (the placement covering most of the
    hour), and its measured hourly averages (null without samples that hour)."""
    hosts = placement.read_periods(conn, window, ("host",))
    groups = np.sort(info.filter(pl.col("kind") == level)["id"].to_numpy())
    host_group = hosts["resource_id"] if level == "host" else ancestor(info, hosts["parent_id"], level)
    grid = placement.group_grid(hosts, window, host_group, groups)
    members = np.unique(hosts["resource_id"].to_numpy())
    member, hour = np.nonzero(grid >= 0)
    start_us = placement.epoch_us(window.start)
    cells = pl.DataFrame(
        {
            "host_id": pl.Series(members[member], dtype=pl.Int32),
            "ts_us": pl.Series(start_us + hour.astype(np.int64) * placement.HOUR_US, dtype=pl.Int64),
            "group_id": pl.Series(groups[grid[member, hour]], dtype=pl.Int32),
        }
    )
    rows = conn.execute(HOURS_RAW, (members.tolist(), window.start, window.end)).fetchall()
    measured = pl.DataFrame(rows, schema=_HOURS_SCHEMA, orient="row")
    return cells.join(measured, on=["host_id", "ts_us"], how="left")


def _complete_sum(column: str) -> pl.Expr:
    """The hosts' sum of ``column`` in a group's hour, null unless every host has it."""
    return pl.when(pl.col(column).is_not_null().all()).then(pl.col(column).sum()).alias(column)


def host_measured(
    conn: psycopg.Connection, window: Window, level: str = "host", info: pl.DataFrame | None = None
) -> pl.DataFrame:
    """One row per host or cluster: measured, VMs' sum and overhead CPU cores and memory GB over ``window``, with
    ``measured_hours``, ``measured_coverage_pct``, ``data_from``/``data_to`` (the measured hours' bounds)."""
    chosen = check_level(level)
    check_hour_window(window)
    info = resources(conn) if info is None else info
    hours = int((window.end - window.start).total_seconds() // 3600)
    cells = (
        _host_hours(conn, window, chosen, info)
        .group_by("group_id", "ts_us")
        .agg(_complete_sum("cpu"), (_complete_sum("mem") / GIB).alias("mem_gb"))
        .with_columns(pl.col("ts_us").cast(pl.Datetime("us", "UTC")).alias("ts"))
    )
    series = capacity.hourly_series(conn, window, chosen, (), info)
    vms = series.select(
        "group_id", "ts", pl.col("cpu_used_cores_avg").alias("vms_cpu"), pl.col("mem_gb").alias("vms_mem_gb")
    )
    both = cells.join(vms, on=["group_id", "ts"], how="left").with_columns(
        (pl.col("cpu") - pl.col("vms_cpu")).alias("overhead_cpu"),
        (pl.col("mem_gb") - pl.col("vms_mem_gb")).alias("overhead_mem_gb"),
        (pl.col("cpu").is_not_null() | pl.col("mem_gb").is_not_null()).alias("measured"),
    )

    own = both.group_by("group_id").agg(
        pl.col("measured").sum().cast(pl.Int64).alias("measured_hours"),
        (100 * pl.col("measured").sum() / pl.len()).alias("measured_coverage_pct"),
        pl.col("ts").filter(pl.col("measured")).min().alias("data_from"),
        (pl.col("ts").filter(pl.col("measured")).max() + pl.duration(hours=1)).alias("data_to"),
        *capacity.window_stats("measured_cpu_cores", "cpu"),
        *capacity.window_stats("overhead_cpu_cores", "overhead_cpu", with_peak=False),
        *capacity.window_stats("measured_mem_gb", "mem_gb"),
        *capacity.window_stats("overhead_mem_gb", "overhead_mem_gb", with_peak=False),
    )
    summed = series.group_by("group_id").agg(  # as capacity.utilization computes them
        *capacity.window_stats("vms_cpu_cores", "cpu_used_cores_avg", "cpu_used_cores_max"),
        *capacity.window_stats("vms_mem_gb", "mem_gb", "mem_gb_max"),
    )
    names = info.filter(pl.col("kind") == chosen).select(
        pl.col("id").alias("group_id"), pl.col("name").alias(chosen), "manager"
    )
    order = [  # what a narrow table shows first: each average measured, of the VMs, and their difference
        chosen, "manager", "measured_coverage_pct",
        "measured_cpu_cores_avg", "vms_cpu_cores_avg", "overhead_cpu_cores_avg",
        "measured_mem_gb_avg", "vms_mem_gb_avg", "overhead_mem_gb_avg", "measured_hours",
        "measured_cpu_cores_p95", "vms_cpu_cores_p95", "overhead_cpu_cores_p95", "measured_cpu_cores_peak",
        "vms_cpu_cores_peak", "measured_mem_gb_p95", "vms_mem_gb_p95", "overhead_mem_gb_p95",
        "measured_mem_gb_peak", "vms_mem_gb_peak", "hours", "data_from", "data_to", "resource_id",
    ]  # fmt: skip
    return (
        names.join(own, on="group_id", how="left")
        .join(summed, on="group_id", how="left")
        .with_columns(pl.lit(hours).alias("hours"), pl.col("measured_hours").fill_null(0))
        .rename({"group_id": "resource_id"})
        .select(order)
        .sort(chosen)
    )


def notes(frame: pl.DataFrame, window: Window, level: str, raw_days: int, now: datetime | None = None) -> list[str]:
    """What a reader of the view must know: hosts that measure nothing, and the raw retention it is bound by."""
    out = []
    unmeasured = frame.filter(pl.col("measured_hours") == 0).height
    if unmeasured:
        out.append(
            f"{unmeasured} of {frame.height} {level}s have no measured samples (-): only vmware managers measure "
            "hosts; others (OpenStack, AWS, simulator) have the sum of their VMs only"
        )
    kept_from = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0) - timedelta(days=raw_days)
    retention = f"measured figures are read from raw samples, kept retention.raw_days ({raw_days} days)"
    if window.start < kept_from:
        before = f"the window starts before {kept_from:%Y-%m-%d %H:%M} UTC, so its earlier hours have none"
        out.append(f"{retention}: {before}")
    else:
        out.append(f"{retention}: this view covers at most the last {raw_days} days")
    return out
