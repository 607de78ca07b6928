"""What the report commands (``capacity``, ``chargeback``) share: their window and rate card options, the window
they read, the rate card, and a connection to a database that has something to report."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import psycopg
import typer

from cloudmeter.cli.common import fail, handled_errors, open_database, parse_time, read_settings, window_between
from cloudmeter.model import Window
from cloudmeter.reports.periods import check_zone
from cloudmeter.reports.ratecard import RateCard, load_rate_card, sample_rate_card
from cloudmeter.storage import schema

FromOption = Annotated[
    str | None, typer.Option("--from", help="Start date/time (ISO 8601; a date is local midnight in --tz).")
]
ToOption = Annotated[str | None, typer.Option("--to", help="End, exclusive (ISO 8601); default: the last whole hour.")]
TzOption = Annotated[str, typer.Option("--tz", help="Time zone of dates and days (IANA name).")]
RatesOption = Annotated[
    Path | None, typer.Option("--rates", help="Rate card (TOML or YAML); default: the sample card.")
]


def report_window(start: str | None, end: str | None, days: int, tz: str) -> Window:
    """--from/--to (dates at local midnight in ``tz``), or the ``days`` before --to (default: the last whole hour)."""
    with handled_errors():
        check_zone(tz)
    stop = parse_time(end, "--to", tz) or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    begin = parse_time(start, "--from", tz) or stop - timedelta(days=days)
    return window_between(begin, stop, "--from", "--to", "swap them or widen the window")


@contextmanager
def reporting(config: Path | None) -> Iterator[psycopg.Connection]:
    """A connection to the configured database, or one line saying there is nothing to report on yet."""
    settings = read_settings(config)
    with open_database(settings) as db, db.connection() as conn:
        if schema.applied_version(conn) == 0:
            raise fail(
                f"no cloudmeter data in {db.display_dsn} yet: run `cloudmeter demo` to try the reports, "
                "or add a manager and capture (README: Configuration)"
            )
        yield conn


def rate_card(path: Path | None) -> RateCard:
    """The rate card at ``path``, or the sample card; a bad card is one line (exit 2)."""
    with handled_errors():
        return load_rate_card(path) if path else sample_rate_card()
