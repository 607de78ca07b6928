"""Calendar periods in a time zone: a day, ISO week (from Monday) or month starts at local midnight, so a
month in Europe/Berlin starts at 23:00 or 22:00 UTC and its DST days have 23 or 25 hours."""

from __future__ import annotations

from typing import Final, Literal

import polars as pl

from cloudmeter.errors import ConfigError
from cloudmeter.model import is_time_zone

Interval = Literal["daily", "weekly", "monthly"]
INTERVALS: Final[tuple[str, ...]] = ("daily", "weekly", "monthly")
_OFFSET: Final = {"hourly": "1h", "daily": "1d", "weekly": "1w", "monthly": "1mo"}


def check_zone(tz: str) -> str:
    """``tz`` if it is an IANA time zone, else a ConfigError saying so."""
    if not is_time_zone(tz):
        raise ConfigError(f"time zone {tz!r} is not an IANA name; use e.g. UTC or Europe/Berlin")
    return tz


def period_start(ts: pl.Expr, unit: str, tz: str) -> pl.Expr:
    """The start (a UTC instant) of the local ``unit`` (hourly, daily, weekly, monthly) holding each UTC ``ts``."""
    if unit == "hourly":
        return ts
    day = ts.dt.convert_time_zone(tz).dt.date()
    if unit == "weekly":
        day = day - pl.duration(days=day.dt.weekday() - 1)
    elif unit == "monthly":
        day = day.dt.month_start()
    midnight = day.cast(pl.Datetime("us")).dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
    return midnight.dt.convert_time_zone("UTC")


def period_end(start: pl.Expr, unit: str, tz: str) -> pl.Expr:
    """The end of the local period beginning at UTC instant ``start`` (calendar-aware in ``tz``)."""
    return start.dt.convert_time_zone(tz).dt.offset_by(_OFFSET[unit]).dt.convert_time_zone("UTC")


def period_hours(ts: pl.Expr, unit: str, tz: str) -> pl.Expr:
    """Hours in the local ``unit`` period holding each UTC ``ts``: 1, 23-25 for a day, 743-745 for a month..."""
    if unit == "hourly":
        return pl.lit(1.0)
    start = period_start(ts, unit, tz)
    return (period_end(start, unit, tz) - start).dt.total_seconds() / 3600.0
