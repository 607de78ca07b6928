"""The ``cloudmeter`` command line (typer); ``cloudmeter.cli:app`` is the console script."""

from cloudmeter.cli.main import app

__all__ = ["app"]
