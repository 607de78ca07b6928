"""Chargeback: price VM-hours under a rate card, then group the charges.

Every VM-hour placement gets the most specific matching line per measure in effect at that hour. A line's
variable cost for an hour is ``price(quantity) x seconds/3600 / hours in its per_time period`` (``price``
applies graduated tiers to the VM's quantity in that hour; a period is the calendar day, week or month in
the report's time zone, so a monthly rate charged for a whole month is exactly the rate); its fixed cost is
``fixed x seconds/3600 / hours in the period``. GB transferred is priced per GB in each hour. Usage-based
measures in an hour without samples are not charged: they count in ``unknown_hours`` instead (allocation
and fixed charges still apply).

Money is exact: charges are summed per VM, rate line, component, local day and grouping attributes, then
turned into integer nano-units of the currency (``cost_nanos``) by rounding the VM's running total per line,
so any run of days adds up to its own rounded total. Every report sums those integers, so
totals per project, tag, cluster or VM add up to the grand total exactly.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

import numpy as np
import polars as pl
import psycopg

from cloudmeter.errors import ConfigError
from cloudmeter.model import Window
from cloudmeter.reports.periods import INTERVALS, check_zone, period_end, period_hours, period_start
from cloudmeter.reports.ratecard import MEASURES, RateCard, RateLine
from cloudmeter.reports.usage import vm_hour_chunks

NANOS: Final = 10**9
#: Grouping names and the charge columns they keep (``tag:KEY`` groups by one tag's value).
GROUPINGS: Final[dict[str, tuple[str, ...]]] = {
    "vm": ("resource_id", "ems_ref", "name", "manager", "project"),
    "project": ("project",),
    "cluster": ("cluster",),
    "provider": ("manager",),
}
_QUANTITY: Final[dict[str, pl.Expr]] = {
    "vcpu_allocated": pl.col("vcpus").cast(pl.Float64),
    "cpu_cores_used": pl.col("cpu_cores_used"),
    "memory_gb_allocated": pl.col("memory_gb"),
    "memory_gb_used": pl.col("memory_gb_used"),
    "disk_gb_allocated": pl.col("disk_gb"),
    "network_gb": pl.col("network_gb"),
}
_ATOM_KEYS: Final = ("day", "resource_id", "ems_ref", "name", "manager", "project", "cluster", "tags", "line",
                     "version", "measure", "component")  # fmt: skip


_ROUNDING_KEYS: Final = ("resource_id", "line", "version", "component")
_ROUNDING_ORDER: Final = (*_ROUNDING_KEYS, "day", "project", "cluster", "measure")


def _rounded_nanos() -> pl.Expr:
    """Nano-units per charge such that every run of a VM's charges of one line adds up to its exact rounded
    total: round the running sum, then take differences (a whole month at a monthly rate is the rate)."""
    running = (pl.col("cost").cum_sum() * NANOS).round().cast(pl.Int64)
    return (running - running.shift(1, fill_value=0)).over(_ROUNDING_KEYS)


def tiered_price(line: RateLine, quantity: pl.Expr) -> pl.Expr:
    """Graduated price of ``quantity`` units: each tier's rate on the units within it; NULL for an unknown
    quantity (``min_horizontal`` would read it as the tier's whole width)."""
    total: pl.Expr = pl.lit(0.0)
    lower = Decimal(0)
    for tier in line.tiers:
        units = quantity - float(lower)
        if tier.up_to is not None:
            units = units.clip(upper_bound=float(tier.up_to - lower))
            lower = tier.up_to
        total = total + units.clip(lower_bound=0.0) * float(tier.rate)
    return total


def chosen_lines(hours: pl.DataFrame, card: RateCard) -> pl.DataFrame:
    """Per (resource_id, ts) the line index chosen for each measure, most specific first; ambiguity is an error.

    The choice depends only on a VM-hour's (manager, project, tags) and on which lines are in effect, so it is
    made once per such combination and effective epoch (the spans between the lines' effective dates), then
    handed to the hours.
    """
    combos = hours.select("manager", "project", "tags").unique(maintain_order=True).with_row_index("combo")
    edges = sorted({e for line in card.lines for e in (line.effective_from, line.effective_to) if e is not None})
    starts = [datetime.min.replace(tzinfo=UTC), *edges]
    choices = []
    for combo, manager, project, tags in combos.iter_rows():
        tag_map = json.loads(tags) if tags else {}
        matching = [i for i, line in enumerate(card.lines) if line.matches(manager, project, tag_map)]
        for epoch, begins in enumerate(starts):
            best: dict[str, list[int]] = {}
            for i in matching:
                line = card.lines[i]
                if line.effective_from <= begins and (line.effective_to is None or begins < line.effective_to):
                    top = best.setdefault(line.measure, [i])
                    if line.specificity > card.lines[top[0]].specificity:
                        best[line.measure] = [i]
                    elif i != top[0] and line.specificity == card.lines[top[0]].specificity:
                        top.append(i)
            choices += [(combo, epoch, chosen) for chosen in itertools.chain(*best.values())]
    table = pl.DataFrame(choices, schema={"combo": pl.UInt32, "epoch": pl.UInt32, "line_index": pl.Int32}, orient="row")
    edges_us = pl.Series(edges, dtype=pl.Datetime("us", "UTC")).dt.epoch("us").to_numpy()
    hour_epochs = np.searchsorted(edges_us, hours["ts"].dt.epoch("us").to_numpy(), side="right")
    candidates = (
        hours.select("resource_id", "ts", "manager", "project", "tags")
        .with_columns(pl.Series("epoch", hour_epochs, dtype=pl.UInt32))
        .join(combos, on=["manager", "project", "tags"], how="left", nulls_equal=True)
        .join(table, on=["combo", "epoch"], how="inner")
        .select("resource_id", "ts", "line_index")
        .unique(maintain_order=True)
    )
    measure = pl.col("line_index").replace_strict(
        dict(enumerate(line.measure for line in card.lines)), return_dtype=pl.String
    )
    clash = candidates.filter(pl.len().over("resource_id", "ts", measure) > 1)
    if clash.height:
        first = clash.sort("resource_id", "ts", "line_index").head(2)
        a, b = (card.lines[i] for i in first["line_index"])
        raise ConfigError(
            f"{card.source}: rate lines {a.name!r} and {b.name!r} both price {a.measure} for resource "
            f"{first['resource_id'][0]} at {first['ts'][0]:%Y-%m-%d %H:%M}Z with equally specific selectors; "
            "make one more specific (add project or tags) or end one with effective_to"
        )
    return candidates


def charges(conn: psycopg.Connection, window: Window, card: RateCard, tz: str = "UTC") -> pl.DataFrame:
    """Priced charges per local day of ``tz``, VM, rate line and component (``variable`` or ``fixed``).

    Columns: day (local date), resource_id, ems_ref, name, manager, project, cluster, tags, line, version,
    measure, component, unit, per_time, unit_price, quantity (unit-hours, or GB for GB transferred),
    pricing_quantity (in the line's per_time units), unknown_hours, cost_nanos.
    """
    check_zone(tz)
    chunks = [_charges(hours, card, tz) for hours in vm_hour_chunks(conn, window)]  # VM by VM: exact in chunks
    return pl.concat(chunks, how="vertical").sort("day", "resource_id", "line", "component")


def _charges(hours: pl.DataFrame, card: RateCard, tz: str) -> pl.DataFrame:
    """``charges`` of some VMs' hours (``usage.vm_hours``)."""
    priced = hours.join(chosen_lines(hours, card), on=["resource_id", "ts"]).partition_by(
        "line_index", as_dict=True, include_key=False
    )
    parts = []
    for index, line in enumerate(card.lines):
        rows = priced.get((index,))
        if rows is None:
            continue
        fraction = pl.col("seconds") / 3600.0
        per_period = period_hours(pl.col("ts"), line.per_time, tz)
        quantity = _QUANTITY[line.measure]
        volume = MEASURES[line.measure].volume
        variable = tiered_price(line, quantity) * (1.0 if volume else fraction / per_period)
        common = [
            pl.col("ts").dt.convert_time_zone(tz).dt.date().alias("day"),
            *(pl.col(c) for c in _ATOM_KEYS[1:8]),
            pl.lit(line.name).alias("line"),
            pl.lit(line.version).alias("version"),
            pl.lit(line.measure).alias("measure"),
        ]
        parts.append(
            rows.select(
                *common,
                pl.lit("variable").alias("component"),
                (quantity * (1.0 if volume else fraction)).alias("quantity"),
                (quantity * (1.0 if volume else fraction / per_period)).alias("pricing_quantity"),
                pl.when(quantity.is_null()).then(fraction).otherwise(0.0).alias("unknown_hours"),
                variable.alias("cost"),
            )
        )
        if line.fixed:
            parts.append(
                rows.select(
                    *common,
                    pl.lit("fixed").alias("component"),
                    fraction.alias("quantity"),
                    (fraction / per_period).alias("pricing_quantity"),
                    pl.lit(0.0).alias("unknown_hours"),
                    (fraction / per_period * float(line.fixed)).alias("cost"),
                )
            )
    if not parts:
        return _empty_charges()
    meta = pl.DataFrame(
        {
            "line": [line.name for line in card.lines],
            "version": [line.version for line in card.lines],
            "unit": [MEASURES[line.measure].unit for line in card.lines],
            "per_time": [line.per_time for line in card.lines],
            "unit_price": [str(line.unit_price) if line.unit_price is not None else None for line in card.lines],
            "fixed_price": [str(line.fixed) for line in card.lines],
        }
    )
    atoms = (
        pl.concat(parts)
        .group_by(_ATOM_KEYS)
        .agg(
            pl.col("quantity").sum(),
            pl.col("pricing_quantity").sum(),
            pl.col("unknown_hours").sum(),
            pl.col("cost").sum(),
        )
        .join(meta, on=["line", "version"], how="left")
        .sort(*_ROUNDING_ORDER)
        .with_columns(
            _rounded_nanos().alias("cost_nanos"),
            pl.when(pl.col("component") == "fixed")
            .then(pl.col("fixed_price"))
            .otherwise(pl.col("unit_price"))
            .alias("unit_price"),
            pl.when(pl.col("component") == "fixed").then(pl.lit("resource")).otherwise(pl.col("unit")).alias("unit"),
        )
    )
    return atoms.select(
        *_ATOM_KEYS, "unit", "per_time", "unit_price", "quantity", "pricing_quantity", "unknown_hours", "cost_nanos"
    )


def _empty_charges() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "day": pl.Date,
            "resource_id": pl.Int32,
            "ems_ref": pl.String,
            "name": pl.String,
            "manager": pl.String,
            "project": pl.String,
            "cluster": pl.String,
            "tags": pl.String,
            "line": pl.String,
            "version": pl.String,
            "measure": pl.String,
            "component": pl.String,
            "unit": pl.String,
            "per_time": pl.String,
            "unit_price": pl.String,
            "quantity": pl.Float64,
            "pricing_quantity": pl.Float64,
            "unknown_hours": pl.Float64,
            "cost_nanos": pl.Int64,
        }
    )


def group_columns(group_by: str) -> tuple[str, ...]:
    """The charge columns a grouping keeps; ``tag:KEY`` adds a column ``tag_KEY``."""
    if group_by.startswith("tag:") and len(group_by) > 4:
        return (f"tag_{group_by[4:]}",)
    if group_by not in GROUPINGS:
        raise ConfigError(f"--group-by {group_by!r} is not one of {', '.join(GROUPINGS)} or tag:KEY (e.g. tag:team)")
    return GROUPINGS[group_by]


def _with_tag(frame: pl.DataFrame, group_by: str) -> pl.DataFrame:
    if not group_by.startswith("tag:"):
        return frame
    key = group_by[4:]
    return frame.with_columns(
        pl.col("tags").map_elements(lambda t: json.loads(t).get(key) if t else None, pl.String).alias(f"tag_{key}")
    )


def money(nanos: pl.Series) -> pl.Series:
    """Integer nano-units as exact decimals (scale 9)."""
    return pl.Series(
        nanos.name.removesuffix("_nanos") or "cost",
        [None if n is None else Decimal(n).scaleb(-9) for n in nanos.to_list()],
        dtype=pl.Decimal(38, 9),
    )


@dataclass(frozen=True)
class Report:
    """A grouped chargeback: its rows, currency and time zone, and the grand total in nano-units."""

    rows: pl.DataFrame
    currency: str
    tz: str
    total_nanos: int


def summarise(charges_: pl.DataFrame, group_by: str, interval: str, tz: str, currency: str) -> Report:
    """Charges grouped by ``group_by`` and local ``interval`` (daily, weekly, monthly) and by rate line:
    group columns, period_start, period_end (UTC instants of local midnights), line, version, measure,
    component, unit, unit_price, quantity, unknown_hours, cost (exact decimal), cost_nanos."""
    if interval not in INTERVALS:
        raise ConfigError(f"--interval {interval!r} is not one of {', '.join(INTERVALS)}")
    columns = group_columns(group_by)
    frame = _with_tag(charges_, group_by)
    midnight = pl.col("day").cast(pl.Datetime("us")).dt.replace_time_zone(tz, non_existent="null")
    start = period_start(midnight.dt.convert_time_zone("UTC"), interval, tz)
    keys = [*columns, "period_start", "line", "version", "measure", "component", "unit", "unit_price"]
    grouped = (
        frame.with_columns(start.alias("period_start"))
        .group_by(keys)
        .agg(pl.col("quantity").sum(), pl.col("unknown_hours").sum(), pl.col("cost_nanos").sum())
        .with_columns(period_end(pl.col("period_start"), interval, tz).alias("period_end"))
        .sort(*columns, "period_start", "line", "component", nulls_last=True)
    )
    grouped = grouped.with_columns(money(grouped["cost_nanos"]))
    ordered = grouped.select(
        *columns,
        "period_start",
        "period_end",
        *keys[len(columns) + 1 :],
        "quantity",
        "unknown_hours",
        "cost",
        "cost_nanos",
    )
    return Report(ordered, currency, tz, int(charges_["cost_nanos"].sum()))
