"""Every report as the CLI prints it and the HTTP API serves it: one function per report, typed parameters in,
the frame out. The ``capacity`` and ``chargeback`` commands and ``/api/v1/...`` call these and nothing else, so
each figure has one implementation and both show the same numbers.

Parameters keep the CLI's names and defaults; values the reports refuse raise ``ParameterError`` (a
``ConfigError``: the CLI prints it and exits 2, the API answers 422) naming the parameter.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Literal
from zoneinfo import ZoneInfo

import polars as pl
import psycopg

from cloudmeter.errors import ConfigError
from cloudmeter.model import KINDS, Window
from cloudmeter.reports import (
    capacity,
    chargeback,
    export,
    focus,
    forecast,
    headroom,
    measured,
    requests,
    rightsize,
)
from cloudmeter.reports.inputs import regions
from cloudmeter.reports.periods import check_zone
from cloudmeter.reports.ratecard import RateCard, load_rate_card, sample_rate_card
from cloudmeter.storage.readers import read_rollups

#: Times the reports and commands accept, and the longest window one reads (ten years).
EARLIEST_YEAR, LATEST_YEAR, MAX_WINDOW_DAYS = 1970, 2200, 3660


class ParameterError(ConfigError):
    """A parameter's value is refused; ``parameter`` is its name in the API (``from``, ``memory_gb``)."""

    def __init__(self, message: str, parameter: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@contextmanager
def parameter(name: str) -> Iterator[None]:
    """A ConfigError raised inside is about parameter ``name``: re-raised as its ParameterError."""
    try:
        yield
    except ParameterError:
        raise
    except ConfigError as exc:
        raise ParameterError(str(exc), name) from None


def parse_time(value: str | None, name: str, tz: str = "UTC") -> datetime | None:
    """The ISO 8601 date or time of option ``name`` (``--from``; in ``tz`` when it names no offset), or a
    ParameterError saying what to write."""
    if value is None:
        return None
    key = name.removeprefix("--").replace("-", "_")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ParameterError(
            f"{name} {value!r} is not an ISO 8601 date or time; use e.g. 2026-11-01 or 2026-11-01T06:00Z", key
        ) from None
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise ParameterError(
            f"{name} {value!r} is out of range; give a time between {EARLIEST_YEAR} and {LATEST_YEAR}", key
        )
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(tz))


def window_between(start: datetime, end: datetime, first: str, last: str, fix: str = "swap them") -> Window:
    """The window from option ``first``'s ``start`` to option ``last``'s ``end``, or a ParameterError (about
    ``last``) when it is empty or longer than ``MAX_WINDOW_DAYS`` (a report of centuries would run for hours)."""
    key = last.removeprefix("--").replace("-", "_")
    if end <= start:
        raise ParameterError(f"{last} {end.isoformat()} is not after {first} {start.isoformat()}; {fix}", key)
    if end - start > timedelta(days=MAX_WINDOW_DAYS):
        raise ParameterError(f"{first} to {last} spans more than {MAX_WINDOW_DAYS} days; give a shorter window", key)
    return Window(start, end)


def last_whole_hour() -> datetime:
    """Now, down to the hour: where a report's window ends by default."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


DEFAULT_TZ: Final = "UTC"


def report_window(start: str | None, end: str | None, days: int, tz: str = DEFAULT_TZ) -> Window:
    """--from/--to (dates at local midnight in ``tz``), or the ``days`` before --to (default: the last whole hour)."""
    with parameter("tz"):
        check_zone(tz)
    stop = parse_time(end, "--to", tz) or last_whole_hour()
    begin = parse_time(start, "--from", tz) or stop - timedelta(days=days)
    return window_between(begin, stop, "--from", "--to", "swap them or widen the window")


# --- what every report returns -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """A report as the CLI prints it: its rows (columns in the printed order), the window it read, its title, for
    costs the currency and the grand total in nano-units (None when there is nothing to total), and the notes a
    table prints under it beside the coverage notes every report gets."""

    frame: pl.DataFrame
    window: Window
    title: str
    currency: str | None = None
    total_nanos: int | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Period:
    """The window options of every report: ``--from``/``--to`` (dates are local midnight in ``tz``), else the
    ``days`` before ``--to`` (default: the last whole hour)."""

    start: str | None = None
    end: str | None = None
    days: int = 7
    tz: str = DEFAULT_TZ

    def window(self) -> Window:
        return report_window(self.start, self.end, self.days, self.tz)


def leading(frame: pl.DataFrame, first: tuple[str, ...] | list[str]) -> pl.DataFrame:
    """``frame`` with its first column, then ``first`` (those it has), then the rest in its order."""
    front = [frame.columns[0], *(c for c in first if c in frame.columns and c != frame.columns[0])]
    return frame.select(*front, pl.exclude(front))


def rate_card(path: Path | None) -> RateCard:
    """The rate card at ``path``, or the packaged sample card."""
    with parameter("rates"):
        return load_rate_card(path) if path else sample_rate_card()


# --- capacity ----------------------------------------------------------------------------------------------------

#: Columns a report shows first (the rest follow in the report's order).
UTILIZATION_FIRST: Final = ("coverage_pct", "cpu_pct_avg", "cpu_pct_p95", "cpu_pct_peak", "mem_pct_avg", "mem_pct_p95")
FORECAST_FIRST: Final = (
    "resource", "method", "status", "exhaustion_date", "days_to_exhaustion", "extrapolation", "days_of_data",
)  # fmt: skip
HEADROOM_FIRST: Final = ("cluster", "fit", "limited_by", "coverage_pct", "hosts", "hosts_without_data")


UTILIZATION_VIEWS: Final = ("vms", "host_measured")


@dataclass(frozen=True)
class Utilization:
    """``capacity utilization``: per host, cluster or provider; ``view`` ``vms`` (the sum of the VMs) or
    ``host_measured`` (hosts' own measurement beside it, per host or cluster; ``raw_days`` is the configured
    raw retention it is bound by)."""

    level: str = "cluster"
    period: Period = Period(days=7)
    view: str = "vms"
    raw_days: int = 14

    def check(self) -> capacity.Level:
        with parameter("level"):
            level = capacity.check_level(self.level)
        if self.view not in UTILIZATION_VIEWS:
            raise ParameterError(f"--view {self.view!r} is not one of {', '.join(UTILIZATION_VIEWS)}", "view")
        if self.view == "host_measured":
            with parameter("level"):
                return measured.check_level(level)
        return level


def utilization(conn: psycopg.Connection, params: Utilization) -> Shown:
    """Avg, p95 and peak CPU/memory/disk/network, coverage, allocation against capacity, per ``params.level``;
    or, in view ``host_measured``, the hosts' own measurement, the VMs' sum and the overhead between them."""
    window, level = params.period.window(), params.check()
    if params.view == "host_measured":
        frame = measured.host_measured(conn, window, level).drop("resource_id")
        title = f"utilization per {level}, measured by the hosts, {window}"
        return Shown(frame, window, title, notes=tuple(measured.notes(frame, window, level, params.raw_days)))
    frame = capacity.utilization(conn, window, level).drop("resource_id")
    return Shown(leading(frame, UTILIZATION_FIRST), window, f"utilization per {level}, {window}")


@dataclass(frozen=True)
class Headroom:
    """``capacity headroom``: the flavor to place and the limits."""

    vcpus: float
    memory_gb: float
    cpu_usage_pct: float = 90.0
    mem_usage_pct: float = 90.0
    cpu_allocation_ratio: float = 4.0
    mem_allocation_ratio: float = 1.0
    period: Period = Period(days=14)

    def check(self) -> tuple[headroom.Flavor, headroom.Limits]:
        with parameter("vcpus" if self.vcpus <= 0 else "memory_gb"):
            flavor = headroom.Flavor(self.vcpus, self.memory_gb)
        limits = headroom.Limits(
            self.cpu_usage_pct, self.mem_usage_pct, self.cpu_allocation_ratio, self.mem_allocation_ratio
        )
        return flavor, limits


def headroom_report(conn: psycopg.Connection, params: Headroom) -> Shown:
    """How many more VMs of the flavor fit per cluster."""
    window = params.period.window()
    flavor, limits = params.check()
    frame = headroom.headroom(conn, window, flavor, limits)
    title = f"headroom for {params.vcpus:g} vCPU / {params.memory_gb:g} GB, {window}"
    return Shown(leading(frame, HEADROOM_FIRST), window, title)


@dataclass(frozen=True)
class Forecast:
    """``capacity forecast``: exhaustion at ``limit`` % of capacity."""

    limit: float = 90.0
    period: Period = Period(days=28)


def forecast_report(conn: psycopg.Connection, params: Forecast) -> Shown:
    """Days until each cluster's CPU and memory reach the limit."""
    window = params.period.window()
    frame = forecast.forecast(conn, window, params.limit, params.period.tz)
    return Shown(leading(frame, FORECAST_FIRST), window, f"forecast to {params.limit:g}% of capacity, {window}")


#: What ``capacity rightsize`` sizes: VMs (vCPUs and memory) or Kubernetes containers (their requests).
RIGHTSIZE_LEVELS: Final = ("vm", "container")


@dataclass(frozen=True)
class Rightsize:
    """``capacity rightsize``: the sizing policy and the rate card (a path; None: the sample card)."""

    percentile: float = 95.0
    headroom: float = 20.0
    idle_cpu_pct: float = 5.0
    rates: Path | None = None
    period: Period = Period(days=14)
    level: str = "vm"

    def check(self) -> rightsize.Policy:
        if self.level not in RIGHTSIZE_LEVELS:
            raise ParameterError(f"level {self.level!r} is not one of {', '.join(RIGHTSIZE_LEVELS)}", "level")
        return rightsize.Policy(self.percentile, self.headroom, self.idle_cpu_pct)


def rightsize_report(conn: psycopg.Connection, params: Rightsize, card: RateCard | None = None) -> Shown:
    """Recommended vCPUs and memory per VM, idle VMs, and the monthly cost change (``card``: loaded already); or
    recommended requests per Kubernetes container and what the change costs."""
    window = params.period.window()
    policy = params.check()
    card = card or rate_card(params.rates)
    sizing = f"(p{params.percentile:g} + {params.headroom:g}%), costs in {card.currency}, {window}"
    if params.level == "container":
        frame = requests.rightsize_containers(conn, window, card, policy).drop("resource_id")
        none = ("no Kubernetes containers in this window: they come from a manager of kind kubernetes",)
        return Shown(frame, window, f"container requests {sizing}", card.currency, notes=() if frame.height else none)
    frame = rightsize.rightsize(conn, window, card, policy).drop("resource_id")
    return Shown(leading(frame, []), window, f"right-sizing {sizing}", card.currency)


# --- chargeback --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chargeback:
    """``chargeback show`` (defaults: per project and month) and ``chargeback export`` (per VM and day)."""

    group_by: str = "project"
    interval: str = "monthly"
    rates: Path | None = None
    period: Period = Period(days=7)

    def check(self) -> tuple[str, ...]:
        return chargeback.group_columns(self.group_by)


def _costs(conn: psycopg.Connection, params: Chargeback, window: Window, card: RateCard) -> pl.DataFrame:
    return chargeback.charges(conn, window, card, params.period.tz)


def chargeback_report(conn: psycopg.Connection, params: Chargeback, card: RateCard | None = None) -> Shown:
    """Costs per group, period and rate line (``cost`` exact), with the grand total."""
    window = params.period.window()
    params.check()
    card = card or rate_card(params.rates)
    costs = _costs(conn, params, window, card)
    report = chargeback.summarise(costs, params.group_by, params.interval, params.period.tz, card.currency)
    rows = report.rows.drop("cost_nanos")
    first = [
        *chargeback.group_columns(params.group_by),
        "period_start",
        "line",
        "component",
        "cost",
        "quantity",
        "unit",
    ]
    title = f"chargeback per {params.group_by}, {card.currency}, {window}"
    total = report.total_nanos if rows.height else None
    return Shown(rows.select(*first, pl.exclude(first)), window, title, card.currency, total)


def chargeback_export(conn: psycopg.Connection, params: Chargeback, fmt: str, card: RateCard | None = None) -> Shown:
    """The rows ``chargeback export --format fmt`` writes: FOCUS 1.2 rows, or the summarised costs with
    ``cost_nanos``; the total is of every charge."""
    window = params.period.window()
    export.check_format(fmt)
    params.check()
    card = card or rate_card(params.rates)
    costs = _costs(conn, params, window, card)
    if fmt == "focus":
        frame = focus.focus_rows(costs, card.currency, params.period.tz, regions(conn), params.interval)
    else:
        frame = chargeback.summarise(costs, params.group_by, params.interval, params.period.tz, card.currency).rows
    total = int(costs["cost_nanos"].sum()) if costs.height else None
    return Shown(frame, window, f"chargeback export ({fmt}), {card.currency}, {window}", card.currency, total)


# --- rollups -----------------------------------------------------------------------------------------------------

Interval = Literal["hourly", "daily"]
ROLLUP_LEVELS: Final = tuple(k for k in KINDS if k != "project")
MAX_PAGE: Final = 10_000


@dataclass(frozen=True)
class Rollups:
    """Hourly or daily rollup rows of one resource (``resource_id``, or ``manager`` and ``ems_ref``) or of every
    resource of a ``level`` (of one ``manager``, or all), a page of ``limit`` after ``cursor``."""

    interval: Interval = "hourly"
    resource_id: int | None = None
    manager: str | None = None
    ems_ref: str | None = None
    level: str | None = None
    period: Period = Period(days=7)
    limit: int = 1000
    cursor: str | None = None


@dataclass(frozen=True)
class Page:
    """One page of rows, and the cursor of the next (None on the last page)."""

    frame: pl.DataFrame
    window: Window
    next_cursor: str | None = field(default=None)


def encode_cursor(resource_id: int, ts: datetime) -> str:
    """An opaque cursor: the last row's (resource_id, ts)."""
    micros = int(ts.timestamp() * 1_000_000) if ts.tzinfo else int(ts.replace(tzinfo=UTC).timestamp() * 1_000_000)
    return base64.urlsafe_b64encode(f"{resource_id}:{micros}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, datetime]:
    """The (resource_id, ts) a cursor names, or a ParameterError."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        rid, micros = text.split(":")
        return int(rid), datetime.fromtimestamp(int(micros) / 1_000_000, UTC)
    except (ValueError, UnicodeDecodeError, binascii.Error, OverflowError, OSError):
        raise ParameterError(
            f"cursor {cursor[:40]!r} is not one this server gave; use the `next` link of the previous page", "cursor"
        ) from None


def _selected(conn: psycopg.Connection, params: Rollups) -> list[int]:
    """The resource ids ``params`` select, or a ParameterError naming what is missing or unknown."""
    chosen = [name for name in ("resource_id", "ems_ref", "level") if getattr(params, name) is not None]
    if len(chosen) != 1:
        raise ParameterError(
            "give one of resource_id, manager and ems_ref, or level (with manager or without)",
            chosen[-1] if chosen else "level",
        )
    if params.resource_id is not None:
        row = conn.execute("SELECT id FROM resources WHERE id = %s", (params.resource_id,)).fetchone()
        if row is None:
            raise ParameterError(f"resource_id {params.resource_id} is not a resource", "resource_id")
        return [params.resource_id]
    manager_id = None
    if params.manager is not None:
        found = conn.execute("SELECT id FROM managers WHERE name = %s", (params.manager,)).fetchone()
        if found is None:
            raise ParameterError(f"manager {params.manager!r} is not a stored manager", "manager")
        manager_id = found[0]
    if params.ems_ref is not None:
        if manager_id is None:
            raise ParameterError("ems_ref needs manager: an ems_ref is unique within its manager", "manager")
        rows = conn.execute(
            "SELECT id FROM resources WHERE manager_id = %s AND ems_ref = %s ORDER BY id", (manager_id, params.ems_ref)
        ).fetchall()
        if not rows:
            raise ParameterError(f"manager {params.manager!r} has no resource {params.ems_ref!r}", "ems_ref")
        return [row[0] for row in rows]
    if params.level not in ROLLUP_LEVELS:
        raise ParameterError(f"level {params.level!r} is not one of {', '.join(ROLLUP_LEVELS)}", "level")
    rows = conn.execute(
        "SELECT id FROM resources WHERE kind = %s AND (%s::int IS NULL OR manager_id = %s) ORDER BY id",
        (params.level, manager_id, manager_id),
    ).fetchall()
    return [row[0] for row in rows]


def rollups(conn: psycopg.Connection, params: Rollups) -> Page:
    """A page of rollup rows (the data contract's columns after ``resource_id``: ``kind``, ``ems_ref``, ``name``),
    sorted by resource and time."""
    window = params.period.window()
    if params.interval not in ("hourly", "daily"):
        raise ParameterError(f"interval {params.interval!r} is not one of hourly, daily", "interval")
    if not 1 <= params.limit <= MAX_PAGE:
        raise ParameterError(f"limit must be between 1 and {MAX_PAGE}, got {params.limit}", "limit")
    after = decode_cursor(params.cursor) if params.cursor else None
    ids = _selected(conn, params)
    frame = read_rollups(conn, params.interval, window, ids, params.period.tz, after, params.limit + 1)
    more = frame.height > params.limit
    frame = frame.head(params.limit)
    names = conn.execute(
        "SELECT id, kind, ems_ref, name FROM resources WHERE id = ANY(%s)", (frame["resource_id"].unique().to_list(),)
    ).fetchall()
    info = pl.DataFrame(
        names,
        schema={"resource_id": pl.Int32, "kind": pl.String, "ems_ref": pl.String, "name": pl.String},
        orient="row",
    )
    frame = frame.join(info, on="resource_id", how="left", maintain_order="left")
    frame = leading(
        frame.select("ts", "resource_id", pl.exclude("ts", "resource_id")), ["resource_id", "kind", "ems_ref", "name"]
    )
    last = frame.row(-1, named=True) if more else None
    return Page(frame, window, encode_cursor(last["resource_id"], last["ts"]) if last else None)
