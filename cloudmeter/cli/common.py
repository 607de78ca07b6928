"""Helpers shared by the ``cloudmeter`` command modules: settings, database, error handling, output."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.console import Console
from rich.markup import escape

from cloudmeter.config import Settings, load_settings
from cloudmeter.errors import CloudmeterError, ConfigError
from cloudmeter.model import Window
from cloudmeter.reports import views
from cloudmeter.storage.database import Database
from cloudmeter.storage.dsn import scrub

console = Console()
err_console = Console(stderr=True)

#: The longest window a command reads (ten years).
MAX_WINDOW_DAYS = views.MAX_WINDOW_DAYS

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (default: $CLOUDMETER_CONFIG).")
]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` as an error (verbatim: ``[managers.x]`` is not rich markup) and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(scrub(message))}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def handled_errors() -> Iterator[None]:
    """Expected failures as one line: bad input exits 2, a failing source or database 1 (no traceback)."""
    try:
        yield
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    except CloudmeterError as exc:
        raise fail(str(exc)) from None
    except psycopg.Error as exc:  # a database that changed or went away under a command
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise fail(
            f"PostgreSQL: {first} (SQLSTATE {exc.sqlstate or 'none'}); `cloudmeter status` shows the database"
        ) from None


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
    with handled_errors():
        return views.parse_time(value, name, tz)


def window_between(start: datetime, end: datetime, first: str, last: str, fix: str = "swap them") -> Window:
    """The window from option ``first``'s ``start`` to option ``last``'s ``end``, or a one-line error (exit 2)
    when it is empty or longer than ``MAX_WINDOW_DAYS`` (a report or capture of centuries would run for hours)."""
    with handled_errors():
        return views.window_between(start, end, first, last, fix)
