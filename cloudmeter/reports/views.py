"""Every report as the CLI prints it and the HTTP API serves it: one function per report, typed parameters in,
the frame out. The ``capacity`` and ``chargeback`` commands and ``/api/v1/...`` call these and nothing else, so
each figure has one implementation and both show the same numbers.

Parameters keep the CLI's names and defaults; values the reports refuse raise ``ParameterError`` (a
``ConfigError``: the CLI prints it and exits 2, the API answers 422) naming the parameter.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from cloudmeter.errors import ConfigError
from cloudmeter.model import Window
from cloudmeter.reports.periods import check_zone

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
