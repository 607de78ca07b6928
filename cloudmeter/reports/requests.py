"""Right-sizing Kubernetes containers: CPU and memory requests from a percentile of usage plus headroom.

This is what the Vertical Pod Autoscaler recommends, from the stored history instead of its own short memory:
per container over the lookback, the chosen percentile (linear, default p95) of its hourly average cores and
memory plus ``headroom`` (default 20 %), rounded up to whole millicores and whole MiB (at least one of each:
VPA's own minimums, 25 millicores and 250 MiB, are per pod and spread over its containers, so they are not
applied to a container alone). Requests are compared with the container's at the lookback's end;
limits are left as they are. A container without samples, or deleted before the lookback's end, gets no
recommendation; a size without samples (CPU or memory) gets none either. Pod sandboxes (``POD``, which only
carry a pod's network) have no requests to size and are left out. ``coverage_pct`` is the container's samples
over those its sampling interval promises while it existed (at most 100).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import polars as pl
import psycopg

from cloudmeter.model import Window
from cloudmeter.reports import placement
from cloudmeter.reports.inputs import GIB, SANDBOX, hourly, pods, resources
from cloudmeter.reports.ratecard import RateCard
from cloudmeter.reports.rightsize import Policy, monthly_costs

#: Requests are recommended in whole millicores and whole MiB, at least one of each.
_MILLICORES: Final = 1000
_MIB_PER_GB: Final = 1024
#: The request measures a container's recommendation changes: measure -> (current column, recommended column).
REQUEST_SIZES: Final = {
    "cpu_request_cores": ("cpu_request_cores", "recommended_cpu_request_cores"),
    "memory_request_gb": ("memory_request_gb", "recommended_memory_request_gb"),
}
#: The report's columns, in order.
COLUMNS: Final = (
    *("resource_id", "namespace", "pod", "container", "action", "monthly_savings", "cpu_request_cores"),
    *("recommended_cpu_request_cores", "memory_request_gb", "recommended_memory_request_gb", "coverage_pct"),
    *("cpu_cores_pctl", "memory_gb_pctl", "idle", "hours_with_data", "monthly_cost", "monthly_cost_recommended"),
    *("manager", "note"),
)


def _round_up(value: pl.Expr, steps: int) -> pl.Expr:
    """Up to whole ``1 / steps`` units, at least one; NULL (nothing measured) stays NULL."""
    return pl.when(value.is_not_null()).then(pl.max_horizontal(((value * steps) - 1e-9).ceil(), 1) / steps)


def _usage(conn: psycopg.Connection, window: Window, ids: list[int], q: float) -> pl.DataFrame:
    """Per container: samples and the ``q`` quantiles of its hourly average cores and memory (GiB)."""
    rows = hourly(conn, window, ids, ("cpu_used_cores_avg", "mem_used_bytes_avg", "sample_count"))
    return rows.group_by("resource_id").agg(
        pl.col("sample_count").sum().alias("samples"),
        (pl.col("sample_count") > 0).sum().alias("hours_with_data"),
        pl.col("cpu_used_cores_avg").quantile(q, "linear").alias("cpu_cores_pctl"),
        (pl.col("mem_used_bytes_avg") / GIB).quantile(q, "linear").alias("memory_gb_pctl"),
    )


def rightsize_containers(
    conn: psycopg.Connection, window: Window, card: RateCard, policy: Policy | None = None
) -> pl.DataFrame:
    """One row per container alive in ``window``: its requests now and recommended, usage percentiles, coverage,
    and the monthly cost (730 h) of its ``cpu_request_cores`` and ``memory_request_gb`` lines under ``card`` now
    and recommended (no request costs as a request of 0, as chargeback charges it).

    Actions: ``retired`` (deleted before the window's end), ``no data`` (no samples), else ``idle`` (the CPU
    percentile under ``idle_cpu_pct`` of its CPU request), ``set`` (no request now), ``upsize``, ``downsize`` or
    ``keep``.
    """
    policy = policy or Policy()
    periods = placement.read_periods(conn, window, ("container",))
    info = resources(conn)
    names = info.filter(pl.col("kind") == "container").select(
        pl.col("id").alias("resource_id"), pl.col("name").alias("container"), "parent_id", "project", "manager",
        "interval_s", "retired_at",
    )  # fmt: skip
    alive = periods.group_by("resource_id").agg(((pl.col("end_us") - pl.col("start_us")).sum() / 1e6).alias("seconds"))
    now = (
        periods.sort("start_us")
        .group_by("resource_id")
        .last()
        .select(
            "resource_id",
            pl.col("cores").alias("cpu_request_cores"),
            (pl.col("memory") / GIB).alias("memory_request_gb"),
        )
    )
    ids = periods["resource_id"].unique().sort().to_list()
    grow = 1 + policy.headroom_pct / 100
    frame = (
        names.join(now, on="resource_id")
        .filter(pl.col("container") != SANDBOX)
        .join(pods(info).drop("node"), on="parent_id", how="left")
        .join(alive, on="resource_id")
        .join(_usage(conn, window, ids, policy.percentile / 100), on="resource_id", how="left")
    )
    gone = pl.col("retired_at").is_not_null() & (pl.col("retired_at") < placement.epoch_us(window.end))
    unknown = pl.col("cpu_cores_pctl").is_null() & pl.col("memory_gb_pctl").is_null()
    cpu, memory = "recommended_cpu_request_cores", "recommended_memory_request_gb"
    frame = frame.with_columns(
        pl.when(~gone).then(_round_up(pl.col("cpu_cores_pctl") * grow, _MILLICORES)).alias(cpu),
        pl.when(~gone).then(_round_up(pl.col("memory_gb_pctl") * grow, _MIB_PER_GB)).alias(memory),
        pl.min_horizontal(
            pl.lit(100.0), 100 * pl.col("samples").fill_null(0) * pl.col("interval_s") / pl.col("seconds")
        ).alias("coverage_pct"),
        (pl.col("cpu_cores_pctl") < pl.col("cpu_request_cores") * policy.idle_cpu_pct / 100)
        .fill_null(False)
        .alias("idle"),
    )
    unset = (pl.col(cpu).is_not_null() & pl.col("cpu_request_cores").is_null()) | (
        pl.col(memory).is_not_null() & pl.col("memory_request_gb").is_null()
    )
    bigger = (pl.col(cpu) > pl.col("cpu_request_cores")) | (pl.col(memory) > pl.col("memory_request_gb"))
    smaller = (pl.col(cpu) < pl.col("cpu_request_cores")) | (pl.col(memory) < pl.col("memory_request_gb"))
    action = (
        pl.when(gone).then(pl.lit("retired")).when(unknown).then(pl.lit("no data")).when(pl.col("idle"))
        .then(pl.lit("idle")).when(unset).then(pl.lit("set"))
        .when(bigger.fill_null(False)).then(pl.lit("upsize")).when(smaller.fill_null(False)).then(pl.lit("downsize"))
        .otherwise(pl.lit("keep"))
    )  # fmt: skip
    note = (
        pl.when(gone).then(pl.lit("deleted before the window's end")).when(unknown)
        .then(pl.lit("no samples in the window")).when(pl.col("cpu_cores_pctl").is_null())
        .then(pl.lit("no CPU samples: CPU request kept")).when(pl.col("memory_gb_pctl").is_null())
        .then(pl.lit("no memory samples: memory request kept"))
    )  # fmt: skip
    frame = frame.with_columns(action.alias("action"), note.alias("note"), pl.col("hours_with_data").fill_null(0))
    last = frame.select(  # the lines of the lookback's last hour price the change, with the pod's labels
        "resource_id", pl.lit(window.end - timedelta(hours=1)).alias("ts"), "manager", "project",
        pl.col("pod_tags").alias("tags"),
    )  # fmt: skip
    requested = frame.with_columns(pl.col(current).fill_null(0.0) for current, _ in REQUEST_SIZES.values())
    costs = monthly_costs(last, requested, card, REQUEST_SIZES)
    return (
        frame.join(costs, on="resource_id", how="left")
        .rename({"project": "namespace"})
        .select(COLUMNS)
        .sort("namespace", "pod", "container")
    )
