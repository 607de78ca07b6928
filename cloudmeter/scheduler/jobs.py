"""Per-manager jobs as plain functions: inventory refresh, capture, rollup. The CLI, the demo, the daemon
and the tests all call these.

Capture writes each batch in its own transaction and moves the manager's ``captured_until`` mark only after
the whole window is stored, so a failure or crash mid-window means that window is captured again (writes are
idempotent), never that a gap is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from cloudmeter.collectors.base import Collector
from cloudmeter.errors import BadPayload
from cloudmeter.model import METRICS, ResourceRef, SampleBatch, Window, from_epoch_s
from cloudmeter.rollups.reference import TimeRollup, rollup_buckets
from cloudmeter.rollups.zones import day_edges, hour_edges
from cloudmeter.storage import inventory, managers, readers, writer
from cloudmeter.storage.database import Database
from cloudmeter.storage.schema import STATS

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


def _now() -> datetime:
    return datetime.now(UTC)


def refresh_inventory(db: Database, manager_id: int, collector: Collector) -> inventory.RefreshResult:
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
        rows = conn.execute("SELECT kind, ems_ref, id FROM resources WHERE manager_id = %s", (manager_id,))
        return {ResourceRef(kind, ems_ref): rid for kind, ems_ref, rid in rows}


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
    interval_s: int | None


def capture(
    db: Database, manager_id: int, collector: Collector, window: Window, progress: Progress | None = None
) -> CaptureResult:
    """Capture ``window`` from the source into ``metric_samples``; advance the manager's mark at the end."""
    ids = resource_ids(db, manager_id)
    batches = rows = 0
    interval: int | None = None
    for batch in collector.capture(window):
        rid = _batch_ids(batch, ids, collector.name)
        with db.connection() as conn:
            writer.write_samples(conn, rid, batch.ts_s, batch.values, db.native_partitions())
        batches += 1
        rows += len(batch)
        interval = batch.interval_s
        if progress:
            progress(len(batch))
    with db.connection() as conn:
        if interval is not None:
            conn.execute("UPDATE managers SET sample_interval_s = %s WHERE id = %s", (interval, manager_id))
        managers.mark_captured(conn, manager_id, window.end, _now())
    return CaptureResult(window, batches, rows, interval)


def _rollup_columns(rollup: TimeRollup, allocations: dict[int, tuple[int, int]]) -> dict[str, npt.NDArray[Any]]:
    n = len(rollup)
    columns: dict[str, npt.NDArray[Any]] = {"ts": rollup.bucket_start_s, "resource_id": rollup.resource_id}
    for m, metric in enumerate(METRICS):
        for stat in STATS:
            source = rollup.max_ts if stat == "max_ts" else getattr(rollup, stat)
            columns[f"{metric}_{stat}"] = source[:, m]
    alloc = np.array([allocations.get(int(r), (-1, -1)) for r in rollup.resource_id], dtype=np.int64).reshape(n, 2)
    columns.update(
        sample_count=rollup.sample_count,
        expected_count=rollup.expected_count,
        vcpus=alloc[:, 0],
        memory_bytes=alloc[:, 1],
        child_count=np.full(n, -1),
        children_with_data=np.full(n, -1),
    )
    return columns


@dataclass(frozen=True)
class RollupResult:
    """Rows computed per level (each written, or already stored unchanged)."""

    hourly: int
    daily: dict[str, int]


def rollup(db: Database, manager_id: int, window: Window, time_zones: tuple[str, ...]) -> RollupResult:
    """Recompute the hourly rows and the daily rows (per time zone) of every bucket overlapping ``window``.

    This is the plain reference path: it reads the raw samples back from storage.
    """
    with db.connection() as conn:
        row = conn.execute("SELECT sample_interval_s FROM managers WHERE id = %s", (manager_id,)).fetchone()
        interval = int(row[0]) if row and row[0] else 60
        alloc_rows = conn.execute(
            "SELECT id, coalesce(vcpus, -1), coalesce(memory_bytes, -1) FROM resources WHERE manager_id = %s",
            (manager_id,),
        ).fetchall()
    allocations = {rid: (vcpus, mem) for rid, vcpus, mem in alloc_rows}
    days = {tz: day_edges(tz, window.start_s, window.end_s) for tz in time_zones}
    hours = hour_edges(window.start_s, window.end_s)
    span = Window(
        from_epoch_s(min(int(hours[0]), *(int(e[0]) for e in days.values()))),
        from_epoch_s(max(int(hours[-1]), *(int(e[-1]) for e in days.values()))),
    )
    with db.connection() as conn:
        samples = readers.sample_arrays(conn, span, list(allocations))
    rid = samples["resource_id"].astype(np.int32)
    ts = samples["ts"] // 1_000_000
    values = np.column_stack([samples[m] for m in METRICS]) if len(ts) else np.zeros((0, len(METRICS)))
    levels: dict[str | None, TimeRollup] = {None: rollup_buckets(rid, ts, values, hours, interval)}
    levels.update({tz: rollup_buckets(rid, ts, values, edges, interval) for tz, edges in days.items()})
    with db.connection() as conn:
        for tz, rows in levels.items():
            writer.upsert_rollups(conn, _rollup_columns(rows, allocations), tz, db.native_partitions())
    result = RollupResult(len(levels[None]), {tz: len(rows) for tz, rows in levels.items() if tz is not None})
    log.info("rolled up %s: %d hourly rows, daily %s", window, result.hourly, result.daily)
    return result
