"""``cloudmeter tokens ...``: create, list and revoke the HTTP API's bearer tokens (a typer sub-app)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

import polars as pl
import typer

from cloudmeter.cli.common import ConfigOption, err_console, fail, open_database, read_settings
from cloudmeter.cli.output import JsonOption, Output, OutputOption, show, view
from cloudmeter.storage import tokens

tokens_app = typer.Typer(help="Bearer tokens of the HTTP API (`cloudmeter serve`).", no_args_is_help=True)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")


class Role(StrEnum):
    """What a token may do: viewer reads every report, admin also changes managers."""

    viewer = "viewer"
    admin = "admin"


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="Who or what uses the token (a person, a dashboard).")],
    role: Annotated[Role, typer.Option(help="viewer (reads) or admin (also adds, enables, refreshes managers).")],
    config: ConfigOption = None,
) -> None:
    """Make a token and print it; only its SHA-256 is stored, so it is shown this once."""
    if not _NAME.fullmatch(name):
        raise fail(f"token name {name!r}: use 1 to 64 letters, digits and . _ @ + - (the first a letter or digit)", 2)
    settings = read_settings(config)
    with open_database(settings) as db:
        db.migrate()
        with db.connection() as conn:
            try:
                token = tokens.create_token(conn, name, role.value)
            except LookupError as exc:
                raise fail(f"{exc}; `cloudmeter tokens list` shows them, pick another name", 2) from None
    typer.echo(token)
    err_console.print(
        f"token {name} ({role.value}): shown this once and not stored, keep it now (revoke: cloudmeter tokens "
        f"revoke {name})",
        highlight=False,
        soft_wrap=True,
    )


@tokens_app.command("list")
def tokens_list(config: ConfigOption = None, output: OutputOption = Output.table, as_json: JsonOption = False) -> None:
    """Every token: name, role, when made, last used and revoked (never the token or its hash)."""
    settings = read_settings(config)
    with open_database(settings) as db:
        db.migrate()
        with db.connection() as conn:
            found = tokens.list_tokens(conn)
    schema: dict[str, pl.DataType] = {
        "name": pl.String(),
        "role": pl.String(),
        "state": pl.String(),
        "created_at": pl.Datetime("us", "UTC"),
        "last_used_at": pl.Datetime("us", "UTC"),
        "revoked_at": pl.Datetime("us", "UTC"),
    }
    rows = [
        {
            "name": t.name,
            "role": t.role,
            "state": "revoked" if t.revoked_at else "live",
            "created_at": t.created_at.replace(microsecond=0),
            "last_used_at": t.last_used_at.replace(microsecond=0) if t.last_used_at else None,
            "revoked_at": t.revoked_at.replace(microsecond=0) if t.revoked_at else None,
        }
        for t in found
    ]
    show(pl.DataFrame(rows, schema=schema), view(output, as_json), "tokens")


@tokens_app.command("revoke")
def tokens_revoke(name: Annotated[str, typer.Argument(help="The token's name.")], config: ConfigOption = None) -> None:
    """Revoke a token: requests with it get 401 from now on (its row stays, with the time it was revoked)."""
    settings = read_settings(config)
    with open_database(settings) as db:
        db.migrate()
        with db.connection() as conn:
            done = tokens.revoke_token(conn, name)
    if not done:
        raise fail(f"there is no token {name!r}; `cloudmeter tokens list` shows them", 2)
    typer.echo(f"revoked token {name}")
