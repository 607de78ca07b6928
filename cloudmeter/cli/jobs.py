"""``cloudmeter run``, ``backfill``, ``refresh``, ``capture`` and ``rollup``: the scheduler's jobs, by hand or as
the daemon."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from cloudmeter.cli.common import (
    ConfigOption,
    console,
    err_console,
    fail,
    handled_errors,
    open_database,
    parse_time,
    read_settings,
    window_between,
)
from cloudmeter.cli.output import plural
from cloudmeter.cli.resolve import registered
from cloudmeter.collectors.base import Collector
from cloudmeter.collectors.registry import build_collector
from cloudmeter.config import Settings
from cloudmeter.model import Window
from cloudmeter.scheduler import jobs
from cloudmeter.scheduler.pipeline import StreamRollup
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database

if TYPE_CHECKING:
    from cloudmeter.api.server import Background

ManagerOption = Annotated[str, typer.Option("--manager", "-m", help="Manager name from the config.")]


def register(app: typer.Typer) -> None:
    """Put ``run``, ``backfill``, ``refresh``, ``capture`` and ``rollup`` on the root app, in that order."""
    for command in (run, backfill, refresh, capture, rollup):
        app.command()(command)


def _window(since: str, until: str | None) -> Window:
    """``--since`` to ``--until`` (default: now), or a clear error."""
    start = parse_time(since, "--since")
    assert start is not None
    return window_between(start, parse_time(until, "--until") or datetime.now(UTC), "--since", "--until")


def _captured(
    db: Database, settings: Settings, manager_id: int, collector: Collector, windows: list[Window]
) -> list[jobs.CaptureResult]:
    """Capture ``windows`` in order with one in-stream rollup (refreshing the inventory first if empty), after
    saying what of them the source or the next maintenance may not keep."""
    with handled_errors():
        for note in _older_than_kept(settings, collector, Window(windows[0].start, windows[-1].end)):
            err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
        jobs.ensure_inventory(db, manager_id, collector)
        stream = StreamRollup(db, manager_id, settings.time_zones)
        return [jobs.capture(db, manager_id, collector, window, stream=stream) for window in windows]


def _older_than_kept(settings: Settings, collector: Collector, window: Window) -> list[str]:
    """What of ``window`` lies before what the source keeps of live series, or before the raw samples kept."""
    now, notes = datetime.now(UTC), []
    retention = collector.retention_s
    if retention is not None and window.start < now - timedelta(seconds=retention):
        notes.append(
            f"{collector.name}'s source keeps {retention / 86400:g} days of live series: before "
            f"{now - timedelta(seconds=retention):%Y-%m-%d %H:%M} UTC only series that stopped since (deleted VMs) "
            "may still hold samples"
        )
    raw = settings.retention
    if window.start < now - timedelta(days=raw.raw_days):
        notes.append(
            f"samples before {now - timedelta(days=raw.raw_days):%Y-%m-%d %H:%M} UTC are older than retention.raw_days "
            f"({raw.raw_days}): they are rolled up now, and the next maintenance drops their raw rows (hourly rows "
            f"stay {raw.hourly_days} days, daily rows {raw.daily_days}); raise raw_days first to keep them"
        )
    return notes


def _manager(db: Database, settings: Settings, name: str) -> tuple[int, Collector]:
    manager_id, config = registered(db, settings, name)
    return manager_id, build_collector(name, config)


def run(config: ConfigOption = None) -> None:
    """Run the daemon: refresh, capture and roll up every enabled manager on schedule, until SIGTERM/SIGINT.

    Several daemons may share one database: managers are spread among them and taken over when one dies. With
    [api] port set (CLOUDMETER_API__PORT), the HTTP API is served beside it, as `cloudmeter serve` does.
    """
    from cloudmeter.scheduler import daemon

    settings = read_settings(config)
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("cloudmeter").setLevel(logging.INFO)
    with open_database(settings) as db, handled_errors():
        api = _api_beside(db, settings)
        try:
            daemon.run(db, settings)
        finally:
            if api is not None:
                api.stop()


def _api_beside(db: Database, settings: Settings) -> Background | None:
    """With ``[api] port`` set, the HTTP API served in a thread beside the daemon, on the daemon's database."""
    if settings.api.port is None:
        return None
    from cloudmeter.api import server
    from cloudmeter.api.app import create_app

    sock = server.listen(settings.api.host, settings.api.port)
    db.migrate()  # tokens are checked from the first request on
    api = server.Background(create_app(settings, db), sock)
    api.start()
    logging.getLogger("cloudmeter.api").info("HTTP API at %s/api/v1 (docs %s/api/v1/docs)", *[server.url(sock)] * 2)
    return api


def backfill(
    manager: ManagerOption,
    since: Annotated[str, typer.Option(help="Start (ISO 8601).")],
    until: Annotated[str | None, typer.Option(help="End (ISO 8601); default: now.")] = None,
    config: ConfigOption = None,
) -> None:
    """Capture a past range a window at a time; rollups follow. Parts older than the source keeps (or than raw
    samples are kept) are noted, not refused: a series that stopped keeps its measures longer."""
    settings = read_settings(config)
    window = _window(since, until)
    with open_database(settings) as db:
        manager_id, collector = _manager(db, settings, manager)
        windows = window.split(settings.schedule.max_window_s)
        rows = sum(result.rows for result in _captured(db, settings, manager_id, collector, windows))
    console.print(f"{manager}: {rows:,} samples from {window}", highlight=False)


def refresh(manager: ManagerOption, config: ConfigOption = None) -> None:
    """Refresh a manager's inventory (VMs, hosts, clusters, history)."""
    settings = read_settings(config)
    with open_database(settings) as db:
        manager_id, collector = _manager(db, settings, manager)
        result = jobs.refresh_inventory(db, manager_id, collector)
    console.print(
        f"{manager}: {len(result.ids)} resources, {result.retired} retired, {result.history_changed} histories changed",
        highlight=False,
    )


def capture(
    manager: ManagerOption,
    since: Annotated[str | None, typer.Option(help="Start (ISO 8601); default: the last captured time.")] = None,
    until: Annotated[str | None, typer.Option(help="End (ISO 8601); default: now.")] = None,
    config: ConfigOption = None,
) -> None:
    """Capture a manager's metrics for a window (idempotent: re-capturing rewrites nothing)."""
    settings = read_settings(config)
    start, end = parse_time(since, "--since"), parse_time(until, "--until") or datetime.now(UTC)
    window = window_between(start, end, "--since", "--until") if start is not None else None
    with open_database(settings) as db:
        manager_id, collector = _manager(db, settings, manager)
        if window is None:
            with db.connection() as conn:
                row = managers.get_manager(conn, manager)
            mark = row.captured_until if row else None
            if mark is None:
                raise fail(f"manager {manager!r} has never been captured; give --since", 2)
            overlap = timedelta(seconds=settings.schedule.capture_overlap_s)
            window = window_between(mark - overlap, end, "--since", "--until")
        (result,) = _captured(db, settings, manager_id, collector, [window])
    console.print(
        f"{manager}: {plural(result.rows, 'sample')} in {plural(result.batches, 'batch', 'batches')} "
        f"for {result.window}",
        highlight=False,
    )


def rollup(
    manager: ManagerOption,
    since: Annotated[str, typer.Option(help="Recompute buckets from this time (ISO 8601).")],
    until: Annotated[str | None, typer.Option(help="Up to this time (ISO 8601); default: now.")] = None,
    config: ConfigOption = None,
) -> None:
    """Recompute hourly and daily rollups of a manager from its stored raw samples."""
    settings = read_settings(config)
    window = _window(since, until)
    with open_database(settings) as db:
        manager_id, _ = registered(db, settings, manager)
        with handled_errors():
            result = jobs.rollup(db, manager_id, window, settings.time_zones)
    console.print(f"{manager}: {result.hourly:,} hourly rows, daily {result.daily}", highlight=False)
