"""The ``events`` table: what each manager's source announced (created, deleted, migrated, resized, ...) and when.

``record`` stores a batch of events once (a re-delivered message is dropped by its ``message_id``) and, in the
same transaction, applies what each new one proves to ``resource_history`` at the event's instant
(``history.apply_change``), marking the rolled-up hours that the change moves in ``rollup_dirty``. A refresh then
agrees with them (``agree``, called by ``inventory.save_inventory``): the events of a resource whose reported
history differs from the stored one are applied again over the report, so an event's instant stays where the
change happened and a refresh that saw the same state adds no period.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl
import psycopg

from cloudmeter.errors import ConfigError
from cloudmeter.model import EVENT_KINDS, Event, ResourceRef, as_utc, epoch_s
from cloudmeter.rollups.zones import HOUR_S
from cloudmeter.storage import packs
from cloudmeter.storage.history import (
    CHANGING,
    Change,
    Period,
    apply_change,
    changed_span,
    replace_history,
    stored_history,
    sync_current,
)


@dataclass(frozen=True)
class Recorded:
    """What ``record`` did: events stored (``new``) and dropped as already stored (``duplicates``); the resources
    whose history changed (``changed``) and the rolled-up hours marked for a rebuild (``dirty_hours``); and what it
    could not resolve (``unresolved``: an unknown resource of an event other than ``created``, an unknown host and
    the resource it would have placed there), for a targeted refresh."""

    new: int
    duplicates: int
    changed: int
    dirty_hours: int
    unresolved: list[ResourceRef]


def _ids(conn: psycopg.Connection, manager_id: int, refs: Collection[ResourceRef]) -> dict[ResourceRef, int]:
    rows = conn.execute(
        """SELECT r.kind, r.ems_ref, r.id FROM resources r JOIN unnest(%s::text[], %s::text[]) AS u(kind, ems_ref)
           USING (kind, ems_ref) WHERE r.manager_id = %s""",
        ([ref.kind for ref in refs], [ref.ems_ref for ref in refs], manager_id),
    ).fetchall()
    return {ResourceRef(kind, ems_ref): rid for kind, ems_ref, rid in rows}


def _insert(
    conn: psycopg.Connection, manager_id: int, events: list[Event], ids: dict[ResourceRef, int]
) -> dict[str, int]:
    """Insert the events not stored yet; their ids by message id. The payloads go as a binary array (``%b``): in
    the text format every quote of their JSON is escaped by a regular expression."""
    rows = conn.execute(
        """INSERT INTO events (manager_id, ts, kind, resource_id, ems_ref, source_type, payload, message_id,
                               host_ems_ref, vcpus, memory_bytes)
           SELECT %s, u.* FROM unnest(%s::timestamptz[], %s::text[], %s::int[], %s::text[], %s::text[], %b::jsonb[],
                                      %s::text[], %s::text[], %s::int[], %s::bigint[]) AS u
           ON CONFLICT (manager_id, message_id) DO NOTHING RETURNING message_id, id""",
        (
            manager_id,
            [as_utc(e.ts) for e in events],
            [e.kind for e in events],
            [ids.get(e.resource) if e.resource else None for e in events],
            [e.resource.ems_ref if e.resource else None for e in events],
            [e.source_type for e in events],
            [json.dumps(dict(e.payload), sort_keys=True, default=str) for e in events],
            [e.message_id for e in events],
            [e.host.ems_ref if e.host else None for e in events],
            [e.vcpus for e in events],
            [e.memory_bytes for e in events],
        ),
    ).fetchall()
    return {message_id: event_id for message_id, event_id in rows}


def _create(conn: psycopg.Connection, manager_id: int, event: Event, parent: int | None) -> int:
    """The resource a ``created`` event announces, added (its period is opened by the change)."""
    assert event.resource is not None
    row = conn.execute(
        """INSERT INTO resources (manager_id, kind, ems_ref, name, parent_id, vcpus, memory_bytes, first_seen,
                                  last_seen)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (
            manager_id,
            event.resource.kind,
            event.resource.ems_ref,
            event.name or event.resource.ems_ref,
            parent,
            event.vcpus,
            event.memory_bytes,
            event.ts,
            event.ts,
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def record(conn: psycopg.Connection, manager_id: int, events: Sequence[Event]) -> Recorded:
    """Store ``events`` of manager ``manager_id`` and apply what the new ones prove, in one transaction.

    In time order, each new event's change is applied at its ``ts`` (``history.apply_change``): ``migrated`` moves
    the resource under its ``host``, ``resized`` sets ``vcpus``/``memory_bytes``, ``deleted`` ends its history and
    retires it, ``created`` adds it if unknown (named ``name``, under ``host``) and starts its history at ``ts``;
    ``powered_on``, ``powered_off`` and ``other`` are only stored. The hours from the change's hour up to the
    manager's ``rolled_until`` that it moves are marked in ``rollup_dirty`` (``roll_dirty`` rebuilds them).
    """
    if not events:
        return Recorded(0, 0, 0, 0, [])
    unique: dict[str, Event] = {}
    for event in events:
        unique.setdefault(event.message_id, event)
    refs = {ref for e in unique.values() for ref in (e.resource, e.host) if ref is not None}
    with conn.transaction():
        ids = _ids(conn, manager_id, refs)
        known = set(ids)  # the events of these were stored with their resource
        inserted = _insert(conn, manager_id, list(unique.values()), ids)
        new = sorted(
            (e for e in unique.values() if e.message_id in inserted), key=lambda e: (e.ts, inserted[e.message_id])
        )
        histories = stored_history(conn, manager_id, {ids[e.resource] for e in new if e.resource in ids})
        before = dict(histories)
        unresolved: list[ResourceRef] = []
        retired: dict[int, datetime] = {}
        linked: dict[str, int] = {}
        for event in new:
            if event.kind not in CHANGING or event.resource is None:
                continue
            host = ids.get(event.host) if event.host else None
            if event.host and host is None:  # refreshed with the resource, whose placement it then gives
                unresolved += [event.host, event.resource]
            rid = ids.get(event.resource)
            if rid is None and event.kind == "created":
                rid = ids[event.resource] = _create(conn, manager_id, event, host)
            if rid is None:
                unresolved.append(event.resource)
                continue
            if event.resource not in known:
                linked[event.message_id] = rid
            if event.kind == "migrated" and host is None:
                continue  # applied when a refresh brings the host (``agree``)
            change = Change(as_utc(event.ts), event.kind, host, event.vcpus, event.memory_bytes)
            histories[rid] = apply_change(histories.get(rid, []), change)
            if event.kind == "deleted":
                retired[rid] = change.at
        changed = {rid: periods for rid, periods in histories.items() if periods != before.get(rid, [])}
        replace_history(conn, changed)
        sync_current(conn, changed)
        _link(conn, manager_id, linked)
        _retire(conn, retired)
        dirty = _mark_moved(conn, manager_id, _moved(before, changed))
    return Recorded(len(new), len(events) - len(new), len(changed), dirty, list(dict.fromkeys(unresolved)))


Span = tuple[datetime, datetime | None]


def _moved(before: dict[int, list[Period]], changed: dict[int, list[Period]]) -> list[tuple[Span, set[int]]]:
    """Per changed resource: the span where its history changed, and the resources whose rollups it moves there
    (itself and the parents it had then)."""
    moved = []
    for rid, periods in changed.items():
        old = before.get(rid, [])
        span = changed_span(old, periods)
        if span is None:
            continue
        start, end = span
        parents = {
            p.parent_id
            for p in old
            if p.parent_id is not None
            and (end is None or p.valid_from < end)
            and (p.valid_to is None or p.valid_to > start)
        }
        moved.append((span, {rid, *parents}))
    return moved


def _link(conn: psycopg.Connection, manager_id: int, linked: dict[str, int]) -> None:
    """Set the resource of stored events (by message id) resolved after they were inserted."""
    if not linked:
        return
    conn.execute(
        """UPDATE events e SET resource_id = u.rid FROM unnest(%s::text[], %s::int[]) AS u(message_id, rid)
           WHERE e.manager_id = %s AND e.message_id = u.message_id AND e.resource_id IS NULL""",
        (list(linked), list(linked.values()), manager_id),
    )


def _retire(conn: psycopg.Connection, retired: dict[int, datetime]) -> None:
    if not retired:
        return
    conn.execute(
        """UPDATE resources r SET retired_at = u.at FROM unnest(%s::int[], %s::timestamptz[]) AS u(id, at)
           WHERE r.id = u.id""",
        (list(retired), list(retired.values())),
    )


def _mark_moved(conn: psycopg.Connection, manager_id: int, moved: list[tuple[Span, set[int]]]) -> int:
    """Mark in ``rollup_dirty`` the rolled-up hours (before the manager's ``rolled_until``) that each span touches,
    and delete the rollup rows there of its resources and of every parent above them (a rebuild writes the rows
    that have samples, so a host the VM left must lose its own: they are written again where data is left), the
    packed days of the hourly rows deleted packed again; how many hours."""
    row = conn.execute("SELECT rolled_until FROM managers WHERE id = %s", (manager_id,)).fetchone()
    rolled = epoch_s(row[0]) if row and row[0] else None
    if rolled is None:
        return 0
    marks: dict[int, set[int]] = {}  # hour -> resources whose rows there go
    for (start, end), touched in moved:
        stop = min(epoch_s(end), rolled) if end else rolled
        for hour in range(epoch_s(start) // HOUR_S * HOUR_S, stop, HOUR_S):
            marks.setdefault(hour, set()).update(touched)
    if not marks:
        return 0
    pairs = [(rid, hour) for hour, rids in marks.items() for rid in rids]
    conn.execute(
        """INSERT INTO rollup_dirty (manager_id, ts) SELECT %s, to_timestamp(h) FROM unnest(%s::int8[]) AS h
           ON CONFLICT DO NOTHING""",
        (manager_id, list(marks)),
    )
    gone = conn.execute(
        """WITH RECURSIVE chain(rid, h) AS (
               SELECT * FROM unnest(%s::int[], %s::int8[])
               UNION SELECT r.parent_id, c.h FROM chain c JOIN resources r ON r.id = c.rid WHERE r.parent_id IS NOT NULL
           ), hourly AS (
               DELETE FROM metric_hourly m USING chain c WHERE m.resource_id = c.rid AND m.ts = to_timestamp(c.h)
               RETURNING m.resource_id, m.ts
           ), daily AS (
               DELETE FROM metric_daily d USING chain c
               WHERE d.resource_id = c.rid AND d.ts <= to_timestamp(c.h)
                 AND to_timestamp(c.h) < ((d.ts AT TIME ZONE d.tz) + interval '1 day') AT TIME ZONE d.tz
           )
           SELECT DISTINCT resource_id, extract(epoch FROM date_trunc('day', ts, 'UTC'))::int8 FROM hourly""",
        ([rid for rid, _ in pairs], [hour for _, hour in pairs]),
    ).fetchall()
    packs.refresh(conn, np.array([r for r, _ in gone], np.int32), np.array([d for _, d in gone], np.int64))
    return len(marks)


def link(conn: psycopg.Connection, manager_id: int, resource_ids: Collection[int]) -> None:
    """Tie the stored events of no resource (unknown when they came) to ``resource_ids`` by ``ems_ref``, where one
    resource of the manager has it."""
    conn.execute(
        """UPDATE events e SET resource_id = r.id FROM resources r
           WHERE e.manager_id = %(m)s AND e.resource_id IS NULL AND r.id = ANY(%(ids)s) AND r.ems_ref = e.ems_ref
             AND NOT EXISTS (SELECT 1 FROM resources o WHERE o.manager_id = %(m)s AND o.ems_ref = r.ems_ref
                             AND o.id <> r.id)""",
        {"m": manager_id, "ids": list(resource_ids)},
    )


def changes(conn: psycopg.Connection, manager_id: int, resource_ids: Collection[int]) -> dict[int, list[Change]]:
    """The changes the stored events of ``resource_ids`` prove, each resource's in time order (a migration to a
    host not in the inventory is left out)."""
    found: dict[int, list[Change]] = {}
    for rid, ts, kind, host, vcpus, memory in conn.execute(
        """SELECT e.resource_id, e.ts, e.kind, h.id, e.vcpus, e.memory_bytes FROM events e
           LEFT JOIN resources h ON h.manager_id = e.manager_id AND h.kind = 'host' AND h.ems_ref = e.host_ems_ref
           WHERE e.manager_id = %s AND e.resource_id = ANY(%s) AND e.kind = ANY(%s)
             AND NOT (e.kind = 'migrated' AND h.id IS NULL)
           ORDER BY e.resource_id, e.ts, e.id""",
        (manager_id, list(resource_ids), list(CHANGING)),
    ):
        found.setdefault(rid, []).append(Change(ts, kind, host, vcpus, memory))
    return found


def agree(conn: psycopg.Connection, manager_id: int, histories: dict[int, list[Period]]) -> dict[int, list[Period]]:
    """``histories`` (a refresh's, per resource) with the stored events of each resource applied again in time
    order; a resource a stored ``deleted`` event retired keeps that event's time as ``retired_at``, and the
    resources whose events were applied take their open period's parent and allocations."""
    found = changes(conn, manager_id, histories)
    agreed = {rid: functools.reduce(apply_change, found.get(rid, []), periods) for rid, periods in histories.items()}
    _retire(conn, {rid: c.at for rid, cs in found.items() for c in cs if c.kind == "deleted"})
    sync_current(conn, {rid: agreed[rid] for rid in found})
    return agreed


def last_message_id(conn: psycopg.Connection, manager_id: int) -> str | None:
    """The message id of the manager's newest stored event, where a catcher resumes after a restart; None when
    none is stored."""
    row = conn.execute(
        "SELECT message_id FROM events WHERE manager_id = %s ORDER BY ts DESC, id DESC LIMIT 1", (manager_id,)
    ).fetchone()
    return str(row[0]) if row else None


def expire_events(conn: psycopg.Connection, before: datetime) -> int:
    """Delete the events older than ``before`` (raw samples' retention); how many."""
    with conn.transaction():
        return conn.execute("DELETE FROM events WHERE ts < %s", (before,)).rowcount


#: The timeline's columns and types, in order.
TIMELINE_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Datetime("us", "UTC"),
    "kind": pl.String(),
    "manager": pl.String(),
    "resource": pl.String(),
    "host": pl.String(),
    "vcpus": pl.Int32(),
    "memory_bytes": pl.Int64(),
    "ems_ref": pl.String(),
    "resource_id": pl.Int32(),
    "source_type": pl.String(),
    "message_id": pl.String(),
    "received_at": pl.Datetime("us", "UTC"),
    "payload": pl.String(),
}


def timeline(
    conn: psycopg.Connection,
    *,
    manager: str | None = None,
    resource: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    kind: str | None = None,
) -> pl.DataFrame:
    """The stored events in time order (``TIMELINE_SCHEMA``): of manager ``manager`` (by name), of ``resource`` (its
    ``ems_ref`` or name), from ``since`` (inclusive) to ``until`` (exclusive), of ``kind``. ``resource`` is the
    resource's name (else its ``ems_ref``), ``host`` the host an event names (its name where it is known),
    ``payload`` the message as JSON text. A filter naming nothing stored raises ``ConfigError`` naming the option."""
    if kind is not None and kind not in EVENT_KINDS:
        raise ConfigError(f"--kind {kind!r} is not one of {', '.join(EVENT_KINDS)}")
    manager_id = None
    if manager is not None:
        row = conn.execute("SELECT id FROM managers WHERE name = %s", (manager,)).fetchone()
        if row is None:
            raise ConfigError(f"--manager {manager!r} is not a stored manager; `cloudmeter managers list` shows them")
        manager_id = row[0]
    params = {"m": manager_id, "ref": resource, "since": since, "until": until, "kind": kind}
    known = """SELECT EXISTS (SELECT 1 FROM resources WHERE (%(m)s::int IS NULL OR manager_id = %(m)s)
                                               AND (ems_ref = %(ref)s OR name = %(ref)s))
                      OR EXISTS (SELECT 1 FROM events WHERE (%(m)s::int IS NULL OR manager_id = %(m)s)
                                                        AND ems_ref = %(ref)s)"""
    if resource is not None and not (conn.execute(known, params).fetchone() or (False,))[0]:
        raise ConfigError(f"--resource {resource!r} names no resource or event; give a resource's ems_ref or name")
    rows = conn.execute(
        """SELECT e.ts, e.kind, m.name, coalesce(r.name, e.ems_ref), coalesce(h.name, e.host_ems_ref), e.vcpus,
                  e.memory_bytes, e.ems_ref, e.resource_id, e.source_type, e.message_id, e.received_at, e.payload::text
           FROM events e JOIN managers m ON m.id = e.manager_id
           LEFT JOIN resources r ON r.id = e.resource_id
           LEFT JOIN resources h ON h.manager_id = e.manager_id AND h.kind = 'host' AND h.ems_ref = e.host_ems_ref
           WHERE (%(m)s::int IS NULL OR e.manager_id = %(m)s) AND (%(kind)s::text IS NULL OR e.kind = %(kind)s)
             AND (%(since)s::timestamptz IS NULL OR e.ts >= %(since)s)
             AND (%(until)s::timestamptz IS NULL OR e.ts < %(until)s)
             AND (%(ref)s::text IS NULL OR e.ems_ref = %(ref)s OR r.name = %(ref)s)
           ORDER BY e.ts, e.id""",
        params,
    ).fetchall()
    return pl.DataFrame(rows, schema=TIMELINE_SCHEMA, orient="row")
