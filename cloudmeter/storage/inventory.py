"""Inventory persister: upsert ``resources`` and keep ``resource_history`` (parent and allocations over time).

One refresh is one transaction. Resources the source no longer lists are retired, never deleted, so their
samples keep their meaning. History merges what the source reports with what is stored: stored periods
before the first reported placement are kept, the rest is replaced, and equal consecutive periods coalesce.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime

import psycopg

from cloudmeter.model import Inventory, InventoryItem, Placement, Requests, ResourceRef, as_utc
from cloudmeter.storage.schema import REQUEST_COLUMNS


@dataclass(frozen=True)
class Period:
    """One ``resource_history`` row."""

    valid_from: datetime
    valid_to: datetime | None
    parent_id: int | None
    vcpus: int | None
    memory_bytes: int | None
    project: str | None
    requests: Requests | None = None

    def state(self) -> tuple[int | None, int | None, int | None, str | None, Requests | None]:
        return (self.parent_id, self.vcpus, self.memory_bytes, self.project, self.requests)


@dataclass(frozen=True)
class RefreshResult:
    """What one refresh changed."""

    ids: dict[ResourceRef, int]
    retired: int
    history_changed: int


def merge_history(stored: list[Period], reported: list[Period], end: datetime | None) -> list[Period]:
    """Stored periods before the first reported one, then the reported ones; consecutive equal states merge.

    ``reported`` is chronological with ``valid_to`` unset; each ends where the next begins, the last at ``end``.
    """
    if not reported:
        return stored
    cut = reported[0].valid_from
    merged: list[Period] = []
    for period in sorted(stored, key=lambda p: p.valid_from):
        if period.valid_from >= cut:
            break
        clipped = cut if period.valid_to is None or period.valid_to > cut else period.valid_to
        merged.append(_with_end(period, clipped))
    for index, period in enumerate(reported):
        merged.append(_with_end(period, reported[index + 1].valid_from if index + 1 < len(reported) else end))
    coalesced: list[Period] = []
    for period in merged:
        if period.valid_to is not None and period.valid_to <= period.valid_from:
            continue
        previous = coalesced[-1] if coalesced else None
        if previous and previous.valid_to == period.valid_from and previous.state() == period.state():
            coalesced[-1] = _with_end(previous, period.valid_to)
        else:
            coalesced.append(period)
    return coalesced


def _with_end(period: Period, valid_to: datetime | None) -> Period:
    return replace(period, valid_to=valid_to)


def _requests(*values: float | int | None) -> Requests | None:
    """Stored request columns as ``Requests``; None when none is set."""
    if all(value is None for value in values):
        return None
    cpu_request, cpu_limit, memory_request, memory_limit = values
    return Requests(cpu_request, cpu_limit, _int(memory_request), _int(memory_limit))


def _int(value: float | int | None) -> int | None:
    return None if value is None else int(value)


def _request_columns(requests: list[Requests | None]) -> dict[str, list[float | int | None]]:
    """Column name -> values of ``Requests`` fields (NULL where no requests)."""
    return {name: [getattr(r, name) if r else None for r in requests] for name, _ in REQUEST_COLUMNS}


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
            **_request_columns([i.requests for i in items]),
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


def _stored_history(conn: psycopg.Connection, manager_id: int) -> dict[int, list[Period]]:
    stored: dict[int, list[Period]] = defaultdict(list)
    for rid, valid_from, valid_to, parent, vcpus, memory, project, *requests in conn.execute(
        """SELECT h.resource_id, h.valid_from, h.valid_to, h.parent_id, h.vcpus, h.memory_bytes, h.project,
                  h.cpu_request_cores, h.cpu_limit_cores, h.memory_request_bytes, h.memory_limit_bytes
           FROM resource_history h JOIN resources r ON r.id = h.resource_id
           WHERE r.manager_id = %s ORDER BY h.resource_id, h.valid_from""",
        (manager_id,),
    ):
        stored[rid].append(Period(valid_from, valid_to, parent, vcpus, memory, project, _requests(*requests)))
    return stored


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


def save_inventory(conn: psycopg.Connection, manager_id: int, inventory: Inventory) -> RefreshResult:
    """Persist one refresh of manager ``manager_id`` in one transaction (projects included)."""
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
        retired = conn.execute(
            """UPDATE resources SET retired_at = %s
               WHERE manager_id = %s AND retired_at IS NULL AND NOT (id = ANY(%s))""",
            (observed_at, manager_id, list(ids.values())),
        ).rowcount
        stored = _stored_history(conn, manager_id)
        replace: dict[int, list[Period]] = {}
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
            merged = merge_history(stored.get(rid, []), reported, end)
            if merged != stored.get(rid, []):
                replace[rid] = merged
        _replace_history(conn, replace)
    return RefreshResult(ids, retired, len(replace))


def _replace_history(conn: psycopg.Connection, replace: dict[int, list[Period]]) -> None:
    if not replace:
        return
    conn.execute("DELETE FROM resource_history WHERE resource_id = ANY(%s)", (list(replace),))
    rows = [(rid, p) for rid, periods in replace.items() for p in periods]
    conn.execute(
        """INSERT INTO resource_history (resource_id, valid_from, valid_to, parent_id, vcpus, memory_bytes, project,
                                         cpu_request_cores, cpu_limit_cores, memory_request_bytes, memory_limit_bytes)
           SELECT * FROM unnest(%(rid)s::int[], %(from)s::timestamptz[], %(to)s::timestamptz[], %(parent)s::int[],
                                %(vcpus)s::int[], %(memory)s::bigint[], %(project)s::text[],
                                %(cpu_request_cores)s::float8[], %(cpu_limit_cores)s::float8[],
                                %(memory_request_bytes)s::bigint[], %(memory_limit_bytes)s::bigint[])""",
        {
            "rid": [rid for rid, _ in rows],
            "from": [p.valid_from for _, p in rows],
            "to": [p.valid_to for _, p in rows],
            "parent": [p.parent_id for _, p in rows],
            "vcpus": [p.vcpus for _, p in rows],
            "memory": [p.memory_bytes for _, p in rows],
            "project": [p.project for _, p in rows],
            **_request_columns([p.requests for _, p in rows]),
        },
    )
