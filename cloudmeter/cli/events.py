"""``cloudmeter events``: the timeline of what the managers' sources announced (the ``events`` table)."""

from __future__ import annotations

from typing import Annotated

import polars as pl
import typer

from cloudmeter.cli.common import ConfigOption, handled_errors, open_database, parse_time, read_settings, window_between
from cloudmeter.cli.output import JsonOption, Output, OutputOption, WideOption, show, view
from cloudmeter.model import EVENT_KINDS
from cloudmeter.storage import events


def register(app: typer.Typer) -> None:
    """Put ``events`` on the root app."""
    app.command("events")(timeline)


def timeline(
    manager: Annotated[str | None, typer.Option("--manager", "-m", help="Only this manager's events.")] = None,
    resource: Annotated[
        str | None, typer.Option(metavar="REF", help="Only the events of this resource (its ems_ref or name).")
    ] = None,
    since: Annotated[str | None, typer.Option(help="From this time (ISO 8601; UTC without a zone).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (ISO 8601; UTC without a zone).")] = None,
    kind: Annotated[str | None, typer.Option(help=f"Only this kind: {', '.join(EVENT_KINDS)}.")] = None,
    config: ConfigOption = None,
    output: OutputOption = Output.table,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """The events stored, oldest first: when (to the second), what (created, deleted, migrated, resized,
    powered_on, powered_off, other), which resource, the host and allocations it states, and the message."""
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    if start is not None and end is not None:
        window_between(start, end, "--since", "--until")
    settings = read_settings(config)
    with open_database(settings) as db, handled_errors():
        db.migrate()
        with db.connection() as conn:
            frame = events.timeline(conn, manager=manager, resource=resource, since=start, until=end, kind=kind)
    chosen = view(output, as_json, wide=wide)
    if chosen.output is Output.table:  # to the second: two events a minute apart are told apart
        frame = frame.with_columns(pl.col("ts").dt.strftime("%Y-%m-%d %H:%M:%S")).rename({"ts": "ts_utc"})
    show(frame, chosen, "events")
