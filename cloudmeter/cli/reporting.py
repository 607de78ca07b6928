"""What the report commands (``capacity``, ``chargeback``) share: their window and rate card options, the rate
card, and a connection to a database that has something to report (``reports.views`` computes the reports)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import psycopg
import typer

from cloudmeter.cli.common import fail, handled_errors, open_database, read_settings
from cloudmeter.reports import views
from cloudmeter.reports.ratecard import RateCard
from cloudmeter.storage import schema

FromOption = Annotated[
    str | None, typer.Option("--from", help="Start date/time (ISO 8601; a date is local midnight in --tz).")
]
ToOption = Annotated[str | None, typer.Option("--to", help="End, exclusive (ISO 8601); default: the last whole hour.")]
TzOption = Annotated[str, typer.Option("--tz", help="Time zone of dates and days (IANA name).")]
RatesOption = Annotated[
    Path | None, typer.Option("--rates", help="Rate card (TOML or YAML); default: the sample card.")
]


@contextmanager
def reporting(config: Path | None) -> Iterator[psycopg.Connection]:
    """A connection to the configured database, or one line saying there is nothing to report on yet."""
    settings = read_settings(config)
    with open_database(settings) as db, db.connection() as conn:
        version = schema.applied_version(conn)
        if version == 0:
            raise fail(
                f"no cloudmeter data in {db.display_dsn} yet: run `cloudmeter demo` to try the reports, "
                "or add a manager and capture (README: Configuration)"
            )
        if version < schema.LATEST:
            raise fail(
                f"the schema of {db.display_dsn} is at version {version}, this cloudmeter's is {schema.LATEST}: run "
                "`cloudmeter db migrate` (the daemon migrates when it starts)"
            )
        yield conn


def rate_card(path: Path | None) -> RateCard:
    """The rate card at ``path``, or the sample card; a bad card is one line (exit 2)."""
    with handled_errors():
        return views.rate_card(path)
