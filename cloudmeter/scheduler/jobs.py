"""Per-manager jobs as plain functions: inventory refresh, capture, rollup. The CLI, the demo, the daemon
and the tests all call these.

Capture writes each batch in its own transaction and moves the manager's ``captured_until`` mark only after
the whole window is stored, so a failure or crash mid-window means that window is captured again (writes are
idempotent), never that a gap is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np
import numpy.typing as npt
import psycopg

from cloudmeter.errors import BadPayload
from cloudmeter.model import Inventory, ResourceRef, SampleBatch, Window, epoch_s
from cloudmeter.rollups.zones import HOUR_S
from cloudmeter.scheduler import pipeline
from cloudmeter.scheduler.pipeline import StreamRollup
from cloudmeter.storage import inventory, managers, writer
from cloudmeter.storage.database import Database
from cloudmeter.storage.writer import DirtyMarks

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


class Source(Protocol):
    """What a job reads from: a collector (``collectors.base.Collector``), or the daemon's ``bounded.Bounded``."""

    name: str

    def inventory(self) -> Inventory: ...

    def capture(self, window: Window) -> Iterator[SampleBatch]: ...


def _now() -> datetime:
    return datetime.now(UTC)


def refresh_inventory(db: Database, manager_id: int, collector: Source) -> inventory.RefreshResult:
    """Read the source's inventory and persist it (one transaction)."""
    seen = collector.inventory()
    with db.connection() as conn:
        result = inventory.save_inventory(conn, manager_id, seen)
        managers.mark_refreshed(conn, manager_id, seen.observed_at)
    log.info("manager %s: %d resources, %d retired", collector.name, len(result.ids), result.retired)
    return result


def resource_ids(db: Database, manager_id: int) -> dict[ResourceRef, int]:
    """The stored ids of a manager's resources by reference."""
    with db.connection() as conn:
        return inventory.stored_ids(conn, manager_id)


def ensure_inventory(db: Database, manager_id: int, collector: Source) -> None:
    """Refresh the inventory if none is stored yet: capture needs the resources its samples belong to."""
    if not resource_ids(db, manager_id):
        refresh_inventory(db, manager_id, collector)


def _batch_ids(batch: SampleBatch, ids: dict[ResourceRef, int], manager: str) -> npt.NDArray[np.int32]:
    unknown = [ref for ref in batch.refs if ref not in ids]
    if unknown:
        raise BadPayload(
            manager,
            f"samples for {len(unknown)} resources not in inventory (first: {unknown[0].kind} "
            f"{unknown[0].ems_ref}); run `cloudmeter refresh --manager {manager}` first",
        )
    lookup = np.array([ids[ref] for ref in batch.refs], dtype=np.int32)
    return lookup[batch.resource_idx]


@dataclass(frozen=True)
class CaptureResult:
    """What one capture stored."""

    window: Window
    batches: int
    rows: int
    interval_s: int | None  # the interval of most resources captured (each has its own: resource_intervals)


def capture(
    db: Database,
    manager_id: int,
    collector: Source,
    window: Window,
    progress: Progress | None = None,
    stream: StreamRollup | None = None,
) -> CaptureResult:
    """Capture ``window`` from the source into ``metric_samples``, rolling up in-stream; advance the marks.

    ``stream`` carries the in-stream state between calls (a daemon keeps one per manager); without it, one
    is resumed from storage for this call. Hours the window completes are rolled up from memory; changed
    samples of hours already rolled up are marked and rebuilt (``roll_dirty``) at the end. Dirty marks are
    looked for when this capture may have left some, when it closed an hour, and at a stream's first capture
    (a process that died may have left some).
    """
    time_zones = stream.time_zones if stream else _time_zones(db)
    stream = stream or StreamRollup(db, manager_id, time_zones)
    row = stream.sync()
    ids = stream.resource_ids
    append_from = epoch_s(row.captured_until) if row.captured_until else window.start_s
    batches = rows = 0
    resources: dict[int, set[int]] = {}  # interval -> resources sent at it
    marked = stream.unchecked  # whether dirty marks may be stored

    def store(rid: npt.NDArray[np.int32], batch: SampleBatch, last: bool) -> None:
        nonlocal marked
        dirty = DirtyMarks(manager_id, stream.rolled_until_s or window.start_s)
        if len(batch) and int(batch.ts_s.min()) // HOUR_S * HOUR_S < dirty.before_s:
            marked = True
        try:
            with db.connection() as conn, conn.transaction():
                writer.write_samples(
                    conn,
                    rid,
                    batch.ts_s,
                    batch.values,
                    db.write_target(),
                    append_from_s=append_from,
                    dirty=dirty,
                    interval_s=batch.interval_s,
                    known=stream.recorded,
                )
                if last:  # the marks move with the window's last batch: one commit fewer per capture
                    _mark_captured(conn, manager_id, window, _most_common(resources), row.sample_interval_s)
        except BaseException:
            stream.recorded.clear()  # it may have noted intervals that were rolled back
            raise

    pending: tuple[npt.NDArray[np.int32], SampleBatch] | None = None
    for batch in collector.capture(window):
        rid = _batch_ids(batch, ids, collector.name)
        stream.add(rid, batch.ts_s, batch.values, batch.interval_s)
        if pending is not None:
            store(*pending, last=False)
        pending = (rid, batch)
        batches += 1
        rows += len(batch)
        resources.setdefault(batch.interval_s, set()).update(np.unique(rid).tolist())
        if progress:
            progress(len(batch))
    if pending is not None:
        store(*pending, last=True)
    else:
        with db.connection() as conn, conn.transaction():
            _mark_captured(conn, manager_id, window, None, row.sample_interval_s)
    rolled = stream.rolled_until_s
    stream.advance(window.end_s)
    if marked or stream.rolled_until_s != rolled:
        roll_dirty(db, manager_id, time_zones, stream)
        stream.unchecked = False
    return CaptureResult(window, batches, rows, _most_common(resources))


def _most_common(resources: dict[int, set[int]]) -> int | None:
    """The interval most resources were sent at (the finer of a tie), None when nothing was sent."""
    return min(resources, key=lambda interval: (-len(resources[interval]), interval)) if resources else None


def _mark_captured(
    conn: psycopg.Connection, manager_id: int, window: Window, interval_s: int | None, stored_s: int | None
) -> None:
    """Move the capture marks; ``managers.sample_interval_s`` (``stored_s`` now) becomes the interval most
    resources were sent at (each resource's own is in ``resource_intervals``)."""
    if interval_s is not None and interval_s != stored_s:
        conn.execute("UPDATE managers SET sample_interval_s = %s WHERE id = %s", (interval_s, manager_id))
    managers.mark_captured(conn, manager_id, window.start, window.end, _now())


def _time_zones(db: Database) -> tuple[str, ...]:
    """The time zones of the daily rows already stored (UTC at least), for callers that name none."""
    with db.connection() as conn:
        rows = conn.execute("SELECT DISTINCT tz FROM metric_daily").fetchall()
    return ("UTC", *sorted({tz for (tz,) in rows} - {"UTC"}))


def roll_dirty(db: Database, manager_id: int, time_zones: tuple[str, ...], stream: StreamRollup | None = None) -> int:
    """Rebuild the rolled-up hours whose samples changed (and their days); return how many hours."""
    with db.connection() as conn:
        hours = managers.dirty_hours(conn, manager_id)
    if not hours:
        return 0
    if stream is not None:
        stream.wait()  # the hours handed to the background rollups are written: rebuild sees them
    marks = {epoch_s(h) for h in hours}
    pipeline.rebuild(db, manager_id, Window(hours[0], hours[-1] + timedelta(hours=1)), time_zones, marks)
    with db.connection() as conn, conn.transaction():
        managers.clear_dirty(conn, manager_id, hours)
    if stream is not None and stream.rolled_until_s is not None:
        open_from = pipeline.day_span(time_zones, stream.rolled_until_s, stream.rolled_until_s + 1)[0]
        if max(marks) >= open_from:
            stream.reset()  # an open day took in the old values: restore it from storage
    log.info("manager %d: rebuilt %d changed hours", manager_id, len(marks))
    return len(marks)


def rollup(db: Database, manager_id: int, window: Window, time_zones: tuple[str, ...]) -> pipeline.RollupCounts:
    """Rebuild from storage the hourly rows in ``window`` and the daily rows (per time zone) of its days."""
    return pipeline.rebuild(db, manager_id, window, time_zones)
