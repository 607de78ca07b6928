"""Inventory persister: upsert ``resources`` and keep ``resource_history`` (parent and allocations over time).

One refresh is one transaction. Resources the source no longer lists are retired, never deleted, so their
samples keep their meaning (a partial refresh, of the few resources events could not resolve, retires none).
History merges what the source reports with what is stored: stored periods before the first reported placement
are kept, the rest is replaced, and equal consecutive periods coalesce (``history.merge_history``).

A refresh agrees with the events recorded (``storage.events``): where a resource's merged history differs from
the stored one, its stored events are applied again over it, in time order, each at its instant. The rule: **an
event's instant is where its change happened; a refresh's report holds from the times it reports on.** So after
a migration recorded at 10:17:30, a vSphere or AWS refresh that sees the new host at 10:30 (a placement from its
``observed_at``) and an OpenStack refresh whose Gnocchi revision shows it from 10:20 (the next poll) both leave
one boundary, at 10:17:30, and no new period; a refresh that saw the new host before the event was recorded has its
boundary moved back to the event's instant when the event comes. A report that contradicts an earlier event (the
old host seen at 10:18) holds from its time, until a later report or event says otherwise: events can be missed,
and the refresh is the safety net. A resource a ``deleted`` event retired stays retired at the event's time,
however the source lists it afterwards.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import psycopg

from cloudmeter.model import Inventory, InventoryItem, Placement, ResourceRef, as_utc
from cloudmeter.storage import events
from cloudmeter.storage.history import Period, merge_history, replace_history, request_columns, stored_history

__all__ = ["Period", "RefreshResult", "merge_history", "save_inventory", "stored_ids", "with_projects"]


@dataclass(frozen=True)
class RefreshResult:
    """What one refresh changed."""

    ids: dict[ResourceRef, int]
    retired: int
    history_changed: int


def _placements(item: InventoryItem, observed_at: datetime, has_stored: bool) -> list[Placement]:
    if item.history:
        return list(item.history)
    since = observed_at if has_stored or item.created_at is None else item.created_at
    return [Placement(since, item.parent, item.vcpus, item.memory_bytes, item.project, item.requests)]


def _upsert_resources(conn: psycopg.Connection, manager_id: int, inventory: Inventory) -> dict[ResourceRef, int]:
    items = inventory.items
    seen = as_utc(inventory.observed_at)
    rows = conn.execute(
        """INSERT INTO resources (manager_id, kind, ems_ref, name, vcpus, memory_bytes, disk_bytes, project, tags,
                                  first_seen, last_seen, retired_at, cpu_request_cores, cpu_limit_cores,
                                  memory_request_bytes, memory_limit_bytes)
           SELECT %(manager)s, u.* FROM unnest(%(kind)s::text[], %(ems_ref)s::text[], %(name)s::text[],
                  %(vcpus)s::int[], %(memory)s::bigint[], %(disk)s::bigint[], %(project)s::text[],
                  %(tags)s::jsonb[], %(first)s::timestamptz[], %(last)s::timestamptz[], %(retired)s::timestamptz[],
                  %(cpu_request_cores)s::float8[], %(cpu_limit_cores)s::float8[],
                  %(memory_request_bytes)s::bigint[], %(memory_limit_bytes)s::bigint[]) u
           ON CONFLICT (manager_id, kind, ems_ref) DO UPDATE SET
               name = excluded.name, vcpus = excluded.vcpus, memory_bytes = excluded.memory_bytes,
               disk_bytes = excluded.disk_bytes, project = excluded.project, tags = excluded.tags,
               first_seen = least(resources.first_seen, excluded.first_seen), last_seen = excluded.last_seen,
               retired_at = excluded.retired_at, cpu_request_cores = excluded.cpu_request_cores,
               cpu_limit_cores = excluded.cpu_limit_cores, memory_request_bytes = excluded.memory_request_bytes,
               memory_limit_bytes = excluded.memory_limit_bytes
           RETURNING id, kind, ems_ref""",
        {
            "manager": manager_id,
            "kind": [i.ref.kind for i in items],
            "ems_ref": [i.ref.ems_ref for i in items],
            "name": [i.name for i in items],
            "vcpus": [i.vcpus for i in items],
            "memory": [i.memory_bytes for i in items],
            "disk": [i.disk_bytes for i in items],
            "project": [i.project for i in items],
            "tags": [json.dumps(dict(i.tags), sort_keys=True) for i in items],
            "first": [as_utc(i.created_at) if i.created_at else seen for i in items],
            "last": [seen] * len(items),
            "retired": [as_utc(i.retired_at) if i.retired_at else None for i in items],
            **request_columns([i.requests for i in items]),
        },
    ).fetchall()
    ids = {ResourceRef(kind, ems_ref): rid for rid, kind, ems_ref in rows}
    missing_parents = {i.parent for i in items if i.parent is not None and i.parent not in ids}
    for ref in missing_parents:
        row = conn.execute(
            "SELECT id FROM resources WHERE manager_id = %s AND kind = %s AND ems_ref = %s",
            (manager_id, ref.kind, ref.ems_ref),
        ).fetchone()
        if row:
            ids[ref] = row[0]
    return ids


def stored_ids(conn: psycopg.Connection, manager_id: int) -> dict[ResourceRef, int]:
    """The stored ids of a manager's resources by reference."""
    rows = conn.execute("SELECT kind, ems_ref, id FROM resources WHERE manager_id = %s", (manager_id,))
    return {ResourceRef(kind, ems_ref): rid for kind, ems_ref, rid in rows}


def with_projects(inventory: Inventory) -> Inventory:
    """The inventory plus one resource of kind ``project`` per project its resources name.

    Projects have no parent (they group VMs across hosts, so they never add into a provider's totals); one
    exists from the earliest creation among its members.
    """
    members: dict[str, list[datetime]] = defaultdict(list)
    for item in inventory.items:
        for project in {item.project, *(p.project for p in item.history)} - {None}:
            members[str(project)].append(as_utc(item.created_at or inventory.observed_at))
    listed = {item.ref for item in inventory.items}
    projects = tuple(
        InventoryItem(ResourceRef("project", name), name, created_at=min(times), history=(Placement(min(times), None),))
        for name, times in sorted(members.items())
        if ResourceRef("project", name) not in listed
    )
    return Inventory(inventory.observed_at, inventory.items + projects)


def save_inventory(
    conn: psycopg.Connection, manager_id: int, inventory: Inventory, partial: bool = False
) -> RefreshResult:
    """Persist one refresh of manager ``manager_id`` in one transaction (projects included), agreeing with the
    events recorded (see the module docstring). With ``partial``, ``inventory`` holds only some resources (a
    targeted refresh): the others are neither retired nor touched."""
    inventory = with_projects(inventory)
    observed_at = as_utc(inventory.observed_at)
    with conn.transaction():
        ids = _upsert_resources(conn, manager_id, inventory)
        conn.execute(
            """UPDATE resources r SET parent_id = u.parent FROM unnest(%s::int[], %s::int[]) AS u(id, parent)
               WHERE r.id = u.id AND r.parent_id IS DISTINCT FROM u.parent""",
            (
                [ids[i.ref] for i in inventory.items],
                [ids.get(i.parent) if i.parent else None for i in inventory.items],
            ),
        )
        retired = 0
        if not partial:
            retired = conn.execute(
                """UPDATE resources SET retired_at = %s
                   WHERE manager_id = %s AND retired_at IS NULL AND NOT (id = ANY(%s))""",
                (observed_at, manager_id, list(ids.values())),
            ).rowcount
        listed = [ids[item.ref] for item in inventory.items]
        events.link(conn, manager_id, listed)
        stored = stored_history(conn, manager_id, listed if partial else None)
        merged: dict[int, list[Period]] = {}
        for item in inventory.items:
            rid = ids[item.ref]
            reported = [
                Period(
                    as_utc(p.valid_from),
                    None,
                    ids.get(p.parent) if p.parent else None,
                    p.vcpus,
                    p.memory_bytes,
                    p.project,
                    p.requests,
                )
                for p in _placements(item, observed_at, bool(stored.get(rid)))
            ]
            end = as_utc(item.retired_at) if item.retired_at else None
            history = merge_history(stored.get(rid, []), reported, end)
            if history != stored.get(rid, []):
                merged[rid] = history
        agreed = events.agree(conn, manager_id, merged)
        changed = {rid: periods for rid, periods in agreed.items() if periods != stored.get(rid, [])}
        replace_history(conn, changed)
    return RefreshResult(ids, retired, len(changed))
