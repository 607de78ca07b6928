"""``resource_history`` periods: read, written, merged with a refresh, and changed at an instant by an event.

A resource's periods are ordered and never overlap. ``merge_history`` is how a refresh's report joins what is
stored; ``apply_change`` is how an event's change joins it: the period that contains the event's instant is split
there, and only the part from the instant to that period's end takes the change (later periods are later
evidence and stay). Equal consecutive periods coalesce either way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

import psycopg

from cloudmeter.model import Requests
from cloudmeter.storage.schema import REQUEST_COLUMNS

State = tuple[int | None, int | None, int | None, str | None, Requests | None]


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

    def state(self) -> State:
        return (self.parent_id, self.vcpus, self.memory_bytes, self.project, self.requests)


#: The event kinds that change ``resource_history`` (the others are only stored).
CHANGING: Final = ("created", "deleted", "migrated", "resized")


@dataclass(frozen=True)
class Change:
    """What one event proves from ``at`` on (``kind`` one of ``CHANGING``); None = not stated."""

    at: datetime
    kind: str
    parent_id: int | None = None
    vcpus: int | None = None
    memory_bytes: int | None = None

    def onto(self, period: Period) -> Period:
        """``period`` with what this change states (a migration: the parent; a resize: the allocations)."""
        moves, sizes = self.kind in ("migrated", "created"), self.kind in ("resized", "created")
        return replace(
            period,
            parent_id=self.parent_id if moves and self.parent_id is not None else period.parent_id,
            vcpus=self.vcpus if sizes and self.vcpus is not None else period.vcpus,
            memory_bytes=self.memory_bytes if sizes and self.memory_bytes is not None else period.memory_bytes,
        )


def coalesce(periods: list[Period]) -> list[Period]:
    """``periods`` (ordered) without empty ones, equal consecutive ones merged."""
    coalesced: list[Period] = []
    for period in periods:
        if period.valid_to is not None and period.valid_to <= period.valid_from:
            continue
        previous = coalesced[-1] if coalesced else None
        if previous and previous.valid_to == period.valid_from and previous.state() == period.state():
            coalesced[-1] = replace(previous, valid_to=period.valid_to)
        else:
            coalesced.append(period)
    return coalesced


def merge_history(stored: list[Period], reported: list[Period], end: datetime | None) -> list[Period]:
    """Stored periods before the first reported one, then the reported ones; consecutive equal states merge.

    ``reported`` is chronological with ``valid_to`` unset; each ends where the next begins, the last at ``end``.
    Stored periods that knew no size (a creation event states none) running into the first reported one under
    the same parent take its size: the resource had it from its creation on.
    """
    if not reported:
        return stored
    first = reported[0]
    cut = first.valid_from
    merged: list[Period] = []
    for period in sorted(stored, key=lambda p: p.valid_from):
        if period.valid_from >= cut:
            break
        clipped = cut if period.valid_to is None or period.valid_to > cut else period.valid_to
        merged.append(replace(period, valid_to=clipped))
    at = len(merged)
    while at and merged[at - 1].valid_to == (merged[at].valid_from if at < len(merged) else cut):
        unsized = merged[at - 1]
        if unsized.vcpus is not None or unsized.memory_bytes is not None or unsized.parent_id != first.parent_id:
            break
        at -= 1
        merged[at] = replace(unsized, vcpus=first.vcpus, memory_bytes=first.memory_bytes)
    for index, period in enumerate(reported):
        merged.append(replace(period, valid_to=reported[index + 1].valid_from if index + 1 < len(reported) else end))
    return coalesce(merged)


def apply_change(periods: list[Period], change: Change) -> list[Period]:
    """``periods`` (ordered) after ``change``.

    ``deleted`` ends the history at ``at``. Otherwise the period containing ``at`` is split there and its part from
    ``at`` on takes the change; before the first period (or with none, for ``created``) a period from ``at`` to the
    first one's start is added, with the first one's state and the change's. An instant in a gap or after the end
    changes nothing (nothing is known of the resource there).
    """
    at = change.at
    if change.kind == "deleted":
        kept = [p for p in periods if p.valid_from < at]
        return coalesce([*kept[:-1], *(replace(p, valid_to=_earlier(p.valid_to, at)) for p in kept[-1:])])
    if not periods or at < periods[0].valid_from:
        if not periods and change.kind != "created":
            return periods
        first = periods[0] if periods else Period(at, None, None, None, None, None)
        before = change.onto(replace(first, valid_from=at, valid_to=first.valid_from if periods else None))
        return coalesce([before, *periods])
    changed: list[Period] = []
    for period in periods:
        if period.valid_from <= at and (period.valid_to is None or at < period.valid_to):
            changed += [replace(period, valid_to=at), change.onto(replace(period, valid_from=at))]
        else:
            changed.append(period)
    return coalesce(changed)


def _earlier(end: datetime | None, at: datetime) -> datetime:
    return at if end is None or end > at else end


def changed_span(old: list[Period], new: list[Period]) -> tuple[datetime, datetime | None] | None:
    """The earliest and latest instants where ``old`` and ``new`` say different things (None = to the open end),
    or None where they agree."""
    edges = sorted({p.valid_from for p in (*old, *new)} | {p.valid_to for p in (*old, *new) if p.valid_to})
    ends: list[datetime | None] = [*edges[1:], None]
    differ = [(a, b) for a, b in zip(edges, ends, strict=True) if _state_at(old, a) != _state_at(new, a)]
    return (differ[0][0], differ[-1][1]) if differ else None


def _state_at(periods: list[Period], at: datetime) -> State | None:
    for period in periods:
        if period.valid_from <= at and (period.valid_to is None or at < period.valid_to):
            return period.state()
    return None


def requests_of(*values: float | int | None) -> Requests | None:
    """Stored request columns as ``Requests``; None when none is set."""
    if all(value is None for value in values):
        return None
    cpu_request, cpu_limit, memory_request, memory_limit = values
    return Requests(cpu_request, cpu_limit, _int(memory_request), _int(memory_limit))


def _int(value: float | int | None) -> int | None:
    return None if value is None else int(value)


def request_columns(requests: list[Requests | None]) -> dict[str, list[float | int | None]]:
    """Column name -> values of ``Requests`` fields (NULL where no requests)."""
    return {name: [getattr(r, name) if r else None for r in requests] for name, _ in REQUEST_COLUMNS}


def stored_history(
    conn: psycopg.Connection, manager_id: int, resource_ids: Collection[int] | None = None
) -> dict[int, list[Period]]:
    """The stored periods of a manager's resources (only ``resource_ids``, if given), each resource's in order."""
    stored: dict[int, list[Period]] = defaultdict(list)
    for rid, valid_from, valid_to, parent, vcpus, memory, project, *requests in conn.execute(
        """SELECT h.resource_id, h.valid_from, h.valid_to, h.parent_id, h.vcpus, h.memory_bytes, h.project,
                  h.cpu_request_cores, h.cpu_limit_cores, h.memory_request_bytes, h.memory_limit_bytes
           FROM resource_history h JOIN resources r ON r.id = h.resource_id
           WHERE r.manager_id = %s AND (%s::int[] IS NULL OR h.resource_id = ANY(%s::int[]))
           ORDER BY h.resource_id, h.valid_from""",
        (manager_id, *[None if resource_ids is None else list(resource_ids)] * 2),
    ):
        stored[rid].append(Period(valid_from, valid_to, parent, vcpus, memory, project, requests_of(*requests)))
    return stored


def replace_history(conn: psycopg.Connection, replace: dict[int, list[Period]]) -> None:
    """Make each resource's stored periods the given ones."""
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
            **request_columns([p.requests for _, p in rows]),
        },
    )


def sync_current(conn: psycopg.Connection, histories: dict[int, list[Period]]) -> None:
    """Set each resource's ``parent_id``, ``vcpus``, ``memory_bytes`` and ``project`` to its open period's."""
    current = {rid: periods[-1] for rid, periods in histories.items() if periods and periods[-1].valid_to is None}
    if not current:
        return
    conn.execute(
        """UPDATE resources r SET parent_id = u.parent, vcpus = u.vcpus, memory_bytes = u.memory, project = u.project
           FROM unnest(%s::int[], %s::int[], %s::int[], %s::bigint[], %s::text[])
                AS u(id, parent, vcpus, memory, project)
           WHERE r.id = u.id""",
        (
            list(current),
            [p.parent_id for p in current.values()],
            [p.vcpus for p in current.values()],
            [p.memory_bytes for p in current.values()],
            [p.project for p in current.values()],
        ),
    )
