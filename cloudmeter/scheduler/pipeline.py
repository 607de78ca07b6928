"""Rollups of one manager, in step with capture (in-stream) and from storage (rebuild).

In-stream: each captured batch is written raw and kept in memory while its hour is open; when capture
passes an hour's end, that hour's rows (every level) and the rows of any local day that ended with it are
computed from memory and written in one transaction with the manager's ``rolled_until`` mark. Nothing just
written is read back but the resources' sampling intervals (``resource_intervals``, a row or two per
resource), which each rollup of closed hours reads as capture recorded them. A new process resumes from
storage once, wherever the last one died (``rolled_until`` NULL or not, samples stored past its marks or not):
the closed hours of the still-open local days are replayed to restore the days' partials, hours captured but
not rolled up yet are rolled up from storage, and every later stored sample goes into the open hours. Resume
and rebuild read the same intervals.

A daemon rolls the closed hours up in a thread of its own (``StreamRollup(background=True)``) while it
captures the next windows: an hour's rows are written only after its samples are committed, with the mark.

Rebuild: stored samples are read in chunks of at most ``CHUNK_ROWS`` rows (whole resources, one UTC day at a
time; each resource's columns packed by the server, the next chunk read while the engine rolls this one) and go
through the same engine with the same intervals, so both paths write the same bits.
Samples that change an hour already rolled up leave a mark in ``rollup_dirty``; ``roll_dirty`` rebuilds
just those hours and their days.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
from psycopg import sql

from cloudmeter.model import METRICS, ResourceRef, Window, epoch_s, from_epoch_s
from cloudmeter.rollups.engine import Roller, leaf_series
from cloudmeter.rollups.intervals import Intervals, Recorded
from cloudmeter.rollups.series import Floats, Int32s, Ints, Rows, Series
from cloudmeter.rollups.stream import OpenHours, Part, merge
from cloudmeter.rollups.topology import Topology
from cloudmeter.rollups.zones import HOUR_S, day_edges
from cloudmeter.storage import inventory, managers, packs, readers, writer
from cloudmeter.storage.database import Database

log = logging.getLogger(__name__)

#: Raw rows per chunk read back from storage (about 100 bytes each in memory, twice while decoding).
CHUNK_ROWS = 1_000_000
DAY_S = 86_400
DEFAULT_INTERVAL_S = 60


def _floor_hour(ts_s: int) -> int:
    return ts_s - ts_s % HOUR_S


def _ceil_hour(ts_s: int) -> int:
    return ts_s + (-ts_s) % HOUR_S


def day_span(time_zones: tuple[str, ...], start_s: int, end_s: int) -> tuple[int, int]:
    """Whole hours covering every local day (in any of ``time_zones``) that overlaps ``[start_s, end_s)``."""
    edges = [day_edges(tz, start_s, end_s) for tz in time_zones]
    first = min(int(e[0]) for e in edges)
    last = max(int(e[-1]) for e in edges)
    return _floor_hour(first), _ceil_hour(last)


@dataclass
class RollupCounts:
    """Rows written (or found unchanged) per table."""

    hourly: int = 0
    daily: dict[str, int] = field(default_factory=dict)

    def add(self, rows: Rows) -> None:
        if rows.tz is None:
            self.hourly += len(rows)
        else:
            self.daily[rows.tz] = self.daily.get(rows.tz, 0) + len(rows)


def _write(db: Database, batches: list[Rows], counts: RollupCounts, mark: tuple[int, int] | None = None) -> None:
    """Write rows (and move ``(manager_id, rolled_until)``) in one transaction: hourly rows first, then daily rows;
    the UTC days written are packed from their hourly rows (``storage.packs``)."""
    tables: dict[str | None, list[Rows]] = {}
    for rows in batches:
        if len(rows):
            tables.setdefault(rows.tz, []).append(rows)
    with db.connection() as conn, conn.transaction():
        for tz, parts in sorted(tables.items(), key=lambda table: table[0] is not None):
            rows = Rows.concat(parts)
            writer.write_rows(conn, rows, db.write_target())
            counts.add(rows)
            if tz == "UTC":
                packs.refresh(conn, rows.resource_id, rows.ts_s)
        if mark is not None:
            managers.mark_rolled(conn, mark[0], from_epoch_s(mark[1]))


#: Each resource's stored samples of a range as one row: every column packed into a bytea in time order (big-endian
#: int8 microseconds since 2000 and float8, NULL as NaN). The server does the packing, a few thousand rows cross.
_PACKED = sql.SQL(
    "SELECT resource_id, string_agg(timestamptz_send(ts), '' ORDER BY ts), {} FROM metric_samples "
    "WHERE ts >= to_timestamp(%s) AND ts < to_timestamp(%s) AND resource_id = ANY(%s) "
    "GROUP BY resource_id ORDER BY resource_id"
).format(
    sql.SQL(", ").join(
        sql.SQL("string_agg(float8send(coalesce({}, 'NaN')), '' ORDER BY ts)").format(sql.Identifier(m))
        for m in METRICS
    )
)
_PG_EPOCH_US = 946_684_800_000_000


def _packed_samples(db: Database, start_s: int, end_s: int, ids: list[int]) -> tuple[Int32s, Ints, Floats]:
    """Stored samples of ``ids`` in ``[start_s, end_s)``, sorted by (resource, ts): ids, epoch seconds, values."""
    with db.connection() as conn:
        rows = conn.cursor(binary=True).execute(_PACKED, [start_s, end_s, ids]).fetchall()
    counts = np.array([len(row[1]) // 8 for row in rows], np.int64)
    rid = np.repeat(np.array([row[0] for row in rows], np.int32), counts)
    micros = np.frombuffer(b"".join(row[1] for row in rows), ">i8").astype(np.int64)
    ts = (micros + _PG_EPOCH_US) // 1_000_000
    values = np.empty((len(ts), len(METRICS)))
    for m in range(len(METRICS)):
        values[:, m] = np.frombuffer(b"".join(row[2 + m] for row in rows), ">f8")
    return rid, ts, values


def stored_leaves(db: Database, topology: Topology, start_s: int, end_s: int) -> Iterator[Series]:
    """Stored samples of ``[start_s, end_s)`` as leaf series, in chunks of whole resources (resource order); the
    next chunk is read in a thread while the caller works on this one."""
    ids = topology.resource_id.tolist()
    rows_per_resource = max(1, (end_s - start_s) // DEFAULT_INTERVAL_S)
    step = max(1, CHUNK_ROWS // rows_per_resource)
    chunks = [ids[lo : lo + step] for lo in range(0, len(ids), step)]
    for rid, ts, values in readers.read_ahead(
        lambda chunk: _packed_samples(db, start_s, end_s, chunk), chunks, "stored-samples"
    ):
        if len(ts):
            yield leaf_series(topology, rid, ts, values)


def _fallback(row: managers.ManagerRow, interval_s: int | None = None) -> int:
    """The grid of a parent in an hour where no resource beneath it has a recorded interval: the manager's most
    common interval (samples stored without an interval, e.g. by hand)."""
    for candidate in (row.sample_interval_s, interval_s):
        if candidate and candidate > 0 and HOUR_S % candidate == 0:
            return candidate
    return DEFAULT_INTERVAL_S


def read_state(db: Database, row: managers.ManagerRow, interval_s: int | None = None) -> tuple[Topology, Intervals]:
    """A manager's topology and its resources' sampling intervals, as the rollups use them."""
    with db.connection() as conn:
        return readers.read_topology(conn, row.id), readers.read_intervals(conn, row.id, _fallback(row, interval_s))


def rebuild(
    db: Database,
    manager_id: int,
    window: Window,
    time_zones: tuple[str, ...],
    hours: set[int] | None = None,
) -> RollupCounts:
    """Recompute from storage the hourly rows in ``window`` (only ``hours``, if given) and the daily rows of
    the local days overlapping them, up to the manager's ``rolled_until`` (else ``captured_until``): an hour
    or a day still open is never written half-full."""
    with db.connection() as conn:
        row = managers.manager_by_id(conn, manager_id)
    topology, intervals = read_state(db, row)
    mark = row.rolled_until or row.captured_until  # never past what is rolled up in-stream, or captured
    limit = _floor_hour(epoch_s(mark)) if mark else None
    since, until = _floor_hour(window.start_s), _ceil_hour(window.end_s)
    lo, hi = day_span(time_zones, since, until)
    if limit is not None:
        hi, until = min(hi, limit), min(until, limit)
    counts = RollupCounts()
    if hi <= lo or len(topology) == 0:
        return counts
    roller = Roller(topology, intervals, time_zones)

    def wanted_hours(rows: Rows) -> Rows:
        keep = (rows.ts_s >= since) & (rows.ts_s < until)
        if hours is not None:
            keep &= np.isin(rows.ts_s, np.fromiter(hours, np.int64, len(hours)))
        return rows.take(keep)

    def wanted_day(start_s: int, end_s: int) -> bool:
        touched = any(start_s <= h < end_s for h in hours) if hours is not None else True
        return start_s >= lo and end_s > since and start_s < until and touched

    for a in range(lo, hi, DAY_S):
        b = min(a + DAY_S, hi)
        hourly = [wanted_hours(rows) for rows in roller.roll(a, b, stored_leaves(db, topology, a, b))]
        daily = [rows for rows in roller.close(b) if wanted_day(int(rows.ts_s[0]), _day_end(rows))]
        _write(db, hourly + daily, counts)
    _warn_dropped(roller, manager_id)
    log.info("rebuilt %s: %d hourly rows, daily %s", window, counts.hourly, counts.daily)
    return counts


def _warn_dropped(roller: Roller, manager_id: int) -> None:
    """Warn of the raw rows of resources not in the inventory (naming a few); a parent's own rows (a vSphere
    host's measurement of itself) are kept raw by design: debug only."""
    if roller.parent_rows:
        log.debug(
            "manager %d: %d raw rows of parents kept raw (their rollups come from their children)",
            manager_id,
            roller.parent_rows,
        )
        roller.parent_rows = 0
    if roller.dropped_rows:
        ids = sorted(roller.dropped_ids)
        named = ", ".join(map(str, ids[:5])) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        log.warning(
            "manager %d: %d raw rows not rolled up: their resources (ids %s) are not in the inventory; refresh "
            "the inventory if resources are missing",
            manager_id,
            roller.dropped_rows,
            named,
        )
        roller.dropped_rows = 0
        roller.dropped_ids.clear()


def _day_end(rows: Rows) -> int:
    assert rows.tz is not None
    start = int(rows.ts_s[0])
    return int(day_edges(rows.tz, start, start + 1)[-1])


class StreamRollup:
    """One manager's in-stream rollup state (see the module docstring).

    With ``background``, the hours a capture closes are rolled up and written by a thread of their own while
    the next captures go on (one hour after another, in order); the caller then calls ``wait`` before it lets
    go of the stream or the database. Without, ``advance`` returns once they are written.
    """

    def __init__(self, db: Database, manager_id: int, time_zones: tuple[str, ...], background: bool = False) -> None:
        self.db, self.manager_id, self.time_zones = db, manager_id, time_zones
        self._roller: Roller | None = None
        self._open: OpenHours | None = None
        self._refreshed_at: object = None
        self._ids: dict[ResourceRef, int] | None = None
        self.counts = RollupCounts()
        #: Intervals this stream's captures recorded (committed), to skip recording them again.
        self.recorded = Recorded()
        #: No dirty mark has been looked for yet: a process that died may have left some.
        self.unchecked = True
        self._background = background
        self._queue: deque[list[tuple[int, list[Part]]]] = deque()
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._worker: threading.Thread | None = None
        self._error: BaseException | None = None
        self._restart = False

    def sync(self) -> managers.ManagerRow:
        """The manager's row, read once per capture; after an inventory refresh, its resource ids and the
        rollup topology are read again. Raises what the background rollups raised since the last call."""
        self._settle()
        with self.db.connection() as conn:
            row = managers.manager_by_id(conn, self.manager_id)
            if self._ids is None or row.last_refresh_at != self._refreshed_at:
                self._ids = inventory.stored_ids(conn, self.manager_id)
                if self._roller is not None:
                    self.wait()
                    self._roller.retopologize(readers.read_topology(conn, self.manager_id))
                self._refreshed_at = row.last_refresh_at
        return row

    @property
    def resource_ids(self) -> dict[ResourceRef, int]:
        """The manager's stored resource ids by reference, as of the last ``sync``."""
        if self._ids is None:
            self.sync()
        assert self._ids is not None
        return self._ids

    @property
    def rolled_until_s(self) -> int | None:
        """Everything before this is rolled up, or handed to the background rollups (None before the first
        sample)."""
        return self._open.start_s if self._open is not None else None

    def invalidate(self) -> None:
        """Read the resource ids and the topology again at the next ``sync`` and look for dirty marks at the end of
        the next capture: something other than an inventory refresh changed them (events)."""
        self._ids = None
        self.unchecked = True

    def reset(self) -> None:
        """Drop the in-memory state once the background rollups are done; the next batch resumes from storage."""
        self._idle.wait()
        self._roller, self._open, self._restart = None, None, False

    def wait(self) -> None:
        """Return once every hour handed over is rolled up and written; raise what the rollups raised (the state
        is then dropped, so the next batch resumes from storage)."""
        self._idle.wait()
        error, self._error = self._error, None
        if error is not None or self._restart:
            self.reset()
        if error is not None:
            raise error

    def _settle(self) -> None:
        """Take up a failure or a restart of the background rollups (see ``wait``)."""
        if self._error is not None or self._restart:
            self.wait()

    def add(self, resource_id: Int32s, ts_s: Ints, values: Floats, interval_s: int) -> None:
        """Keep a stored batch's samples for their open hours."""
        self._settle()
        if self._roller is None:
            self._resume(interval_s, int(ts_s.min()) if len(ts_s) else None)
        if self._open is not None:  # still None: nothing stored, captured or given to start from
            self._open.add(resource_id, ts_s, values)

    def advance(self, until_s: int) -> None:
        """Roll up and write every open hour that ends at or before ``until_s`` (all stored by now), with the
        intervals recorded; in the background if so made."""
        self._settle()
        if self._roller is None or self._open is None or _floor_hour(until_s) <= self._open.start_s:
            return
        open_hours = self._open
        hours = [(hour, open_hours.pop(hour)) for hour in range(open_hours.start_s, _floor_hour(until_s), HOUR_S)]
        if not self._background:
            if not self._roll_hours(hours):  # a finer interval than the open days can hold: start over
                self.reset()
                with self.db.connection() as conn:
                    row = managers.manager_by_id(conn, self.manager_id)
                self._resume(_fallback(row), None)
            return
        with self._lock:
            self._queue.append(hours)
            self._idle.clear()
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name=f"rollups-{self.manager_id}", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        """The background thread: roll up the hours handed over, in order, until none is left."""
        while True:
            with self._lock:
                if not self._queue or self._error is not None or self._restart:
                    self._queue.clear()
                    self._worker = None
                    self._idle.set()
                    return
                hours = self._queue.popleft()
            try:
                self._restart = not self._roll_hours(hours)
            except BaseException as exc:  # handed to the capturing thread by the next sync, add or wait
                self._error = exc

    def _roll_hours(self, hours: list[tuple[int, list[Part]]]) -> bool:
        """Roll up and write ``hours``; False (nothing written) if their intervals are finer than the open days
        can hold: the caller then starts over from storage."""
        roller = self._roller
        assert roller is not None
        with self.db.connection() as conn:
            row = managers.manager_by_id(conn, self.manager_id)
            intervals = readers.read_intervals(conn, self.manager_id, _fallback(row))
        if not roller.use_intervals(intervals):
            return False
        for hour, parts in hours:
            rid, ts, values = merge(parts)
            self._roll(roller, hour, hour + HOUR_S, [leaf_series(roller.topology, rid, ts, values)] if len(ts) else [])
        _warn_dropped(roller, self.manager_id)
        return True

    def _roll(self, roller: Roller, start_s: int, end_s: int, leaves: Iterable[Series]) -> None:
        """Write the rows of the whole hours ``[start_s, end_s)`` and of the days ended by then, with the mark."""
        rows = [*roller.roll(start_s, end_s, leaves), *roller.close(end_s)]
        _write(self.db, rows, self.counts, (self.manager_id, end_s))

    def _resume(self, interval_s: int, first_s: int | None) -> None:
        """Take up where the last process left off, from what is stored (it may have died at any point).

        Everything before ``rolled_until`` is rolled up: the stored hours of the still-open local days are
        replayed (no writes) to restore those days' partials. Every stored sample from ``rolled_until`` on is
        taken in: the hours that closed before ``captured_until`` are rolled up from storage and written now,
        the rest is kept open. With ``rolled_until`` NULL (nothing rolled up yet), the same from the hour of
        the earliest sample stored or arriving.
        """
        with self.db.connection() as conn:
            row = managers.manager_by_id(conn, self.manager_id)
        topology, intervals = read_state(self.db, row, interval_s)
        with self.db.connection() as conn:
            span = readers.sample_span(conn, topology.resource_id.tolist(), row.rolled_until)
        roller = Roller(topology, intervals, self.time_zones)
        captured = epoch_s(row.captured_until) if row.captured_until else None
        if row.rolled_until is not None:
            rolled = epoch_s(row.rolled_until)
            replay_from = day_span(self.time_zones, rolled, rolled + 1)[0]  # the start of the earliest open day
            for a in range(replay_from, rolled, DAY_S):
                b = min(a + DAY_S, rolled)
                for _ in roller.roll(a, b, stored_leaves(self.db, topology, a, b)):
                    pass  # these hours are stored; replaying them restores the open days' partials
            roller.forget(rolled)
        else:
            known = [s for s in (first_s, captured, epoch_s(span[0]) if span else None) if s is not None]
            if not known:
                return
            rolled = _floor_hour(min(known))
        closed = max(rolled, _floor_hour(captured or rolled))
        for a in range(rolled, closed, DAY_S):
            b = min(a + DAY_S, closed)
            self._roll(roller, a, b, stored_leaves(self.db, topology, a, b))
        open_hours = OpenHours(closed)
        if span is not None and epoch_s(span[1]) >= closed:
            for leaves in stored_leaves(self.db, topology, closed, _ceil_hour(epoch_s(span[1]) + 1)):
                open_hours.add(leaves.resource_id, leaves.ts_s, leaves.values)
        _warn_dropped(roller, self.manager_id)
        log.info("resumed rollups of manager %d from %s", self.manager_id, from_epoch_s(rolled))
        self._roller, self._open = roller, open_hours
