"""``cloudmeter status``: the database and every manager's progress; ``print_status`` also prints ``db status``."""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import typer
from rich.markup import escape

from cloudmeter.cli.common import ConfigOption, console, open_database, read_settings
from cloudmeter.cli.output import JsonOption, View, plural, short_time, show, time_ranges
from cloudmeter.reports.serialize import jsonable
from cloudmeter.scheduler import views
from cloudmeter.scheduler.windows import duration


def register(app: typer.Typer) -> None:
    """Put ``status`` on the root app."""
    app.command("status")(overall_status)


def overall_status(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """The database (mode, TimescaleDB, storage per table, policies) and every manager's capture and rollup progress:
    its state, lag, newest sample, samples per capture cycle, failures and next attempt, ranges skipped as gone at
    the source and holes not captured yet, API requests and their cost, events stored and the newest one's time."""
    settings = read_settings(config)
    with open_database(settings) as db:
        report = views.status_report(db, settings)
    print_status(report, as_json)


#: The columns of the managers table in ``status``, most telling first (the rest: --json, or notes under it).
_MANAGER_COLUMNS = (
    "name", "state", "captured_until", "lag_s", "newest_sample_at", "cycle_samples", "failures", "next_attempt_at",
    "api_requests", "api_cost_usd", "kind", "enabled", "last_refresh_at", "last_capture_at", "rolled_until",
    "dirty_hours", "cycle_requests", "cycle_cost_usd", "cloudwatch_metrics", "events_stored", "newest_event_at",
)  # fmt: skip


def print_status(report: dict[str, Any], as_json: bool) -> None:
    """A status report (``status``, ``db status``) as JSON, or as lines, notes and tables."""
    if as_json:
        typer.echo(json.dumps(jsonable(report)))
        return
    for key, value in report.items():
        if not isinstance(value, list) and key != "stale_after_s":
            console.print(f"{key:>15}: {value}", highlight=False)
    for note in report["notes"]:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    for key in ("tables", "policies"):
        if report.get(key):
            frame = pl.DataFrame(report[key], infer_schema_length=None)
            show(frame.select(c for c in frame.columns if frame[c].null_count() < len(frame)), View(), key)
    if report.get("managers"):
        _print_managers(report["managers"], report.get("stale_after_s"))


def _print_managers(rows: list[dict[str, Any]], stale_after: float | None) -> None:
    """The managers as a table (samples of the last capture cycles oldest first), then a line for each error,
    stale source, skipped range and hole, and for the events stored."""
    table = [{key: row[key] for key in _MANAGER_COLUMNS} for row in rows]
    for shown, row in zip(table, rows, strict=True):
        shown["cycle_samples"] = " ".join(f"{n:,}" for n in row["cycle_samples"]) or None
    frame = pl.DataFrame(table, infer_schema_length=None)
    show(frame.select(c for c in frame.columns if frame[c].null_count() < len(frame)), View(), "managers")
    for row in rows:
        name = row["name"]
        if row["last_error"]:
            due = row["next_attempt_at"]  # None once it is due: never a past time
            retry = f"next attempt {short_time(due)}" if due else "next attempt due now"
            failures = plural(row["failures"], "failure")
            console.print(
                f"{name}: {failures} in a row ({retry}); last at {short_time(row['last_error_at'])}: "
                f"{escape(row['last_error'])}",
                highlight=False,
            )
        if row["state"] == "stale" and stale_after:
            newest = row["newest_sample_at"]
            console.print(
                f"{name}: stale: nothing from the source for {duration(row['quiet_s'])} of captured time (more than "
                f"{duration(stale_after)}); "
                + (f"the newest sample is from {short_time(newest)}" if newest else "no sample is stored"),
                highlight=False,
            )
        if row["events_connected"] is not None:
            since = short_time(row["events_state_at"])
            state = f"connected since {since}" if row["events_connected"] else f"disconnected since {since}"
            reason = f": {escape(row['events_error'])}" if row["events_error"] else ""
            console.print(f"{name}: event catcher {state}{reason}", highlight=False)
        if row["events_stored"]:
            console.print(
                f"{name}: {plural(row['events_stored'], 'event')} stored, the newest at "
                f"{short_time(row['newest_event_at'])} (`cloudmeter events --manager {name}`)",
                highlight=False,
            )
        for key, what in (("skipped", "skipped as gone at the source"), ("holes", "not captured yet (holes)")):
            if row[key]:
                ranges = time_ranges((r["start"], r["end"]) for r in row[key])
                console.print(f"{name}: {what}: {ranges}", highlight=False)
