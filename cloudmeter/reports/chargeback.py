"""Chargeback: price VM-hours under a rate card, then group the charges.

Every VM-hour placement gets the most specific matching line per measure in effect at that hour. A line's
variable cost for an hour is ``price(quantity) x seconds/3600 / hours in its per_time period`` (``price``
applies graduated tiers to the VM's quantity in that hour; a period is the calendar day, week or month in
the report's time zone, so a monthly rate charged for a whole month is exactly the rate); its fixed cost is
``fixed x seconds/3600 / hours in the period``. GB transferred is priced per GB in each hour. Usage-based
measures in an hour without samples are not charged: they count in ``unknown_hours`` instead (allocation
and fixed charges still apply).

The hours are priced in runs (``reports.segments``): within a run of a VM's hours on one placement, local
day, rate-card epoch and cluster, an allocation line's cost is its price times the run's hours, and a usage
line's is its hour-by-hour prices summed, read from the VM's packed hourly rows (``storage.packs``). Nothing
keyed by a string is grouped before the last step: projects and clusters travel as codes ordered as their names.
Kubernetes nodes' idle capacity (``reports.idle``) is priced the same way, as each node's own rows.

Money is exact: charges are summed per VM, rate line, component, local day and grouping attributes, then
turned into integer nano-units of the currency (``cost_nanos``) by rounding the VM's running total per line,
so any run of days adds up to its own rounded total. Every report sums those integers, so
totals per project, tag, cluster or VM add up to the grand total exactly.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

import numba
import numpy as np
import numpy.typing as npt
import polars as pl
import psycopg

from cloudmeter.errors import ConfigError
from cloudmeter.model import LEAVES, Window
from cloudmeter.reports import idle, placement, segments
from cloudmeter.reports.inputs import GIB, check_hour_window, pods, resources
from cloudmeter.reports.periods import INTERVALS, check_zone, period_end, period_hours, period_start
from cloudmeter.reports.ratecard import MEASURES, PER_TIMES, RateCard, RateLine
from cloudmeter.reports.usage import CHUNK_VMS

NANOS: Final = 10**9
#: Grouping names and the charge columns they keep (``tag:KEY`` groups by one tag's value).
GROUPINGS: Final[dict[str, tuple[str, ...]]] = {
    "vm": ("resource_id", "ems_ref", "name", "manager", "project"),
    "project": ("project",),
    "cluster": ("cluster",),
    "provider": ("manager",),
}
_ATOM_KEYS: Final = ("day", "resource_id", "ems_ref", "name", "manager", "project", "cluster", "tags", "line",
                     "version", "measure", "component")  # fmt: skip


@numba.njit(cache=True)
def _running_nanos(cost: npt.NDArray[np.float64], run: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Nano-units per charge such that every run of charges (``run``: a run's number per charge, in order)
    adds up to its exact rounded total: round the running sum, then take differences (a whole month at a
    monthly rate is the rate)."""
    nanos = np.empty(len(cost), np.int64)
    total = 0.0
    before = np.int64(0)
    for i in range(len(cost)):
        if i == 0 or run[i] != run[i - 1]:
            total, before = 0.0, np.int64(0)
        total += cost[i]
        rounded = np.int64(np.round(total * NANOS))
        nanos[i] = rounded - before
        before = rounded
    return nanos


def _order(*keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The order of rows by ``keys`` (each >= 0, the first most significant; together unique per row, so any
    sort gives the same order): one int64 key when the ranges fit in one, else numpy's lexsort."""
    spans = [int(k.max()) + 1 if len(k) else 1 for k in keys]
    if math.prod(spans) >= 2**62:
        return np.lexsort(keys[::-1]).astype(np.int64)
    combined = np.zeros(len(keys[0]), np.int64)
    for key, span in zip(keys, spans, strict=True):
        combined = combined * span + key
    return np.argsort(combined)


def _epoch_edges(card: RateCard) -> list[datetime]:
    """The instants where the set of lines in effect changes, in order."""
    return sorted({e for line in card.lines for e in (line.effective_from, line.effective_to) if e is not None})


def line_choices(combos: pl.DataFrame, card: RateCard) -> pl.DataFrame:
    """Per row of ``combos`` (manager, project, tags) and effective epoch (a span between the lines' effective
    dates): the index of each line chosen, the most specific per measure (columns combo, epoch, line_index;
    equally specific lines for one measure are all listed: ``_refuse_ties`` reports them)."""
    starts = [datetime.min.replace(tzinfo=UTC), *_epoch_edges(card)]
    choices = []
    for combo, (manager, project, tags) in enumerate(combos.select("manager", "project", "tags").iter_rows()):
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
    return pl.DataFrame(choices, schema={"combo": pl.UInt32, "epoch": pl.UInt32, "line_index": pl.Int32}, orient="row")


def _hour_epochs(card: RateCard, hours_us: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
    edges_us = pl.Series(_epoch_edges(card), dtype=pl.Datetime("us", "UTC")).dt.epoch("us").to_numpy()
    return np.searchsorted(edges_us, hours_us, side="right").astype(np.int32)


def _measure(card: RateCard) -> pl.Expr:
    """The measure of the line at ``line_index``."""
    return pl.col("line_index").replace_strict(
        dict(enumerate(line.measure for line in card.lines)), return_dtype=pl.String
    )


def _refuse_ties(priced: pl.DataFrame, card: RateCard, row: str, when: pl.Expr) -> None:
    """A ConfigError when two lines price one measure of one ``row`` (equally specific selectors)."""
    clash = priced.filter(pl.len().over(row, _measure(card)) > 1)
    if clash.height:
        first = clash.with_columns(when.alias("when")).sort("when", "resource_id", "line_index").head(2)
        a, b = (card.lines[i] for i in first["line_index"])
        raise ConfigError(
            f"{card.source}: rate lines {a.name!r} and {b.name!r} both price {a.measure} for resource "
            f"{first['resource_id'][0]} at {first['when'][0]:%Y-%m-%d %H:%M}Z with equally specific selectors; "
            "make one more specific (add project or tags) or end one with effective_to"
        )


def chosen_lines(hours: pl.DataFrame, card: RateCard) -> pl.DataFrame:
    """Per (resource_id, ts) of ``hours`` (with manager, project, tags) the line index chosen for each measure,
    most specific first; a tie is an error."""
    combos = hours.select("manager", "project", "tags").unique(maintain_order=True).with_row_index("combo")
    epochs = _hour_epochs(card, hours["ts"].dt.epoch("us").to_numpy())
    candidates = (
        hours.select("resource_id", "ts", "manager", "project", "tags")
        .with_columns(pl.Series("epoch", epochs, dtype=pl.UInt32))
        .join(combos, on=["manager", "project", "tags"], how="left", nulls_equal=True)
        .join(line_choices(combos, card), on=["combo", "epoch"], how="inner")
        .select("resource_id", "ts", "line_index")
        .unique(maintain_order=True)
    )
    _refuse_ties(candidates.with_columns(pl.struct("resource_id", "ts").alias("row")), card, "row", pl.col("ts"))
    return candidates


@dataclass(frozen=True)
class _Calendar:
    """The window's hours (their local days and rate-card epochs) and its local days in the report's zone:
    position ``day``, ``date``, and per per_time the hours of the period holding the day."""

    hours: segments.Calendar
    days: pl.DataFrame


def _calendar(window: Window, tz: str, card: RateCard) -> _Calendar:
    count = int((window.end - window.start).total_seconds() // 3600)
    hours_us = placement.epoch_us(window.start) + np.arange(count, dtype=np.int64) * placement.HOUR_US
    ts = pl.Series("ts", hours_us).cast(pl.Datetime("us", "UTC"))
    local = ts.dt.convert_time_zone(tz).dt.date()
    dates, day = np.unique(local.to_physical().to_numpy(), return_inverse=True)
    first_hour = np.searchsorted(day, np.arange(len(dates)))
    days = pl.DataFrame({"ts": ts.gather(first_hour), "date": local.gather(first_hour)}).select(
        pl.Series("day", np.arange(len(dates)), dtype=pl.Int32),
        "date",
        *(period_hours(pl.col("ts"), per_time, tz).cast(pl.Float64).alias(per_time) for per_time in PER_TIMES),
    )
    return _Calendar(segments.Calendar(window, day.astype(np.int32), _hour_epochs(card, hours_us)), days)


def charges(conn: psycopg.Connection, window: Window, card: RateCard, tz: str = "UTC") -> pl.DataFrame:
    """Priced charges per local day of ``tz``, VM, rate line and component (``variable`` or ``fixed``).

    Columns: day (local date), resource_id, ems_ref, name, manager, project, cluster, tags, line, version,
    measure, component, unit, per_time, unit_price, quantity (unit-hours, or GB for GB transferred),
    pricing_quantity (in the line's per_time units), unknown_hours, cost_nanos.
    """
    check_zone(tz)
    check_hour_window(window)
    info = resources(conn)
    periods = placement.read_periods(conn, window, ("host", *LEAVES))
    places = segments.Places.read(info, periods.filter(pl.col("kind") == "host"), window)
    calendar = _calendar(window, tz, card)
    usage_lines = {i: line for i, line in enumerate(card.lines) if MEASURES[line.measure].basis == "used"}
    nodes = idle.nodes(info)
    names = _Names.of(info, nodes)
    vm_periods = segments.leaf_periods(periods, info)
    ids = vm_periods["resource_id"].unique().sort().to_list()
    chunks = [  # VM by VM: bounded memory, exact in chunks
        vm_periods.filter(pl.col("resource_id").is_in(ids[first : first + CHUNK_VMS]))
        for first in range(0, len(ids), CHUNK_VMS)
    ]
    load = idle.NodeLoad.of(info, nodes["id"], periods, window)
    pieces = []  # a few segments per VM and day: all of them fit where the VMs' hours would not
    for chunk, usage in zip(chunks, segments.usage_grids(conn, window, chunks), strict=True):
        pieces.append(segments.vm_segments(calendar.hours, chunk, usage, places, usage_lines))
        load.add(chunk, usage, window)
    if load.ids.size:  # Kubernetes nodes' idle capacity, priced as their own rows
        pieces.append(segments.vm_segments(calendar.hours, load.idle_periods(), load.idle_usage(), places, usage_lines))
    atoms = _atoms(pl.concat(pieces, how="vertical"), card, calendar, names) if pieces else _empty_atoms()
    return names.attach(atoms, calendar, card)


@dataclass(frozen=True)
class _Names:
    """VMs' and containers' own columns (a container named ``pod/container``, tagged with its pod's labels), and
    codes for project and cluster names (in the names' order)."""

    vms: pl.DataFrame  # resource_id, ems_ref, name, manager, tags, disk_gb
    ids: dict[str, pl.DataFrame]  # project / cluster: <kind>_id -> <kind>_code
    codes: dict[str, pl.DataFrame]  # project / cluster: <kind>_code -> name

    @classmethod
    def of(cls, info: pl.DataFrame, nodes: pl.DataFrame) -> _Names:
        """From ``inputs.resources`` and the Kubernetes nodes among them (``idle.nodes``), whose idle capacity is
        charged as ``__idle__/<node>`` in project ``__idle__``."""
        container = pl.col("kind") == "container"
        node = pl.col("id").is_in(nodes["id"].implode())
        vms = (
            info.filter(pl.col("kind").is_in(LEAVES) | node)
            .join(pods(info), on="parent_id", how="left")
            .select(
                pl.col("id").alias("resource_id"),
                "ems_ref",
                pl.when(container)
                .then(pl.concat_str("pod", "name", separator="/"))
                .when(node)
                .then(pl.concat_str(pl.lit(idle.IDLE_PROJECT), "name", separator="/"))
                .otherwise("name")
                .alias("name"),
                "manager",
                pl.when(container).then("pod_tags").when(~node).then("tags").alias("tags"),  # a pod's labels
                (pl.col("disk_bytes") / GIB).alias("disk_gb"),
            )
        )
        idle_project = pl.DataFrame({"id": [idle.IDLE_PROJECT_ID], "name": [idle.IDLE_PROJECT]})
        ids, codes = {}, {}
        for kind in ("project", "cluster"):
            own = info.filter(pl.col("kind") == kind).select("id", "name")
            if kind == "project" and nodes.height:
                own = pl.concat([own, idle_project.cast(own.schema)])
            named = own["name"].unique().sort()
            code = pl.DataFrame({kind: named, f"{kind}_code": pl.int_range(len(named), eager=True, dtype=pl.Int32)})
            ids[kind] = own.join(code.rename({kind: "name"}), on="name").select(
                pl.col("id").alias(f"{kind}_id"), f"{kind}_code"
            )
            codes[kind] = code
        return cls(vms, ids, codes)

    def attach(self, atoms: pl.DataFrame, calendar: _Calendar, card: RateCard) -> pl.DataFrame:
        """The charges' columns for ``atoms`` (codes and positions), rounded to nano-units VM by VM and line
        (in the order of the names the codes stand for)."""
        lines = pl.DataFrame(
            {
                "line_index": pl.Series(range(len(card.lines)), dtype=pl.Int32),
                "line": [line.name for line in card.lines],
                "version": [line.version for line in card.lines],
                "measure": [line.measure for line in card.lines],
                "per_time": [line.per_time for line in card.lines],
                "unit": [MEASURES[line.measure].unit for line in card.lines],
                "unit_price": [str(line.unit_price) if line.unit_price is not None else None for line in card.lines],
                "fixed_price": [str(line.fixed) for line in card.lines],
            }
        ).with_columns(pl.struct("line", "version").rank("dense").cast(pl.Int32).alias("line_rank"))
        fixed = pl.col("component") == "fixed"
        rounded = _rounded(atoms, lines["line_rank"].to_numpy().astype(np.int64))
        return (
            rounded.join(
                calendar.days.select("day", pl.col("date").alias("local_day")),
                on="day",
                how="left",
                maintain_order="left",
            )
            .join(self.vms.drop("disk_gb"), on="resource_id", how="left", maintain_order="left")
            .join(self.codes["project"], on="project_code", how="left", maintain_order="left")
            .join(self.codes["cluster"], on="cluster_code", how="left", maintain_order="left")
            .join(lines.drop("line_rank"), on="line_index", how="left", maintain_order="left")
            .with_columns(
                pl.col("component_code").replace_strict(COMPONENTS, return_dtype=pl.String).alias("component"),
                pl.col("local_day").alias("day"),
            )
            .with_columns(
                pl.when(fixed).then(pl.col("fixed_price")).otherwise(pl.col("unit_price")).alias("unit_price"),
                pl.when(fixed).then(pl.lit("resource")).otherwise(pl.col("unit")).alias("unit"),
            )
            .select(*_ATOM_KEYS, *_PRICED)
        )


_PRICED: Final = ("unit", "per_time", "unit_price", "quantity", "pricing_quantity", "unknown_hours", "cost_nanos")
#: Components by code, in the order of their names.
COMPONENTS: Final = {0: "fixed", 1: "variable"}


def _rounded(atoms: pl.DataFrame, line_rank: npt.NDArray[np.int64]) -> pl.DataFrame:
    """``atoms`` with ``cost_nanos`` (each VM's charges of one line and component rounded as a running total, in
    the order of day, project and cluster names), in the order of day, VM, line (name, version), component,
    project and cluster."""
    resource = atoms["resource_id"].to_numpy().astype(np.int64)
    vm = resource - (resource.min() if len(resource) else 0)  # orders as the VMs' ranks would, without their sort
    rank = line_rank[atoms["line_index"].to_numpy()] - 1
    component, day = atoms["component_code"].to_numpy().astype(np.int64), atoms["day"].to_numpy().astype(np.int64)
    project = atoms["project_code"].to_numpy().astype(np.int64) + 1  # -1 (none) first, as a NULL name sorts
    cluster = atoms["cluster_code"].to_numpy().astype(np.int64) + 1
    by_run = _order(vm, rank, component, day, project, cluster)
    run = ((vm * (int(rank.max(initial=0)) + 1) + rank) * 2 + component)[by_run]
    nanos = np.empty(len(by_run), np.int64)
    nanos[by_run] = _running_nanos(atoms["cost"].to_numpy()[by_run], run)
    by_day = day[by_run]
    small = len(by_day) > 0 and by_day.max() < 2**15  # numpy's stable sort is a radix sort on 16 bits
    shown = by_run[np.argsort(by_day.astype(np.int16) if small else by_day, kind="stable")]  # then as by_run
    return atoms.with_columns(pl.Series("cost_nanos", nanos))[shown]


_ATOM_GROUP: Final = ("day", "resource_id", "project_code", "cluster_code", "line_index", "component_code")
_ATOM_SCHEMA: Final = {
    "day": pl.Int32,
    "resource_id": pl.Int32,
    "project_code": pl.Int32,
    "cluster_code": pl.Int32,
    "line_index": pl.Int32,
    "component_code": pl.Int8,
    "quantity": pl.Float64,
    "pricing_quantity": pl.Float64,
    "unknown_hours": pl.Float64,
    "cost": pl.Float64,
}


def _empty_atoms() -> pl.DataFrame:
    return pl.DataFrame(schema=_ATOM_SCHEMA)


#: An allocation measure's level in a segment (constant within it).
_ALLOCATED: Final[dict[str, pl.Expr]] = {
    "vcpu_allocated": pl.col("vcpus").cast(pl.Float64),
    "memory_gb_allocated": pl.col("memory_bytes") / GIB,
    "disk_gb_allocated": pl.col("disk_gb"),
    "cpu_request_cores": pl.col("cpu_request_cores").fill_null(0.0),  # a container without a request asks for 0
    "memory_request_gb": pl.col("memory_request_gb").fill_null(0.0),
}


def _components(rows: pl.DataFrame, index: int, line: RateLine) -> list[tuple[int, tuple[pl.Expr, ...]]]:
    """A line's components on its segments: (``COMPONENTS`` code, (quantity, pricing_quantity, unknown_hours,
    cost))."""
    hours, per_period = pl.col("hours"), pl.col(line.per_time)
    measure = MEASURES[line.measure]
    if measure.basis == "allocated":
        level = _ALLOCATED[line.measure]
        price = pl.Series(line.price(rows.select(level)[:, 0].to_numpy().astype(np.float64)), nan_to_null=True)
        unknown = pl.when(level.is_null()).then(hours).otherwise(0.0)
        variable = (level * hours, level * hours / per_period, unknown, pl.lit(price) * hours / per_period)
    else:
        summed, charged = pl.col(line.measure), pl.col(f"price_{index}")
        spread = pl.lit(1.0) if measure.volume else per_period
        variable = (summed, summed / spread, pl.col(f"{line.measure}_unknown"), charged / spread)
    components: list[tuple[int, tuple[pl.Expr, ...]]] = [(1, variable)]
    if line.fixed:
        fixed = (hours, hours / per_period, pl.lit(0.0), hours / per_period * float(line.fixed))
        components.append((0, fixed))
    return components


def _atoms(pieces: pl.DataFrame, card: RateCard, calendar: _Calendar, names: _Names) -> pl.DataFrame:
    """Some VMs' charges per local day, VM, project, cluster, line and component (as codes and positions)."""
    keyed = (
        pieces.with_row_index("segment")
        .join(names.vms.select("resource_id", "manager", "tags", "disk_gb"), on="resource_id", how="left")
        .join(names.ids["project"], on="project_id", how="left")
        .join(names.ids["cluster"], on="cluster_id", how="left")
        .join(names.codes["project"], on="project_code", how="left")
        .with_columns(pl.col("project_code", "cluster_code").fill_null(-1), pl.col("epoch").cast(pl.UInt32))
    )
    combos = keyed.select("manager", "project", "tags").unique(maintain_order=True).with_row_index("combo")
    choices = line_choices(combos, card)
    priced = (
        keyed.join(combos, on=["manager", "project", "tags"], how="left", nulls_equal=True)
        .join(choices, on=["combo", "epoch"], how="inner")
        .join(calendar.days, on="day", how="left")
    )
    if choices.filter(pl.len().over("combo", "epoch", _measure(card)) > 1).height:  # a segment has one of each
        start = pl.lit(calendar.hours.window.start)
        _refuse_ties(priced, card, "segment", start + pl.duration(hours=pl.col("first_hour")))
    parts = [_empty_atoms()]
    for (index,), of_line in priced.partition_by("line_index", as_dict=True).items():
        line = card.lines[int(index)]
        rows = of_line.filter(pl.col("kind").is_in(MEASURES[line.measure].kinds))  # VMs, containers or both
        for component, (quantity, pricing, unknown, cost) in _components(rows, int(index), line):
            parts.append(
                rows.select(
                    *_ATOM_GROUP[:5],
                    pl.lit(component).alias("component_code"),
                    quantity.alias("quantity"),
                    pricing.alias("pricing_quantity"),
                    unknown.alias("unknown_hours"),
                    cost.alias("cost"),
                ).cast(_ATOM_SCHEMA)  # type: ignore[arg-type]
            )
    return (
        pl.concat(parts, how="vertical")
        .group_by(_ATOM_GROUP)
        .agg(pl.col("quantity", "pricing_quantity", "unknown_hours", "cost").sum())
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
