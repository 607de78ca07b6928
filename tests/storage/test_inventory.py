"""Inventory persistence: upserts, retirement, and the placement history that rollups rely on."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from cloudmeter.model import Inventory, InventoryItem, Placement, Requests, ResourceRef
from cloudmeter.storage.database import Database
from cloudmeter.storage.inventory import Period, merge_history, save_inventory
from cloudmeter.storage.managers import register_manager


def t(hour: int, day: int = 1) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


CLUSTER = InventoryItem(ResourceRef("cluster", "c1"), "cluster one")
H1 = InventoryItem(ResourceRef("host", "h1"), "host one", parent=CLUSTER.ref, vcpus=32, memory_bytes=2**37)
H2 = InventoryItem(ResourceRef("host", "h2"), "host two", parent=CLUSTER.ref, vcpus=32, memory_bytes=2**37)


def vm(parent: InventoryItem, vcpus: int = 2, **kw: object) -> InventoryItem:
    return InventoryItem(
        ResourceRef("vm", "vm-1"),
        "web",
        parent=parent.ref,
        vcpus=vcpus,
        memory_bytes=2**32,
        project="p",
        tags={"env": "prod"},
        created_at=t(0),
        **kw,  # type: ignore[arg-type]
    )


def _history(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    return conn.execute(
        """SELECT p.ems_ref, h.valid_from, h.valid_to, h.vcpus FROM resource_history h
           JOIN resources r ON r.id = h.resource_id LEFT JOIN resources p ON p.id = h.parent_id
           WHERE r.ems_ref = 'vm-1' ORDER BY h.valid_from"""
    ).fetchall()


def test_change_detection_opens_a_period_per_change_and_none_for_no_change(db: Database) -> None:
    with db.connection() as conn:
        mid = register_manager(conn, "m", "simulator", {})
        save_inventory(conn, mid, Inventory(t(1), (CLUSTER, H1, H2, vm(H1))))
        save_inventory(conn, mid, Inventory(t(2), (CLUSTER, H1, H2, vm(H1))))  # nothing changed
        assert _history(conn) == [("h1", t(0), None, 2)]
        save_inventory(conn, mid, Inventory(t(3), (CLUSTER, H1, H2, vm(H2))))  # live migration seen at 03:00
        save_inventory(conn, mid, Inventory(t(5), (CLUSTER, H1, H2, vm(H2, vcpus=4))))  # resize seen at 05:00
        assert _history(conn) == [("h1", t(0), t(3), 2), ("h2", t(3), t(5), 2), ("h2", t(5), None, 4)]
        parent = conn.execute(
            "SELECT p.ems_ref, r.vcpus, r.tags FROM resources r JOIN resources p ON p.id = r.parent_id "
            "WHERE r.ems_ref = 'vm-1'"
        ).fetchone()
        assert parent == ("h2", 4, {"env": "prod"})


def test_container_requests_are_stored_and_a_change_of_requests_opens_a_period(db: Database) -> None:
    pod = InventoryItem(ResourceRef("pod", "uid-1"), "web-0", parent=H1.ref, project="shop")
    half = Requests(cpu_request_cores=0.25, cpu_limit_cores=0.5, memory_request_bytes=2**28)

    def container(requests: Requests) -> InventoryItem:
        return InventoryItem(
            ResourceRef("container", "uid-1/app"), "app", parent=pod.ref, memory_bytes=2**28, project="shop",
            created_at=t(0), requests=requests,
        )  # fmt: skip

    more = Requests(cpu_request_cores=1.5, memory_request_bytes=2**29, memory_limit_bytes=2**30)
    with db.connection() as conn:
        mid = register_manager(conn, "k", "simulator", {})
        save_inventory(conn, mid, Inventory(t(1), (CLUSTER, H1, pod, container(half))))
        save_inventory(conn, mid, Inventory(t(2), (CLUSTER, H1, pod, container(half))))  # nothing changed
        save_inventory(conn, mid, Inventory(t(4), (CLUSTER, H1, pod, container(more))))  # requests changed at 04:00
        history = conn.execute(
            """SELECT h.valid_from, h.valid_to, h.cpu_request_cores, h.cpu_limit_cores, h.memory_request_bytes,
                      h.memory_limit_bytes, h.vcpus FROM resource_history h JOIN resources r ON r.id = h.resource_id
               WHERE r.kind = 'container' ORDER BY h.valid_from"""
        ).fetchall()
        assert history == [(t(0), t(4), 0.25, 0.5, 2**28, None, None), (t(4), None, 1.5, None, 2**29, 2**30, None)]
        stored = conn.execute(
            "SELECT kind, cpu_request_cores, memory_limit_bytes FROM resources WHERE kind IN ('pod', 'container') "
            "ORDER BY kind"
        ).fetchall()
        assert stored == [("container", 1.5, 2**30), ("pod", None, None)]


def test_reported_history_replaces_the_guess_and_deleted_resources_are_retired(db: Database) -> None:
    with db.connection() as conn:
        mid = register_manager(conn, "m", "simulator", {})
        save_inventory(conn, mid, Inventory(t(1), (CLUSTER, H1, H2, vm(H1))))
        moved = vm(
            H2,
            history=(Placement(t(0), H1.ref, 2, 2**32, "p"), Placement(t(2), H2.ref, 2, 2**32, "p")),
            retired_at=t(6),
        )
        save_inventory(conn, mid, Inventory(t(7), (CLUSTER, H1, H2, moved)))
        assert _history(conn) == [("h1", t(0), t(2), 2), ("h2", t(2), t(6), 2)]
        result = save_inventory(conn, mid, Inventory(t(8), (CLUSTER, H1)))  # h2 and the VM are gone
        assert result.retired == 2  # h2 and project p; the VM was already retired at 06:00 by the source
        retired = conn.execute(
            "SELECT kind, ems_ref, retired_at FROM resources WHERE retired_at IS NOT NULL ORDER BY 2"
        )
        assert retired.fetchall() == [("host", "h2", t(8)), ("project", "p", t(8)), ("vm", "vm-1", t(6))]


def test_merge_history_keeps_stored_periods_before_the_report() -> None:
    stored = [Period(t(0), t(4), 1, 2, None, None), Period(t(4), None, 2, 2, None, None)]
    reported = [Period(t(3), None, 3, 2, None, None)]
    assert merge_history(stored, reported, None) == [
        Period(t(0), t(3), 1, 2, None, None),
        Period(t(3), None, 3, 2, None, None),
    ]
    same = [Period(t(6), None, 2, 2, None, None)]
    assert merge_history(stored, same, None) == stored
