"""Packed hours (``metric_hourly_packs``) read exactly as the hourly rows they pack: for whole and partial
days, for a day not rolled up to its end, after late samples rebuild a day, after migration 8 packs what was
stored before it, and after retention."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cloudmeter.model import Window, epoch_s
from cloudmeter.scheduler import pipeline
from cloudmeter.storage import packs, readers, schema
from cloudmeter.storage.database import Database
from tests.reports.cloud import START, hours, load


@pytest.fixture
def stored(db: Database) -> Database:
    load(db)
    return db


def _every(db: Database) -> list[int]:
    with db.connection() as conn:
        return [row[0] for row in conn.execute("SELECT id FROM resources ORDER BY id")]


def _id(db: Database, name: str) -> int:
    with db.connection() as conn:
        row = conn.execute("SELECT id FROM resources WHERE name = %s", [name]).fetchone()
    assert row is not None
    return int(row[0])


def _both(db: Database, window: Window) -> tuple[pl.DataFrame, pl.DataFrame]:
    ids = _every(db)
    with db.connection() as conn:
        plain = readers.read_rollups(conn, "hourly", window, ids, columns=schema.PACKED)
        packed = packs.read_hourly(conn, window, ids, schema.PACKED)
    return plain, packed


@pytest.mark.parametrize("first, last", [(0, 48), (5, 43), (0, 24), (23, 25), (24, 48), (-24, 72)])
def test_packed_hours_read_as_the_hourly_rows(stored: Database, first: int, last: int) -> None:
    plain, packed = _both(stored, Window(hours(first), hours(last)))
    assert len(plain) > 0
    assert_frame_equal(packed, plain)


@pytest.mark.parametrize("first, last", [(0, 48), (5, 43), (-24, 72)])
def test_rows_by_resource_are_the_hourly_rows(stored: Database, first: int, last: int) -> None:
    window, ids, columns = Window(hours(first), hours(last)), _every(stored), ("cpu_used_cores_avg", "net_rx_bps_avg")
    with stored.connection() as conn:
        rows = packs.read_hourly(conn, window, ids, columns)
        resource, values = packs.read_by_resource(conn, window, ids, columns)
    assert resource.tolist() == rows["resource_id"].to_list()
    for column in columns:  # a resource's hours in any order
        got = pl.DataFrame({"resource_id": resource, column: pl.Series(values[column], nan_to_null=True)})
        assert_frame_equal(got.sort(got.columns), rows.select(got.columns).sort(got.columns), check_dtypes=False)


def test_each_resource_has_a_pack_per_day_with_data_with_its_24_hours(stored: Database) -> None:
    with stored.connection() as conn:
        rows = conn.execute(
            "SELECT r.name, p.day, length(p.sample_count), length(p.cpu_used_cores_avg) FROM metric_hourly_packs p "
            "JOIN resources r ON r.id = p.resource_id ORDER BY r.name, p.day"
        ).fetchall()
    days = (START, START + timedelta(days=1))
    every = ("alpha", "beta", "c1", "c2", "h1", "h2", "h3", "lab", "r1", "vm-a", "vm-b", "vm-c")
    # vm-d lives from 12:00 on day 1 to 12:00 on day 2: both days
    assert [(name, day) for name, day, *_ in rows] == sorted((name, day) for name in (*every, "vm-d") for day in days)
    assert {(count_bytes, value_bytes) for *_, count_bytes, value_bytes in rows} == {(24 * 4, 24 * 8)}


def test_a_day_not_rolled_up_to_its_end_is_read_from_the_hourly_rows(stored: Database) -> None:
    """The rows under a pack may change until the day is rolled up to its end: until then it is not read."""
    h1 = _id(stored, "h1")
    with stored.connection() as conn:
        conn.execute("UPDATE managers SET rolled_until = %s", [hours(30)])
        for hour in (3, 26):
            conn.execute(
                "UPDATE metric_hourly SET cpu_used_cores_avg = 99 WHERE resource_id = %s AND ts = %s", [h1, hours(hour)]
            )
        read = packs.read_hourly(conn, Window(hours(0), hours(48)), [h1], ("cpu_used_cores_avg",))
    value = dict(zip(read["ts"].to_list(), read["cpu_used_cores_avg"].to_list(), strict=True))
    assert value[hours(26)] == 99  # day 2 is rolled up to 06:00 only: its hourly rows
    assert value[hours(3)] == 2.0  # day 1 is closed: its pack, vm-a's 2 cores (vm-d comes at 12:00)


def test_late_samples_repack_the_day_they_change(stored: Database) -> None:
    vm_a, h1 = _id(stored, "vm-a"), _id(stored, "h1")
    with stored.connection() as conn:
        conn.execute(
            "UPDATE metric_samples SET cpu_used_cores = 6 WHERE resource_id = %s AND ts >= %s AND ts < %s",
            [vm_a, hours(5), hours(6)],
        )
        manager_id = conn.execute("SELECT id FROM managers").fetchone()[0]  # type: ignore[index]
    pipeline.rebuild(stored, manager_id, Window(hours(5), hours(6)), ("UTC", "Europe/Berlin"), {epoch_s(hours(5))})
    plain, packed = _both(stored, Window(hours(0), hours(48)))
    assert_frame_equal(packed, plain)
    h1_at_5 = packed.filter((pl.col("resource_id") == h1) & (pl.col("ts") == hours(5)))["cpu_used_cores_avg"]
    assert h1_at_5.to_list() == [6.0]  # vm-a alone on h1 before noon, now at 6 cores


def test_migration_8_packs_the_hours_stored_before_it(stored: Database) -> None:
    with stored.connection() as conn:
        before = conn.execute("SELECT * FROM metric_hourly_packs ORDER BY resource_id, day").fetchall()
        conn.execute("DROP TABLE metric_hourly_packs")
        for table in ("resources", "resource_history"):  # back to version 7: undo migrations 9 and 10 as well
            drops = ", ".join(f"DROP COLUMN {name}" for name, _ in schema.REQUEST_COLUMNS)
            conn.execute(f"ALTER TABLE {table} {drops}")
        conn.execute("DROP TABLE events")
        conn.execute(
            "ALTER TABLE managers DROP COLUMN events_connected, DROP COLUMN events_state_at, DROP COLUMN events_error"
        )
        conn.execute("DELETE FROM schema_migrations WHERE version >= 8")
        assert schema.migrate(conn) == [8, 9, 10]
        after = conn.execute("SELECT * FROM metric_hourly_packs ORDER BY resource_id, day").fetchall()
    assert len(before) > 0
    assert after == before


def test_prune_drops_the_packs_of_days_whose_hours_are_gone(stored: Database) -> None:
    with stored.connection() as conn:
        conn.execute("DELETE FROM metric_hourly WHERE ts < %s", [hours(24)])
        packed_days = "SELECT DISTINCT day FROM metric_hourly_packs ORDER BY day"
        assert [row[0] for row in conn.execute(packed_days)] == [hours(0), hours(24)]
        assert packs.prune(conn, hours(48)) > 0
        assert [row[0] for row in conn.execute(packed_days)] == [hours(24)]
