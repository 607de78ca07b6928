"""The ``cloudmeter`` command line (typer). Errors print what is wrong and how to fix it, and exit non-zero."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.markup import escape

from cloudmeter.cli.capacity import capacity_app, chargeback_app
from cloudmeter.cli.common import (
    ConfigOption,
    console,
    err_console,
    fail,
    handled_errors,
    open_database,
    parse_time,
    read_settings,
    window_between,
)
from cloudmeter.cli.output import (
    JsonOption,
    Output,
    OutputOption,
    View,
    jsonable,
    plural,
    short_time,
    show,
    time_ranges,
    view,
)
from cloudmeter.collectors.base import Collector, ManagerConfig
from cloudmeter.collectors.registry import build_collector
from cloudmeter.config import Settings, effective_config
from cloudmeter.errors import CloudmeterError, ConfigError
from cloudmeter.model import Window
from cloudmeter.scheduler import jobs
from cloudmeter.scheduler.fleet import checked_table, fleet
from cloudmeter.scheduler.pipeline import StreamRollup
from cloudmeter.scheduler.windows import duration, stale_after_s
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
app.add_typer(capacity_app, name="capacity")
app.add_typer(chargeback_app, name="chargeback")

ManagerOption = Annotated[str, typer.Option("--manager", "-m", help="Manager name from the config.")]


def _window(since: str, until: str | None) -> Window:
    """``--since`` to ``--until`` (default: now), or a clear error."""
    start = parse_time(since, "--since")
    assert start is not None
    return window_between(start, parse_time(until, "--until") or datetime.now(UTC), "--since", "--until")


def _captured(
    db: Database, settings: Settings, manager_id: int, collector: Collector, windows: list[Window]
) -> list[jobs.CaptureResult]:
    """Capture ``windows`` in order with one in-stream rollup (refreshing the inventory first if empty), after
    saying what of them the source or the next maintenance may not keep."""
    with handled_errors():
        for note in _older_than_kept(settings, collector, Window(windows[0].start, windows[-1].end)):
            err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
        jobs.ensure_inventory(db, manager_id, collector)
        stream = StreamRollup(db, manager_id, settings.time_zones)
        return [jobs.capture(db, manager_id, collector, window, stream=stream) for window in windows]


def _older_than_kept(settings: Settings, collector: Collector, window: Window) -> list[str]:
    """What of ``window`` lies before what the source keeps of live series, or before the raw samples kept."""
    now, notes = datetime.now(UTC), []
    retention = collector.retention_s
    if retention is not None and window.start < now - timedelta(seconds=retention):
        notes.append(
            f"{collector.name}'s source keeps {retention / 86400:g} days of live series: before "
            f"{now - timedelta(seconds=retention):%Y-%m-%d %H:%M} UTC only series that stopped since (deleted VMs) "
            "may still hold samples"
        )
    raw = settings.retention
    if window.start < now - timedelta(days=raw.raw_days):
        notes.append(
            f"samples before {now - timedelta(days=raw.raw_days):%Y-%m-%d %H:%M} UTC are older than retention.raw_days "
            f"({raw.raw_days}): they are rolled up now, and the next maintenance drops their raw rows (hourly rows "
            f"stay {raw.hourly_days} days, daily rows {raw.daily_days}); raise raw_days first to keep them"
        )
    return notes


def _configured(db: Database, settings: Settings, name: str) -> ManagerConfig:
    """Manager ``name`` from the config file or ``managers add``, or a ConfigError listing them."""
    db.migrate()
    found = fleet(db, settings.managers)
    if name in found.broken:
        raise ConfigError(found.broken[name])
    if name not in found.configs:
        known = ", ".join(sorted(found.configs)) or "none"
        raise ConfigError(
            f"manager {name!r} is not configured (configured: {known}); add [managers.{name}] or `managers add`"
        )
    return found.configs[name]


def _registered(db: Database, settings: Settings, name: str) -> tuple[int, ManagerConfig]:
    """Manager ``name``'s id (a config file manager gets its row on the way) and config."""
    config = _configured(db, settings, name)
    with db.connection() as conn:
        return managers.register_manager(conn, name, config.kind, config.public_fields()), config


def _manager(db: Database, settings: Settings, name: str) -> tuple[int, Collector]:
    manager_id, config = _registered(db, settings, name)
    return manager_id, build_collector(name, config)


def _version(shown: bool) -> None:
    if shown:
        typer.echo(f"cloudmeter {version('cloudmeter')}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log cloudmeter's progress to stderr.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Log everything, libraries included.")] = False,
    _: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """cloudmeter: capture, roll up and report cloud utilization."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if verbose and not debug:  # our progress, not the embedded server's pg_ctl transcripts
        logging.getLogger("cloudmeter").setLevel(logging.INFO)


@app.command()
def demo(
    config: ConfigOption = None,
    vms: Annotated[int, typer.Option(min=1, max=20000, help="Simulated VMs.")] = 200,
    days: Annotated[int, typer.Option(min=1, max=31, help="Days of history to capture.")] = 3,
    as_json: JsonOption = False,
) -> None:
    """Simulate a cloud, capture and roll up a few days of it on the embedded database, print a summary."""
    from cloudmeter.demo import DEMO_MANAGER, run_demo

    settings = read_settings(config)
    if DEMO_MANAGER in settings.managers:
        raise fail(f"the config file declares a manager named {DEMO_MANAGER!r}; the demo needs that name", 2)
    with open_database(settings) as db:
        result = run_demo(db, settings.time_zones, vms, days)
    if as_json:
        show(result.summary, View(Output.json))
        return
    window = f"{result.window.start:%Y-%m-%d %H:%M} to {result.window.end:%Y-%m-%d %H:%M} UTC"
    daily = ", ".join(f"{count:,} daily rows ({zone})" for zone, count in result.daily_rows.items())
    lines = [
        f"[bold]cloudmeter demo[/]: {vms} VMs on {result.hosts} hosts in 2 clusters ({result.resources} resources)",
        f"captured {result.samples:,} samples from {window}",
        f"rolled up {result.hourly_rows:,} hourly rows and {daily or 'no daily rows'}",
    ]
    if result.replaced:
        lines.append(f"replaced the previous demo run ({result.replaced:,} samples): each run starts clean")
    lines += [
        f"data: {db.display_dsn}",
        "try: cloudmeter capacity utilization; cloudmeter chargeback show; cloudmeter managers remove demo --yes",
    ]
    for line in lines:
        console.print(line, highlight=False)
    show(result.summary, View(), title="per cluster (hourly rollups)")


@config_app.command("check")
def config_check(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Validate the configuration and print it with secrets masked."""
    settings = read_settings(config)
    data = effective_config(settings)
    if as_json:
        typer.echo(json.dumps(data))
        return
    console.print_json(json.dumps(data))
    console.print("[green]configuration is valid[/]")


class SchemaMode(StrEnum):
    """``db init --mode``: how a new database keeps its time-series tables."""

    timescaledb = "timescaledb"
    native = "native"


_MODES: dict[SchemaMode, schema.Mode] = {SchemaMode.timescaledb: "timescaledb", SchemaMode.native: "native"}
ModeOption = Annotated[
    SchemaMode | None,
    typer.Option(
        "--mode",
        help="For a new database: TimescaleDB hypertables or native partitions (default: TimescaleDB where the "
        "server can use it). A database keeps the mode it was created in.",
    ),
]


@db_app.command("init")
def db_init(config: ConfigOption = None, mode: ModeOption = None) -> None:
    """Create the schema and, on TimescaleDB, its compression and retention policies (same as migrate)."""
    db_migrate(config, mode)


@db_app.command("migrate")
def db_migrate(config: ConfigOption = None, mode: ModeOption = None) -> None:
    """Apply pending schema migrations and make TimescaleDB's policies match [retention]; again is a no-op."""
    settings = read_settings(config)
    with open_database(settings) as db:
        stored = db.mode()
        if mode is not None and stored is not None and mode.value != stored:
            raise ConfigError(
                f"this database was created with {stored} mode and keeps it; --mode {mode.value} applies only to "
                "a new database (existing rows are not converted)"
            )
        applied = db.migrate(_MODES[mode] if mode else None)
        current = db.mode()
        changes = db.keep_policies(settings.retention.model_dump())
    message = f"applied migrations {applied}" if applied else "schema is up to date"
    console.print(f"{message} (version {schema.LATEST}, mode {current}) on {db.display_dsn}", highlight=False)
    if current == "timescaledb":
        for change in changes or ["TimescaleDB policies match the configuration"]:
            console.print(change, highlight=False)


@db_app.command("status")
def db_status(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Schema version, partition mode (TimescaleDB or native), each table's storage and TimescaleDB's policies."""
    settings = read_settings(config)
    with open_database(settings) as db, db.connection() as conn:
        report = status.database_status(conn, db.server, db.display_dsn, settings.retention.model_dump())
    _print_status(report, as_json)


@app.command("status")
def overall_status(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """The database (mode, TimescaleDB, storage per table, policies) and every manager's capture and rollup progress:
    its state, lag, newest sample, samples per capture cycle, failures and next attempt, ranges skipped as gone at
    the source and holes not captured yet, API requests and their cost."""
    settings = read_settings(config)
    with open_database(settings) as db, db.connection() as conn:
        report = status.database_status(conn, db.server, db.display_dsn, settings.retention.model_dump())
        version = report["schema_version"]
        if 0 < version < schema.LATEST:
            report["notes"].append(
                f"the schema is at version {version}, this cloudmeter's is {schema.LATEST}: run `cloudmeter db "
                "migrate` (the daemon migrates when it starts) to see the managers' progress"
            )
        found = status.manager_status(conn, stale_after_s(settings.schedule)) if version == schema.LATEST else []
    report["managers"] = [
        asdict(m) | {key: [{"start": a, "end": b} for a, b in getattr(m, key)] for key in ("skipped", "holes")}
        for m in found
    ]
    report["stale_after_s"] = stale_after_s(settings.schedule)
    _print_status(report, as_json)


#: The columns of the managers table in ``status``, most telling first (the rest: --json, or notes under it).
_MANAGER_COLUMNS = (
    "name", "state", "captured_until", "lag_s", "newest_sample_at", "cycle_samples", "failures", "next_attempt_at",
    "api_requests", "api_cost_usd", "kind", "enabled", "last_refresh_at", "last_capture_at", "rolled_until",
    "dirty_hours", "cycle_requests", "cycle_cost_usd", "cloudwatch_metrics",
)  # fmt: skip


def _print_status(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(jsonable(report)))
        return
    for key, value in report.items():
        if not isinstance(value, list) and key != "stale_after_s":
            console.print(f"{key:>15}: {value}", highlight=False)
    for note in report["notes"]:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    for key in ("tables", "policies"):
        if report.get(key):
            frame = pl.DataFrame(report[key], infer_schema_length=None)
            show(frame.select(c for c in frame.columns if frame[c].null_count() < len(frame)), View(), key)
    if report.get("managers"):
        _print_managers(report["managers"], report.get("stale_after_s"))


def _print_managers(rows: list[dict[str, Any]], stale_after: float | None) -> None:
    """The managers as a table (samples of the last capture cycles oldest first), then a line for each error,
    stale source, skipped range and hole."""
    table = [{key: row[key] for key in _MANAGER_COLUMNS} for row in rows]
    for shown, row in zip(table, rows, strict=True):
        shown["cycle_samples"] = " ".join(f"{n:,}" for n in row["cycle_samples"]) or None
    frame = pl.DataFrame(table, infer_schema_length=None)
    show(frame.select(c for c in frame.columns if frame[c].null_count() < len(frame)), View(), "managers")
    for row in rows:
        name = row["name"]
        if row["last_error"]:
            due = row["next_attempt_at"]  # None once it is due: never a past time
            retry = f"next attempt {short_time(due)}" if due else "next attempt due now"
            failures = plural(row["failures"], "failure")
            console.print(
                f"{name}: {failures} in a row ({retry}); last at {short_time(row['last_error_at'])}: "
                f"{escape(row['last_error'])}",
                highlight=False,
            )
        if row["state"] == "stale" and stale_after:
            newest = row["newest_sample_at"]
            console.print(
                f"{name}: stale: nothing from the source for {duration(row['quiet_s'])} of captured time (more than "
                f"{duration(stale_after)}); "
                + (f"the newest sample is from {short_time(newest)}" if newest else "no sample is stored"),
                highlight=False,
            )
        for key, what in (("skipped", "skipped as gone at the source"), ("holes", "not captured yet (holes)")):
            if row[key]:
                ranges = time_ranges((r["start"], r["end"]) for r in row[key])
                console.print(f"{name}: {what}: {ranges}", highlight=False)


@managers_app.command("list")
def managers_list(
    config: ConfigOption = None, output: OutputOption = Output.table, as_json: JsonOption = False
) -> None:
    """Configured managers and their capture progress."""
    settings = read_settings(config)
    with open_database(settings) as db:
        db.migrate()
        found = fleet(db, settings.managers)
        configs, broken = found.configs, found.broken
        with db.connection() as conn:
            stored = {m.name: m for m in managers.list_managers(conn)}
    rows = [
        {
            "name": name,
            "kind": cfg.kind,
            "source": stored[name].source if name in stored else "config",
            "enabled": cfg.enabled and (stored[name].enabled if name in stored else True),
            "last_refresh_at": _seconds(stored[name].last_refresh_at) if name in stored else None,
            "captured_until": _seconds(stored[name].captured_until) if name in stored else None,
            "last_error": stored[name].last_error if name in stored else None,
        }
        for name, cfg in configs.items()
    ]
    rows += [  # added managers whose stored config does not load here (an env: variable not set)
        {
            "name": name,
            "kind": stored[name].kind,
            "source": stored[name].source,
            "enabled": stored[name].enabled,
            "last_refresh_at": _seconds(stored[name].last_refresh_at),
            "captured_until": _seconds(stored[name].captured_until),
            "last_error": f"config: {why}",
        }
        for name, why in broken.items()
        if name in stored
    ]
    show(pl.DataFrame(sorted(rows, key=lambda row: row["name"]), infer_schema_length=None), view(output, as_json))


def _seconds(moment: datetime | None) -> datetime | None:
    """``moment`` without its microseconds (a listing's times are to the second)."""
    return moment.replace(microsecond=0) if moment else None


@managers_app.command("verify")
def managers_verify(
    name: Annotated[str | None, typer.Argument(help="A configured manager; default: all of them.")] = None,
    config: ConfigOption = None,
    output: OutputOption = Output.table,
    as_json: JsonOption = False,
) -> None:
    """Check managers' endpoints and credentials with one cheap authenticated call each; exit 1 if one fails."""
    settings = read_settings(config)
    with open_database(settings) as db:
        db.migrate()
        configs = {name: _configured(db, settings, name)} if name else fleet(db, settings.managers).configs
    rows = [_verified(each, manager) for each, manager in sorted(configs.items())]
    frame = pl.DataFrame(rows, schema={"name": pl.String, "kind": pl.String, "result": pl.String})
    show(frame, view(output, as_json))
    if any(row["result"] != "ok" for row in rows):
        raise typer.Exit(1)


def _verified(name: str, manager: ManagerConfig) -> dict[str, str]:
    try:
        build_collector(name, manager).verify()
    except CloudmeterError as exc:
        return {"name": name, "kind": manager.kind, "result": f"{type(exc).__name__}: {exc}"}
    return {"name": name, "kind": manager.kind, "result": "ok"}


def _fields(values: list[str]) -> dict[str, Any]:
    """``key=value`` options as a table; values are TOML literals when they parse (numbers, booleans, tables)."""
    import tomllib

    fields: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r} is not key=value; e.g. --set region=RegionOne")
        try:
            fields[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            fields[key.strip()] = raw
    return fields


@managers_app.command("add")
def managers_add(
    name: Annotated[str, typer.Argument(help="A new manager's name.")],
    kind: Annotated[str, typer.Option(help="openstack, aws, simulator, or an installed plugin's kind.")],
    fields: Annotated[
        list[str] | None, typer.Option("--set", help="A field as key=value (repeat); secrets as env:VARNAME.")
    ] = None,
    verify: Annotated[bool, typer.Option(help="Check endpoint and credentials before saving.")] = True,
    config: ConfigOption = None,
) -> None:
    """Add a manager to the database (the daemon picks it up); its secrets are stored only as env references."""
    settings = read_settings(config)
    if name in settings.managers:
        raise fail(f"manager {name!r} is in the config file already; pick another name", 2)
    with handled_errors():
        manager, table = checked_table(name, kind, _fields(fields or []))
    if verify:
        result = _verified(name, manager)["result"]
        if result != "ok":
            raise fail(f"not saved: {result} (fix it, or pass --no-verify to save anyway)")
    with open_database(settings) as db:
        db.migrate()
        with db.connection() as conn:
            try:
                managers.add_manager(conn, name, kind, table)
            except LookupError as exc:
                raise fail(f"{exc}; remove it first or pick another name", 2) from None
    console.print(f"added manager {name} ({kind})", highlight=False)


@managers_app.command("remove")
def managers_remove(
    name: Annotated[str, typer.Argument(help="The manager to delete.")],
    yes: Annotated[bool, typer.Option("--yes", help="Really delete it with all its samples and rollups.")] = False,
    config: ConfigOption = None,
) -> None:
    """Delete a manager and everything captured from it (`managers disable` keeps the data)."""
    settings = read_settings(config)
    if not yes:
        raise fail(f"this deletes manager {name!r} and all its samples and rollups; add --yes to do it", 2)
    if name in settings.managers:
        raise fail(f"manager {name!r} is declared in the config file; remove [managers.{name}] there first", 2)
    with open_database(settings) as db:
        db.migrate()
        with db.connection() as conn:
            removed = managers.remove_manager(conn, name)
    if removed is None:
        raise fail(f"there is no manager {name!r}", 2)
    console.print(
        f"removed manager {name} with {plural(removed.resources, 'resource')}, {plural(removed.samples, 'sample')}, "
        f"{plural(removed.hourly, 'hourly rollup row')} and {plural(removed.daily, 'daily rollup row')}",
        highlight=False,
    )


def _set_enabled(name: str, enabled: bool, config: Path | None) -> None:
    settings = read_settings(config)
    with open_database(settings) as db:
        _registered(db, settings, name)
        with db.connection() as conn:
            managers.set_enabled(conn, name, enabled)
    console.print(f"{'enabled' if enabled else 'disabled'} manager {name}", highlight=False)


@managers_app.command("enable")
def managers_enable(name: Annotated[str, typer.Argument(help="The manager.")], config: ConfigOption = None) -> None:
    """Let the daemon run a manager's jobs again."""
    _set_enabled(name, True, config)


@managers_app.command("disable")
def managers_disable(name: Annotated[str, typer.Argument(help="The manager.")], config: ConfigOption = None) -> None:
    """Stop running a manager's jobs; its data stays."""
    _set_enabled(name, False, config)


@app.command()
def run(config: ConfigOption = None) -> None:
    """Run the daemon: refresh, capture and roll up every enabled manager on schedule, until SIGTERM/SIGINT.

    Several daemons may share one database: managers are spread among them and taken over when one dies.
    """
    from cloudmeter.scheduler import daemon

    settings = read_settings(config)
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("cloudmeter").setLevel(logging.INFO)
    with open_database(settings) as db, handled_errors():
        daemon.run(db, settings)


@app.command()
def backfill(
    manager: ManagerOption,
    since: Annotated[str, typer.Option(help="Start (ISO 8601).")],
    until: Annotated[str | None, typer.Option(help="End (ISO 8601); default: now.")] = None,
    config: ConfigOption = None,
) -> None:
    """Capture a past range a window at a time; rollups follow. Parts older than the source keeps (or than raw
    samples are kept) are noted, not refused: a series that stopped keeps its measures longer."""
    settings = read_settings(config)
    window = _window(since, until)
    with open_database(settings) as db:
        manager_id, collector = _manager(db, settings, manager)
        windows = window.split(settings.schedule.max_window_s)
        rows = sum(result.rows for result in _captured(db, settings, manager_id, collector, windows))
    console.print(f"{manager}: {rows:,} samples from {window}", highlight=False)


@app.command()
def refresh(manager: ManagerOption, config: ConfigOption = None) -> None:
    """Refresh a manager's inventory (VMs, hosts, clusters, history)."""
    settings = read_settings(config)
    with open_database(settings) as db:
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
    settings = read_settings(config)
    start, end = parse_time(since, "--since"), parse_time(until, "--until") or datetime.now(UTC)
    window = window_between(start, end, "--since", "--until") if start is not None else None
    with open_database(settings) as db:
        manager_id, collector = _manager(db, settings, manager)
        if window is None:
            with db.connection() as conn:
                row = managers.get_manager(conn, manager)
            mark = row.captured_until if row else None
            if mark is None:
                raise fail(f"manager {manager!r} has never been captured; give --since", 2)
            overlap = timedelta(seconds=settings.schedule.capture_overlap_s)
            window = window_between(mark - overlap, end, "--since", "--until")
        (result,) = _captured(db, settings, manager_id, collector, [window])
    console.print(
        f"{manager}: {plural(result.rows, 'sample')} in {plural(result.batches, 'batch', 'batches')} "
        f"for {result.window}",
        highlight=False,
    )


@app.command()
def rollup(
    manager: ManagerOption,
    since: Annotated[str, typer.Option(help="Recompute buckets from this time (ISO 8601).")],
    until: Annotated[str | None, typer.Option(help="Up to this time (ISO 8601); default: now.")] = None,
    config: ConfigOption = None,
) -> None:
    """Recompute hourly and daily rollups of a manager from its stored raw samples."""
    settings = read_settings(config)
    window = _window(since, until)
    with open_database(settings) as db:
        manager_id, _ = _registered(db, settings, manager)
        with handled_errors():
            result = jobs.rollup(db, manager_id, window, settings.time_zones)
    console.print(f"{manager}: {result.hourly:,} hourly rows, daily {result.daily}", highlight=False)
