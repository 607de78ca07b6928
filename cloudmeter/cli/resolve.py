"""A manager named on the command line, from the config file or ``managers add``: what ``managers`` and the jobs
commands share (``scheduler.views`` holds it, for the HTTP API too)."""

from __future__ import annotations

from cloudmeter.scheduler.views import configured, registered

__all__ = ["configured", "registered"]
