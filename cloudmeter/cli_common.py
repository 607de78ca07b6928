"""Helpers shared by the ``cloudmeter`` command modules: settings, database, error handling, output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cloudmeter.config import Settings, load_settings
from cloudmeter.errors import CloudmeterError, ConfigError
from cloudmeter.storage.database import Database
from cloudmeter.storage.dsn import scrub

console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (default: $CLOUDMETER_CONFIG).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` as an error (verbatim: ``[managers.x]`` is not rich markup) and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(scrub(message))}", highlight=False)
    return typer.Exit(code)


@contextmanager
def handled_errors() -> Iterator[None]:
    try:
        yield
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    except CloudmeterError as exc:
        raise fail(str(exc)) from None


def read_settings(config: Path | None) -> Settings:
    with handled_errors():
        return load_settings(config)


@contextmanager
def open_database(settings: Settings) -> Iterator[Database]:
    with (
        handled_errors(),
        Database(settings.dsn_value, settings.data_dir, settings.pool_size, settings.write_method) as db,
    ):
        yield db


def parse_time(value: str | None, name: str, tz: str = "UTC") -> datetime | None:
    """The ISO 8601 date or time of option ``name`` (in ``tz`` when it names no offset), or a clear error."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise fail(
            f"{name} {value!r} is not an ISO 8601 date or time; use e.g. 2026-11-01 or 2026-11-01T06:00Z", 2
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(tz))


#: Wider frames print as one column per row (field, value) instead of one column per field.
MAX_TABLE_COLUMNS = 12


def print_frame(frame: pl.DataFrame, as_json: bool, title: str | None = None) -> None:
    """``frame`` as JSON records, or as a table (transposed when it has too many columns to read across)."""
    if as_json:
        typer.echo(json.dumps(frame.to_dicts(), default=str))
        return
    if frame.width > MAX_TABLE_COLUMNS and frame.height:
        rows = frame.iter_rows()
        table = Table(title=title)
        table.add_column("field")
        for _ in range(frame.height):
            table.add_column(justify="right")
        for name, *values in zip(frame.columns, *rows, strict=True):
            table.add_row(name, *(_cell(v) for v in values))
        console.print(table)
        return
    table = Table(title=title)
    for name in frame.columns:
        table.add_column(name, justify="right" if frame[name].dtype.is_numeric() else "left")
    for row in frame.iter_rows():
        table.add_row(*(_cell(v) for v in row))
    console.print(table)


def _cell(value: object) -> str:
    """A table cell: empty for null, floats to 4 significant digits (with thousands separators above that)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.4g}"
    return str(value)
