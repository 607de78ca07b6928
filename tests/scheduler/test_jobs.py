"""Refresh -> capture -> rollup on real PostgreSQL, checked against the simulator and plain polars."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from cloudmeter.collectors.simulator import SimulatorCollector, SimulatorConfig
from cloudmeter.model import METRICS, Window
from cloudmeter.scheduler import jobs
from cloudmeter.scheduler.pipeline import StreamRollup
from cloudmeter.storage import managers, readers, writer
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


def _rollup_tables(db: Database) -> dict[str, pl.DataFrame]:
    everything = Window(WINDOW.start - timedelta(days=1), WINDOW.end + timedelta(days=1))
    with db.connection() as conn:
        tables = {"hourly": readers.read_rollups(conn, "hourly", everything)}
        for tz in ZONES:
            tables[tz] = readers.read_rollups(conn, "daily", everything, tz=tz)
    return tables


ZONES = ("UTC", "Europe/Berlin")


def _capture_in_steps(db: Database, manager_id: int, collector: SimulatorCollector, window: Window) -> None:
    stream = StreamRollup(db, manager_id, ZONES)
    for step in window.split(1800):
        jobs.capture(db, manager_id, collector, step, stream=stream)


def test_in_stream_rows_equal_a_rebuild_from_storage_across_a_restart(db: Database) -> None:
    manager_id, collector = _setup(db)
    restart = WINDOW.start + timedelta(hours=30, minutes=30)
    _capture_in_steps(db, manager_id, collector, Window(WINDOW.start, restart))
    _capture_in_steps(db, manager_id, collector, Window(restart, WINDOW.end))  # a new process resumes
    streamed = _rollup_tables(db)
    assert streamed["hourly"]["resource_id"].n_unique() > 12  # parents too
    with db.connection() as conn:
        conn.execute("TRUNCATE metric_hourly, metric_daily")
        conn.commit()
    result = jobs.rollup(db, manager_id, WINDOW, ZONES)
    rebuilt = _rollup_tables(db)
    assert result.hourly == streamed["hourly"].height
    for name, frame in streamed.items():
        assert rebuilt[name].equals(frame), name


def test_background_rollups_write_what_in_line_ones_do(db: Database) -> None:
    manager_id, collector = _setup(db)
    stream = StreamRollup(db, manager_id, ZONES, background=True)
    for step in WINDOW.split(1800):
        jobs.capture(db, manager_id, collector, step, stream=stream)
    stream.wait()
    streamed = _rollup_tables(db)
    with db.connection() as conn:
        assert managers.manager_by_id(conn, manager_id).rolled_until == WINDOW.end
        conn.execute("TRUNCATE metric_hourly, metric_daily")
        conn.commit()
    jobs.rollup(db, manager_id, WINDOW, ZONES)
    for name, frame in _rollup_tables(db).items():
        assert frame.equals(streamed[name]), name


def test_changed_samples_of_rolled_up_hours_are_rebuilt(db: Database) -> None:
    manager_id, collector = _setup(db)
    _capture_in_steps(db, manager_id, collector, WINDOW)
    before = _rollup_tables(db)
    other = SimulatorCollector("lab", collector.config.model_copy(update={"seed": 4}), clock=lambda: WINDOW.end)
    late = Window(WINDOW.start + timedelta(hours=5, minutes=10), WINDOW.start + timedelta(hours=5, minutes=20))
    jobs.capture(db, manager_id, other, late, stream=StreamRollup(db, manager_id, ZONES))
    with db.connection() as conn:
        assert managers.dirty_hours(conn, manager_id) == []
    after = _rollup_tables(db)
    changed = after["hourly"].join(before["hourly"], on=after["hourly"].columns, how="anti", nulls_equal=True)
    assert set(changed["ts"].dt.epoch("s").to_list()) == {WINDOW.start_s + 5 * 3600}
    with db.connection() as conn:
        conn.execute("TRUNCATE metric_hourly, metric_daily")
        conn.commit()
    jobs.rollup(db, manager_id, WINDOW, ZONES)
    for name, frame in _rollup_tables(db).items():
        assert frame.equals(after[name]), name


def test_vm_rollups_match_plain_polars_over_the_stored_samples(db: Database) -> None:
    manager_id, collector = _setup(db)
    _capture_in_steps(db, manager_id, collector, WINDOW)
    with db.connection() as conn:
        raw = readers.read_samples(conn, WINDOW)
        vms = readers.read_resources(conn, manager_id).filter(pl.col("kind") == "vm")["id"].to_list()
        hourly = readers.read_rollups(conn, "hourly", WINDOW, vms)
        berlin = readers.read_rollups(
            conn, "daily", Window(WINDOW.start - timedelta(hours=2), WINDOW.end), vms, tz="Europe/Berlin"
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
    assert hourly.height == want.height
    assert got.drop("cpu_usage_pct_avg").equals(want.drop("cpu_usage_pct_avg"))
    np.testing.assert_allclose(got["cpu_usage_pct_avg"], want["cpu_usage_pct_avg"], rtol=1e-12)
    assert set(hourly["expected_count"].to_list()) == {60}
    # daily in Berlin: local days, the 2026-03-29 one 23 hours long; the last one has not ended yet
    local = raw.with_columns(day=pl.col("ts").dt.convert_time_zone("Europe/Berlin").dt.date())
    counts = local.group_by("resource_id", "day").agg(pl.len().alias("n"))
    berlin_days = berlin.with_columns(day=pl.col("ts").dt.convert_time_zone("Europe/Berlin").dt.date())
    got_counts = berlin_days.select("resource_id", "day", pl.col("sample_count").cast(pl.UInt32).alias("n"))
    ended = counts.filter(pl.col("day") < datetime(2026, 3, 30).date()).sort("resource_id", "day")
    assert got_counts.sort("resource_id", "day").equals(ended)
    expected_per_day = dict(zip(berlin_days["day"].to_list(), berlin_days["expected_count"].to_list(), strict=True))
    assert expected_per_day[datetime(2026, 3, 29).date()] == 23 * 60


def test_recapture_after_a_crash_before_the_mark_moved_keeps_every_row_once(db: Database) -> None:
    manager_id, collector = _setup(db)
    first = Window(WINDOW.start, WINDOW.start + timedelta(hours=6))
    _capture_in_steps(db, manager_id, collector, first)
    before = _rollup_tables(db)
    with db.connection() as conn:
        stored = readers.read_samples(conn, WINDOW)
        # as if the process died after writing the last window's batches but before moving the marks
        conn.execute(
            "UPDATE managers SET captured_until = %s WHERE id = %s", (first.end - timedelta(hours=2), manager_id)
        )
        conn.commit()
    # samples past the mark already exist: the plain COPY meets them and falls back to the upsert
    jobs.capture(db, manager_id, collector, Window(first.end - timedelta(hours=1), first.end))
    with db.connection() as conn:
        assert readers.read_samples(conn, WINDOW).equals(stored)
        assert managers.dirty_hours(conn, manager_id) == []
    for name, frame in _rollup_tables(db).items():
        assert frame.equals(before[name]), name


def test_rebuild_never_writes_an_hour_or_a_day_that_is_still_open(db: Database) -> None:
    manager_id, collector = _setup(db)
    ids = jobs.resource_ids(db, manager_id)
    captured = WINDOW.start + timedelta(hours=10, minutes=30)
    with db.connection() as conn:
        for batch in collector.capture(Window(WINDOW.start, captured)):
            rid = np.array([ids[ref] for ref in batch.refs], dtype=np.int32)[batch.resource_idx]
            writer.write_samples(conn, rid, batch.ts_s, batch.values, db.write_target())
        managers.mark_captured(conn, manager_id, None, captured, captured)  # captured, never rolled in-stream
    jobs.rollup(db, manager_id, WINDOW, ZONES)
    tables = _rollup_tables(db)
    hours = tables["hourly"]["ts"].dt.epoch("s")
    assert hours.min() == WINDOW.start_s and hours.max() == WINDOW.start_s + 9 * 3600  # 10:00-10:30 is open
    assert all(tables[tz].height == 0 for tz in ZONES)  # no local day has ended


# --- each resource's own interval (issue 20 item 4) -------------------------------------------------------------


def _mixed(db: Database) -> tuple[int, SimulatorCollector]:
    """The simulator with about half of its VMs sent every 300 s and the rest every 60 s."""
    config = SimulatorConfig(kind="simulator", vms=12, start=START, horizon_days=2, seed=3, coarse_share=0.5)
    collector = SimulatorCollector("lab", config, clock=lambda: WINDOW.end)
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, "lab", "simulator", {})
    jobs.refresh_inventory(db, manager_id, collector)
    return manager_id, collector


def _expected_by_hand(db: Database, manager_id: int, collector: SimulatorCollector) -> dict[tuple[int, int], int]:
    """(resource, hour) -> expected count, one resource and hour at a time: a VM expects 3600 / the interval the
    simulator sends it at, from the hour of its first stored sample on (nothing before); a parent the sum of
    what the children placed under it at any time in the hour expect."""
    with db.connection() as conn:
        resources = conn.execute("SELECT id, kind, ems_ref FROM resources WHERE manager_id = %s", [manager_id])
        kinds, refs = {}, {}
        for rid, kind, ems_ref in resources.fetchall():
            kinds[rid], refs[rid] = kind, ems_ref
        periods = conn.execute(
            """SELECT h.resource_id, extract(epoch FROM h.valid_from)::int8,
                      coalesce(extract(epoch FROM h.valid_to)::int8, 4000000000), h.parent_id, p.id
               FROM resource_history h JOIN resources r ON r.id = h.resource_id
               LEFT JOIN resources p ON p.manager_id = r.manager_id AND p.kind = 'project' AND p.ems_ref = h.project
               WHERE r.manager_id = %s""",
            [manager_id],
        ).fetchall()
        first = dict(
            conn.execute(
                "SELECT resource_id, extract(epoch FROM min(ts))::int8 FROM metric_samples GROUP BY resource_id"
            ).fetchall()
        )

    def expected(rid: int, hour: int) -> int:
        if kinds[rid] == "vm":
            interval = collector.interval_of(int(refs[rid].rsplit("-", 1)[1]))
            return 3600 // interval if rid in first and first[rid] - first[rid] % 3600 <= hour else 0
        children = set()
        for child, lo, hi, parent, project in periods:
            under = project if kinds[rid] == "project" and kinds[child] == "vm" else parent
            if lo < hour + 3600 and hi > hour and under == rid and kinds[child] != "project":
                children.add(child)
        return sum(expected(child, hour) for child in children)

    return {(rid, hour): expected(rid, hour) for rid in kinds for hour in range(WINDOW.start_s, WINDOW.end_s, 3600)}


def _is_vm(db: Database, rid: int) -> bool:
    with db.connection() as conn:
        row = conn.execute("SELECT kind FROM resources WHERE id = %s", [rid]).fetchone()
    return row is not None and row[0] == "vm"


def test_each_vm_expects_its_own_interval_and_parents_their_vms(db: Database) -> None:
    manager_id, collector = _mixed(db)
    assert {collector.interval_of(k) for k in range(12)} == {60, 300}
    restart = WINDOW.start + timedelta(hours=30, minutes=30)
    _capture_in_steps(db, manager_id, collector, Window(WINDOW.start, restart))
    _capture_in_steps(db, manager_id, collector, Window(restart, WINDOW.end))  # a new process resumes
    streamed = _rollup_tables(db)
    want = _expected_by_hand(db, manager_id, collector)
    hourly = streamed["hourly"]
    got = {
        (rid, int(ts.timestamp())): (count, expected)
        for rid, ts, count, expected in hourly.select("resource_id", "ts", "sample_count", "expected_count").rows()
    }
    assert {key: expected for key, (_, expected) in got.items()} == {key: want[key] for key in got}
    assert all(count <= expected for count, expected in got.values())
    daily = streamed["UTC"]
    assert (daily["sample_count"] <= daily["expected_count"]).all()
    days = daily.filter(pl.col("resource_id").is_in([rid for rid in {rid for rid, _ in want} if _is_vm(db, rid)]))
    for rid, ts in days.select("resource_id", "ts").rows():  # a VM's day: the sum of its hours
        start = int(ts.timestamp())
        whole = sum(want[(rid, hour)] for hour in range(start, start + 86400, 3600) if (rid, hour) in want)
        assert days.filter((pl.col("resource_id") == rid) & (pl.col("ts") == ts))["expected_count"].item() == whole
    with db.connection() as conn:
        conn.execute("TRUNCATE metric_hourly, metric_daily")
        conn.commit()
    jobs.rollup(db, manager_id, WINDOW, ZONES)
    rebuilt = _rollup_tables(db)
    for name, frame in streamed.items():
        assert rebuilt[name].equals(frame), name
