"""The ``cloudmeter`` command line (typer). Errors print what is wrong and how to fix it, and exit non-zero."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from cloudmeter.collectors.base import Collector
from cloudmeter.collectors.registry import build_collector
from cloudmeter.config import Settings, effective_config, load_settings
from cloudmeter.errors import CloudmeterError, ConfigError
from cloudmeter.model import Window, as_utc
from cloudmeter.scheduler import jobs
from cloudmeter.scheduler.pipeline import StreamRollup
from cloudmeter.storage import managers, schema, status
from cloudmeter.storage.database import Database

app = typer.Typer(
    help="Cloud metrics collection, rollups, capacity and chargeback on PostgreSQL.", no_args_is_help=True
)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
db_app = typer.Typer(help="Create, upgrade and inspect the database schema.", no_args_is_help=True)
managers_app = typer.Typer(help="The configured provider connections.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(managers_app, name="managers")

console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (default: $CLOUDMETER_CONFIG).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ManagerOption = Annotated[str, typer.Option("--manager", "-m", help="Manager name from the config.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ConfigError as exc:
        raise _fail(str(exc), 2) from None
    except CloudmeterError as exc:
        raise _fail(str(exc)) from None


def _settings(config: Path | None) -> Settings:
    with _errors():
        return load_settings(config)


@contextmanager
def _database(settings: Settings) -> Iterator[Database]:
    with _errors(), Database(settings.dsn_value, settings.data_dir, settings.pool_size, settings.write_method) as db:
        yield db


def _parse_time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(f"{name} {value!r} is not an ISO 8601 time; use e.g. 2026-11-01 or 2026-11-01T06:00Z", 2) from None
    return as_utc(moment.replace(tzinfo=moment.tzinfo or UTC))


def _print_frame(frame: pl.DataFrame, as_json: bool, title: str | None = None) -> None:
    if as_json:
        typer.echo(json.dumps(frame.to_dicts(), default=str))
        return
    table = Table(title=title)
    for name in frame.columns:
        table.add_column(name, justify="right" if frame[name].dtype.is_numeric() else "left")
    for row in frame.iter_rows():
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


def _manager(db: Database, settings: Settings, name: str) -> tuple[int, Collector]:
    if name not in settings.managers:
        known = ", ".join(sorted(settings.managers)) or "none"
        raise ConfigError(f"manager {name!r} is not configured (configured: {known}); add [managers.{name}]")
    config = settings.managers[name]
    db.migrate()
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, name, config.kind, config.public_fields())
    return manager_id, build_collector(name, config)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")] = False) -> None:
    """cloudmeter: capture, roll up and report cloud utilization."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command()
def demo(
    config: ConfigOption = None,
    vms: Annotated[int, typer.Option(min=1, max=20000, help="Simulated VMs.")] = 200,
    days: Annotated[int, typer.Option(min=1, max=31, help="Days of history to capture.")] = 3,
    as_json: JsonOption = False,
) -> None:
    """Simulate a cloud, capture and roll up a few days of it on the embedded database, print a summary."""
    from cloudmeter.demo import run_demo

    settings = _settings(config)
    with _database(settings) as db:
        result = run_demo(db, settings.time_zones, vms, days)
    if as_json:
        _print_frame(result.summary, True)
        return
    console.print(
        f"[bold]cloudmeter demo[/]: {result.resources} resources, {result.samples:,} samples from "
        f"{result.window.start:%Y-%m-%d %H:%M} to {result.window.end:%Y-%m-%d %H:%M} UTC, "
        f"{result.hourly_rows:,} hourly rows, daily rows {result.daily_rows}; data in {db.display_dsn}",
        highlight=False,
    )
    _print_frame(result.summary, False, title="per cluster (hourly rollups)")


@config_app.command("check")
def config_check(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Validate the configuration and print it with secrets masked."""
    settings = _settings(config)
    data = effective_config(settings)
    if as_json:
        typer.echo(json.dumps(data))
        return
    console.print_json(json.dumps(data))
    console.print("[green]configuration is valid[/]")


@db_app.command("init")
def db_init(config: ConfigOption = None) -> None:
    """Create the schema (same as migrate on an empty database)."""
    db_migrate(config)


@db_app.command("migrate")
def db_migrate(config: ConfigOption = None) -> None:
    """Apply pending schema migrations; running it again is a no-op."""
    settings = _settings(config)
    with _database(settings) as db:
        applied = db.migrate()
        mode = db.mode()
    message = f"applied migrations {applied}" if applied else "schema is up to date"
    console.print(f"{message} (version {schema.LATEST}, mode {mode}) on {db.display_dsn}", highlight=False)


@db_app.command("status")
def db_status(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Schema version, partition mode (TimescaleDB or native) and each table's storage."""
    settings = _settings(config)
    with _database(settings) as db, db.connection() as conn:
        report = status.database_status(conn, db.server, db.display_dsn)
    _print_status(report, as_json)


@app.command("status")
def overall_status(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """The database (mode, TimescaleDB, storage per table) and every manager's capture and rollup progress."""
    settings = _settings(config)
    with _database(settings) as db, db.connection() as conn:
        report = status.database_status(conn, db.server, db.display_dsn)
        report["managers"] = [asdict(m) for m in status.manager_status(conn)] if report["schema_version"] else []
    _print_status(report, as_json)


def _print_status(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report, default=str))
        return
    for key, value in report.items():
        if not isinstance(value, list):
            console.print(f"{key:>15}: {value}", highlight=False)
    for note in report["notes"]:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    for key in ("tables", "managers"):
        if report.get(key):
            rows = [{k: _human(k, v) for k, v in row.items()} for row in report[key]]
            frame = pl.DataFrame(rows, infer_schema_length=None)
            _print_frame(frame.select(c for c in frame.columns if frame[c].null_count() < len(frame)), False, key)


def _human(key: str, value: Any) -> Any:
    """Byte counts as MiB, ratios to one decimal, times to the minute: for reading, not for scripts (--json)."""
    if value is None:
        return None
    if key.endswith("bytes"):
        return f"{value / 2**20:,.1f} MiB"
    if key.endswith("ratio"):
        return f"{value:.1f}x"
    if isinstance(value, datetime):
        return f"{value.astimezone(UTC):%Y-%m-%d %H:%M}Z"
    return value


@managers_app.command("list")
def managers_list(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Configured managers and their capture progress."""
    settings = _settings(config)
    with _database(settings) as db:
        db.migrate()
        with db.connection() as conn:
            stored = {m.name: m for m in managers.list_managers(conn)}
    rows = [
        {
            "name": name,
            "kind": cfg.kind,
            "enabled": cfg.enabled,
            "last_refresh_at": stored[name].last_refresh_at if name in stored else None,
            "captured_until": stored[name].captured_until if name in stored else None,
            "last_error": stored[name].last_error if name in stored else None,
        }
        for name, cfg in sorted(settings.managers.items())
    ]
    _print_frame(pl.DataFrame(rows, infer_schema_length=None), as_json)


@managers_app.command("verify")
def managers_verify(
    name: Annotated[str | None, typer.Argument(help="A configured manager; default: all of them.")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check managers' endpoints and credentials with one cheap authenticated call each; exit 1 if one fails."""
    settings = _settings(config)
    names = [name] if name else sorted(settings.managers)
    with _errors():
        if name and name not in settings.managers:
            known = ", ".join(sorted(settings.managers)) or "none"
            raise ConfigError(f"manager {name!r} is not configured (configured: {known}); add [managers.{name}]")
        rows = [_verified(each, settings) for each in names]
    _print_frame(pl.DataFrame(rows, schema={"name": pl.String, "kind": pl.String, "result": pl.String}), as_json)
    if any(row["result"] != "ok" for row in rows):
        raise typer.Exit(1)


def _verified(name: str, settings: Settings) -> dict[str, str]:
    manager = settings.managers[name]
    try:
        build_collector(name, manager).verify()
    except CloudmeterError as exc:
        return {"name": name, "kind": manager.kind, "result": f"{type(exc).__name__}: {exc}"}
    return {"name": name, "kind": manager.kind, "result": "ok"}


@app.command()
def refresh(manager: ManagerOption, config: ConfigOption = None) -> None:
    """Refresh a manager's inventory (VMs, hosts, clusters, history)."""
    settings = _settings(config)
    with _database(settings) as db:
        manager_id, collector = _manager(db, settings, manager)
        result = jobs.refresh_inventory(db, manager_id, collector)
    console.print(
        f"{manager}: {len(result.ids)} resources, {result.retired} retired, {result.history_changed} histories changed",
        highlight=False,
    )


@app.command()
def capture(
    manager: ManagerOption,
    since: Annotated[str | None, typer.Option(help="Start (ISO 8601); default: the last captured time.")] = None,
    until: Annotated[str | None, typer.Option(help="End (ISO 8601); default: now.")] = None,
    config: ConfigOption = None,
) -> None:
    """Capture a manager's metrics for a window (idempotent: re-capturing rewrites nothing)."""
    settings = _settings(config)
    start, end = _parse_time(since, "--since"), _parse_time(until, "--until") or datetime.now(UTC)
    with _database(settings) as db:
        manager_id, collector = _manager(db, settings, manager)
        if start is None:
            with db.connection() as conn:
                row = managers.get_manager(conn, manager)
            mark = row.captured_until if row else None
            if mark is None:
                raise _fail(f"manager {manager!r} has never been captured; give --since", 2)
            start = mark - timedelta(seconds=settings.schedule.capture_overlap_s)
        with _errors():
            if not jobs.resource_ids(db, manager_id):
                jobs.refresh_inventory(db, manager_id, collector)
            stream = StreamRollup(db, manager_id, settings.time_zones)
            result = jobs.capture(db, manager_id, collector, Window(start, end), stream=stream)
    console.print(
        f"{manager}: {result.rows:,} samples in {result.batches} batches for {result.window}", highlight=False
    )


@app.command()
def rollup(
    manager: ManagerOption,
    since: Annotated[str, typer.Option(help="Recompute buckets from this time (ISO 8601).")],
    until: Annotated[str | None, typer.Option(help="Up to this time (ISO 8601); default: now.")] = None,
    config: ConfigOption = None,
) -> None:
    """Recompute hourly and daily rollups of a manager from its stored raw samples."""
    settings = _settings(config)
    start = _parse_time(since, "--since")
    end = _parse_time(until, "--until") or datetime.now(UTC)
    assert start is not None
    with _database(settings) as db:
        manager_id, _ = _manager(db, settings, manager)
        with _errors():
            result = jobs.rollup(db, manager_id, Window(start, end), settings.time_zones)
    console.print(f"{manager}: {result.hourly:,} hourly rows, daily {result.daily}", highlight=False)
