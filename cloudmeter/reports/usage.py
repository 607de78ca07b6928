"""VM-hours: one row per VM, UTC hour and placement, with what chargeback and rightsizing price and size.

Allocations come from ``resource_history`` (clipped to each VM's lifetime: ``seconds`` of the hour), usage
from the VM's hourly rollup row; an hour without samples has NULL usage (unknown), never 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import polars as pl
import psycopg

from cloudmeter.model import Window
from cloudmeter.reports import placement
from cloudmeter.reports.inputs import GIB, at_hourly_intervals, check_hour_window, resources, sample_coverage
from cloudmeter.storage import packs

USAGE_COLUMNS = ("cpu_used_cores_avg", "mem_used_bytes_avg", "net_rx_bps_avg", "net_tx_bps_avg", "sample_count")


#: VMs priced or sized at a time: each chunk's VM-hours are all in memory at once (a month of 1,000 VMs is
#: 744,000 rows), and nothing a report computes joins one VM with another until the per-VM results.
CHUNK_VMS: Final = 1000


def vm_hours(conn: psycopg.Connection, window: Window) -> pl.DataFrame:
    """Columns: ts, resource_id, seconds, vcpus, memory_gb, disk_gb, name, ems_ref, manager, project, host,
    cluster, tags (JSON text), cpu_cores_used, memory_gb_used, network_gb (transferred in the placement's
    seconds), samples, expected (``inputs.sample_coverage``). Usage columns are null in hours without samples."""
    return pl.concat(vm_hour_chunks(conn, window), how="vertical")


def vm_hour_chunks(conn: psycopg.Connection, window: Window, size: int = CHUNK_VMS) -> Iterator[pl.DataFrame]:
    """``vm_hours`` of ``size`` VMs at a time (by id; at least one, possibly empty, frame)."""
    check_hour_window(window)
    periods = placement.read_periods(conn, window, ("vm", "host"))
    info = resources(conn)
    names = info.select(pl.col("id").alias("rid"), "name", "kind")
    hosts = placement.majority_parents(periods.filter(pl.col("kind") == "host"), window).rename(
        {"resource_id": "parent_id", "parent_id": "cluster_id"}  # a host moved mid-hour: the longer placement
    )
    own = info.select(
        pl.col("id").alias("resource_id"),
        "ems_ref",
        pl.col("name"),
        "manager",
        "tags",
        "interval_s",
        (pl.col("disk_bytes") / GIB).alias("disk_gb"),
    )
    vm_periods = periods.filter(pl.col("kind") == "vm").drop("kind")
    ids = vm_periods["resource_id"].unique().sort().to_list()
    for first in range(0, max(len(ids), 1), size):
        chunk = ids[first : first + size]
        vms = placement.hourly(vm_periods.filter(pl.col("resource_id").is_in(chunk)))
        usage = packs.read_hourly(conn, window, chunk, USAGE_COLUMNS).select(
            "ts",
            "resource_id",
            pl.col("cpu_used_cores_avg").alias("cpu_cores_used"),
            (pl.col("mem_used_bytes_avg") / GIB).alias("memory_gb_used"),
            (pl.col("net_rx_bps_avg") + pl.col("net_tx_bps_avg")).alias("net_bps"),
            "sample_count",
        )
        frame = (
            vms.join(own, on="resource_id", how="left")
            .join(hosts, on=["ts", "parent_id"], how="left")
            .join(names.rename({"rid": "parent_id", "name": "host", "kind": "parent_kind"}), on="parent_id", how="left")
            .join(
                names.rename({"rid": "cluster_id", "name": "cluster", "kind": "cluster_kind"}),
                on="cluster_id",
                how="left",
            )
            .join(names.rename({"rid": "project_id", "name": "project"}).drop("kind"), on="project_id", how="left")
            .join(usage, on=["ts", "resource_id"], how="left")
        )
        yield (
            sample_coverage(at_hourly_intervals(conn, window, frame))
            .select(
                "ts",
                "resource_id",
                "seconds",
                "vcpus",
                (pl.col("memory_bytes") / GIB).alias("memory_gb"),
                "disk_gb",
                "name",
                "ems_ref",
                "manager",
                "project",
                pl.when(pl.col("parent_kind") == "host").then("host").alias("host"),
                pl.when(pl.col("parent_kind") == "cluster")
                .then("host")
                .when(pl.col("cluster_kind") == "cluster")
                .then("cluster")
                .alias("cluster"),
                "tags",
                "cpu_cores_used",
                "memory_gb_used",
                (pl.col("net_bps") * pl.col("seconds") / GIB).alias("network_gb"),
                "samples",
                "expected",
            )
            .sort("resource_id", "ts")
        )
