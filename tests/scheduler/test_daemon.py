"""The daemon as a real process (``cloudmeter run``) against the simulator on PostgreSQL 18.

What a daemon stored is compared with what the simulator yields for the same window, row for row, so a gap
or a duplicate anywhere shows.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest

from cloudmeter.collectors.registry import build_collector, parse_manager_config
from cloudmeter.collectors.simulator import SimulatorCollector, SimulatorConfig
from cloudmeter.config import load_settings
from cloudmeter.model import METRICS, Window, from_epoch_s
from cloudmeter.scheduler.cycle import Leased
from cloudmeter.scheduler.daemon import Daemon
from cloudmeter.scheduler.windows import CapturePlan, next_window
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database
from cloudmeter.storage.leases import MANAGER
from tests.loopback import free_port

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
START = NOW - timedelta(days=1)
SCHEDULE = """
[schedule]
capture_interval_s = 10
refresh_interval_s = 600
lease_interval_s = 1
jitter_s = 0
capture_overlap_s = 120
initial_capture_s = 21600
max_window_s = 600
backoff_initial_s = 30
"""


def simulator(name: str, vms: int, extra: str = "") -> str:
    return f"""
[managers.{name}]
kind = "simulator"
vms = {vms}
seed = {abs(hash(name)) % 1000}
start = "{START.isoformat()}"
horizon_days = 3
{extra}
"""


class Daemons:
    """Start ``cloudmeter run`` processes on one database; stop them all at the end."""

    def __init__(self, dsn: str, tmp: Path, config: str) -> None:
        self.dsn = dsn
        self.tmp = tmp
        self.config = tmp / "cloudmeter.toml"
        self.config.write_text(config)
        self.processes: list[subprocess.Popen[str]] = []

    def start(self, *options: str) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDMETER_")}
        env |= {"CLOUDMETER_CONFIG": str(self.config), "CLOUDMETER_DSN": self.dsn, "CLOUDMETER_DATA_DIR": str(self.tmp)}
        log = (self.tmp / f"daemon{len(self.processes)}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "cloudmeter", *options, "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.processes.append(process)
        return process

    def log(self, index: int) -> str:
        return (self.tmp / f"daemon{index}.log").read_text()

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def daemons(dsn: str, tmp_path: Path) -> Iterator[Callable[[str], Daemons]]:
    made: list[Daemons] = []

    def make(config: str) -> Daemons:
        made.append(Daemons(dsn, tmp_path, config))
        return made[-1]

    yield make
    for each in made:
        each.stop_all()


def captured_until(dsn: str) -> dict[str, datetime | None]:
    """Each manager's mark ({} before the daemon created the schema)."""
    with psycopg.connect(dsn) as conn:
        try:
            return dict(conn.execute("SELECT name, captured_until FROM managers").fetchall())
        except psycopg.errors.UndefinedTable:
            return {}


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.2)


def caught_up(dsn: str, names: set[str], until: datetime) -> bool:
    marks = captured_until(dsn)
    return all((marks.get(name) or START) >= until for name in names)


def assert_same_as_simulator(dsn: str, name: str, config_text: str, window: Window) -> int:
    """The stored samples of ``name`` in ``window`` are exactly the simulator's: no gap, no duplicate. A window
    holds the whole seconds from ``start_s`` to ``end_s`` (a collector reads those), so the stored rows are
    selected by them too: a daemon's windows start at fractions of a second."""
    import tomllib

    table = tomllib.loads(config_text)["managers"][name]
    collector = build_collector(name, parse_manager_config(name, table))
    expected: dict[tuple[str, int], list[float]] = {}
    for batch in collector.capture(window):
        for i in range(len(batch)):
            key = (batch.refs[batch.resource_idx[i]].ems_ref, int(batch.ts_s[i]))
            assert key not in expected
            expected[key] = batch.values[i].tolist()
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            f"""SELECT r.ems_ref, extract(epoch FROM s.ts)::bigint, {", ".join("s." + m for m in METRICS)}
                FROM metric_samples s JOIN resources r ON r.id = s.resource_id JOIN managers m ON m.id = r.manager_id
                WHERE m.name = %s AND s.ts >= %s AND s.ts < %s""",
            (name, from_epoch_s(window.start_s), from_epoch_s(window.end_s)),
        ).fetchall()
    stored = {(ref, ts): [np.nan if v is None else v for v in values] for ref, ts, *values in rows}
    assert len(rows) == len(stored)  # the primary key already forbids it; counted anyway
    assert stored.keys() == expected.keys()
    for key, values in expected.items():
        assert np.allclose(stored[key], values, equal_nan=True, rtol=0, atol=0), key
    return len(rows)


def test_next_window_resumes_with_overlap_within_retention() -> None:
    plan = CapturePlan(overlap_s=600, initial_s=3600, max_s=7200, retention_s=86400)
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)

    assert next_window(None, now, plan) == Window(now - timedelta(hours=1), now)
    assert next_window(now - timedelta(minutes=5), now, plan) == Window(now - timedelta(minutes=15), now)
    # after a long outage: from the end of the last capture, two hours at a time
    assert next_window(now - timedelta(hours=5), now, plan) == Window(
        now - timedelta(hours=5, minutes=10), now - timedelta(hours=3, minutes=10)
    )
    # never before what the source still keeps
    assert next_window(now - timedelta(days=3), now, plan) == Window(now - timedelta(days=1), now - timedelta(hours=22))
    assert next_window(now, now, plan) is None


@pytest.mark.slow
def test_kill_9_mid_catch_up_then_restart_leaves_no_gap_and_no_duplicate(
    daemons: Callable[[str], Daemons], dsn: str
) -> None:
    config = SCHEDULE + simulator("lab", 60)
    run = daemons(config)
    began = datetime.now(UTC)
    first = run.start()
    # six hours to catch up, ten minutes a step: kill it once some windows are in and most are not
    wait_for(lambda: (captured_until(dsn).get("lab") or START) > began - timedelta(hours=5), 60, "a first capture")
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = captured_until(dsn)["lab"]
    assert killed_at is not None and killed_at < began - timedelta(minutes=30), "killed too late to prove anything"

    second = run.start()
    wait_for(lambda: caught_up(dsn, {"lab"}, began), 90, "the restarted daemon to catch up")
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0
    assert "stopped" in run.log(1)

    window = Window(began - timedelta(hours=6) + timedelta(minutes=1), began - timedelta(minutes=1))
    assert assert_same_as_simulator(dsn, "lab", config, window) > 0


@pytest.mark.slow
def test_two_daemons_share_the_managers_and_capture_each_once(daemons: Callable[[str], Daemons], dsn: str) -> None:
    names = {"east", "west", "north", "south"}
    config = SCHEDULE + "".join(simulator(name, 10) for name in sorted(names))
    run = daemons(config)
    began = datetime.now(UTC)
    run.start()
    run.start()

    wait_for(lambda: caught_up(dsn, names, began), 120, "every manager to catch up")

    def holders() -> list[int]:
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                "SELECT pid, count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::bigint::oid "
                "AND granted GROUP BY pid",
                (MANAGER,),
            ).fetchall()
        return sorted(count for _, count in rows)

    wait_for(lambda: holders() == [2, 2], 30, "two managers leased by each daemon")
    window = Window(began - timedelta(hours=6) + timedelta(minutes=1), began - timedelta(minutes=1))
    for name in names:
        assert assert_same_as_simulator(dsn, name, config, window) > 0
    # a killed daemon's managers are taken over by the other
    run.processes[0].send_signal(signal.SIGKILL)
    wait_for(lambda: holders() == [4], 30, "the survivor to take all four")


@pytest.mark.slow
def test_a_failing_manager_backs_off_without_delaying_the_others(daemons: Callable[[str], Daemons], dsn: str) -> None:
    port = free_port()
    config = (
        f"metrics_port = {port}\n"
        + SCHEDULE
        + simulator("healthy", 20)
        + simulator("broken", 20, 'fail = "unavailable"')
    )
    run = daemons(config)
    began = datetime.now(UTC)
    run.start("--debug")

    wait_for(lambda: caught_up(dsn, {"healthy"}, began), 60, "the healthy manager to catch up")
    assert 'Running job "capture healthy (trigger' in run.log(0) and "_guarded" not in run.log(0)

    with psycopg.connect(dsn) as conn:
        failures, next_attempt, error, mark = conn.execute(
            "SELECT failures, next_attempt_at, last_error, captured_until FROM managers WHERE name = 'broken'"
        ).fetchone() or (None, None, None, None)
    assert failures == 1  # backing off: 30 s after the first failure, no second attempt yet
    assert next_attempt is not None and next_attempt > began
    assert error is not None and "unavailable" in error
    assert mark is None
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
        exposed = response.read().decode()
    assert 'cloudmeter_jobs_total{job="refresh",manager="broken",result="failed"} 1.0' in exposed
    assert "cloudmeter_managers_leased 2.0" in exposed
    with psycopg.connect(dsn) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM metric_samples s JOIN resources r ON r.id = s.resource_id "
            "JOIN managers m ON m.id = r.manager_id WHERE m.name = 'healthy'"
        ).fetchone()
    counted = re.search(r'cloudmeter_samples_captured_total\{manager="healthy"\} ([0-9.e+]+)', exposed)
    assert stored is not None and counted is not None
    assert float(counted.group(1)) >= stored[0] > 0  # every stored row was captured; overlaps are read twice


def test_a_daemon_with_nothing_to_run_says_so_once(daemons: Callable[[str], Daemons]) -> None:
    run = daemons(SCHEDULE)
    run.start()
    wait_for(lambda: "no enabled managers" in run.log(0), 30, "the daemon to say it has nothing to run")
    time.sleep(3)  # three more sweeps at lease_interval_s = 1
    assert run.log(0).count("no enabled managers (0 configured)") == 1


def test_a_failure_quoting_a_dsn_is_stored_and_logged_without_its_password(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with db.connection() as conn:
        manager_id = managers.add_manager(conn, "lab", "simulator", {"kind": "simulator"})
    collector = SimulatorCollector("lab", SimulatorConfig(kind="simulator"))
    config = tmp_path / "c.toml"
    config.write_text("")
    daemon = Daemon(db, load_settings(config))
    leak = RuntimeError("could not reach postgresql://meter:hunter2@db.example/cm")
    daemon._failed(Leased("lab", manager_id, collector), "capture", leak)
    with db.connection() as conn:
        row = managers.get_manager(conn, "lab")
    assert (
        row is not None
        and row.last_error == "capture: RuntimeError: could not reach postgresql://meter:********@db.example/cm"
    )
    assert "hunter2" not in caplog.text and "********" in caplog.text
