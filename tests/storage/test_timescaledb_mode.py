"""TimescaleDB mode end to end on real TimescaleDB SQL (PGlite + TimescaleDB), against native PostgreSQL 18.

The same captures, late data and rebuilds run on both; every table must come out identical, including
after the TimescaleDB side compressed its chunks with its own compression policy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import psycopg
import pytest

from cloudmeter.collectors.simulator import SimulatorCollector, SimulatorConfig
from cloudmeter.errors import StorageError
from cloudmeter.model import METRICS, Window
from cloudmeter.scheduler import jobs
from cloudmeter.scheduler.pipeline import StreamRollup
from cloudmeter.storage import managers, readers, schema, status, writer
from cloudmeter.storage.database import Database
from cloudmeter.storage.partitions import maintain

START = datetime(2026, 3, 28, tzinfo=UTC)  # spans Europe/Berlin's 23-hour day
WINDOW = Window(START, START + timedelta(days=2))
ZONES = ("UTC", "Europe/Berlin")
RETENTION = {"raw_days": 14, "hourly_days": 400, "daily_days": 1830}


def _collector(seed: int) -> SimulatorCollector:
    config = SimulatorConfig(kind="simulator", vms=8, start=START, horizon_days=2, seed=seed)
    return SimulatorCollector("lab", config, clock=lambda: WINDOW.end)


def _capture(db: Database, manager_id: int, collector: SimulatorCollector, window: Window) -> None:
    stream = StreamRollup(db, manager_id, ZONES)  # a new one per call: each call is a process restart
    for step in window.split(3 * 3600):
        jobs.capture(db, manager_id, collector, step, stream=stream)


Tables = dict[str, pl.DataFrame]


def _scenario(db: Database, before_late_data: Callable[[Database], None]) -> tuple[Tables, Tables]:
    """Capture two days in-stream (restarting once), then re-capture an old hour with other values.

    Returns every table before and after the late data.
    """
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, "lab", "simulator", {})
    collector = _collector(seed=3)
    jobs.refresh_inventory(db, manager_id, collector)
    restart = WINDOW.start + timedelta(hours=31)
    _capture(db, manager_id, collector, Window(WINDOW.start, restart))
    _capture(db, manager_id, collector, Window(restart, WINDOW.end))
    before_late_data(db)
    before = _tables(db)
    late = Window(WINDOW.start + timedelta(hours=5, minutes=10), WINDOW.start + timedelta(hours=5, minutes=20))
    jobs.capture(db, manager_id, _collector(seed=4), late)
    return before, _tables(db)


def _tables(db: Database) -> Tables:
    everything = Window(WINDOW.start - timedelta(days=1), WINDOW.end + timedelta(days=1))
    with db.connection() as conn:
        tables = {
            "samples": readers.read_samples(conn, everything),
            "hourly": readers.read_rollups(conn, "hourly", everything),
            "resources": readers.read_resources(conn),
            "managers": pl.DataFrame(
                conn.execute(
                    "SELECT name, extract(epoch FROM captured_until), extract(epoch FROM rolled_until) FROM managers"
                ).fetchall(),
                orient="row",
            ),
        }
        for tz in ZONES:
            tables[tz] = readers.read_rollups(conn, "daily", everything, tz=tz)
    return tables


def _run_jobs(db: Database, proc_name: str) -> None:
    with db.connection() as conn:
        conn.autocommit = True  # CALL run_job commits inside
        try:
            ids = conn.execute(
                "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = %s ORDER BY job_id", (proc_name,)
            ).fetchall()
            for (job_id,) in ids:
                conn.execute("CALL run_job(%s)", (job_id,))
        finally:
            conn.autocommit = False


def _chunks(db: Database) -> list[tuple[str, bool]]:
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT hypertable_name, bool_and(is_compressed) FROM timescaledb_information.chunks GROUP BY 1 ORDER BY 1"
        ).fetchall()
    return [(str(name), bool(compressed)) for name, compressed in rows]


def test_capture_late_data_and_rollups_equal_native_postgresql_even_into_compressed_chunks(
    db: Database, timescale_db: Database
) -> None:
    compressed: list[list[tuple[str, bool]]] = []

    def compress(tsdb: Database) -> None:
        with tsdb.connection() as conn:
            maintain(conn, "timescaledb", RETENTION, datetime.now(UTC), manager=None)
        _run_jobs(tsdb, "policy_compression")  # the data is months old: every chunk is past compress_after
        compressed.append(_chunks(tsdb))

    def nothing(_: Database) -> None:
        pass

    assert timescale_db.mode() == "timescaledb" and db.mode() == "native"
    native = _scenario(db, nothing)
    timescale = _scenario(timescale_db, compress)
    assert compressed == [[("metric_daily", False), ("metric_hourly", True), ("metric_samples", True)]]
    before, after = native
    assert before["samples"].height > 0.9 * 8 * 2 * 24 * 60  # about a sample a minute, eight VMs, two days
    assert before["hourly"]["resource_id"].n_unique() > 8  # hosts, projects, clusters... too
    assert before["Europe/Berlin"].height > 0
    changed = after["hourly"].join(before["hourly"], on=before["hourly"].columns, how="anti", nulls_equal=True)
    assert set(changed["ts"].to_list()) == {START + timedelta(hours=5)}  # the late hour, rolled up again
    for stage in (0, 1):
        for name, frame in native[stage].items():
            assert timescale[stage][name].equals(frame), (stage, name)


def test_status_reports_timescaledb_mode_chunks_compression_and_policies(timescale_db: Database) -> None:
    ts = np.arange(1_790_000_000, 1_790_000_000 + 3 * 86400, 60, dtype=np.int64)
    rid = np.repeat(np.arange(1, 4, dtype=np.int32), len(ts))
    values = np.random.default_rng(5).random((len(rid), 8)) * 100
    with timescale_db.connection() as conn:
        writer.write_samples(conn, rid, np.tile(ts, 3), values, timescale_db.write_target())
        maintain(conn, "timescaledb", RETENTION, datetime.now(UTC), manager=None)
    _run_jobs(timescale_db, "policy_compression")
    with timescale_db.connection() as conn:
        report = status.database_status(conn, timescale_db.server, timescale_db.display_dsn)
    assert timescale_db.server.timescaledb_installed is not None
    assert report["timescaledb"] == f"{timescale_db.server.timescaledb_installed} (installed)"
    assert report["mode"] == "timescaledb" and report["schema_version"] == schema.LATEST
    samples = report["tables"][0]
    assert samples["table"] == "metric_samples"
    assert samples["parts"] == samples["compressed_parts"] == 4  # 3 days from 14:13 UTC: 4 daily chunks
    assert (samples["compress_after"], samples["drop_after"]) == ("3 days", "14 days")
    assert samples["compression_ratio"] > 1


def test_cli_status_detects_timescaledb_at_connect_time(timescale_clean_dsn: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CLOUDMETER_DSN": timescale_clean_dsn,
        "CLOUDMETER_DATA_DIR": str(tmp_path),
        "CLOUDMETER_WRITE_METHOD": "insert",
        "CLOUDMETER_POOL_SIZE": "1",
    }

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "cloudmeter", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    before = json.loads(cli("status", "--json"))
    assert (before["schema_version"], before["mode"]) == (0, None)
    assert before["timescaledb"].endswith("(installed)")  # the test server pre-creates the extension
    cli("db", "migrate")
    after = json.loads(cli("status", "--json"))
    assert after["mode"] == "timescaledb"
    assert [t["table"] for t in after["tables"]] == ["metric_samples", "metric_hourly", "metric_daily"]
    assert (after["managers"], after["notes"]) == ([], [])


def test_copy_refused_by_the_server_is_a_clear_error_and_stores_nothing(
    timescale_clean_dsn: str, tmp_path: Path
) -> None:
    with Database(timescale_clean_dsn, tmp_path, pool_size=1, write_method="copy") as db:
        db.migrate()
        with db.connection() as conn:
            with pytest.raises(StorageError, match="CLOUDMETER_WRITE_METHOD=insert"):
                writer.write_samples(
                    conn, np.ones(3, np.int32), np.arange(3, dtype=np.int64) * 60 + 1_790_000_000, np.ones((3, 8))
                )
            assert conn.execute("SELECT count(*) FROM metric_samples").fetchone() == (0,)


def test_upsert_counts_changed_rows_and_marks_dirty_hours_on_a_hypertable(timescale_db: Database) -> None:
    ts = 1_790_000_000 - 1_790_000_000 % 3600 + np.arange(0, 7200, 600, dtype=np.int64)
    rid = np.ones(len(ts), np.int32)
    values = np.arange(len(ts) * 8, dtype=np.float64).reshape(-1, 8)
    target = timescale_db.write_target()
    with timescale_db.connection() as conn:
        manager_id = managers.register_manager(conn, "lab", "simulator", {})
        assert writer.write_samples(conn, rid, ts, values, target) == len(ts)
        assert writer.write_samples(conn, rid, ts, values, target) == 0
        changed = values.copy()
        changed[7, 3] = np.nan  # in the second hour
        dirty = writer.DirtyMarks(manager_id, int(ts[-1]) + 1)
        assert writer.write_samples(conn, rid, ts, changed, target, dirty=dirty) == 1
        assert [h.timestamp() for h in managers.dirty_hours(conn, manager_id)] == [ts[0] + 3600]
        stored = readers.read_samples(conn, Window(START, START + timedelta(days=3650)))
    assert stored.height == len(ts)
    assert stored[METRICS[3]].null_count() == 1


def test_a_rejected_batch_leaves_the_hypertable_as_it_was(timescale_db: Database) -> None:
    ts = np.arange(1_790_000_000, 1_790_000_000 + 600, 60, dtype=np.int64)
    rid = np.ones(len(ts), np.int32)
    with timescale_db.connection() as conn:
        writer.write_samples(conn, rid, ts, np.ones((len(ts), 8)), timescale_db.write_target())
        bad = np.concatenate([ts, [9_224_318_016_100]])  # past the end of timestamptz (year 294276)
        with pytest.raises(psycopg.Error):
            writer.write_samples(
                conn, np.ones(len(bad), np.int32), bad, np.full((len(bad), 8), 2.0), timescale_db.write_target()
            )
        assert conn.execute("SELECT count(*), max(cpu_usage_pct) FROM metric_samples").fetchone() == (len(ts), 1.0)


def test_a_native_database_on_a_timescaledb_server_keeps_its_mode_and_status_says_so(
    timescale_clean_dsn: str, tmp_path: Path
) -> None:
    with Database(timescale_clean_dsn, tmp_path, pool_size=1, write_method="insert") as db:
        db.migrate("native")
        db.migrate()  # the default would be TimescaleDB here; the database keeps the mode it was created in
        with db.connection() as conn:
            report = status.database_status(conn, db.server, db.display_dsn)
            hypertables = conn.execute("SELECT count(*) FROM timescaledb_information.hypertables").fetchone()
    assert (report["mode"], hypertables) == ("native", (0,))
    assert [t["parts"] for t in report["tables"]] == [0, 0, 0]
    assert len(report["notes"]) == 1 and "created with native partitions" in report["notes"][0]
