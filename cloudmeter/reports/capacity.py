"""Utilization of hosts, clusters or providers over a window, with allocation against capacity.

Usage comes from the level's own hourly rollup rows (its children's samples summed, slot by slot).
Capacity is the sum of the ``vcpus`` / ``memory_bytes`` of the hosts placed under it, hour by hour
(``resource_history``), so a host whose VMs sent nothing still counts; allocation is the sum of its VMs'
``vcpus`` / ``memory_bytes``, time-weighted within each hour. Percentages are computed per hour as usage over
that hour's capacity. Window statistics: ``_avg`` and ``_p95`` (linear) of the hourly averages, ``_peak`` the
highest sample-level value (hourly ``_max``) for CPU and memory, and the highest hourly average for disk and
network (read + write, in + out). An hour without samples is missing, never 0: ``hours_with_data`` counts
the hours with any, ``data_from`` / ``data_to`` bound them, ``coverage_pct`` is the VMs' samples over those
their sampling interval promises while they existed (at most 100: ``inputs.sample_coverage``).
"""

from __future__ import annotations

from typing import Final, Literal

import polars as pl
import psycopg

from cloudmeter.errors import ConfigError
from cloudmeter.model import Window
from cloudmeter.reports.inputs import (
    GIB,
    ancestor,
    at_hourly_intervals,
    hourly,
    placements,
    resources,
    sample_coverage,
)

Level = Literal["host", "cluster", "provider"]
LEVELS: Final[tuple[str, ...]] = ("host", "cluster", "provider")


def check_level(level: str) -> Level:
    """``level`` if it is host, cluster or provider, else a ConfigError saying so."""
    if level not in LEVELS:
        raise ConfigError(f"--level {level!r} is not one of {', '.join(LEVELS)}")
    return level  # type: ignore[return-value]


def host_groups(info: pl.DataFrame, hosts: pl.DataFrame, level: Level) -> pl.DataFrame:
    """Host placements (ts, resource_id, parent_id, ...) with ``group_id``, the host's resource at ``level``."""
    if level == "host":
        return hosts.with_columns(pl.col("resource_id").alias("group_id"))
    return hosts.with_columns(ancestor(info, hosts["parent_id"], level).alias("group_id"))


def hourly_capacity(conn: psycopg.Connection, window: Window, level: Level) -> pl.DataFrame:
    """Per resource at ``level`` (``group_id``) and hour: capacity and allocation of vCPUs and memory bytes,
    how many VMs were placed under it (``vms``), their samples and the samples their sampling interval
    promises while they existed (``vm_samples``, ``vm_expected``)."""
    info = resources(conn)
    placed = placements(conn, window, ("vm", "host"))
    weight = pl.col("seconds") / 3600.0
    hosts = host_groups(info, placed.filter(pl.col("kind") == "host"), level)
    capacity = hosts.group_by("group_id", "ts").agg(
        _complete_sum("vcpus", weight).alias("capacity_vcpus"),
        _complete_sum("memory_bytes", weight).alias("capacity_memory_bytes"),
    )
    vms = placed.filter(pl.col("kind") == "vm")
    by_host = hosts.select("ts", pl.col("resource_id").alias("parent_id"), "group_id").unique(["ts", "parent_id"])
    direct = vms.with_columns(ancestor(info, vms["parent_id"], level).alias("direct_group"))
    vms = direct.join(by_host, on=["ts", "parent_id"], how="left").with_columns(
        pl.coalesce("group_id", "direct_group").alias("group_id")
    )
    samples = hourly(conn, window, vms["resource_id"].unique().to_list()).select("ts", "resource_id", "sample_count")
    interval = info.select(pl.col("id").alias("resource_id"), "interval_s")
    vms = sample_coverage(
        at_hourly_intervals(
            conn,
            window,
            vms.join(samples, on=["ts", "resource_id"], how="left").join(interval, on="resource_id", how="left"),
        )
    )
    allocation = (
        vms.filter(pl.col("group_id").is_not_null())
        .group_by("group_id", "ts")
        .agg(
            _known_sum("vcpus", weight).alias("allocated_vcpus"),
            _known_sum("memory_bytes", weight).alias("allocated_memory_bytes"),
            pl.col("resource_id").n_unique().alias("vms"),
            pl.col("samples").sum().alias("vm_samples"),
            pl.col("expected").sum().alias("vm_expected"),
        )
    )
    return capacity.join(allocation, on=["group_id", "ts"], how="full", coalesce=True)


def _complete_sum(column: str, weight: pl.Expr) -> pl.Expr:
    """The time-weighted sum of ``column``; NULL when any value is unknown or the sum is not positive (a sum of
    the known capacities would understate capacity, and overstate every percentage of it)."""
    total = (pl.col(column) * weight).sum()
    return pl.when(pl.col(column).is_null().any() | (total <= 0)).then(None).otherwise(total)


def _known_sum(column: str, weight: pl.Expr) -> pl.Expr:
    """The time-weighted sum of the known values of ``column``; NULL when none is known (polars would say 0)."""
    return pl.when(pl.col(column).is_not_null().any()).then((pl.col(column) * weight).sum())


def hourly_series(conn: psycopg.Connection, window: Window, level: Level) -> pl.DataFrame:
    """Per resource at ``level`` and hour: its rollup row joined with capacity and allocation, plus cpu_pct,
    mem_pct (of that hour's capacity), disk_bps, net_bps, mem_gb; ``group_id`` and the name in column ``level``."""
    info = resources(conn)
    members = info.filter(pl.col("kind") == level)
    rows = hourly(conn, window, members["id"].to_list()).rename({"resource_id": "group_id"})
    names = members.select(pl.col("id").alias("group_id"), pl.col("name").alias(level), "manager")
    return (
        hourly_capacity(conn, window, level)
        .join(rows, on=["group_id", "ts"], how="left")
        .join(names, on="group_id", how="inner")
        .with_columns(
            (100 * pl.col("cpu_used_cores_avg") / pl.col("capacity_vcpus")).alias("cpu_pct"),
            (100 * pl.col("cpu_used_cores_max") / pl.col("capacity_vcpus")).alias("cpu_pct_max"),
            (100 * pl.col("mem_used_bytes_avg") / pl.col("capacity_memory_bytes")).alias("mem_pct"),
            (100 * pl.col("mem_used_bytes_max") / pl.col("capacity_memory_bytes")).alias("mem_pct_max"),
            (pl.col("mem_used_bytes_avg") / GIB).alias("mem_gb"),
            (pl.col("mem_used_bytes_max") / GIB).alias("mem_gb_max"),
            (pl.col("disk_read_bps_avg") + pl.col("disk_write_bps_avg")).alias("disk_bps"),
            (pl.col("net_rx_bps_avg") + pl.col("net_tx_bps_avg")).alias("net_bps"),
        )
        .sort("group_id", "ts")
    )


def utilization(conn: psycopg.Connection, window: Window, level: Level = "cluster") -> pl.DataFrame:
    """One row per host, cluster or provider: coverage, CPU/memory/disk/network statistics over ``window``,
    capacity and allocation (at the window's last hour) and overcommit ratios (allocated / capacity)."""
    check_level(level)
    members = resources(conn).filter(pl.col("kind") == level)
    hours = int((window.end - window.start).total_seconds() // 3600)
    series = hourly_series(conn, window, level)

    def stats(name: str, column: str, peak: str | None = None) -> list[pl.Expr]:
        return [
            pl.col(column).mean().alias(f"{name}_avg"),
            pl.col(column).quantile(0.95, "linear").alias(f"{name}_p95"),
            pl.col(peak or column).max().alias(f"{name}_peak"),
        ]

    summary = series.group_by("group_id").agg(
        (pl.col("sample_count").fill_null(0) > 0).sum().alias("hours_with_data"),
        pl.col("ts").filter(pl.col("sample_count") > 0).min().alias("data_from"),
        (pl.col("ts").filter(pl.col("sample_count") > 0).max() + pl.duration(hours=1)).alias("data_to"),
        (100 * pl.col("vm_samples").sum() / pl.col("vm_expected").sum()).alias("coverage_pct"),
        *stats("cpu_cores", "cpu_used_cores_avg", "cpu_used_cores_max"),
        *stats("cpu_pct", "cpu_pct", "cpu_pct_max"),
        *stats("mem_gb", "mem_gb", "mem_gb_max"),
        *stats("mem_pct", "mem_pct", "mem_pct_max"),
        *stats("disk_bps", "disk_bps"),
        *stats("net_bps", "net_bps"),
    )
    last = series.filter(pl.col("ts") == pl.col("ts").max()).select(
        "group_id",
        "vms",
        pl.col("capacity_vcpus").alias("vcpus_capacity"),
        pl.col("allocated_vcpus").alias("vcpus_allocated"),
        (pl.col("capacity_memory_bytes") / GIB).alias("mem_gb_capacity"),
        (pl.col("allocated_memory_bytes") / GIB).alias("mem_gb_allocated"),
    )
    names = members.select(pl.col("id").alias("group_id"), pl.col("name").alias(level), "manager")
    return (
        names.join(summary, on="group_id", how="left")
        .join(last, on="group_id", how="left")
        .with_columns(
            pl.lit(hours).alias("hours"),
            pl.col("hours_with_data").fill_null(0),
            (pl.col("vcpus_allocated") / pl.col("vcpus_capacity")).alias("cpu_overcommit"),
            (pl.col("mem_gb_allocated") / pl.col("mem_gb_capacity")).alias("mem_overcommit"),
        )
        .rename({"group_id": "resource_id"})
        .sort(level)
    )
