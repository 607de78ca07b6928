"""Refresh -> capture -> rollup on real PostgreSQL, checked against the simulator and plain polars."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from cloudmeter.collectors.simulator import SimulatorCollector, SimulatorConfig
from cloudmeter.model import METRICS, Window
from cloudmeter.scheduler import jobs
from cloudmeter.storage import managers, readers
from cloudmeter.storage.database import Database

START = datetime(2026, 3, 28, tzinfo=UTC)  # the window spans Europe/Berlin's 23-hour day
WINDOW = Window(START, START + timedelta(days=2))


def _setup(db: Database) -> tuple[int, SimulatorCollector]:
    config = SimulatorConfig(kind="simulator", vms=12, start=START, horizon_days=2, seed=3)
    collector = SimulatorCollector("lab", config, clock=lambda: WINDOW.end)
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, "lab", "simulator", {})
    jobs.refresh_inventory(db, manager_id, collector)
    return manager_id, collector


def test_capture_stores_exactly_what_the_source_gave_and_recapture_changes_nothing(db: Database) -> None:
    manager_id, collector = _setup(db)
    for step in WINDOW.split(6 * 3600):
        jobs.capture(db, manager_id, collector, step)
    ids = jobs.resource_ids(db, manager_id)
    expected = []
    for batch in collector.capture(WINDOW):
        rid = np.array([ids[ref] for ref in batch.refs], dtype=np.int32)[batch.resource_idx]
        expected.append(
            pl.DataFrame({"resource_id": rid, "ts_s": batch.ts_s, **dict(zip(METRICS, batch.values.T, strict=True))})
        )
    want = pl.concat(expected).with_columns(pl.col(METRICS).fill_nan(None)).sort("resource_id", "ts_s")
    with db.connection() as conn:
        stored = readers.read_samples(conn, WINDOW)
    got = stored.with_columns(ts_s=pl.col("ts").dt.epoch("s")).select(want.columns).sort("resource_id", "ts_s")
    assert got.equals(want)
    result = jobs.capture(db, manager_id, collector, Window(WINDOW.start + timedelta(hours=20), WINDOW.end))
    assert result.rows > 0
    with db.connection() as conn:
        assert readers.read_samples(conn, WINDOW).equals(stored)
        row = managers.get_manager(conn, "lab")
    assert row is not None
    assert row.captured_until == WINDOW.end


def test_rollups_match_plain_polars_over_the_stored_samples(db: Database) -> None:
    manager_id, collector = _setup(db)
    jobs.capture(db, manager_id, collector, WINDOW)
    result = jobs.rollup(db, manager_id, WINDOW, ("UTC", "Europe/Berlin"))
    with db.connection() as conn:
        raw = readers.read_samples(conn, WINDOW)
        hourly = readers.read_rollups(conn, "hourly", WINDOW)
        berlin = readers.read_rollups(
            conn, "daily", Window(WINDOW.start - timedelta(hours=2), WINDOW.end), tz="Europe/Berlin"
        )
    want = (
        raw.group_by("resource_id", pl.col("ts").dt.truncate("1h"))
        .agg(
            pl.len().alias("sample_count"),
            pl.col("cpu_usage_pct").mean().alias("cpu_usage_pct_avg"),
            pl.col("cpu_usage_pct").min().alias("cpu_usage_pct_min"),
            pl.col("cpu_usage_pct").max().alias("cpu_usage_pct_max"),
            pl.col("cpu_usage_pct").quantile(0.95, interpolation="linear").alias("cpu_usage_pct_p95"),
            pl.col("mem_used_bytes").max().alias("mem_used_bytes_max"),
        )
        .sort("resource_id", "ts")
    )
    got = hourly.select(want.columns).sort("resource_id", "ts").with_columns(pl.col("sample_count").cast(pl.UInt32))
    assert result.hourly == hourly.height == want.height
    assert got.drop("cpu_usage_pct_avg", "cpu_usage_pct_p95").equals(
        want.drop("cpu_usage_pct_avg", "cpu_usage_pct_p95")
    )
    np.testing.assert_allclose(got["cpu_usage_pct_avg"], want["cpu_usage_pct_avg"], rtol=1e-12)
    np.testing.assert_allclose(got["cpu_usage_pct_p95"], want["cpu_usage_pct_p95"], rtol=1e-12)
    assert set(hourly["expected_count"].to_list()) == {60}
    # daily in Berlin: local days, the 2026-03-29 one 23 hours long
    local = raw.with_columns(day=pl.col("ts").dt.convert_time_zone("Europe/Berlin").dt.date())
    counts = local.group_by("resource_id", "day").agg(pl.len().alias("n")).sort("resource_id", "day")
    berlin_days = berlin.with_columns(day=pl.col("ts").dt.convert_time_zone("Europe/Berlin").dt.date())
    got_counts = berlin_days.select("resource_id", "day", pl.col("sample_count").cast(pl.UInt32).alias("n"))
    assert got_counts.sort("resource_id", "day").equals(counts)
    expected_per_day = dict(zip(berlin_days["day"].to_list(), berlin_days["expected_count"].to_list(), strict=True))
    assert expected_per_day[datetime(2026, 3, 29).date()] == 23 * 60
