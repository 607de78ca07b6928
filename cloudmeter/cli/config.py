"""``cloudmeter config ...``: inspect the configuration."""

from __future__ import annotations

import json

import typer

from cloudmeter.cli.common import ConfigOption, console, read_settings
from cloudmeter.cli.output import JsonOption
from cloudmeter.config import effective_config

config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


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
