"""The ``managers`` table: one row per configured provider connection and its capture progress."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import class_row


@dataclass(frozen=True)
class ManagerRow:
    """A stored manager and its progress."""

    id: int
    name: str
    kind: str
    enabled: bool
    last_refresh_at: datetime | None
    last_capture_at: datetime | None
    captured_until: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    sample_interval_s: int | None
    rolled_until: datetime | None
    source: str
    failures: int
    next_attempt_at: datetime | None


_COLUMNS = (
    "id, name, kind, enabled, last_refresh_at, last_capture_at, captured_until, last_error, last_error_at, "
    "sample_interval_s, rolled_until, source, failures, next_attempt_at"
)


def register_manager(conn: psycopg.Connection, name: str, kind: str, config: dict[str, Any]) -> int:
    """Insert or update manager ``name`` of the config file (its non-secret config as JSON); return its id.

    A manager of the same name added with ``managers add`` keeps its stored config.
    """
    with conn.transaction():
        row = conn.execute(
            """INSERT INTO managers (name, kind, config) VALUES (%s, %s, %s::jsonb)
               ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, config = excluded.config
               WHERE managers.source = 'config' RETURNING id""",
            (name, kind, json.dumps(config, sort_keys=True, default=str)),
        ).fetchone()
        if row is None:
            row = conn.execute("SELECT id FROM managers WHERE name = %s", (name,)).fetchone()
    assert row is not None
    return int(row[0])


def add_manager(conn: psycopg.Connection, name: str, kind: str, config: dict[str, Any]) -> int:
    """Store a manager added from the command line: its whole table (secrets only as ``env:`` references)."""
    with conn.transaction():
        row = conn.execute(
            """INSERT INTO managers (name, kind, config, source) VALUES (%s, %s, %s::jsonb, 'cli')
               ON CONFLICT (name) DO NOTHING RETURNING id""",
            (name, kind, json.dumps(config, sort_keys=True, default=str)),
        ).fetchone()
    if row is None:
        raise LookupError(f"a manager named {name!r} exists already")
    return int(row[0])


def added_managers(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    """The tables of managers added from the command line, by name."""
    rows = conn.execute("SELECT name, config FROM managers WHERE source = 'cli' ORDER BY name")
    return {name: dict(config) for name, config in rows}


def set_enabled(conn: psycopg.Connection, name: str, enabled: bool) -> bool:
    """Enable or disable manager ``name``; False if there is none."""
    with conn.transaction():
        done = conn.execute("UPDATE managers SET enabled = %s WHERE name = %s", (enabled, name)).rowcount
    return done == 1


@dataclass(frozen=True)
class Removed:
    """What ``remove_manager`` deleted besides the manager: rows per table (daily rows of every time zone)."""

    resources: int
    samples: int
    hourly: int
    daily: int


def remove_manager(conn: psycopg.Connection, name: str) -> Removed | None:
    """Delete manager ``name`` with its resources and their samples and rollups; what went, or None if there is
    no such manager."""
    with conn.transaction():
        row = conn.execute("SELECT id FROM managers WHERE name = %s", (name,)).fetchone()
        if row is None:
            return None
        ids = "SELECT id FROM resources WHERE manager_id = %s"
        deleted = {
            table: conn.execute(f"DELETE FROM {table} WHERE resource_id IN ({ids})", (row[0],)).rowcount
            for table in ("metric_samples", "metric_hourly", "metric_daily", "resource_history")
        }
        resources = conn.execute("DELETE FROM resources WHERE manager_id = %s", (row[0],)).rowcount
        conn.execute("DELETE FROM managers WHERE id = %s", (row[0],))
    return Removed(resources, deleted["metric_samples"], deleted["metric_hourly"], deleted["metric_daily"])


def list_managers(conn: psycopg.Connection) -> list[ManagerRow]:
    """Every stored manager, by name."""
    with conn.cursor(row_factory=class_row(ManagerRow)) as cur:
        return cur.execute(f"SELECT {_COLUMNS} FROM managers ORDER BY name").fetchall()


def get_manager(conn: psycopg.Connection, name: str) -> ManagerRow | None:
    """The stored manager ``name``, or None."""
    with conn.cursor(row_factory=class_row(ManagerRow)) as cur:
        return cur.execute(f"SELECT {_COLUMNS} FROM managers WHERE name = %s", (name,)).fetchone()


def manager_by_id(conn: psycopg.Connection, manager_id: int) -> ManagerRow:
    """The stored manager ``manager_id`` (it must exist)."""
    with conn.cursor(row_factory=class_row(ManagerRow)) as cur:
        row = cur.execute(f"SELECT {_COLUMNS} FROM managers WHERE id = %s", (manager_id,)).fetchone()
    if row is None:
        raise LookupError(f"no manager with id {manager_id}")
    return row


def mark_rolled(conn: psycopg.Connection, manager_id: int, until: datetime) -> None:
    """Record that every hour before ``until`` is rolled up (call inside the transaction writing the rows)."""
    conn.execute("UPDATE managers SET rolled_until = %s WHERE id = %s", (until, manager_id))


def dirty_hours(conn: psycopg.Connection, manager_id: int) -> list[datetime]:
    """Starts of the rolled-up hours whose raw samples changed since, oldest first."""
    rows = conn.execute("SELECT ts FROM rollup_dirty WHERE manager_id = %s ORDER BY ts", (manager_id,))
    return [ts for (ts,) in rows]


def clear_dirty(conn: psycopg.Connection, manager_id: int, hours: list[datetime]) -> None:
    """Forget dirty marks once their hours are rolled up again."""
    conn.execute("DELETE FROM rollup_dirty WHERE manager_id = %s AND ts = ANY(%s)", (manager_id, hours))


_CLEAR_FAILURE = "last_error = NULL, last_error_at = NULL, failures = 0, next_attempt_at = NULL"


def mark_refreshed(conn: psycopg.Connection, manager_id: int, at: datetime) -> None:
    """Record a successful inventory refresh."""
    with conn.transaction():
        conn.execute(f"UPDATE managers SET last_refresh_at = %s, {_CLEAR_FAILURE} WHERE id = %s", (at, manager_id))


def mark_captured(
    conn: psycopg.Connection, manager_id: int, start: datetime | None, end: datetime, at: datetime
) -> None:
    """Record that ``[start, end)`` is captured (``start`` None: everything before ``end``). ``captured_until``
    means everything before it is stored (or gone at the source): it moves only when the range starts at or
    before it, then to the end of the captured run it reaches (a range captured earlier beyond it included),
    and never back. A range beyond it leaves a hole before it."""
    with conn.transaction():
        conn.execute(
            f"""UPDATE managers SET captured = captured + tstzmultirange(tstzrange(%(start)s, %(end)s)),
                                    last_capture_at = %(at)s, {_CLEAR_FAILURE} WHERE id = %(id)s""",
            {"start": start, "end": end, "at": at, "id": manager_id},
        )
        _move_mark(conn, manager_id, start, end)


def _move_mark(conn: psycopg.Connection, manager_id: int, start: datetime | None, end: datetime) -> None:
    """Move ``captured_until`` after ``[start, end)`` joined the captured or skipped ranges (``mark_captured``)."""
    conn.execute(
        """UPDATE managers m SET captured_until = greatest(m.captured_until,
               (SELECT max(upper(r)) FROM unnest(m.captured + m.skipped) r
                 WHERE lower_inf(r) OR lower(r) <= coalesce(m.captured_until, %(start)s, %(end)s)))
           WHERE id = %(id)s""",
        {"start": start, "end": end, "id": manager_id},
    )


def mark_skipped(conn: psycopg.Connection, manager_id: int, start: datetime, end: datetime) -> None:
    """Record that ``[start, end)`` is skipped because the source no longer keeps it: it counts as covered, so
    ``captured_until`` moves over it as over a captured range, and what of it was not captured before shows in
    ``skipped_ranges``."""
    with conn.transaction():
        conn.execute(
            """UPDATE managers SET skipped = skipped + (tstzmultirange(tstzrange(%s, %s)) - captured)
               WHERE id = %s""",
            (start, end, manager_id),
        )
        _move_mark(conn, manager_id, start, end)


def skipped_ranges(conn: psycopg.Connection, manager_id: int) -> list[tuple[datetime, datetime]]:
    """The time ranges skipped as gone at the source, oldest first."""
    rows = conn.execute(
        "SELECT lower(r), upper(r) FROM managers m, unnest(m.skipped) r WHERE m.id = %s ORDER BY 1", (manager_id,)
    ).fetchall()
    return [(start, end) for start, end in rows]


@dataclass(frozen=True)
class Recency:
    """How recent a manager's data is: its newest raw sample, and the captured time since (``quiet_s``: from the
    newest sample, or from the first captured time when none is stored, to ``captured_until``; None before the
    first capture)."""

    newest_sample_at: datetime | None
    quiet_s: float | None


def recency(conn: psycopg.Connection, manager_id: int) -> Recency:
    """The manager's ``Recency``. The newest sample is found by one backward probe of the samples' primary key
    ``(resource_id, ts)`` per resource, not by a scan."""
    row = conn.execute(
        """SELECT newest.ts, extract(epoch FROM m.captured_until - coalesce(newest.ts,
                      (SELECT min(lower(r)) FROM unnest(m.captured) r)))::float8
           FROM managers m, LATERAL (
               SELECT max(last.ts) AS ts FROM resources r
               CROSS JOIN LATERAL (SELECT s.ts FROM metric_samples s WHERE s.resource_id = r.id
                                   ORDER BY s.ts DESC LIMIT 1) last
               WHERE r.manager_id = m.id) newest
           WHERE m.id = %s""",
        (manager_id,),
    ).fetchone()
    return Recency(row[0], row[1]) if row else Recency(None, None)


#: How many capture cycles' sample counts ``managers.cycle_samples`` keeps.
CYCLES_KEPT = 6


def record_job(
    conn: psycopg.Connection,
    manager_id: int,
    requests: int,
    metrics: int,
    cost_usd: Decimal,
    samples: int | None = None,
) -> None:
    """Add what a job asked of the source (API requests, CloudWatch metrics, US$) to the manager's running totals.

    For a capture job (``samples``: what it captured, overlap re-reads included) the same figures are also the
    last cycle's (``cycle_*``), and ``samples`` joins ``cycle_samples`` (the last ``CYCLES_KEPT``, newest last).
    """
    with conn.transaction():
        conn.execute(
            """UPDATE managers SET api_requests = api_requests + %(requests)s,
                   cloudwatch_metrics = cloudwatch_metrics + %(metrics)s, api_cost_usd = api_cost_usd + %(cost)s,
                   cycle_requests = CASE WHEN %(cycle)s THEN %(requests)s ELSE cycle_requests END,
                   cycle_metrics = CASE WHEN %(cycle)s THEN %(metrics)s ELSE cycle_metrics END,
                   cycle_cost_usd = CASE WHEN %(cycle)s THEN %(cost)s ELSE cycle_cost_usd END,
                   cycle_samples = CASE WHEN %(cycle)s THEN (cycle_samples || %(samples)s::integer)
                                            [greatest(1, cardinality(cycle_samples) + 2 - %(kept)s):]
                                        ELSE cycle_samples END
               WHERE id = %(id)s""",
            {
                "requests": requests,
                "metrics": metrics,
                "cost": cost_usd,
                "cycle": samples is not None,
                "samples": samples,
                "kept": CYCLES_KEPT,
                "id": manager_id,
            },
        )


def capture_holes(conn: psycopg.Connection, manager_id: int) -> list[tuple[datetime, datetime]]:
    """The time ranges between the first and last captured times that are neither captured nor skipped."""
    rows = conn.execute(
        """SELECT lower(h), upper(h) FROM managers m,
                  unnest(tstzmultirange(range_merge(m.captured + m.skipped)) - (m.captured + m.skipped)) h
            WHERE m.id = %s AND NOT isempty(m.captured + m.skipped) ORDER BY 1""",
        (manager_id,),
    ).fetchall()
    return [(start, end) for start, end in rows]


def end_config_backoff(conn: psycopg.Connection, manager_id: int) -> None:
    """Let a manager whose stored config failed to load (``config:`` errors) be tried at once: called by a daemon
    that loaded it (the variable an ``env:`` reference names is set where it runs). Its failures stay counted
    until a job succeeds."""
    with conn.transaction():
        conn.execute(
            "UPDATE managers SET next_attempt_at = NULL WHERE id = %s AND last_error LIKE 'config: %%'", (manager_id,)
        )


def mark_catcher(conn: psycopg.Connection, manager_id: int, connected: bool | None, error: str | None) -> None:
    """Record the state of the manager's event catcher: connected, disconnected (``error``: why, free of secrets)
    or not running (None)."""
    conn.execute(
        "UPDATE managers SET events_connected = %s, events_state_at = now(), events_error = %s WHERE id = %s",
        (connected, error, manager_id),
    )


def mark_failed(
    conn: psycopg.Connection, manager_id: int, error: str, at: datetime, backoff_s: tuple[float, float] = (0.0, 0.0)
) -> datetime | None:
    """Record a failed job (the message must already be free of secrets); return when to try again.

    ``backoff_s`` = (first, most): the n-th failure in a row waits ``first * 2**(n-1)`` seconds, at most ``most``.
    """
    first, most = backoff_s
    with conn.transaction():
        row = conn.execute(
            """UPDATE managers SET last_error = %(error)s, last_error_at = %(at)s, failures = failures + 1,
                   next_attempt_at = %(at)s + make_interval(secs => least(%(first)s * power(2, failures), %(most)s))
               WHERE id = %(id)s RETURNING next_attempt_at""",
            {"error": error, "at": at, "first": first, "most": most, "id": manager_id},
        ).fetchone()
    return row[0] if row else None
