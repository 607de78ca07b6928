"""Rollups after a crash equal a rebuild from the stored samples (issue 19 item 5), without killing processes.

A "process" is one ``StreamRollup``: the first captures from mid-hour on and dies at one moment of its last
capture (``Killed`` stands in for kill -9; its in-memory state is dropped), a second one captures on from
``captured_until`` minus the overlap, as a restarted daemon does. The moments: between two windows;
mid-window (some batches stored, ``captured_until`` not moved); after the window's marks moved but before
its hours were rolled up; after the first of those hours was written. Each with ``rolled_until`` still NULL
(the manager's first hour open) and with it set (early on the second day, Europe/Berlin's 23-hour one: a day
rolled up already, the next one open).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import polars as pl
import pytest

from cloudmeter.collectors.simulator import SimulatorCollector, SimulatorConfig
from cloudmeter.model import SampleBatch, Window
from cloudmeter.scheduler import jobs, pipeline
from cloudmeter.scheduler.pipeline import StreamRollup
from cloudmeter.scheduler.windows import CapturePlan, next_window
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database
from tests.scheduler.test_jobs import WINDOW, ZONES, _mixed, _rollup_tables, _setup

MOMENTS = ("between windows", "mid-window", "before the rollup", "mid-rollup")
#: How a restarted daemon goes on: from captured_until minus 10 minutes, an hour at a time.
PLAN = CapturePlan(overlap_s=600, initial_s=0, max_s=3600, retention_s=None)


class Killed(Exception):
    """Where kill -9 would have struck."""


def _die(*args: Any, **kwargs: Any) -> None:
    raise Killed


def _arm(monkeypatch: pytest.MonkeyPatch, moment: str, collector: SimulatorCollector, stream: StreamRollup) -> None:
    """Make the next capture with ``collector`` and ``stream`` die at ``moment``."""
    if moment == "mid-window":  # five minutes a batch; the first is stored when the second is read, then death
        capture = collector.capture

        def dying(window: Window) -> Iterator[SampleBatch]:
            for part in window.split(300)[:2]:
                yield from capture(part)
            raise Killed

        monkeypatch.setattr(collector, "capture", dying)
    elif moment == "before the rollup":
        monkeypatch.setattr(stream, "advance", _die)
    else:  # the first hour is written, then death
        write, calls = pipeline._write, itertools.count()

        def dying_write(*args: Any, **kwargs: Any) -> None:
            if next(calls):
                raise Killed
            write(*args, **kwargs)

        monkeypatch.setattr(pipeline, "_write", dying_write)


def _crash_then_resume(
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    moment: str,
    crash_at: timedelta,
    setup: Callable[[Database], tuple[int, SimulatorCollector]] = _setup,
) -> int:
    """Capture from 00:07 to ``crash_at`` and die at ``moment`` of a last window of 2 h 26 min; resume to the
    end of ``WINDOW`` with a new StreamRollup; return the manager's id."""
    manager_id, collector = setup(db)
    first = StreamRollup(db, manager_id, ZONES)
    start, crash = WINDOW.start + timedelta(minutes=7), WINDOW.start + crash_at
    for step in Window(start, crash).split(1800):
        jobs.capture(db, manager_id, collector, step, stream=first)
    if moment != "between windows":
        dying = SimulatorCollector("lab", collector.config, clock=lambda: WINDOW.end)
        _arm(monkeypatch, moment, dying, first)
        with pytest.raises(Killed):
            jobs.capture(db, manager_id, dying, Window(crash, crash + timedelta(hours=2, minutes=26)), stream=first)
        monkeypatch.undo()
    second = StreamRollup(db, manager_id, ZONES)  # the restarted process
    while window := next_window(_marks(db, manager_id).captured_until, WINDOW.end, PLAN):
        jobs.capture(db, manager_id, collector, window, stream=second)
    return manager_id


def _marks(db: Database, manager_id: int) -> managers.ManagerRow:
    with db.connection() as conn:
        return managers.manager_by_id(conn, manager_id)


def _rebuilt(db: Database, manager_id: int) -> dict[str, pl.DataFrame]:
    """Every rollup table as recomputed from the stored samples (the in-stream rows are replaced)."""
    with db.connection() as conn:
        conn.execute("TRUNCATE metric_hourly, metric_daily")
        conn.commit()
    jobs.rollup(db, manager_id, WINDOW, ZONES)
    return _rollup_tables(db)


@pytest.mark.parametrize("moment", MOMENTS)
@pytest.mark.parametrize(
    "crash_at", [timedelta(minutes=27), timedelta(hours=25, minutes=27)], ids=["first-hour", "second-day"]
)
def test_rollups_after_a_crash_equal_a_rebuild_from_storage(
    db: Database, monkeypatch: pytest.MonkeyPatch, moment: str, crash_at: timedelta
) -> None:
    manager_id = _crash_then_resume(db, monkeypatch, moment, crash_at)
    marks = _marks(db, manager_id)
    assert marks.captured_until == WINDOW.end and marks.rolled_until == WINDOW.end  # no closed hour left out
    streamed = _rollup_tables(db)
    assert streamed["hourly"]["ts"].min() == WINDOW.start  # the first, partly captured hour too
    assert streamed["Europe/Berlin"].height > 0
    rebuilt = _rebuilt(db, manager_id)
    for name, frame in rebuilt.items():
        assert streamed[name].equals(frame), name


@pytest.mark.parametrize("moment", MOMENTS)
def test_mixed_intervals_after_a_crash_equal_a_rebuild_from_storage(
    db: Database, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    """VMs at 60 s and at 300 s: the resumed process reads the intervals capture recorded, as a rebuild does."""
    manager_id = _crash_then_resume(db, monkeypatch, moment, timedelta(hours=25, minutes=27), _mixed)
    streamed = _rollup_tables(db)
    assert set(streamed["hourly"]["expected_count"].unique().to_list()) >= {12, 60}  # a VM of each interval
    assert (streamed["hourly"]["sample_count"] <= streamed["hourly"]["expected_count"]).all()
    rebuilt = _rebuilt(db, manager_id)
    for name, frame in rebuilt.items():
        assert streamed[name].equals(frame), name


def test_a_switch_to_a_finer_interval_mid_day_equals_a_rebuild(db: Database) -> None:
    """Every VM at 300 s for the first 30 hours, then at 60 s (detailed monitoring switched on): the open days'
    percentile heaps were sized for 300 s, so the stream starts over from storage with the new intervals."""
    manager_id, _ = _setup(db)
    config = SimulatorConfig(kind="simulator", vms=12, start=WINDOW.start, horizon_days=2, seed=3)
    basic = SimulatorCollector("lab", config.model_copy(update={"coarse_share": 1.0}), clock=lambda: WINDOW.end)
    detailed = SimulatorCollector("lab", config, clock=lambda: WINDOW.end)
    switch = WINDOW.start + timedelta(hours=30, minutes=30)
    stream = StreamRollup(db, manager_id, ZONES)
    for step in Window(WINDOW.start, switch).split(1800):
        jobs.capture(db, manager_id, basic, step, stream=stream)
    for step in Window(switch, WINDOW.end).split(1800):
        jobs.capture(db, manager_id, detailed, step, stream=stream)
    streamed = _rollup_tables(db)
    hourly = streamed["hourly"].with_columns(pl.col("ts").dt.epoch("s").alias("s"))
    vm_hours = hourly.filter(pl.col("resource_id").is_in(_vm_ids(db, manager_id)))
    before = vm_hours.filter(pl.col("s") < switch.timestamp() - 3600)["expected_count"].unique().to_list()
    after = vm_hours.filter(pl.col("s") > switch.timestamp())["expected_count"].unique().to_list()
    assert (before, after) == ([12], [60])  # the switch's hour holds both: 60, the finer
    assert (hourly["sample_count"] <= hourly["expected_count"]).all()
    rebuilt = _rebuilt(db, manager_id)
    for name, frame in rebuilt.items():
        assert streamed[name].equals(frame), name


def _vm_ids(db: Database, manager_id: int) -> list[int]:
    with db.connection() as conn:
        return [
            r[0] for r in conn.execute("SELECT id FROM resources WHERE manager_id = %s AND kind = 'vm'", [manager_id])
        ]
