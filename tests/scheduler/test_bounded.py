"""The daemon's guards, in process: each answer of a source within its bound (``bounded.Bounded``), a throttled
manager left alone as long as its source asked, and one worker per manager (a job that fires while its manager
runs another is run right after it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from cloudmeter.collectors.base import ManagerConfig
from cloudmeter.collectors.registry import parse_manager_config
from cloudmeter.collectors.simulator import SimulatorCollector, SimulatorConfig
from cloudmeter.config import load_settings
from cloudmeter.errors import SourceUnavailable, Throttled
from cloudmeter.model import METRICS, Inventory, ResourceRef, SampleBatch, Window
from cloudmeter.scheduler.bounded import Bounded, Interrupted, NoAnswer, limit_s
from cloudmeter.scheduler.cycle import Leased
from cloudmeter.scheduler.daemon import MAX_RETRY_AFTER_S, Daemon
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database
from tests.scheduler.test_daemon import wait_for

WINDOW = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC))


def batch(i: int) -> SampleBatch:
    return SampleBatch(
        (ResourceRef("vm", f"vm-{i}"),),
        np.zeros(1, np.int32),
        np.array([WINDOW.start_s + 60 * i], np.int64),
        np.full((1, len(METRICS)), float(i)),
        60,
    )


class Gated:
    """A collector whose every answer waits for the test to let one through (``gate``)."""

    kind: ClassVar[str] = "gated"
    config_model: ClassVar[type[ManagerConfig]] = ManagerConfig
    retention_s: ClassVar[int | None] = None

    def __init__(self, batches: list[SampleBatch]) -> None:
        self.name = "gated"
        self.batches = batches
        self.gate = threading.Semaphore(0)
        self.waiting = threading.Event()  # an answer waits at the gate
        self.produced = 0
        self.closed_in: str | None = None

    def verify(self) -> None:
        self._pass()

    def inventory(self) -> Inventory:
        self._pass()
        return Inventory(datetime.now(UTC), ())

    def capture(self, window: Window) -> Iterator[SampleBatch]:
        del window
        try:
            for each in self.batches:
                self._pass()
                self.produced += 1
                yield each
        finally:
            self.closed_in = threading.current_thread().name

    def _pass(self) -> None:
        self.waiting.set()
        self.gate.acquire()
        self.waiting.clear()


@pytest.fixture
def gated() -> Iterator[Gated]:
    source = Gated([batch(i) for i in range(3)])
    yield source
    source.gate.release(100)  # let helper threads left waiting end


def test_batches_pass_through_in_order_one_at_a_time_as_asked(gated: Gated) -> None:
    gated.gate.release(3)
    batches = Bounded(gated, 5.0, threading.Event()).capture(WINDOW)
    first = next(batches)
    time.sleep(0.2)
    assert gated.produced == 1  # no read-ahead: the source is read as the job stores
    assert [first, *batches] == gated.batches
    wait_for(lambda: gated.closed_in is not None, 5, "the source's generator to close")
    assert gated.closed_in == f"source gated: capture {WINDOW}"  # closed in the thread that ran it


def test_a_source_that_stops_answering_is_given_up_at_the_bound(gated: Gated) -> None:
    gated.gate.release(1)
    batches = Bounded(gated, 0.5, threading.Event()).capture(WINDOW)
    assert next(batches) == gated.batches[0]
    began = time.monotonic()
    with pytest.raises(NoAnswer) as caught:
        next(batches)
    assert 0.5 <= time.monotonic() - began < 0.8
    assert str(caught.value) == (
        "manager 'gated': no answer to capture 2026-01-01 00:00 to 2026-01-01 01:00 UTC within 0.5 s "
        "(10 x timeout_s): the source hangs or sends too slowly; retry later"
    )
    assert isinstance(caught.value, SourceUnavailable)
    gated.gate.release(1)  # the late answer comes: the abandoned helper closes the source and ends
    wait_for(lambda: gated.closed_in is not None, 5, "the abandoned helper to close the source")
    assert gated.produced == 2

    began = time.monotonic()
    with pytest.raises(NoAnswer, match=r"^manager 'gated': no answer to inventory within 0\.3 s"):
        Bounded(gated, 0.3, threading.Event()).inventory()
    assert 0.3 <= time.monotonic() - began < 0.6


def test_a_stop_ends_the_wait_at_once(gated: Gated) -> None:
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    began = time.monotonic()
    with pytest.raises(Interrupted, match="stopped waiting for verify: the daemon is shutting down"):
        Bounded(gated, 60.0, stop).verify()
    assert time.monotonic() - began < 0.6


def test_answers_and_errors_of_a_real_collector_are_its_own() -> None:
    config = SimulatorConfig(kind="simulator", vms=4, start=WINDOW.start - timedelta(days=1), horizon_days=2)
    simulator = SimulatorCollector("lab", config, clock=lambda: WINDOW.end, batch_rows=50)
    bounded = Bounded(simulator, 5.0, threading.Event())
    assert bounded.inventory() == simulator.inventory()
    got, want = list(bounded.capture(WINDOW)), list(simulator.capture(WINDOW))
    assert len(got) == len(want) > 1
    for a, b in zip(got, want, strict=True):
        assert a.refs == b.refs and a.interval_s == b.interval_s
        assert np.array_equal(a.ts_s, b.ts_s) and np.array_equal(a.values, b.values, equal_nan=True)

    broken = SimulatorCollector("lab", config.model_copy(update={"fail": "unavailable"}))
    for call in (Bounded(broken, 5.0, threading.Event()).inventory, lambda: list(bounded_capture(broken))):
        with pytest.raises(SourceUnavailable, match=r"^manager 'lab': simulated outage"):
            call()


def bounded_capture(collector: SimulatorCollector) -> Iterator[SampleBatch]:
    return Bounded(collector, 5.0, threading.Event()).capture(WINDOW)


def test_the_bound_is_ten_times_the_managers_timeout() -> None:
    def config(**table: object) -> ManagerConfig:
        return parse_manager_config("m", table)

    basic = {"kind": "openstack", "auth_mode": "basic", "gnocchi_url": "http://gnocchi.test"}
    assert limit_s(config(**basic, timeout_s=1.5)) == 15.0
    assert limit_s(config(**basic)) == 300.0  # OpenStack's default timeout_s: 30 s
    assert limit_s(config(kind="aws", region="eu-west-1")) == 600.0  # botocore's 60 s reads
    assert limit_s(config(kind="simulator")) == 600.0


@pytest.fixture
def daemon(db: Database, tmp_path: Path) -> Daemon:
    config = tmp_path / "c.toml"
    config.write_text("[schedule]\nbackoff_initial_s = 60\nbackoff_max_s = 3600\n")
    return Daemon(db, load_settings(config))


def test_a_throttled_manager_waits_the_longer_of_retry_after_and_its_back_off(db: Database, daemon: Daemon) -> None:
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, "lab", "simulator", {})
    leased = Leased("lab", manager_id, SimulatorCollector("lab", SimulatorConfig(kind="simulator")))
    waits = []
    for retry_after in (100.0, 100.0, 100.0, 1e9):
        with db.connection() as conn:
            failures = managers.manager_by_id(conn, manager_id).failures
        daemon._failed(leased, "capture", Throttled("lab", "slow down", retry_after), failures)
        with db.connection() as conn:
            row = managers.manager_by_id(conn, manager_id)
        assert row.next_attempt_at is not None and row.last_error_at is not None
        waits.append((row.next_attempt_at - row.last_error_at).total_seconds())
    # back-off 60, 120, 240, 480 s; Retry-After 100 s, then an absurd hint taken for a day
    assert waits == [100.0, 120.0, 240.0, MAX_RETRY_AFTER_S]
    daemon._failed(leased, "capture", SourceUnavailable("lab", "down"), 4)
    with db.connection() as conn:
        row = managers.manager_by_id(conn, manager_id)
    assert row.next_attempt_at is not None and row.last_error_at is not None
    assert (row.next_attempt_at - row.last_error_at).total_seconds() == 960.0  # plain back-off: 60 x 2^4


def test_a_job_firing_while_its_manager_runs_another_runs_next_on_the_same_worker(
    db: Database, daemon: Daemon, gated: Gated
) -> None:
    gated.batches = []
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, "gated", "gated", {})
    leased = daemon._leased["gated"] = Leased("gated", manager_id, gated)
    worker = threading.Thread(target=daemon._guarded, args=(leased, "refresh"))
    worker.start()
    assert gated.waiting.wait(5)  # the refresh waits for its source

    began = time.monotonic()
    daemon._guarded(leased, "capture")  # fires meanwhile: left to the worker, this thread is free at once
    assert time.monotonic() - began < 0.1
    assert leased.waiting == {"capture"}
    gated.gate.release(10)
    worker.join(10)
    assert not worker.is_alive()
    with db.connection() as conn:
        row = managers.manager_by_id(conn, manager_id)
    assert row.last_refresh_at is not None and row.captured_until is not None  # both ran, the capture after
    assert row.failures == 0 and leased.waiting == set() and not leased.lock.locked()
