"""``cloudmeter managers ...``: list, verify, add, remove, enable and disable the provider connections."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer

from cloudmeter.cli.common import ConfigOption, console, fail, handled_errors, open_database, read_settings
from cloudmeter.cli.output import JsonOption, Output, OutputOption, plural, show, view
from cloudmeter.cli.resolve import configured, registered
from cloudmeter.collectors.base import ManagerConfig
from cloudmeter.collectors.registry import build_collector
from cloudmeter.errors import CloudmeterError, ConfigError
from cloudmeter.scheduler.fleet import checked_table, fleet
from cloudmeter.storage import managers

managers_app = typer.Typer(help="The configured provider connections.", no_args_is_help=True)


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
        configs = {name: configured(db, settings, name)} if name else fleet(db, settings.managers).configs
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
        registered(db, settings, name)
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
