"""The ``managers`` table: one row per configured provider connection and its capture progress."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
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


def remove_manager(conn: psycopg.Connection, name: str) -> bool:
    """Delete manager ``name`` with its resources and their samples and rollups; False if there is none."""
    with conn.transaction():
        row = conn.execute("SELECT id FROM managers WHERE name = %s", (name,)).fetchone()
        if row is None:
            return False
        ids = "SELECT id FROM resources WHERE manager_id = %s"
        for table in ("metric_samples", "metric_hourly", "metric_daily", "resource_history"):
            conn.execute(f"DELETE FROM {table} WHERE resource_id IN ({ids})", (row[0],))
        conn.execute("DELETE FROM managers WHERE id = %s", (row[0],))
    return True


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
        conn.execute(
            """UPDATE managers m SET captured_until = greatest(m.captured_until,
                   (SELECT max(upper(r)) FROM unnest(m.captured + m.skipped) r
                     WHERE lower_inf(r) OR lower(r) <= coalesce(m.captured_until, %(start)s, %(end)s)))
               WHERE id = %(id)s""",
            {"start": start, "end": end, "id": manager_id},
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
