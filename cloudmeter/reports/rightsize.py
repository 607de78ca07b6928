"""Right-sizing: per VM over a lookback, the vCPUs and memory a percentile of its usage plus headroom needs,
idle VMs, and what the change saves under a rate card.

Usage is each VM's hourly average (cores busy, memory used); the chosen percentile (linear, default p95) of
those hours plus ``headroom`` (default 20 %) is rounded up to whole vCPUs and whole GB (at least 1 each). A VM
is idle when that CPU percentile is under ``idle_cpu_pct`` of its vCPUs and its network traffic percentile is
under ``idle_network_gb_per_hour`` (or unknown). A VM without samples in the lookback, or deleted before its
end, gets no recommendation; a size without samples (CPU or memory) gets none either.
Costs are for an average month (730 hours) of the allocation lines that apply to the VM at the lookback's end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import polars as pl
import psycopg

from cloudmeter.errors import ConfigError
from cloudmeter.model import Window
from cloudmeter.reports.chargeback import chosen_lines, money
from cloudmeter.reports.inputs import resources
from cloudmeter.reports.ratecard import RateCard, RateLine
from cloudmeter.reports.usage import vm_hour_chunks

MONTH_HOURS = 730
_PERIOD_HOURS = {"hourly": 1, "daily": 24, "weekly": 168, "monthly": MONTH_HOURS}
#: The allocation measures a VM's size changes: measure -> (current column, recommended column).
VM_SIZES: Final = {
    "vcpu_allocated": ("vcpus", "recommended_vcpus"),
    "memory_gb_allocated": ("memory_gb", "recommended_memory_gb"),
}


@dataclass(frozen=True)
class Policy:
    """The percentile and headroom to size for, and the idle thresholds."""

    percentile: float = 95.0
    headroom_pct: float = 20.0
    idle_cpu_pct: float = 5.0
    idle_network_gb_per_hour: float = 0.01

    def __post_init__(self) -> None:
        if not 0 < self.percentile <= 100:
            raise ConfigError(f"--percentile must be in (0, 100], got {self.percentile}")
        if self.headroom_pct < 0:
            raise ConfigError(f"--headroom must be >= 0 (percent), got {self.headroom_pct}")


def _round_up(value: pl.Expr) -> pl.Expr:
    """Whole units (at least 1) for a known need; NULL for an unknown one."""
    return (value - 1e-9).ceil().clip(lower_bound=1.0).cast(pl.Int64)


def _per_vm(hours: pl.DataFrame, q: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Some VMs' last placement hour and their usage over the window (``q`` quantiles), from their hours."""
    last = hours.sort("ts").group_by("resource_id").last()
    per_hour = hours.group_by("resource_id", "ts").agg(  # a VM placed twice in an hour is one hour of usage
        pl.col("seconds").sum(),
        pl.col("cpu_cores_used").first(),
        pl.col("memory_gb_used").first(),
        pl.col("network_gb").sum(),
        pl.col("samples").sum(),
        pl.col("expected").sum(),
    )
    usage = per_hour.group_by("resource_id").agg(
        (pl.col("seconds").sum() / 3600).alias("hours_alive"),
        (100 * pl.col("samples").sum() / pl.col("expected").sum()).alias("coverage_pct"),
        pl.col("cpu_cores_used").quantile(q, "linear").alias("cpu_cores_pctl"),
        pl.col("memory_gb_used").quantile(q, "linear").alias("memory_gb_pctl"),
        (pl.col("network_gb") * 3600 / pl.col("seconds")).quantile(q, "linear").alias("network_gb_per_hour_pctl"),
    )
    return last, usage


def rightsize(conn: psycopg.Connection, window: Window, card: RateCard, policy: Policy = Policy()) -> pl.DataFrame:
    """One row per VM alive in ``window``: current and recommended size, usage percentiles, coverage, idle
    flag, action and monthly costs now and recommended.

    Actions: ``retired`` (deleted before the window's end: nothing to resize), ``no data`` (no samples), else
    ``idle``, ``upsize``, ``downsize`` or ``keep``. A size without samples (no memory meter, say) is NULL and kept
    as it is in the recommended cost, and ``note`` says so; a VM without samples gets no recommendation and no
    savings. ``coverage_pct`` is the VM's samples over those its interval promises while it existed (at most 100).
    """
    q = policy.percentile / 100
    grow = 1 + policy.headroom_pct / 100
    per_vm = [_per_vm(hours, q) for hours in vm_hour_chunks(conn, window)]  # VM by VM: exact in chunks
    last = pl.concat([last for last, _ in per_vm], how="vertical")
    usage = pl.concat([usage for _, usage in per_vm], how="vertical")
    retired = resources(conn).select(pl.col("id").alias("resource_id"), "retired_at")
    frame = (
        last.select("resource_id", "name", "manager", "project", "vcpus", "memory_gb")
        .join(usage, on="resource_id")
        .join(retired, on="resource_id", how="left")
    )
    idle = (pl.col("cpu_cores_pctl") < pl.col("vcpus") * policy.idle_cpu_pct / 100) & (
        pl.col("network_gb_per_hour_pctl").is_null()
        | (pl.col("network_gb_per_hour_pctl") < policy.idle_network_gb_per_hour)
    )
    gone = pl.col("retired_at").is_not_null() & (pl.col("retired_at") < window.end)
    unknown = pl.col("cpu_cores_pctl").is_null() & pl.col("memory_gb_pctl").is_null()
    frame = frame.with_columns(
        pl.when(gone | unknown)
        .then(None)
        .otherwise(_round_up(pl.col("cpu_cores_pctl") * grow))
        .alias("recommended_vcpus"),
        pl.when(gone | unknown)
        .then(None)
        .otherwise(_round_up(pl.col("memory_gb_pctl") * grow))
        .alias("recommended_memory_gb"),
        idle.fill_null(False).alias("idle"),
    )
    bigger = (pl.col("recommended_vcpus") > pl.col("vcpus")) | (pl.col("recommended_memory_gb") > pl.col("memory_gb"))
    smaller = (pl.col("recommended_vcpus") < pl.col("vcpus")) | (pl.col("recommended_memory_gb") < pl.col("memory_gb"))
    frame = frame.with_columns(
        pl.when(gone)
        .then(pl.lit("retired"))
        .when(unknown)
        .then(pl.lit("no data"))
        .when(pl.col("idle"))
        .then(pl.lit("idle"))
        .when(bigger.fill_null(False))
        .then(pl.lit("upsize"))
        .when(smaller.fill_null(False))
        .then(pl.lit("downsize"))
        .otherwise(pl.lit("keep"))
        .alias("action"),
        pl.when(gone)
        .then(pl.lit("deleted before the window's end"))
        .when(unknown)
        .then(pl.lit("no samples in the window"))
        .when(pl.col("cpu_cores_pctl").is_null())
        .then(pl.lit("no CPU samples: vCPUs kept"))
        .when(pl.col("memory_gb_pctl").is_null())
        .then(pl.lit("no memory samples: memory kept"))
        .alias("note"),
    )
    costs = monthly_costs(last, frame, card, VM_SIZES)
    return (
        frame.join(costs, on="resource_id", how="left")
        .select(
            "resource_id",
            "name",
            "action",
            "monthly_savings",
            "vcpus",
            "recommended_vcpus",
            "memory_gb",
            "recommended_memory_gb",
            "coverage_pct",
            "cpu_cores_pctl",
            "memory_gb_pctl",
            "idle",
            "hours_alive",
            "monthly_cost",
            "monthly_cost_recommended",
            "manager",
            "project",
            "note",
        )
        .sort("resource_id")
    )


def monthly_costs(
    last: pl.DataFrame, sized: pl.DataFrame, card: RateCard, sizes: Mapping[str, tuple[str, str]]
) -> pl.DataFrame:
    """Monthly cost of each resource's allocation lines of ``sizes`` (measure -> current and recommended columns
    of ``sized``) at its current and recommended sizes (exact decimals); ``last``: its last hour (resource_id,
    ts, manager, project, tags), which chooses the lines."""
    chosen = chosen_lines(last, card).join(
        sized.with_columns(  # a size without samples stays as it is
            pl.col(recommended).fill_null(pl.col(current)) for current, recommended in sizes.values()
        ),
        on="resource_id",
    )
    parts = [pl.DataFrame(schema={"resource_id": pl.Int32, "now": pl.Float64, "recommended": pl.Float64})]
    for index, line in enumerate(card.lines):
        if line.measure not in sizes:
            continue
        current, recommended = sizes[line.measure]
        scale = MONTH_HOURS / _PERIOD_HOURS[line.per_time]
        rows = chosen.filter(pl.col("line_index") == index)

        def monthly(size: str, rows: pl.DataFrame = rows, line: RateLine = line, scale: float = scale) -> pl.Series:
            price = line.price(rows[size].cast(pl.Float64).to_numpy().astype(np.float64))
            return pl.Series((price + float(line.fixed)) * scale, nan_to_null=True)

        parts.append(pl.DataFrame({"resource_id": rows["resource_id"], "now": monthly(current),
                                   "recommended": monthly(recommended)}))  # fmt: skip
    total = (
        pl.concat(parts)
        .group_by("resource_id")
        .agg(
            (pl.col("now").sum() * 10**9).round().cast(pl.Int64).alias("now_nanos"),
            (pl.col("recommended").sum() * 10**9).round().cast(pl.Int64).alias("recommended_nanos"),
        )
    )
    no_data = sized.filter(pl.all_horizontal(pl.col(r).is_null() for _, r in sizes.values()))["resource_id"]
    total = total.with_columns(
        pl.when(pl.col("resource_id").is_in(no_data.implode()))
        .then(None)
        .otherwise(pl.col("recommended_nanos"))
        .alias("recommended_nanos")
    )
    return pl.DataFrame(
        [
            total["resource_id"],
            money(total["now_nanos"].alias("monthly_cost")),
            money(total["recommended_nanos"].alias("monthly_cost_recommended")),
            money((total["now_nanos"] - total["recommended_nanos"]).alias("monthly_savings")),
        ]
    )
