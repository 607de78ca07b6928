"""The ``cloudmeter`` command line (typer): ``main`` holds the root app, each command group has its own module.

``cloudmeter.cli:app`` is the console script, and what ``python -m cloudmeter`` runs.
"""

from cloudmeter.cli.main import app

__all__ = ["app"]
