"""``cloudmeter managers ...``: list, show, verify, add, remove, enable and disable the provider connections."""

from __future__ import annotations

import json
import os
import sys
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from pydantic import SecretStr
from rich import box
from rich.table import Table

from cloudmeter.cli import prompts
from cloudmeter.cli.common import ConfigOption, console, fail, handled_errors, open_database, read_settings
from cloudmeter.cli.output import JsonOption, Output, OutputOption, plural, show, view
from cloudmeter.cli.resolve import configured, registered
from cloudmeter.collectors.base import ManagerConfig
from cloudmeter.collectors.registry import build_collector, collector_class, collector_kinds, parse_manager_config
from cloudmeter.config import CONFIG_ENV, Settings
from cloudmeter.errors import CloudmeterError, ConfigError
from cloudmeter.redact import MASK, mask
from cloudmeter.scheduler import views
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
        listing = views.managers_listing(db, settings)
    show(listing, view(output, as_json))


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
    chosen = view(output, as_json)
    show(frame, chosen)
    failed = [row for row in rows if row["result"] != "ok"]
    if chosen.output is Output.table:  # a narrow terminal's table leaves a long result out: each on a line
        for row in failed:
            console.print(f"{row['name']}: {row['result']}", highlight=False, markup=False)
    if failed:
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
    kind: Annotated[
        str, typer.Option(help=f"The collector kind: {', '.join(sorted(collector_kinds()))} (those installed).")
    ],
    fields: Annotated[
        list[str] | None, typer.Option("--set", help="A field as key=value (repeat); secrets as env:VARNAME.")
    ] = None,
    verify: Annotated[bool, typer.Option(help="Check endpoint and credentials before saving.")] = True,
    config: ConfigOption = None,
) -> None:
    """Add a manager to the database (the daemon picks it up); its secrets are stored only as env references.

    In a terminal without --set, asks for each field of the kind's config (secrets as the environment variable
    holding them) and verifies before saving.
    """
    settings = read_settings(config)
    if name in settings.managers:
        raise fail(f"manager {name!r} is in the config file already; pick another name", 2)
    if not fields and sys.stdin.isatty():
        _add_asking(name, kind, verify, settings)
        return
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


def _add_asking(name: str, kind: str, verify: bool, settings: Settings) -> None:
    """``managers add`` in a terminal: the questions, verify (saving a manager that fails it only when told to),
    then the manager is saved. Ctrl-C or end of input stops it with nothing saved."""
    with handled_errors():
        model = collector_class(kind).config_model
    with open_database(settings) as db:  # a taken name fails before the questions, not after them
        db.migrate()
        with db.connection() as conn:
            if managers.get_manager(conn, name) is not None:
                raise fail(f"a manager named {name!r} exists already; remove it first or pick another name", 2)
    prompts.let_ctrl_c_interrupt()
    try:
        manager, answers = prompts.ask(console, name, kind, model)
        if verify:
            console.print(f"\nverifying {name} ...", highlight=False, markup=False)
            result = mask(_verified(name, manager)["result"], _secret_values(manager))
            if result == "ok":
                console.print("verify: ok", highlight=False)
            else:
                console.print(f"verify failed: {result}", highlight=False, markup=False)
                if not prompts.YesNo.ask("save it anyway?", default=False, console=console):
                    raise fail(f"not saved: {name} failed verify")
    except KeyboardInterrupt:
        console.print()
        raise fail("stopped (Ctrl-C); nothing saved", 130) from None
    except EOFError:
        console.print()
        raise fail("stopped at the end of input; nothing saved") from None
    with open_database(settings) as db, db.connection() as conn:
        try:
            managers.add_manager(conn, name, kind, answers.table())
        except LookupError as exc:
            raise fail(f"{exc}; remove it first or pick another name", 2) from None
    console.print(f"added manager {name} ({kind})", highlight=False, markup=False)
    for variable in answers.typed:
        console.print(f"note: export {variable} where cloudmeter runs {name}", highlight=False, markup=False)


def _secret_values(manager: ManagerConfig) -> Iterable[str]:
    return [value.get_secret_value() for value in dict(manager).values() if isinstance(value, SecretStr)]


@managers_app.command("show")
def managers_show(
    name: Annotated[str, typer.Argument(help="The manager.")], config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """A manager's effective config: every field, defaults marked, secrets masked (env: references by name)."""
    settings = read_settings(config)
    if name in settings.managers:
        manager, table, source = settings.managers[name], _file_table(config, name), "config"
    else:
        with open_database(settings) as db:
            db.migrate()
            with db.connection() as conn:
                added = managers.added_managers(conn)
        if name not in added:
            known = ", ".join(sorted({*settings.managers, *added})) or "none"
            raise fail(
                f"manager {name!r} is not configured (configured: {known}); add [managers.{name}] or `managers add`", 2
            )
        table, source = added[name], "cli"
        with handled_errors():
            manager = _loaded(name, table)
    effective = _effective(manager, table)
    defaults = [key for key in type(manager).model_fields if key not in manager.model_fields_set]
    if as_json:
        report = {"name": name, "kind": manager.kind, "source": source, "config": effective, "defaults": defaults}
        typer.echo(json.dumps(report))
        return
    where = "in the config file" if source == "config" else "added with managers add"
    grid = Table(
        title=f"manager {name} ({manager.kind}, {where})", box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left"
    )
    grid.add_column("field", no_wrap=True)
    grid.add_column("value", overflow="fold")  # a long table (flavors) wraps within the terminal, never cut
    grid.add_column("note", no_wrap=True)
    for key, value in effective.items():
        grid.add_row(key, _shown(value), _note(value, key in defaults))
    console.print(grid, highlight=False)


def _file_table(config: Path | None, name: str) -> Mapping[str, Any]:
    """Manager ``name``'s table as the config file gives it (secrets too: only to tell env: references)."""
    path = config or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    if path is None:  # given in CLOUDMETER_MANAGERS__... variables: its secrets are masked
        return {}
    table: Mapping[str, Any] = tomllib.loads(path.read_text(encoding="utf-8")).get("managers", {}).get(name, {})
    return table


def _loaded(name: str, table: Mapping[str, Any]) -> ManagerConfig:
    """An added manager's config; a secret's ``env:`` reference need not be set here (it is shown, not used)."""
    model = collector_class(str(table.get("kind"))).config_model
    referenced = {
        key: SecretStr("")
        for key in prompts.secret_fields(model)
        if isinstance(table.get(key), str) and table[key].startswith("env:")
    }
    return parse_manager_config(name, {**table, **referenced})


def _effective(manager: ManagerConfig, table: Mapping[str, Any]) -> dict[str, Any]:
    """Every field's value as JSON; a secret as its ``env:VARNAME`` reference or masked."""
    dumped = manager.model_dump(mode="json")
    for key, value in dict(manager).items():
        if isinstance(value, SecretStr):
            given = table.get(key)
            dumped[key] = given if isinstance(given, str) and given.startswith("env:") else MASK
    return dumped


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value)


def _note(value: Any, default: bool) -> str:
    notes = ["default"] if default else []
    if isinstance(value, str) and value.startswith("env:") and value.removeprefix("env:") not in os.environ:
        notes.append("not set here")
    return ", ".join(notes)


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
