"""Utilization of hosts, clusters or providers over a window, with allocation against capacity.

Usage comes from the level's own hourly rollup rows (its children's samples summed, slot by slot). Capacity is
the sum of the ``vcpus`` / ``memory_bytes`` of the hosts placed under it, hour by hour (``resource_history``),
so a host whose VMs sent nothing still counts; allocation is the sum of its VMs' ``vcpus`` / ``memory_bytes``,
time-weighted within each hour. On Kubernetes a node's capacity is its allocatable, and allocation is the
containers' requests (a container without one adds nothing). Percentages are computed per hour as usage over
that hour's capacity. Window statistics: ``_avg`` and ``_p95`` (linear) of the hourly averages, ``_peak`` the
highest sample-level value (hourly ``_max``) for CPU and memory, and the highest hourly average for disk and
network (read + write, in + out). An hour without samples is missing, never 0: ``hours_with_data`` counts the
hours with any, ``data_from`` / ``data_to`` bound them, ``coverage_pct`` is the samples in the level's own rows
over those the VMs' sampling intervals promise while they were placed beneath it, hour by hour (never more than
promised, so at most 100).

Nothing here reads a VM's rows: usage and samples come from the level's own rollup rows, capacity and allocation
from the placement periods spread over the hours (``reports.placement``), so the cost grows with the level's
rows, not with VM-hours.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import polars as pl
import psycopg

from cloudmeter.errors import ConfigError
from cloudmeter.model import LEAVES, Window
from cloudmeter.reports import placement
from cloudmeter.reports.inputs import GIB, ancestor, check_hour_window, hourly, resources
from cloudmeter.rollups.spread import Spread
from cloudmeter.storage import packs
from cloudmeter.storage.schema import PACKED

Level = Literal["host", "cluster", "provider"]
#: The rollup columns the usage statistics are computed from: those packed per day (``storage.packs``).
USAGE: Final = PACKED
LEVELS: Final[tuple[str, ...]] = ("host", "cluster", "provider")


def check_level(level: str) -> Level:
    """``level`` if it is host, cluster or provider, else a ConfigError saying so."""
    if level not in LEVELS:
        raise ConfigError(f"--level {level!r} is not one of {', '.join(LEVELS)}")
    return level  # type: ignore[return-value]


def hourly_capacity(
    conn: psycopg.Connection, window: Window, level: Level, info: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Per resource at ``level`` (``group_id``) and hour with anything placed under it: capacity and allocation
    of vCPUs and memory bytes (time-weighted), how many VMs were placed under it (``vms``) and the samples their
    sampling intervals promise while they existed (``vm_expected``; ``vm_unpromised`` VMs had no interval known).

    A VM counts under its host's group that hour (the placement covering most of it), else under the ancestor
    at ``level`` of its own parent. Kubernetes: a node's capacity is its allocatable, containers count as VMs
    (under their pod's node) and their allocation is their requests.
    """
    check_hour_window(window)
    info = resources(conn) if info is None else info
    periods = placement.read_periods(conn, window, ("host", *LEAVES))
    groups = np.sort(info.filter(pl.col("kind") == level)["id"].to_numpy())
    hosts = periods.filter(pl.col("kind") == "host")
    host_group = hosts["resource_id"] if level == "host" else ancestor(info, hosts["parent_id"], level)
    capacity = placement.spread_periods(hosts, window, host_group, groups)
    vms = periods.filter(pl.col("kind").is_in(LEAVES))
    host_ids = np.unique(hosts["resource_id"].to_numpy())
    via = (host_ids, placement.group_grid(hosts, window, host_group, groups))
    vm_ids = np.unique(vms["resource_id"].to_numpy())
    usual = info.select("id", "interval_s").filter(pl.col("id").is_in(vm_ids)).sort("id")["interval_s"]
    intervals = placement.member_intervals(conn, window, vm_ids, usual.fill_null(0).to_numpy())
    allocation = placement.spread_periods(vms, window, ancestor(info, vms["parent_id"], level), groups, via, intervals)
    return _cells(capacity, allocation, groups, window)


def _cells(capacity: Spread, allocation: Spread, groups: npt.NDArray[np.int64], window: Window) -> pl.DataFrame:
    """The (group, hour) cells where a host or a VM was placed, as a frame (see ``hourly_capacity``)."""
    g, h = np.nonzero((capacity.present > 0) | (allocation.present > 0))
    hosts, vms = capacity.present[g, h] > 0, allocation.present[g, h] > 0

    def complete(j: int) -> npt.NDArray[np.float64]:  # NULL when a host's value is unknown or the sum is not positive
        total = capacity.sums[g, h, j]
        return np.where(hosts & (capacity.unknown[g, h, j] == 0) & (total > 0), total, np.nan)

    def known(j: int) -> npt.NDArray[np.float64]:  # NULL when no VM's value is known
        return np.where(vms & (allocation.known[g, h, j] > 0), allocation.sums[g, h, j], np.nan)

    start_us = placement.epoch_us(window.start)
    return pl.DataFrame(
        {
            "group_id": pl.Series(groups[g], dtype=pl.Int32),
            "ts": pl.Series(start_us + h.astype(np.int64) * placement.HOUR_US).cast(pl.Datetime("us", "UTC")),
            "capacity_vcpus": pl.Series(complete(0), nan_to_null=True),
            "capacity_memory_bytes": pl.Series(complete(1), nan_to_null=True),
            "allocated_vcpus": pl.Series(known(0), nan_to_null=True),
            "allocated_memory_bytes": pl.Series(known(1), nan_to_null=True),
            "vms": pl.Series(np.where(vms, allocation.present[g, h], -1)).cast(pl.UInt32, strict=False),
            "vm_expected": pl.Series(np.where(vms, allocation.expected[g, h], np.nan), nan_to_null=True),
            "vm_unpromised": pl.Series(allocation.unpromised[g, h], dtype=pl.Int32),
        }
    )


def hourly_series(
    conn: psycopg.Connection,
    window: Window,
    level: Level,
    columns: tuple[str, ...] | None = None,
    info: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Per resource at ``level`` and hour: its rollup row (every column, or ``USAGE`` and ``columns``) joined
    with capacity and allocation, plus cpu_pct, mem_pct (of that hour's capacity), disk_bps, net_bps, mem_gb;
    ``group_id`` and the name in column ``level``. ``info`` is ``inputs.resources``, when the caller has it."""
    info = resources(conn) if info is None else info
    members = info.filter(pl.col("kind") == level)
    read = None if columns is None else (*USAGE, *columns)
    ids = members["id"].to_list()
    if read is not None and set(read) <= set(PACKED):
        check_hour_window(window)
        rows = packs.read_hourly(conn, window, ids, read)
    else:
        rows = hourly(conn, window, ids, read)
    rows = rows.rename({"resource_id": "group_id"})
    names = members.select(pl.col("id").alias("group_id"), pl.col("name").alias(level), "manager")
    return (
        hourly_capacity(conn, window, level, info)
        .join(rows, on=["group_id", "ts"], how="left")
        .join(names, on="group_id", how="inner")
        .with_columns(
            # hours where some VM's interval is unknown count what was sent as promised
            pl.when(pl.col("vm_unpromised") > 0)
            .then(pl.max_horizontal("vm_expected", pl.col("sample_count").fill_null(0)))
            .otherwise("vm_expected")
            .alias("vm_expected")
        )
        .with_columns(
            pl.when(pl.col("vm_expected").is_not_null())  # no VM placed: nothing promised, nothing counted
            .then(pl.min_horizontal(pl.col("sample_count").fill_null(0), "vm_expected"))
            .alias("vm_samples"),
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


def window_stats(name: str, column: str, peak: str | None = None, with_peak: bool = True) -> list[pl.Expr]:
    """``<name>_avg`` and ``<name>_p95`` (linear) of the hourly ``column`` over a window, and ``<name>_peak``: the
    highest ``peak`` (a sample-level column), else of ``column`` itself."""
    stats = [pl.col(column).mean().alias(f"{name}_avg"), pl.col(column).quantile(0.95, "linear").alias(f"{name}_p95")]
    return [*stats, pl.col(peak or column).max().alias(f"{name}_peak")] if with_peak else stats


def utilization(
    conn: psycopg.Connection, window: Window, level: Level = "cluster", info: pl.DataFrame | None = None
) -> pl.DataFrame:
    """One row per host, cluster or provider: coverage, CPU/memory/disk/network statistics over ``window``,
    capacity and allocation (at the window's last hour) and overcommit ratios (allocated / capacity); ``info``
    is ``inputs.resources``, when the caller has it."""
    check_level(level)
    info = resources(conn) if info is None else info
    members = info.filter(pl.col("kind") == level)
    hours = int((window.end - window.start).total_seconds() // 3600)
    series = hourly_series(conn, window, level, (), info)

    summary = series.group_by("group_id").agg(
        (pl.col("sample_count").fill_null(0) > 0).sum().alias("hours_with_data"),
        pl.col("ts").filter(pl.col("sample_count") > 0).min().alias("data_from"),
        (pl.col("ts").filter(pl.col("sample_count") > 0).max() + pl.duration(hours=1)).alias("data_to"),
        pl.when(pl.col("vm_expected").sum() > 0)  # nothing promised: unknown, not 0/0
        .then(100 * pl.col("vm_samples").sum() / pl.col("vm_expected").sum())
        .alias("coverage_pct"),
        *window_stats("cpu_cores", "cpu_used_cores_avg", "cpu_used_cores_max"),
        *window_stats("cpu_pct", "cpu_pct", "cpu_pct_max"),
        *window_stats("mem_gb", "mem_gb", "mem_gb_max"),
        *window_stats("mem_pct", "mem_pct", "mem_pct_max"),
        *window_stats("disk_bps", "disk_bps"),
        *window_stats("net_bps", "net_bps"),
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
