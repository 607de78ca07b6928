"""The root ``cloudmeter`` app (typer): its options, and every command group and top-level command on it.

Each command group is a typer sub-app in its own module (``config``, ``db``, ``managers``, ``collectors``,
``capacity``, ``chargeback``); the top-level commands are put on the root app by their module's ``register(app)``,
in the order ``--help`` lists them (``demo``, ``status``, ``events``, then the jobs). Errors print what is wrong and
how to fix it, and exit non-zero.
"""

from __future__ import annotations

import logging
from importlib.metadata import version
from typing import Annotated

import typer

from cloudmeter.cli import demo, events, jobs, serve, status
from cloudmeter.cli.capacity import capacity_app
from cloudmeter.cli.chargeback import chargeback_app
from cloudmeter.cli.collectors import collectors_app
from cloudmeter.cli.config import config_app
from cloudmeter.cli.db import db_app
from cloudmeter.cli.managers import managers_app
from cloudmeter.cli.tokens import tokens_app

app = typer.Typer(
    help="Cloud metrics collection, rollups, capacity and chargeback on PostgreSQL.", no_args_is_help=True
)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(managers_app, name="managers")
app.add_typer(collectors_app, name="collectors")
app.add_typer(capacity_app, name="capacity")
app.add_typer(chargeback_app, name="chargeback")
app.add_typer(tokens_app, name="tokens")
demo.register(app)
status.register(app)
events.register(app)
jobs.register(app)
serve.register(app)


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
