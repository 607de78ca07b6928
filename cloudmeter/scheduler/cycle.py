"""A leased manager's capture cycle: from the last captured time up to now, a window at a time.

What the daemon runs as a manager's ``capture`` job; see ``daemon`` for the schedule, leases and failures.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cloudmeter.collectors.base import Collector, ManagerConfig
from cloudmeter.config import Settings
from cloudmeter.model import Window
from cloudmeter.scheduler import bounded, jobs, metrics
from cloudmeter.scheduler.bounded import Bounded
from cloudmeter.scheduler.handler import EventSide
from cloudmeter.scheduler.pipeline import StreamRollup
from cloudmeter.scheduler.windows import CapturePlan, duration, gone_at_source, next_window, stale_after_s
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database

log = logging.getLogger(__name__)


@dataclass
class Leased:
    """A manager this daemon runs.

    ``lock`` is held while one of its jobs runs; ``waiting`` holds the jobs that fired meanwhile (run next by the
    worker holding the lock; both guarded by ``turns``).
    """

    name: str
    id: int
    collector: Collector
    lock: threading.Lock = field(default_factory=threading.Lock)
    stream: StreamRollup | None = None
    config: ManagerConfig | None = None  # to build a new collector after a call to this one was abandoned
    abandoned: bool = False
    limit_s: float = bounded.FACTOR * bounded.DEFAULT_TIMEOUT_S
    turns: threading.Lock = field(default_factory=threading.Lock)
    waiting: set[str] = field(default_factory=set)
    stale: bool = False  # warned that its source sends nothing (once, until it sends again)
    events: EventSide | None = None  # its event catcher, where its source has events


def capture_cycle(
    db: Database,
    settings: Settings,
    leased: Leased,
    row: managers.ManagerRow,
    source: Bounded,
    stop: threading.Event,
) -> int:
    """Capture ``leased`` from the last captured time (``row``'s) up to now, a window at a time, stopping between
    windows on shutdown; skip (and record) what the source no longer keeps. Returns the samples captured."""
    if leased.stream is None or not leased.stream.resource_ids:
        # Only until a stream knows the stored resources (it reads them again after a refresh): reading
        # them all every cycle took 0.9 s of a cycle at 100,000 VMs (benchmarks/scale.py --profile).
        jobs.ensure_inventory(db, leased.id, source)
    schedule = settings.schedule
    plan = CapturePlan(
        schedule.capture_overlap_s, schedule.initial_capture_s, schedule.max_window_s, source.retention_s
    )
    stream = leased.stream = leased.stream or StreamRollup(db, leased.id, settings.time_zones, background=True)
    if leased.events is not None and leased.events.handler.changed.is_set():
        leased.events.handler.changed.clear()  # events moved or resized resources: new topology, hours to rebuild
        stream.invalidate()
    now = datetime.now(UTC)
    captured_until = row.captured_until
    gone = gone_at_source(captured_until, now, plan)
    if gone is not None and plan.retention_s is not None:
        with db.connection() as conn:
            managers.mark_skipped(conn, leased.id, gone.start, gone.end)
        log.warning("manager %s: skipping %s: the source keeps %s", leased.name, gone, duration(plan.retention_s))
        captured_until = gone.end
    try:
        rows = _capture_windows(db, leased, source, stream, plan, captured_until, now, stop)
    except BaseException:
        stream.reset()  # once the background rollups are done with what they were given (all of it stored)
        raise
    stream.wait()  # the job fails with what the background rollups raised: the next one resumes from storage
    _watch_recency(db, settings, leased)
    return rows


def _capture_windows(
    db: Database,
    leased: Leased,
    source: Bounded,
    stream: StreamRollup,
    plan: CapturePlan,
    captured_until: datetime | None,
    now: datetime,
    stop: threading.Event,
) -> int:
    """Capture window after window from ``captured_until`` up to ``now``, closed hours rolled up in the
    background; return the samples captured."""
    rows = 0
    empty: list[Window] = []  # the run of windows that brought nothing, said in one line when it ends
    while not stop.is_set():
        window = next_window(captured_until, now, plan)
        if window is None:
            break
        result = jobs.capture(db, leased.id, source, window, stream=stream)
        captured_until = max(captured_until or window.end, window.end)  # what jobs.capture marked
        rows += result.rows
        metrics.SAMPLES.labels(leased.name).inc(result.rows)
        metrics.LAG.labels(leased.name).set((datetime.now(UTC) - window.end).total_seconds())
        if not result.rows:
            empty.append(window)
            continue
        _say_empty(db, leased, empty)
        empty = []
        log.info("manager %s: captured %d samples, %s", leased.name, result.rows, window)
    _say_empty(db, leased, empty)
    return rows


def _say_empty(db: Database, leased: Leased, empty: list[Window]) -> None:
    """One line for a run of windows that brought nothing: which, and the newest sample stored."""
    if not empty:
        return
    with db.connection() as conn:
        newest = managers.recency(conn, leased.id).newest_sample_at
    span = Window(empty[0].start, empty[-1].end)
    what = f"{span}" if len(empty) == 1 else f"{len(empty)} windows, {span}"
    them = "it" if len(empty) == 1 else "them"
    last = f"the newest sample stored is from {newest:%Y-%m-%d %H:%M} UTC" if newest else "no sample is stored yet"
    log.info(
        "manager %s: captured nothing in %s: the source sent no measures for %s; %s", leased.name, what, them, last
    )


def _watch_recency(db: Database, settings: Settings, leased: Leased) -> None:
    """Export the newest sample's time and whether the source is stale; warn once when it turns stale."""
    with db.connection() as conn:
        recency = managers.recency(conn, leased.id)
    if recency.newest_sample_at is not None:
        metrics.NEWEST.labels(leased.name).set(recency.newest_sample_at.timestamp())
    limit = stale_after_s(settings.schedule)
    stale = recency.quiet_s is not None and recency.quiet_s > limit
    metrics.STALE.labels(leased.name).set(1 if stale else 0)
    if stale and not leased.stale:
        newest = recency.newest_sample_at
        log.warning(
            "manager %s: stale: the source has sent nothing for %s of captured time (more than %d capture "
            "intervals); %s",
            leased.name,
            duration(round(recency.quiet_s or 0)),
            limit // settings.schedule.capture_interval_s,
            f"the newest sample stored is from {newest:%Y-%m-%d %H:%M} UTC" if newest else "no sample is stored",
        )
    elif leased.stale and not stale:
        log.info("manager %s: the source sends samples again", leased.name)
    leased.stale = stale
