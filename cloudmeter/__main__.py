"""``python -m cloudmeter``."""

from cloudmeter.cli import app

app(prog_name="cloudmeter")
