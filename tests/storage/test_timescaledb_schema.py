"""TimescaleDB mode's DDL against real TimescaleDB SQL (PGlite + TimescaleDB over the wire protocol)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

from cloudmeter.storage import schema
from cloudmeter.storage.partitions import apply_timescaledb_policies, maintain

RETENTION = {"raw_days": 14, "hourly_days": 400, "daily_days": 1830}


def test_migrate_makes_compressed_hypertables_and_is_idempotent(timescale_conn: psycopg.Connection[Any]) -> None:
    conn = timescale_conn
    assert schema.timescaledb_available(conn)
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
