"""TimescaleDB mode's DDL against real TimescaleDB SQL (PGlite + TimescaleDB over the wire protocol).

The upgrade test runs on native PostgreSQL 18 too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from cloudmeter.storage import schema
from cloudmeter.storage.partitions import PartitionManager, apply_timescaledb_policies, maintain
from cloudmeter.storage.server import probe

RETENTION = {"raw_days": 14, "hourly_days": 400, "daily_days": 1830}


def test_migrate_makes_compressed_hypertables_and_is_idempotent(timescale_conn: psycopg.Connection[Any]) -> None:
    conn = timescale_conn
    assert probe(conn).timescaledb_available is not None
    assert schema.migrate(conn) == list(range(1, schema.LATEST + 1))
    conn.commit()
    assert schema.migrate(conn) == []
    assert schema.stored_mode(conn) == "timescaledb"
    hypertables = conn.execute(
        "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables ORDER BY 1"
    ).fetchall()
    assert hypertables == [("metric_daily", True), ("metric_hourly", True), ("metric_samples", True)]
    segmentby = conn.execute(
        """SELECT hypertable_name, attname, segmentby_column_index, orderby_column_index
           FROM timescaledb_information.compression_settings ORDER BY 1, 2"""
    ).fetchall()
    assert [(t, a, s) for t, a, s, _ in segmentby if s is not None] == [
        ("metric_daily", "resource_id", 1),
        ("metric_hourly", "resource_id", 1),
        ("metric_samples", "resource_id", 1),
    ]
    assert ("metric_samples", "ts") in [(t, a) for t, a, _, o in segmentby if o is not None]


def test_policies_are_installed_once_and_retention_drops_old_chunks(timescale_conn: psycopg.Connection[Any]) -> None:
    conn = timescale_conn
    schema.migrate(conn)
    maintain(conn, "timescaledb", RETENTION, datetime(2026, 11, 20, tzinfo=UTC), manager=None)
    apply_timescaledb_policies(conn, RETENTION)  # again: replaces, never duplicates
    jobs = conn.execute(
        """SELECT hypertable_name, proc_name, config->>'drop_after', config->>'compress_after'
           FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL ORDER BY 1, 2"""
    ).fetchall()
    assert jobs == [
        ("metric_daily", "policy_retention", "1830 days", None),
        ("metric_hourly", "policy_compression", None, "21 days"),
        ("metric_hourly", "policy_retention", "400 days", None),
        ("metric_samples", "policy_compression", None, "3 days"),
        ("metric_samples", "policy_retention", "14 days", None),
    ]
    conn.execute(
        """INSERT INTO metric_samples (ts, resource_id, cpu_usage_pct)
           VALUES (now() - interval '30 days', 1, 1), (now() - interval '1 hour', 1, 2)"""
    )
    job = conn.execute(
        "SELECT job_id FROM timescaledb_information.jobs WHERE hypertable_name = 'metric_samples' "
        "AND proc_name = 'policy_retention'"
    ).fetchone()
    assert job is not None
    conn.commit()
    conn.execute("CALL run_job(%s)", (job[0],))
    assert conn.execute("SELECT cpu_usage_pct FROM metric_samples").fetchall() == [(2.0,)]


@pytest.fixture(params=["timescaledb", "native"])
def empty_conn(request: pytest.FixtureRequest) -> Iterator[psycopg.Connection[Any]]:
    """A connection to an empty database: PGlite + TimescaleDB, then native PostgreSQL 18."""
    if request.param == "timescaledb":
        yield request.getfixturevalue("timescale_conn")
        return
    with psycopg.connect(request.getfixturevalue("dsn")) as conn:
        yield conn


def test_upgrade_from_version_1_keeps_rows_and_mode(
    empty_conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = empty_conn
    with monkeypatch.context() as old_program:
        old_program.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
        old_program.setattr(schema, "LATEST", 1)
        assert schema.migrate(conn) == [1]
    mode = schema.stored_mode(conn)
    if mode == "native":
        PartitionManager().ensure(
            conn, schema.SAMPLES, datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC)
        )
    conn.execute(
        """INSERT INTO managers (name, kind) VALUES ('lab', 'simulator');
           INSERT INTO resources (manager_id, kind, ems_ref, name, first_seen, last_seen)
           VALUES (1, 'vm', 'vm-1', 'vm-1', now(), now());
           INSERT INTO metric_samples (ts, resource_id, cpu_usage_pct) VALUES ('2026-11-20T10:00Z', 1, 12.5)"""
    )
    conn.commit()
    assert schema.migrate(conn) == list(range(2, schema.LATEST + 1))
    conn.execute(
        "INSERT INTO resources (manager_id, kind, ems_ref, name, first_seen, last_seen) "
        "VALUES (1, 'project', 'p-1', 'p-1', now(), now())"
    )
    assert schema.stored_mode(conn) == mode == ("timescaledb" if probe(conn).timescaledb_available else "native")
    assert conn.execute("SELECT kind FROM resources ORDER BY id").fetchall() == [("vm",), ("project",)]
    assert conn.execute("SELECT resource_id, cpu_usage_pct FROM metric_samples").fetchall() == [(1, 12.5)]
    assert conn.execute("SELECT rolled_until, source, failures FROM managers").fetchall() == [(None, "config", 0)]
