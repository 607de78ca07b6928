"""Events move rolled-up samples: capture and roll up hourly, record a migration or a resize at 10:17:30, then
``roll_dirty`` rebuilds the hours it moved (real PostgreSQL, the real jobs and rollups).

One VM, ``vm-1`` (2 vCPUs, 4 GiB), on host ``h1`` of cluster ``c1`` (hosts ``h1`` and ``h2``), sends a sample every
5 minutes from 08:00 to midnight (the UTC day closes). In each hour the k-th sample (k = 0..11, at minute 5k) uses
``cores(k)`` cores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from cloudmeter.model import METRICS, Event, Inventory, InventoryItem, ResourceRef, SampleBatch, Window
from cloudmeter.reports import chargeback
from cloudmeter.reports.ratecard import parse_rate_card
from cloudmeter.scheduler import jobs
from cloudmeter.scheduler.pipeline import StreamRollup
from cloudmeter.storage import events, managers, readers
from cloudmeter.storage.database import Database

GIB = 1 << 30
DAY = datetime(2026, 11, 2, tzinfo=UTC)
WINDOW = Window(DAY + timedelta(hours=8), DAY + timedelta(days=1))
EVENT_AT = DAY + timedelta(hours=10, minutes=17, seconds=30)
ZONES = ("UTC",)
CLUSTER = ResourceRef("cluster", "c1")
H1, H2, VM = ResourceRef("host", "h1"), ResourceRef("host", "h2"), ResourceRef("vm", "vm-1")


class OneVm:
    """The cloud above as a capture source; hosts have ``host_vcpus`` (None: unknown, so a host's percentages are
    taken over the vCPUs of the VMs on it)."""

    name = "lab"

    def __init__(self, cores: Callable[[int], float], host_vcpus: int | None) -> None:
        self.cores, self.host_vcpus = cores, host_vcpus

    def inventory(self) -> Inventory:
        hosts = tuple(InventoryItem(ref, ref.ems_ref, CLUSTER, self.host_vcpus, created_at=DAY) for ref in (H1, H2))
        vm = InventoryItem(VM, "web", H1, 2, 4 * GIB, created_at=DAY)
        return Inventory(WINDOW.start, (InventoryItem(CLUSTER, "c1", created_at=DAY), *hosts, vm))

    def capture(self, window: Window) -> Iterator[SampleBatch]:
        ts = np.arange(-(-window.start_s // 300) * 300, window.end_s, 300, dtype=np.int64)
        values = np.zeros((len(ts), len(METRICS)))
        values[:, METRICS.index("cpu_used_cores")] = [self.cores(int(s % 3600) // 300) for s in ts]
        yield SampleBatch((VM,), np.zeros(len(ts), np.int32), ts, values, 300)


def captured(db: Database, source: OneVm) -> int:
    """Refresh, then capture 08:00 to midnight in half hours, rolling up in-stream; the manager's id."""
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, "lab", "simulator", {})
    jobs.refresh_inventory(db, manager_id, source)
    stream = StreamRollup(db, manager_id, ZONES)
    for step in WINDOW.split(1800):
        jobs.capture(db, manager_id, source, step, stream=stream)
    return manager_id


def hourly(db: Database, columns: list[str]) -> dict[tuple[str, int], tuple[object, ...]]:
    """(ems_ref, hour of the day) -> ``columns`` of every hourly row."""
    with db.connection() as conn:
        rows = readers.read_rollups(conn, "hourly", WINDOW)
        names = readers.read_resources(conn).select(pl.col("id").alias("resource_id"), "ems_ref")
    rows = rows.join(names, on="resource_id").with_columns(hour=pl.col("ts").dt.hour())
    return {(r[0], r[1]): tuple(r[2:]) for r in rows.select("ems_ref", "hour", *columns).rows()}


def record(db: Database, manager_id: int, event: Event) -> events.Recorded:
    with db.connection() as conn:
        return events.record(conn, manager_id, [event])


def test_a_migration_moves_exactly_the_samples_after_the_event_to_the_new_host(db: Database) -> None:
    manager_id = captured(db, OneVm(lambda k: k + 1.0, 32))
    columns = ["sample_count", "cpu_used_cores_avg", "cpu_used_cores_min", "cpu_used_cores_max"]
    before = hourly(db, columns)
    assert before[("h1", 10)] == (12, 6.5, 1.0, 12.0)  # all twelve samples (1..12 cores) under h1
    assert ("h2", 10) not in before
    moved = Event("n-1", EVENT_AT, "migrated", "test", VM, {}, host=H2)
    assert record(db, manager_id, moved).dirty_hours == 14  # 10:00 to 23:00 are rolled up already
    assert jobs.roll_dirty(db, manager_id, ZONES) == 14
    after = hourly(db, columns)
    # samples at 10:00, :05, :10, :15 (1..4 cores) stay on h1; :20 to :55 (5..12 cores) count under h2
    assert after[("h1", 10)] == (4, 2.5, 1.0, 4.0)
    assert after[("h2", 10)] == (8, 8.5, 5.0, 12.0)
    assert ("h1", 11) not in after
    assert after[("h2", 11)] == (12, 6.5, 1.0, 12.0)
    for unchanged in (("h1", 8), ("h1", 9), ("vm-1", 10), ("c1", 10), ("c1", 11)):
        assert after[unchanged] == before[unchanged], unchanged
    with db.connection() as conn:
        assert managers.dirty_hours(conn, manager_id) == []
        daily = readers.read_rollups(conn, "daily", Window(DAY, DAY + timedelta(days=1)), tz="UTC")
        names = readers.read_resources(conn).select(pl.col("id").alias("resource_id"), "ems_ref")
    counts = dict(daily.join(names, on="resource_id").select("ems_ref", "sample_count").rows())
    assert (counts["h1"], counts["h2"], counts["vm-1"]) == (28, 164, 192)  # h1: 08, 09 and 4; h2: 8 and 13 x 12
    # no row is left over anywhere: rolling everything up from scratch writes the same rows
    kept = everything(db)
    assert all(frame.equals(kept[table]) for table, frame in from_scratch(db, manager_id).items())


def from_scratch(db: Database, manager_id: int) -> dict[str, pl.DataFrame]:
    """Every row rolled up again from the stored samples alone (the rollup tables emptied first)."""
    with db.connection() as conn:
        conn.execute("TRUNCATE metric_hourly, metric_daily")
        conn.commit()
    jobs.rollup(db, manager_id, WINDOW, ZONES)
    return everything(db)


def everything(db: Database) -> dict[str, pl.DataFrame]:
    """Every hourly and daily row, in key order."""
    wide = Window(DAY - timedelta(days=1), DAY + timedelta(days=2))
    with db.connection() as conn:
        return {
            "hourly": readers.read_rollups(conn, "hourly", wide).sort("resource_id", "ts"),
            "daily": readers.read_rollups(conn, "daily", wide, tz="UTC").sort("resource_id", "ts"),
        }


def test_a_resize_changes_the_allocation_from_the_event(db: Database) -> None:
    manager_id = captured(db, OneVm(lambda k: 1.0, None))
    columns = ["vcpus", "cpu_usage_pct_avg", "cpu_usage_pct_min", "cpu_usage_pct_max"]
    assert hourly(db, columns)[("h1", 10)] == (2, 50.0, 50.0, 50.0)  # 1 core of the VM's 2 vCPUs
    resized = Event("n-2", EVENT_AT, "resized", "test", VM, {}, vcpus=4, memory_bytes=8 * GIB)
    assert record(db, manager_id, resized).dirty_hours == 14
    jobs.roll_dirty(db, manager_id, ZONES)
    after = hourly(db, columns)
    # h1's percentage is over the VM's vCPUs: 4 samples at 1/2 = 50 %, then 8 at 1/4 = 25 %: (4 x 50 + 8 x 25) / 12
    assert after[("h1", 10)] == (4, 400 / 12, 25.0, 50.0)
    assert after[("h1", 11)] == (4, 25.0, 25.0, 25.0)
    assert after[("h1", 9)] == (2, 50.0, 50.0, 50.0)
    assert [after[("vm-1", hour)][0] for hour in (8, 9, 10, 11)] == [2, 2, 4, 4]


def test_a_resize_is_charged_from_the_event(db: Database) -> None:
    """vCPU-hours under an hourly rate from 08:00 to midnight: 2 vCPUs until 10:17:30 (2.2916... h), then 4 for
    13 h 42 m 30 s (13.7083... h): 2 x 2.291667 + 4 x 13.708333 = 59.416667 vCPU-hours, at 0.01 each."""
    manager_id = captured(db, OneVm(lambda k: 1.0, None))
    record(db, manager_id, Event("n-3", EVENT_AT, "resized", "test", VM, {}, vcpus=4, memory_bytes=8 * GIB))
    card = parse_rate_card(
        {"currency": "EUR", "rate": [{"name": "vcpu", "version": "v1", "measure": "vcpu_allocated",
                                      "per_time": "hourly", "variable": "0.01", "effective_from": "2026-01-01"}]},
        "card",
    )  # fmt: skip
    with db.connection() as conn:
        frame = chargeback.charges(conn, WINDOW, card)
    before, after = (EVENT_AT - WINDOW.start) / timedelta(hours=1), (WINDOW.end - EVENT_AT) / timedelta(hours=1)
    assert frame["quantity"].sum() == pytest.approx(2 * before + 4 * after)
    assert frame["cost_nanos"].sum() == round((2 * before + 4 * after) * 0.01 * 10**9)
