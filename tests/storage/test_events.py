"""``storage.events``: each message stored once, and what each kind does to ``resource_history`` (exact periods)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from cloudmeter.errors import ConfigError
from cloudmeter.model import Event, Inventory, InventoryItem, Placement, ResourceRef
from cloudmeter.storage import events, managers
from cloudmeter.storage.database import Database
from cloudmeter.storage.inventory import save_inventory

GIB = 1 << 30
VM = ResourceRef("vm", "vm-1")
H1, H2 = ResourceRef("host", "h1"), ResourceRef("host", "h2")


def t(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, 2, hour, minute, second, tzinfo=UTC)


START = t(0)
CLUSTER = InventoryItem(ResourceRef("cluster", "c1"), "cluster one")
HOSTS = tuple(InventoryItem(ref, f"host {ref.ems_ref}", CLUSTER.ref, 32, 128 * GIB) for ref in (H1, H2))


def vm_item(host: ResourceRef = H1, vcpus: int = 2, **kw: object) -> InventoryItem:
    return InventoryItem(VM, "web", host, vcpus, 4 * GIB, project="p", created_at=START, **kw)  # type: ignore[arg-type]


def event(message_id: str, ts: datetime, kind: str, resource: ResourceRef | None = VM, **kw: object) -> Event:
    return Event(message_id, ts, kind, "test.event", resource, {"id": message_id}, **kw)  # type: ignore[arg-type]


@pytest.fixture
def stored(db: Database) -> Iterator[tuple[psycopg.Connection, int]]:
    """A connection, and manager ``m`` with vm-1 (2 vCPUs, 4 GiB, project p) on h1 from 00:00 (refreshed at 01:00)."""
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, "m", "simulator", {})
        save_inventory(conn, manager_id, Inventory(t(1), (CLUSTER, *HOSTS, vm_item())))
        yield conn, manager_id


def history(conn: psycopg.Connection, ems_ref: str = "vm-1") -> list[tuple[object, ...]]:
    """(host, valid_from, valid_to, vcpus, memory GiB, project) of each period, in order."""
    return conn.execute(
        """SELECT p.ems_ref, h.valid_from, h.valid_to, h.vcpus, h.memory_bytes / 1073741824, h.project
           FROM resource_history h JOIN resources r ON r.id = h.resource_id LEFT JOIN resources p ON p.id = h.parent_id
           WHERE r.ems_ref = %s ORDER BY h.valid_from""",
        (ems_ref,),
    ).fetchall()


def current(conn: psycopg.Connection, ems_ref: str = "vm-1") -> tuple[object, ...]:
    """(name, host, vcpus, memory GiB, first_seen, retired_at) of the resource."""
    row = conn.execute(
        """SELECT r.name, p.ems_ref, r.vcpus, r.memory_bytes / 1073741824, r.first_seen, r.retired_at
           FROM resources r LEFT JOIN resources p ON p.id = r.parent_id WHERE r.ems_ref = %s""",
        (ems_ref,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_each_message_is_stored_once_and_a_duplicate_has_no_effect(stored: tuple[psycopg.Connection, int]) -> None:
    conn, manager_id = stored
    moved = event("msg-1", t(10, 17, 30), "migrated", host=H2)
    first = events.record(conn, manager_id, [moved, event("msg-2", t(10, 20), "powered_off"), moved])
    assert first == events.Recorded(new=2, duplicates=1, changed=1, dirty_hours=0, unresolved=[])
    # re-delivered, with a different payload: dropped by its message id, the history is not moved twice
    again = events.record(conn, manager_id, [event("msg-1", t(10, 18), "migrated", host=H1)])
    assert again == events.Recorded(new=0, duplicates=1, changed=0, dirty_hours=0, unresolved=[])
    rows = conn.execute(
        "SELECT message_id, ts, kind, ems_ref, host_ems_ref, source_type, payload FROM events ORDER BY id"
    ).fetchall()
    assert rows == [
        ("msg-1", t(10, 17, 30), "migrated", "vm-1", "h2", "test.event", {"id": "msg-1"}),
        ("msg-2", t(10, 20), "powered_off", "vm-1", None, "test.event", {"id": "msg-2"}),
    ]
    assert history(conn) == [("h1", START, t(10, 17, 30), 2, 4, "p"), ("h2", t(10, 17, 30), None, 2, 4, "p")]


def test_migrated_closes_the_period_at_the_event_and_opens_one_under_the_new_host(
    stored: tuple[psycopg.Connection, int],
) -> None:
    conn, manager_id = stored
    events.record(conn, manager_id, [event("m", t(10, 17, 30), "migrated", host=H2)])
    assert history(conn) == [("h1", START, t(10, 17, 30), 2, 4, "p"), ("h2", t(10, 17, 30), None, 2, 4, "p")]
    assert current(conn)[1:4] == ("h2", 2, 4)


def test_resized_changes_the_allocations_from_the_event(stored: tuple[psycopg.Connection, int]) -> None:
    conn, manager_id = stored
    events.record(conn, manager_id, [event("r", t(9, 5), "resized", vcpus=4, memory_bytes=8 * GIB)])
    assert history(conn) == [("h1", START, t(9, 5), 2, 4, "p"), ("h1", t(9, 5), None, 4, 8, "p")]
    assert current(conn)[1:4] == ("h1", 4, 8)


def test_deleted_retires_at_the_event_and_closes_the_open_period(stored: tuple[psycopg.Connection, int]) -> None:
    conn, manager_id = stored
    events.record(conn, manager_id, [event("d", t(11, 0, 7), "deleted")])
    assert history(conn) == [("h1", START, t(11, 0, 7), 2, 4, "p")]
    assert current(conn)[5] == t(11, 0, 7)


def test_created_adds_an_unknown_resource_from_the_event(stored: tuple[psycopg.Connection, int]) -> None:
    conn, manager_id = stored
    vm2 = ResourceRef("vm", "vm-2")
    made = event("c", t(12, 30), "created", vm2, host=H2, vcpus=1, memory_bytes=2 * GIB, name="db")
    assert events.record(conn, manager_id, [made]).changed == 1
    assert history(conn, "vm-2") == [("h2", t(12, 30), None, 1, 2, None)]
    assert current(conn, "vm-2") == ("db", "h2", 1, 2, t(12, 30), None)
    linked = conn.execute("SELECT r.ems_ref FROM events e JOIN resources r ON r.id = e.resource_id").fetchall()
    assert linked == [("vm-2",)]
    # of a resource known already, in the state stored: nothing changes
    same = event("c2", t(0, 0, 5), "created", host=H1, vcpus=2, memory_bytes=4 * GIB)
    assert events.record(conn, manager_id, [same]).changed == 0


def test_an_event_before_a_later_boundary_splits_only_the_period_that_contains_it(
    stored: tuple[psycopg.Connection, int],
) -> None:
    conn, manager_id = stored
    save_inventory(conn, manager_id, Inventory(t(5), (CLUSTER, *HOSTS, vm_item(H2))))  # refresh sees h2 at 05:00
    # then the migration's event arrives (at 04:40) and a resize from 03:00 that no refresh saw
    events.record(conn, manager_id, [event("m", t(4, 40), "migrated", host=H2)])
    events.record(conn, manager_id, [event("r", t(3), "resized", vcpus=4)])
    assert history(conn) == [
        ("h1", START, t(3), 2, 4, "p"),
        ("h1", t(3), t(4, 40), 4, 4, "p"),
        ("h2", t(4, 40), None, 2, 4, "p"),  # the 05:00 refresh saw 2 vCPUs: later evidence, kept
    ]


def test_an_event_before_the_first_period_extends_the_history_back(stored: tuple[psycopg.Connection, int]) -> None:
    conn, manager_id = stored
    late = InventoryItem(ResourceRef("vm", "vm-3"), "late", H1, 2, 4 * GIB)  # no creation time: seen from 01:00
    save_inventory(conn, manager_id, Inventory(t(1), (CLUSTER, *HOSTS, vm_item(), late)))
    events.record(conn, manager_id, [event("c", t(0, 30), "created", late.ref, host=H2)])
    assert history(conn, "vm-3") == [("h2", t(0, 30), t(1), 2, 4, None), ("h1", t(1), None, 2, 4, None)]


def test_unresolved_refs_are_returned_and_a_targeted_refresh_links_their_events(
    stored: tuple[psycopg.Connection, int],
) -> None:
    conn, manager_id = stored
    stranger, h9 = ResourceRef("vm", "vm-9"), ResourceRef("host", "h9")
    found = events.record(
        conn,
        manager_id,
        [event("a", t(6), "resized", stranger, vcpus=8), event("b", t(7), "migrated", host=h9)],
    )
    assert (found.new, found.changed, found.unresolved) == (2, 0, [stranger, h9, VM])
    assert history(conn) == [("h1", START, None, 2, 4, "p")]
    unlinked = conn.execute("SELECT message_id FROM events WHERE resource_id IS NULL ORDER BY 1").fetchall()
    assert unlinked == [("a",)]
    # the targeted refresh of vm-9 (created at 05:00 with 2 vCPUs) adds it and retires nobody
    vm9 = InventoryItem(stranger, "new", H2, 2, GIB, created_at=t(5))
    result = save_inventory(conn, manager_id, Inventory(t(6, 0, 20), (vm9,)), partial=True)
    assert result.retired == 0
    assert conn.execute("SELECT count(*) FROM resources WHERE retired_at IS NOT NULL").fetchone() == (0,)
    assert history(conn, "vm-9") == [("h2", t(5), t(6), 2, 1, None), ("h2", t(6), None, 8, 1, None)]
    assert conn.execute("SELECT count(*) FROM events WHERE resource_id IS NULL").fetchone() == (0,)


def test_rolled_up_hours_a_change_moves_are_marked_dirty(stored: tuple[psycopg.Connection, int]) -> None:
    conn, manager_id = stored
    with conn.transaction():
        managers.mark_rolled(conn, manager_id, t(12))
    # a migration at 10:17:30: the hours 10:00 and 11:00 (12:00 on is not rolled up yet)
    assert events.record(conn, manager_id, [event("m", t(10, 17, 30), "migrated", host=H2)]).dirty_hours == 2
    assert managers.dirty_hours(conn, manager_id) == [t(10), t(11)]
    with conn.transaction():
        managers.clear_dirty(conn, manager_id, [t(10), t(11)])
    # a resize at 08:10 changes 08:10 to 10:17:30 only (the period after is later evidence): 08:00 to 10:00
    assert events.record(conn, manager_id, [event("r", t(8, 10), "resized", vcpus=4)]).dirty_hours == 3
    assert managers.dirty_hours(conn, manager_id) == [t(8), t(9), t(10)]
    # powered off, other: nothing moves
    quiet = [event("p", t(9), "powered_off"), event("o", t(9, 1), "other", None)]
    assert events.record(conn, manager_id, quiet) == events.Recorded(2, 0, 0, 0, [])


def test_last_message_id_and_expiry(stored: tuple[psycopg.Connection, int]) -> None:
    conn, manager_id = stored
    assert events.last_message_id(conn, manager_id) is None
    vc = [Event(str(key), t(8, key), "other", f"vsphere.{name}", None, {}) for key, name in ((41, "A"), (42, "B"))]
    events.record(conn, manager_id, [*vc, event("nova", t(7), "powered_on")])
    assert events.last_message_id(conn, manager_id) == "42"
    assert events.expire_events(conn, t(8, 42)) == 2  # nova's (07:00) and key 41 (08:41)
    assert conn.execute("SELECT message_id FROM events").fetchall() == [("42",)]


def test_timeline_filters_and_refusals(stored: tuple[psycopg.Connection, int]) -> None:
    conn, manager_id = stored
    events.record(
        conn,
        manager_id,
        [
            event("m", t(10, 17, 30), "migrated", host=H2),
            event("r", t(11), "resized", vcpus=4, memory_bytes=8 * GIB),
            event("o", t(9), "other", None),
        ],
    )
    frame = events.timeline(conn)
    assert frame.columns == list(events.TIMELINE_SCHEMA)
    assert frame.select("ts", "kind", "manager", "resource", "host", "vcpus").rows() == [
        (t(9), "other", "m", None, None, None),
        (t(10, 17, 30), "migrated", "m", "web", "host h2", None),
        (t(11), "resized", "m", "web", None, 4),
    ]
    assert events.timeline(conn, resource="web", kind="resized")["message_id"].to_list() == ["r"]
    assert events.timeline(conn, manager="m", since=t(10), until=t(11))["message_id"].to_list() == ["m"]
    assert events.timeline(conn, resource="vm-1")["message_id"].to_list() == ["m", "r"]
    for bad, message in (
        ({"kind": "moved"}, "--kind 'moved' is not one of created, deleted"),
        ({"manager": "nope"}, "--manager 'nope' is not a stored manager"),
        ({"resource": "nope"}, "--resource 'nope' names no resource or event"),
    ):
        with pytest.raises(ConfigError, match=message):
            events.timeline(conn, **bad)  # type: ignore[arg-type]
    assert events.timeline(conn, since=t(12)).height == 0


# --- the periodic refresh agrees with what events recorded ------------------------------------------------------

MOVED = [("h1", START, t(10, 17, 30), 2, 4, "p"), ("h2", t(10, 17, 30), None, 2, 4, "p")]


def refresh(conn: psycopg.Connection, manager_id: int, at: datetime, vm: InventoryItem) -> int:
    """A whole refresh at ``at`` listing the hosts and ``vm``; how many histories it changed."""
    return save_inventory(conn, manager_id, Inventory(at, (CLUSTER, *HOSTS, vm))).history_changed


def revisions(*placements: tuple[datetime, ResourceRef, int]) -> tuple[Placement, ...]:
    """OpenStack's shape: Gnocchi's revisions of the instance as placements (time, host, vCPUs)."""
    return tuple(Placement(at, host, vcpus, 4 * GIB, "p") for at, host, vcpus in placements)


def test_a_placement_refresh_after_a_migration_event_changes_nothing(stored: tuple[psycopg.Connection, int]) -> None:
    conn, manager_id = stored
    events.record(conn, manager_id, [event("m", t(10, 17, 30), "migrated", host=H2)])
    assert refresh(conn, manager_id, t(10, 30), vm_item(H2)) == 0  # vSphere, AWS: the current host at observed_at
    assert history(conn) == MOVED


def test_an_event_after_a_refresh_that_saw_its_change_moves_the_boundary_to_the_event(
    stored: tuple[psycopg.Connection, int],
) -> None:
    conn, manager_id = stored
    refresh(conn, manager_id, t(10, 20), vm_item(H2))  # the refresh saw h2 before the event was recorded
    assert history(conn)[-1][:2] == ("h2", t(10, 20))
    events.record(conn, manager_id, [event("m", t(10, 17, 30), "migrated", host=H2)])
    assert history(conn) == MOVED
    assert refresh(conn, manager_id, t(10, 45), vm_item(H2)) == 0
    assert history(conn) == MOVED


def test_gnocchi_revisions_lagging_the_event_leave_the_boundary_at_the_event(
    stored: tuple[psycopg.Connection, int],
) -> None:
    conn, manager_id = stored
    lagging = vm_item(H2, history=revisions((START, H1, 2), (t(10, 20), H2, 2)))  # the next poll, 10:20
    events.record(conn, manager_id, [event("m", t(10, 17, 30), "migrated", host=H2)])
    assert refresh(conn, manager_id, t(10, 30), lagging) == 0
    assert history(conn) == MOVED
    # the same when the refresh came first
    with conn.transaction():
        conn.execute("DELETE FROM events")
    refresh(conn, manager_id, t(10, 30), vm_item(H1, history=revisions((START, H1, 2))))
    refresh(conn, manager_id, t(10, 40), lagging)
    assert history(conn)[-1][:2] == ("h2", t(10, 20))
    events.record(conn, manager_id, [event("m2", t(10, 17, 30), "migrated", host=H2)])
    assert history(conn) == MOVED
    # a resize: Gnocchi's revision at 11:10, the event at 11:02
    resized = vm_item(H2, 4, history=revisions((START, H1, 2), (t(10, 20), H2, 2), (t(11, 10), H2, 4)))
    events.record(conn, manager_id, [event("r", t(11, 2), "resized", vcpus=4)])
    assert refresh(conn, manager_id, t(11, 30), resized) == 0
    assert history(conn) == [*MOVED[:1], ("h2", t(10, 17, 30), t(11, 2), 2, 4, "p"), ("h2", t(11, 2), None, 4, 4, "p")]


def test_a_deleted_resource_stays_retired_at_the_event_whatever_a_refresh_lists(
    stored: tuple[psycopg.Connection, int],
) -> None:
    conn, manager_id = stored
    events.record(conn, manager_id, [event("d", t(11, 0, 7), "deleted")])
    closed = [("h1", START, t(11, 0, 7), 2, 4, "p")]
    # OpenStack: Gnocchi's ended_at lags (11:05); vSphere: a refresh still lists it; then one that does not
    for vm in (vm_item(retired_at=t(11, 5), history=revisions((START, H1, 2))), vm_item(), None):
        save_inventory(conn, manager_id, Inventory(t(11, 30), (CLUSTER, *HOSTS, *([vm] if vm else []))))
        assert (history(conn), current(conn)[5]) == (closed, t(11, 0, 7))


def test_a_refresh_still_records_what_no_event_announced(stored: tuple[psycopg.Connection, int]) -> None:
    conn, manager_id = stored
    events.record(conn, manager_id, [event("m", t(10, 17, 30), "migrated", host=H2)])
    # the migration back to h1 at about 11:50 was missed; the 12:00 refresh sees it
    assert refresh(conn, manager_id, t(12), vm_item(H1)) == 1
    assert history(conn) == [
        MOVED[0],
        ("h2", t(10, 17, 30), t(12), 2, 4, "p"),
        ("h1", t(12), None, 2, 4, "p"),
    ]
    assert current(conn)[1] == "h1"


def test_a_resource_created_on_an_unknown_host_is_placed_there_from_the_event_once_a_refresh_brings_the_host(
    stored: tuple[psycopg.Connection, int],
) -> None:
    conn, manager_id = stored
    vm5, h5 = ResourceRef("vm", "vm-5"), ResourceRef("host", "h5")
    made = event("c", t(9, 0, 12), "created", vm5, host=h5, vcpus=4, name="new")
    assert events.record(conn, manager_id, [made]).unresolved == [h5, vm5]
    assert history(conn, "vm-5") == [(None, t(9, 0, 12), None, 4, None, None)]
    # the targeted refresh of both at 09:01 (vSphere's shape: the VM's placement from then on)
    refreshed = (InventoryItem(h5, "h5", CLUSTER.ref), InventoryItem(vm5, "new", h5, 4, GIB))
    save_inventory(conn, manager_id, Inventory(t(9, 1), refreshed), partial=True)
    assert history(conn, "vm-5") == [("h5", t(9, 0, 12), t(9, 1), 4, None, None), ("h5", t(9, 1), None, 4, 1, None)]


def test_removing_a_manager_removes_its_events(stored: tuple[psycopg.Connection, int]) -> None:
    conn, manager_id = stored
    other = managers.register_manager(conn, "other", "simulator", {})
    events.record(conn, manager_id, [event("m", t(10), "migrated", host=H2)])
    events.record(conn, other, [event("m", t(10), "other", None)])  # the same message id, another manager
    assert managers.remove_manager(conn, "m") is not None
    assert conn.execute("SELECT manager_id, message_id FROM events").fetchall() == [(other, "m")]
