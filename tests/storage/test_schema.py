"""Schema creation and migrations against real PostgreSQL 15, 16 and 18 (native partition mode)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest

from cloudmeter.model import METRICS, Window
from cloudmeter.storage import readers, schema, writer
from cloudmeter.storage.database import Database
from cloudmeter.storage.partitions import drop_expired_partitions, maintain, native_partitions, partition_ranges

#: Kubernetes' requests and limits (migration 9), after the original columns
REQUESTS = ("cpu_request_cores", "cpu_limit_cores", "memory_request_bytes", "memory_limit_bytes")
CONTRACT = {
    "resources": [
        "id",
        "manager_id",
        "kind",
        "ems_ref",
        "name",
        "parent_id",
        "vcpus",
        "memory_bytes",
        "disk_bytes",
        "project",
        "tags",
        "first_seen",
        "last_seen",
        "retired_at",
        *REQUESTS,
    ],
    "resource_history": [
        *("resource_id", "valid_from", "valid_to", "parent_id", "vcpus", "memory_bytes", "project"),
        *REQUESTS,
    ],
    "metric_samples": ["ts", "resource_id", *METRICS],
    "events": [
        *("id", "manager_id", "ts", "kind", "resource_id", "ems_ref", "source_type", "payload", "received_at"),
        *("message_id", "host_ems_ref", "vcpus", "memory_bytes"),
    ],
}
ROLLUP_STATS = ["avg", "min", "max", "p95", "max_ts"]
ROLLUP_TAIL = ["sample_count", "expected_count", "vcpus", "memory_bytes", "child_count", "children_with_data"]


def _columns(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


def _catalog(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    return conn.execute(
        """SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns
           WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"""
    ).fetchall()


def test_migrate_creates_contract_tables_and_second_run_is_noop(
    any_pg_server: str, new_database: Callable[[str], str], tmp_path: Path
) -> None:
    with Database(new_database(any_pg_server), tmp_path) as db:
        assert db.migrate() == list(range(1, schema.LATEST + 1))
        with db.connection() as conn:
            before = _catalog(conn)
        assert db.migrate() == []
        assert db.mode() == "native"
        with db.connection() as conn:
            assert _catalog(conn) == before
            assert conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall() == [
                (v,) for v in range(1, schema.LATEST + 1)
            ]
            for table, columns in CONTRACT.items():
                assert _columns(conn, table) == columns
            per_metric = [f"{m}_{s}" for m in METRICS for s in ROLLUP_STATS]
            assert _columns(conn, "metric_hourly") == ["ts", "resource_id", *per_metric, *ROLLUP_TAIL]
            assert _columns(conn, "metric_daily") == ["ts", "tz", "resource_id", *per_metric, *ROLLUP_TAIL]
            kinds = conn.execute(
                "SELECT relname, relkind FROM pg_class WHERE relname IN "
                "('metric_samples', 'metric_hourly', 'metric_daily') ORDER BY relname"
            ).fetchall()
            assert kinds == [("metric_daily", "p"), ("metric_hourly", "p"), ("metric_samples", "p")]


def test_write_and_read_back_on_each_server(
    any_pg_server: str, new_database: Callable[[str], str], tmp_path: Path
) -> None:
    ts = np.array([1_790_000_000, 1_790_000_060, 1_790_086_400], dtype=np.int64)  # spans two daily partitions
    rid = np.array([1, 1, 2], dtype=np.int32)
    values = np.arange(24, dtype=np.float64).reshape(3, 8)
    values[1, 3] = np.nan
    with Database(new_database(any_pg_server), tmp_path) as db:
        db.migrate()
        with db.connection() as conn:
            assert writer.write_samples(conn, rid, ts, values, db.write_target()) == 3
            frame = readers.read_samples(
                conn, Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
            )
    assert frame["resource_id"].to_list() == [1, 1, 2]
    assert [int(t.timestamp()) for t in frame["ts"]] == ts.tolist()
    assert frame["mem_usage_pct"].to_list() == [3.0, None, 19.0]
    assert frame["net_tx_bps"].to_list() == [7.0, 15.0, 23.0]


def test_schema_newer_than_program_is_refused(db: Database) -> None:
    with db.connection() as conn:
        conn.execute("INSERT INTO schema_migrations (version, description) VALUES (999, 'from the future')")
        conn.commit()
        with pytest.raises(Exception, match="newer than this cloudmeter knows"):
            schema.migrate(conn)


def test_partition_ranges_cover_whole_utc_periods() -> None:
    start = datetime(2026, 12, 31, 22, tzinfo=UTC)
    end = datetime(2027, 1, 1, 1, tzinfo=UTC)
    days = list(partition_ranges(schema.SAMPLES, start, end))
    assert days == [
        ("metric_samples_p20261231", datetime(2026, 12, 31, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        ("metric_samples_p20270101", datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 1, 2, tzinfo=UTC)),
    ]
    months = [name for name, _, _ in partition_ranges(schema.HOURLY, start, end)]
    assert months == ["metric_hourly_p202612", "metric_hourly_p202701"]
    assert [name for name, _, _ in partition_ranges(schema.DAILY, start, end)] == [
        "metric_daily_p2026",
        "metric_daily_p2027",
    ]


def test_maintenance_creates_ahead_and_drops_only_wholly_expired_partitions(db: Database) -> None:
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    partitions = db.native_partitions()
    assert partitions is not None
    old_day = int(datetime(2026, 11, 5, 23, 59, tzinfo=UTC).timestamp())
    kept_day = int(datetime(2026, 11, 6, 0, 0, tzinfo=UTC).timestamp())
    with db.connection() as conn:
        writer.write_samples(
            conn,
            np.array([1, 1], dtype=np.int32),
            np.array([old_day, kept_day], dtype=np.int64),
            np.ones((2, 8)),
            db.write_target(),
        )
        retention = {"raw_days": 14, "hourly_days": 400, "daily_days": 1830}
        with conn.transaction():
            dropped = maintain(conn, "native", retention, now, partitions)
        assert dropped == ["metric_samples_p20261105"]
        names = [name for name, _, _ in native_partitions(conn, schema.SAMPLES)]
        assert names[0] == "metric_samples_p20261106"
        assert names[-1] == "metric_samples_p20261127"  # created 7 days ahead
        assert conn.execute("SELECT extract(epoch FROM ts)::bigint FROM metric_samples").fetchall() == [(kept_day,)]
        # a second pass finds nothing more to drop
        assert drop_expired_partitions(conn, schema.SAMPLES, now - timedelta(days=14), partitions) == []


def test_events_are_unique_per_manager_and_message_with_their_kinds_checked_and_indexed(db: Database) -> None:
    with db.connection() as conn:
        conn.execute("INSERT INTO managers (name, kind) VALUES ('a', 'simulator'), ('b', 'simulator')")
        insert = "INSERT INTO events (manager_id, ts, kind, source_type, message_id) VALUES (%s, now(), %s, 's', %s)"
        conn.execute(insert, (1, "migrated", "m-1"))
        conn.execute(insert, (2, "migrated", "m-1"))  # another manager's message of the same id
        conn.commit()
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert, (1, "deleted", "m-1"))
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(insert, (1, "moved", "m-2"))
        conn.rollback()
        indexes = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'events' AND indexname LIKE 'events_%%_ts'"
        ).fetchall()
        assert sorted(i for (i,) in indexes) == [
            "CREATE INDEX events_manager_ts ON public.events USING btree (manager_id, ts)",
            "CREATE INDEX events_resource_ts ON public.events USING btree (resource_id, ts)",
        ]
        received = conn.execute("SELECT received_at IS NOT NULL, payload FROM events").fetchall()
        assert received == [(True, {}), (True, {})]
