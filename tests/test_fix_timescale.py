"""Smoke tests of the PGlite/TimescaleDB fixture (tests/fix_timescale.py, tests/pglite/server.mjs)."""

from __future__ import annotations

import datetime as dt
import struct
from typing import Any

import psycopg
import pytest

from cloudmeter.model import METRICS

Conn = psycopg.Connection[tuple[Any, ...]]

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _create_samples(conn: Conn, table: str = "metric_samples") -> None:
    conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    metrics = ", ".join(f"{m} double precision" for m in METRICS)
    conn.execute(
        f"CREATE TABLE {table} (ts timestamptz NOT NULL, resource_id bigint NOT NULL, {metrics},"
        " PRIMARY KEY (resource_id, ts))"
    )
    conn.execute(f"SELECT create_hypertable('{table}', by_range('ts', INTERVAL '1 day'))")


def _row(i: int, step: dt.timedelta) -> tuple[Any, ...]:
    # whole numbers as doubles, so sums are exact
    return (T0 + i * step, i % 7, *(float(i + k) for k in range(len(METRICS))))


def _chunks(conn: Conn, table: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT range_start, is_compressed FROM timescaledb_information.chunks"
        " WHERE hypertable_name = %s ORDER BY range_start",
        [table],
    ).fetchall()


def test_server_has_timescaledb_2(timescale_conn: Conn) -> None:
    installed = timescale_conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchall()
    available = timescale_conn.execute(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchall()
    assert len(installed) == 1
    assert installed[0][0].split(".")[0] == "2"
    assert available == installed
    timescale_conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")  # what the storage layer runs
    assert timescale_conn.info.server_version // 10000 == 17
    assert timescale_conn.execute("SHOW search_path").fetchone() == ('"$user", public',)


def test_hypertable_multirow_values_and_executemany(timescale_conn: Conn) -> None:
    _create_samples(timescale_conn)
    step = dt.timedelta(days=3) / 1000  # 1000 rows spanning 3 days -> 3 one-day chunks
    rows = [_row(i, step) for i in range(1000)]
    placeholders = ", ".join(["(" + ", ".join(["%s"] * 10) + ")"] * len(rows))
    # one ~100 kB Bind message: arrives in several TCP reads, which broke unpatched pglite-socket
    cur = timescale_conn.execute(
        f"INSERT INTO metric_samples VALUES {placeholders}", [value for row in rows for value in row]
    )
    assert cur.rowcount == 1000
    more = [_row(i, step) for i in range(1000, 1300)]  # day 4
    with timescale_conn.cursor() as cur:
        cur.executemany("INSERT INTO metric_samples VALUES (" + ", ".join(["%s"] * 10) + ")", more)  # pipeline
    timescale_conn.commit()

    count, total, first, last = (
        timescale_conn.execute("SELECT count(*), sum(cpu_usage_pct), min(ts), max(ts) FROM metric_samples").fetchone()
        or ()
    )
    assert count == 1300
    assert total == sum(range(1300))
    assert (first, last) == (T0, T0 + 1299 * step)
    assert [start for start, _ in _chunks(timescale_conn, "metric_samples")] == [
        T0 + dt.timedelta(days=d) for d in range(4)
    ]


def test_compression_and_retention_policies(timescale_conn: Conn) -> None:
    _create_samples(timescale_conn)
    timescale_conn.execute(
        "INSERT INTO metric_samples (ts, resource_id, cpu_usage_pct)"
        " SELECT %s::timestamptz + i * INTERVAL '1 minute', i %% 5, i FROM generate_series(0, 3 * 1440 - 1) i",
        [T0],
    )
    timescale_conn.execute(
        "ALTER TABLE metric_samples SET (timescaledb.compress, timescaledb.compress_segmentby = 'resource_id',"
        " timescaledb.compress_orderby = 'ts')"
    )
    (compress_job,) = (
        timescale_conn.execute("SELECT add_compression_policy('metric_samples', INTERVAL '1 hour')").fetchone() or ()
    )
    (retention_job,) = (
        timescale_conn.execute("SELECT add_retention_policy('metric_samples', INTERVAL '30 days')").fetchone() or ()
    )
    timescale_conn.commit()
    jobs = timescale_conn.execute(
        "SELECT job_id, proc_name FROM timescaledb_information.jobs WHERE hypertable_name = 'metric_samples'"
        " ORDER BY job_id"
    ).fetchall()
    assert jobs == [(compress_job, "policy_compression"), (retention_job, "policy_retention")]
    assert _chunks(timescale_conn, "metric_samples") == [(T0 + dt.timedelta(days=d), False) for d in range(3)]

    # No background workers here: run the jobs by hand. The compression policy COMMITs between chunks,
    # so (as on any TimescaleDB) CALL run_job must run outside a transaction block.
    timescale_conn.commit()
    timescale_conn.autocommit = True
    timescale_conn.execute("CALL run_job(%s)", [compress_job])
    assert _chunks(timescale_conn, "metric_samples") == [(T0 + dt.timedelta(days=d), True) for d in range(3)]
    assert timescale_conn.execute("SELECT count(*), sum(cpu_usage_pct) FROM metric_samples").fetchone() == (
        3 * 1440,
        sum(range(3 * 1440)),
    )

    timescale_conn.execute("CALL run_job(%s)", [retention_job])  # the 2024 chunks are long past 30 days
    assert _chunks(timescale_conn, "metric_samples") == []
    assert timescale_conn.execute("SELECT count(*) FROM metric_samples").fetchone() == (0,)


def test_copy_to_stdout_binary(timescale_conn: Conn) -> None:
    _create_samples(timescale_conn)
    timescale_conn.execute(
        "INSERT INTO metric_samples (ts, resource_id, cpu_usage_pct)"
        " SELECT %s::timestamptz + i * INTERVAL '1 hour', i %% 3, i * 0.5 FROM generate_series(0, 99) i",
        [T0],
    )
    query = "COPY (SELECT ts, resource_id, cpu_usage_pct FROM metric_samples ORDER BY ts) TO STDOUT (FORMAT binary)"
    with timescale_conn.cursor() as cur:
        data = bytearray()
        with cur.copy(query) as copy:
            while chunk := copy.read():
                data += chunk
        assert data.startswith(b"PGCOPY\n\xff\r\n\x00")
        # header (11 + 4 + 4) + per row: int16 field count, 3 x (int32 length + 8 bytes) + trailer int16
        assert len(data) == 19 + 100 * (2 + 3 * 12) + 2
        assert struct.unpack_from("!hi", data, 19) == (3, 8)

        with cur.copy(query) as copy:
            copy.set_types(["timestamptz", "int8", "float8"])
            rows = list(copy.rows())
    assert rows == [(T0 + dt.timedelta(hours=i), i % 3, i * 0.5) for i in range(100)]


def test_copy_from_stdin_is_refused_without_killing_the_server(timescale_conn: Conn) -> None:
    timescale_conn.execute("CREATE TABLE copy_target (a int, b text)")
    timescale_conn.commit()
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="COPY FROM STDIN"):  # noqa: SIM117
        with timescale_conn.cursor() as cur, cur.copy("COPY copy_target FROM STDIN") as copy:
            copy.write_row((1, "x"))
    timescale_conn.rollback()
    assert timescale_conn.execute("SELECT count(*) FROM copy_target").fetchone() == (0,)


def test_closed_connection_leaves_nothing_in_the_shared_session(timescale_dsn: str) -> None:
    # A client that goes away mid-transaction: the server rolls back and resets the one session.
    first = psycopg.connect(timescale_dsn, prepare_threshold=None)
    first.execute("CREATE TABLE abandoned (x int)")
    first.execute("PREPARE leftover AS SELECT 1")
    first.execute("SET client_min_messages TO debug1")
    first.close()
    with psycopg.connect(timescale_dsn, prepare_threshold=None) as second:
        assert second.execute("SELECT to_regclass('abandoned')").fetchone() == (None,)
        assert second.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
        assert second.execute("SHOW client_min_messages").fetchone() == ("notice",)


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_starts_clean(timescale_conn: Conn, run: int) -> None:
    # Both runs must find nothing of the other's hypertable, view, function, type, schema or job.
    conn = timescale_conn
    leftovers = conn.execute(
        "SELECT to_regclass('probe'), to_regclass('probe_view'), to_regprocedure('probe_fn(integer)'),"
        " to_regtype('probe_kind'), to_regnamespace('probe_schema'),"
        " (SELECT count(*) FROM timescaledb_information.jobs WHERE job_id >= 1000),"
        " (SELECT count(*) FROM timescaledb_information.hypertables),"
        " (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') IS NOT NULL"
    ).fetchone()
    assert leftovers == (None, None, None, None, None, 0, 0, True)

    _create_samples(conn, "probe")
    conn.execute("CREATE VIEW probe_view AS SELECT count(*) FROM probe")
    conn.execute("CREATE FUNCTION probe_fn(x integer) RETURNS integer LANGUAGE sql AS 'SELECT x + 1'")
    conn.execute("CREATE TYPE probe_kind AS ENUM ('vm', 'host')")
    conn.execute("CREATE SCHEMA probe_schema")
    conn.execute("CREATE TABLE probe_schema.t (ts timestamptz NOT NULL)")
    conn.execute("SELECT create_hypertable('probe_schema.t', by_range('ts'))")
    conn.execute(
        "CREATE MATERIALIZED VIEW probe_hourly WITH (timescaledb.continuous) AS"
        " SELECT time_bucket('1 hour', ts) AS bucket, avg(cpu_usage_pct) FROM probe GROUP BY 1 WITH NO DATA"
    )
    conn.execute("SELECT add_retention_policy('probe', INTERVAL '7 days')")
    conn.execute("INSERT INTO probe (ts, resource_id, cpu_usage_pct) VALUES (%s, %s, %s)", [T0, run, run])
    conn.commit()
    assert conn.execute("SELECT probe_fn(%s), (SELECT * FROM probe_view)", [run]).fetchone() == (run + 1, 1)
