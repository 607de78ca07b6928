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


_COLUMNS = (
    "id, name, kind, enabled, last_refresh_at, last_capture_at, captured_until, last_error, last_error_at, "
    "sample_interval_s, rolled_until"
)


def register_manager(conn: psycopg.Connection, name: str, kind: str, config: dict[str, Any]) -> int:
    """Insert or update manager ``name`` (its non-secret config as JSON); return its id."""
    with conn.transaction():
        row = conn.execute(
            """INSERT INTO managers (name, kind, config) VALUES (%s, %s, %s::jsonb)
               ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, config = excluded.config RETURNING id""",
            (name, kind, json.dumps(config, sort_keys=True, default=str)),
        ).fetchone()
    assert row is not None
    return int(row[0])


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


def mark_refreshed(conn: psycopg.Connection, manager_id: int, at: datetime) -> None:
    """Record a successful inventory refresh."""
    with conn.transaction():
        conn.execute(
            "UPDATE managers SET last_refresh_at = %s, last_error = NULL, last_error_at = NULL WHERE id = %s",
            (at, manager_id),
        )


def mark_captured(conn: psycopg.Connection, manager_id: int, until: datetime, at: datetime) -> None:
    """Record that everything before ``until`` is captured (the mark never moves back)."""
    with conn.transaction():
        conn.execute(
            """UPDATE managers SET captured_until = greatest(captured_until, %s), last_capture_at = %s,
                                   last_error = NULL, last_error_at = NULL WHERE id = %s""",
            (until, at, manager_id),
        )


def mark_failed(conn: psycopg.Connection, manager_id: int, error: str, at: datetime) -> None:
    """Record a failed job (the message must already be free of secrets)."""
    with conn.transaction():
        conn.execute("UPDATE managers SET last_error = %s, last_error_at = %s WHERE id = %s", (error, at, manager_id))
