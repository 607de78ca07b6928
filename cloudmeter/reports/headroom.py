"""Headroom: how many more VMs of a flavor fit per cluster, host by host (a VM cannot straddle hosts).

On Kubernetes the same question is how many more pods of given requests fit, node by node: a node's capacity is
its allocatable and its allocation the requests of the containers on it (``capacity.hourly_capacity``), so the
flavor is the pod's requests (``Flavor(0.5, 1)``) and ``cpu_allocation_ratio`` 1 (the scheduler never places
requests beyond allocatable).

On each host, a new VM must keep p95 CPU and memory usage under ``cpu_usage_pct`` / ``mem_usage_pct`` of the
host's capacity (counting the new VM at its full flavor size) and allocation under ``cpu_allocation_ratio`` /
``mem_allocation_ratio`` x capacity. A host's fit is the smallest of the four; a cluster's is the sum over its
hosts, NULL when a host with VMs has no usage data in the window (unknown is not zero). Each row says which
part of the window its data covers (``hours_with_data``, ``data_from``, ``data_to``, ``coverage_pct``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import numba
import numpy as np
import numpy.typing as npt
import polars as pl
import psycopg

from cloudmeter.errors import ConfigError
from cloudmeter.model import Window
from cloudmeter.reports.capacity import hourly_capacity, utilization
from cloudmeter.reports.inputs import GIB, ancestor, check_hour_window, resources
from cloudmeter.storage import packs, readers

CONSTRAINTS = ("cpu_usage", "mem_usage", "cpu_allocation", "mem_allocation")


@dataclass(frozen=True)
class Flavor:
    """The VM size to place, or a Kubernetes pod's requests (fractional cores: 0.5)."""

    vcpus: float
    memory_gb: float

    def __post_init__(self) -> None:
        if self.vcpus <= 0 or self.memory_gb <= 0:
            raise ConfigError(f"flavor {self.vcpus} vCPUs / {self.memory_gb} GB: give --vcpus > 0 and --memory-gb > 0")


@dataclass(frozen=True)
class Limits:
    """Usage limits in percent of capacity (on p95) and allocation limits as ratios of capacity."""

    cpu_usage_pct: float = 90.0
    mem_usage_pct: float = 90.0
    cpu_allocation_ratio: float = 4.0
    mem_allocation_ratio: float = 1.0

    def __post_init__(self) -> None:
        for name in ("cpu_usage_pct", "mem_usage_pct"):
            if not 0 < getattr(self, name) <= 100:
                raise ConfigError(f"--{name.replace('_', '-')} must be in (0, 100], got {getattr(self, name)}")
        for name in ("cpu_allocation_ratio", "mem_allocation_ratio"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")


def _fits(room: pl.Expr, size: float) -> pl.Expr:
    """Whole VMs of ``size`` in ``room`` (never negative; a hair of float error does not lose a VM; unknown room
    fits an unknown number)."""
    return ((room / size) + 1e-9).floor().clip(lower_bound=0.0).cast(pl.Int64)


def _known_sum(name: str) -> pl.Expr:
    """The sum of a column, NULL when no value is known (polars would say 0)."""
    return pl.when(pl.col(name).is_not_null().any()).then(pl.col(name).sum()).alias(name)


@numba.njit(cache=True)
def _run_quantiles(values: npt.NDArray[np.float64], bounds: npt.NDArray[np.int64], q: float) -> npt.NDArray[np.float64]:
    """Per run ``values[bounds[k]:bounds[k + 1]]``: the linear quantile ``q`` of its values that are not NaN (NaN
    when none is), bit for bit polars' ``quantile(q, "linear")`` with NaN as null (polars 2.2 on; 2.1 added the
    nulls' count to the position it interpolates at, which rounds its fraction differently)."""
    out = np.full(len(bounds) - 1, np.nan)
    for k in range(len(bounds) - 1):
        run = values[bounds[k] : bounds[k + 1]]
        known = run[~np.isnan(run)]
        if len(known) == 0:
            continue
        at = (len(known) - 1) * q
        lower = int(at)
        known = np.partition(known, lower)  # its lower-th smallest at lower, the larger ones after
        low = known[lower]
        high = known[lower + 1 :].min() if int(np.ceil(at)) > int(at) else low
        out[k] = low if low == high else (at - int(at)) * (high - low) + low
    return out


def _usage_p95(conn: psycopg.Connection, window: Window, host_ids: list[int]) -> pl.DataFrame:
    """Per host with data: the p95 (linear) of its hourly average CPU cores and memory GB over ``window``."""
    resource, usage = packs.read_by_resource(conn, window, host_ids, ("cpu_used_cores_avg", "mem_used_bytes_avg"))
    bounds = np.append(np.flatnonzero(np.diff(resource, prepend=-1) != 0), len(resource)).astype(np.int64)

    def p95(values: npt.NDArray[np.float64]) -> pl.Series:
        return pl.Series(_run_quantiles(values, bounds, 0.95), nan_to_null=True)

    return pl.DataFrame(
        {
            "resource_id": pl.Series(resource[bounds[:-1]], dtype=pl.Int32),
            "cpu_cores_p95": p95(usage["cpu_used_cores_avg"]),
            "mem_gb_p95": p95(usage["mem_used_bytes_avg"] / GIB),
        }
    )


def _capacity_now(conn: psycopg.Connection, last_hour: Window, info: pl.DataFrame) -> pl.DataFrame:
    """Per host placed in ``last_hour``: its capacity and allocation then, and its VMs."""
    return hourly_capacity(conn, last_hour, "host", info).select(
        pl.col("group_id").alias("resource_id"),
        "vms",
        pl.col("capacity_vcpus").alias("vcpus_capacity"),
        pl.col("allocated_vcpus").alias("vcpus_allocated"),
        (pl.col("capacity_memory_bytes") / GIB).alias("mem_gb_capacity"),
        (pl.col("allocated_memory_bytes") / GIB).alias("mem_gb_allocated"),
    )


def headroom(conn: psycopg.Connection, window: Window, flavor: Flavor, limits: Limits = Limits()) -> pl.DataFrame:
    """Per cluster: VMs of ``flavor`` that fit by each constraint (summed over hosts), the overall fit,
    the limiting constraint, hosts, and hosts lacking usage data."""
    check_hour_window(window)
    info = resources(conn)
    # a host retired before the window's last hour has no room now, known or not (it would make the room unknown)
    last_hour = window.end - timedelta(hours=1)
    hosts = info.filter((pl.col("kind") == "host") & ~(pl.col("retired_at") <= last_hour).fill_null(False))
    host_ids = hosts["id"].to_numpy()
    with readers.companions(conn, 2) as others, ThreadPoolExecutor(2, thread_name_prefix="p95") as beside:
        # the hosts' p95, the most of the work and mostly the server's, is read beside the rest: in parts, one
        # on each other connection
        parts = zip(others, np.array_split(host_ids, len(others)), strict=True) if others else ()
        usage = [beside.submit(_usage_p95, other, window, part.tolist()) for other, part in parts]
        capacity_now = _capacity_now(conn, Window(last_hour, window.end), info)
        span = utilization(conn, window, "cluster", info).select(
            pl.col("resource_id").alias("cluster_id"), "hours_with_data", "data_from", "data_to", "coverage_pct"
        )
        p95 = pl.concat([part.result() for part in usage]) if usage else _usage_p95(conn, window, host_ids.tolist())
    hosts = (
        hosts.select(pl.col("id").alias("resource_id"))
        .join(p95, on="resource_id", how="left")
        .join(capacity_now, on="resource_id", how="left")
    )
    no_vms = pl.col("vms").fill_null(0) == 0
    cpu_p95 = pl.when(no_vms & pl.col("cpu_cores_p95").is_null()).then(0.0).otherwise(pl.col("cpu_cores_p95"))
    mem_p95 = pl.when(no_vms & pl.col("mem_gb_p95").is_null()).then(0.0).otherwise(pl.col("mem_gb_p95"))
    per_host = hosts.with_columns(
        ancestor(info, hosts["resource_id"], "cluster").alias("cluster_id"),
        _fits(pl.col("vcpus_capacity") * limits.cpu_usage_pct / 100 - cpu_p95, flavor.vcpus).alias("cpu_usage"),
        _fits(pl.col("mem_gb_capacity") * limits.mem_usage_pct / 100 - mem_p95, flavor.memory_gb).alias("mem_usage"),
        _fits(
            pl.col("vcpus_capacity") * limits.cpu_allocation_ratio - pl.col("vcpus_allocated").fill_null(0),
            flavor.vcpus,
        ).alias("cpu_allocation"),
        _fits(
            pl.col("mem_gb_capacity") * limits.mem_allocation_ratio - pl.col("mem_gb_allocated").fill_null(0),
            flavor.memory_gb,
        ).alias("mem_allocation"),
    ).with_columns(
        pl.min_horizontal(*CONSTRAINTS).alias("fit"),
        pl.any_horizontal(pl.col(c).is_null() for c in CONSTRAINTS).alias("unknown"),
    )
    names = info.select(pl.col("id").alias("cluster_id"), pl.col("name").alias("cluster"))
    summed = per_host.group_by("cluster_id").agg(
        pl.len().alias("hosts"),
        pl.col("unknown").sum().alias("hosts_without_data"),
        *(
            pl.when(pl.col("unknown").any()).then(None).otherwise(pl.col(c).sum()).alias(c)
            for c in (*CONSTRAINTS, "fit")
        ),
        _known_sum("vcpus_capacity"),
        _known_sum("vcpus_allocated"),
    )
    limiting = pl.concat_list(*CONSTRAINTS).list.arg_min()
    return (
        summed.join(names, on="cluster_id", how="left")
        .join(span, on="cluster_id", how="left")
        .with_columns(
            pl.when(pl.col("fit").is_not_null())
            .then(limiting.replace_strict(dict(enumerate(CONSTRAINTS)), return_dtype=pl.String))
            .alias("limited_by")
        )
        .select(
            "cluster",
            "hosts",
            "hosts_without_data",
            "fit",
            "limited_by",
            *CONSTRAINTS,
            "vcpus_capacity",
            "vcpus_allocated",
            "coverage_pct",
            "hours_with_data",
            "data_from",
            "data_to",
        )
        .sort("cluster")
    )
