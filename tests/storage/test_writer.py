"""The writer: idempotent upserts, duplicates, NULLs, and all-or-nothing batches (even under kill -9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudmeter.model import METRICS, Window
from cloudmeter.storage import pgbinary, readers, writer
from cloudmeter.storage.database import Database

EVERYTHING = Window(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
T0 = 1_790_000_000


@pytest.fixture(params=["copy", "insert"])
def db(dsn: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A migrated native-mode database, written to by each write method in turn."""
    with Database(dsn, tmp_path, write_method=request.param) as database:
        database.migrate()
        yield database


def _batch(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rid = (np.arange(n) % 7).astype(np.int32)
    ts = (T0 + (np.arange(n) // 7) * 60).astype(np.int64)
    values = rng.random((n, 8)) * 100
    values[rng.random((n, 8)) < 0.1] = np.nan
    return rid, ts, values


def _table(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    return conn.execute("SELECT * FROM metric_samples ORDER BY resource_id, ts").fetchall()


def test_same_batch_twice_gives_same_rows_and_rewrites_nothing(db: Database) -> None:
    rid, ts, values = _batch(700)
    with db.connection() as conn:
        assert writer.write_samples(conn, rid, ts, values, db.write_target()) == 700
        first = _table(conn)
        assert writer.write_samples(conn, rid, ts, values, db.write_target()) == 0
        assert _table(conn) == first
    assert len(first) == 700


def test_recapture_with_changed_values_updates_only_those_rows(db: Database) -> None:
    rid, ts, values = _batch(70)
    changed = values.copy()
    changed[5, 0] = 42.0
    changed[9, 2] = np.nan
    with db.connection() as conn:
        writer.write_samples(conn, rid, ts, values, db.write_target())
        assert writer.write_samples(conn, rid, ts, changed, db.write_target()) == 2
        frame = readers.read_samples(conn, EVERYTHING).sort("resource_id", "ts")
    expected = np.lexsort((ts, rid))
    got = frame.select(METRICS).to_numpy()
    np.testing.assert_array_equal(got, changed[expected])


def test_duplicates_within_a_batch_keep_the_last(db: Database) -> None:
    rid = np.array([3, 3, 1, 3], dtype=np.int32)
    ts = np.array([T0, T0 + 60, T0, T0], dtype=np.int64)
    values = np.array([[1.0] * 8, [2.0] * 8, [3.0] * 8, [4.0] * 8])
    with db.connection() as conn:
        assert writer.write_samples(conn, rid, ts, values, db.write_target()) == 3
        frame = readers.read_samples(conn, EVERYTHING)
    assert frame.select("resource_id", "cpu_usage_pct").rows() == [(1, 3.0), (3, 4.0), (3, 2.0)]


def test_a_failing_batch_leaves_nothing(db: Database) -> None:
    rid, ts, values = _batch(100)
    with db.connection() as conn:
        writer.write_samples(conn, rid[:50], ts[:50], values[:50], db.write_target())
        before = _table(conn)
        bad_ts = ts.copy()
        bad_ts[-1] = 10**12  # year 33658: no partition may hold it, so the upsert fails after the COPY
        with pytest.raises(psycopg.Error):
            writer.write_samples(conn, rid, bad_ts, values, writer.WriteTarget(db.write_target().method))
        assert _table(conn) == before


WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from pathlib import Path
    from cloudmeter.storage.database import Database
    from cloudmeter.storage import writer
    n = 3_000_000
    rid = (np.arange(n) % 1000).astype(np.int32)
    ts = (1_790_000_000 + (np.arange(n) // 1000) * 60).astype(np.int64)
    values = np.random.default_rng(1).random((n, 8))
    with Database(sys.argv[1], Path(sys.argv[2]), write_method=sys.argv[3]) as db, db.connection() as conn:
        parts = db.write_target()
        writer.write_samples(conn, rid[:1000], ts[:1000], values[:1000], parts)
        print("first", flush=True)
        writer.write_samples(conn, rid, ts, values + 1, parts)
        print("second", flush=True)
    """
)


def test_kill_9_during_a_write_leaves_the_previous_state(db: Database, dsn: str, tmp_path: object) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, dsn, str(tmp_path), db.write_target().method],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "first"
    # the second batch is now being encoded or copied; wait until the server is busy with it, then kill
    busy = 0
    with db.connection() as conn:
        for _ in range(600):
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() "
                "AND (query LIKE 'COPY%%' OR query LIKE 'INSERT INTO%%')"
            ).fetchone()
            conn.rollback()
            busy = row[0] if row else 0
            if busy:
                break
            time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with db.connection() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        rows = conn.execute("SELECT count(*), min(cpu_usage_pct) < 1 FROM metric_samples").fetchone()
    assert busy == 1, "the writer was never caught mid-write"
    assert rows == (1000, True)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1_600_000_000, 1_900_000_000),
            st.integers(-(2**31), 2**31 - 1),
            st.floats(allow_nan=True, allow_infinity=True) | st.none(),
        ),
        max_size=30,
    )
)
def test_binary_copy_round_trip(rows: list[tuple[int, int, float | None]]) -> None:
    ts = np.array([r[0] for r in rows], dtype=np.int64)
    ints = np.array([r[1] for r in rows], dtype=np.int32)
    floats = np.array([np.nan if r[2] is None else r[2] for r in rows], dtype=np.float64)
    valid = np.array([i % 3 != 0 for i in range(len(rows))], dtype=np.bool_)
    encoded = pgbinary.encode(
        [(pgbinary.TIMESTAMPTZ, ts, None), (pgbinary.INT4, ints, valid), (pgbinary.FLOAT8, floats, None)]
    )
    out_ts, out_int, out_float = pgbinary.decode(
        encoded.tobytes(), [pgbinary.TIMESTAMPTZ, pgbinary.INT4, pgbinary.FLOAT8]
    )
    assert (out_ts.values // 1_000_000).tolist() == ts.tolist()
    assert out_int.valid.tolist() == valid.tolist()
    assert out_int.values[valid].tolist() == ints[valid].tolist()
    assert out_float.valid.tolist() == (~np.isnan(floats)).tolist()
    np.testing.assert_array_equal(out_float.values, floats)


def test_binary_copy_is_what_postgresql_reads(db: Database) -> None:
    """The encoder's bytes are accepted by the server and mean what we meant (checked in SQL)."""
    with db.connection() as conn:
        conn.execute("CREATE TEMP TABLE t (a timestamptz, b int, c bigint, d float8)")
        payload = pgbinary.encode(
            [
                (pgbinary.TIMESTAMPTZ, np.array([0, 1_790_000_000]), None),
                (pgbinary.INT4, np.array([-5, 7]), np.array([True, False])),
                (pgbinary.INT8, np.array([2**40, -1]), None),
                (pgbinary.FLOAT8, np.array([np.nan, -2.5]), None),
            ]
        )
        with conn.cursor().copy("COPY t FROM STDIN (FORMAT binary)") as copy:
            copy.write(payload.tobytes())
        rows = conn.execute("SELECT extract(epoch FROM a)::bigint, b, c, d FROM t ORDER BY a").fetchall()
    assert rows == [(0, -5, 2**40, None), (1_790_000_000, None, -1, -2.5)]


def test_binary_arrays_are_what_postgresql_reads(db: Database) -> None:
    """``encode_array`` bytes, as the insert method sends them, mean what we meant (checked in SQL)."""
    columns = [
        writer.ColumnData("a", pgbinary.TIMESTAMPTZ, np.array([0, 1_790_000_000])),
        writer.ColumnData("b", pgbinary.INT4, np.array([-5, 7]), np.array([True, False])),
        writer.ColumnData("c", pgbinary.INT8, np.array([2**40, -1])),
        writer.ColumnData("d", pgbinary.FLOAT8, np.array([np.nan, -2.5])),
    ]
    with db.connection() as conn:
        conn.execute("CREATE TEMP TABLE t (a timestamptz, b int, c bigint, d float8)")
        writer.load(conn, "t", columns, "insert")
        rows = conn.execute("SELECT extract(epoch FROM a)::bigint, b, c, d FROM t ORDER BY a").fetchall()
        types = conn.execute(
            "SELECT pg_typeof(%b)::text, pg_typeof(%b)::text",
            [
                writer.BinaryArray(
                    pgbinary.ARRAY_OID[pgbinary.INT8], pgbinary.encode_array(pgbinary.INT8, np.arange(3))
                ),
                writer.BinaryArray(
                    pgbinary.ARRAY_OID[pgbinary.FLOAT8], pgbinary.encode_array(pgbinary.FLOAT8, np.ones(0))
                ),
            ],
        ).fetchone()
    assert rows == [(0, -5, 2**40, None), (1_790_000_000, None, -1, -2.5)]
    assert types == ("bigint[]", "double precision[]")


def test_insert_method_sends_large_batches_in_several_statements(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "COPY_CHUNK", 12 * 10 * 17)  # 17 rows of 10 columns per statement
    rid, ts, values = _batch(100)
    with db.connection() as conn:
        assert writer.write_samples(conn, rid, ts, values, writer.WriteTarget("insert", db.native_partitions())) == 100
        frame = readers.read_samples(conn, EVERYTHING).sort("resource_id", "ts")
    order = np.lexsort((ts, rid))
    np.testing.assert_array_equal(frame.select(METRICS).to_numpy(), values[order])
