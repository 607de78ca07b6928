"""``cloudmeter db ...``: create, upgrade and inspect the database schema."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from cloudmeter.cli.common import ConfigOption, console, open_database, read_settings
from cloudmeter.cli.output import JsonOption
from cloudmeter.cli.status import print_status
from cloudmeter.errors import ConfigError
from cloudmeter.storage import schema, status

db_app = typer.Typer(help="Create, upgrade and inspect the database schema.", no_args_is_help=True)


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
    print_status(report, as_json)
