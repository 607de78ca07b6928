"""Chaos, sources: ``cloudmeter run`` with a well-behaved simulator and five OpenStack managers whose Gnocchi (a
loopback server of Gnocchi's API shape, tests/scheduler/misbehaving.py) starts to hang, trickle bytes, answer 500,
429 with Retry-After, or truncated JSON; then a PostgreSQL crash while a failing job waits for its source.

Checked: the simulator's captures start on its schedule and store exactly the simulator's samples; each
misbehaving job ends within its bound (a hang by the read timeout ``timeout_s``, a trickle by the daemon's
``10 x timeout_s``) and is recorded and logged in one line, backed off, and after a 429 left alone for its
Retry-After; what was stored before is untouched; the daemon's log holds no traceback.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import shutil
import signal
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from cloudmeter.collectors.registry import build_collector, parse_manager_config
from cloudmeter.model import Window
from cloudmeter.scheduler.bounded import FACTOR
from cloudmeter.storage import status
from scripts.chaos import Server
from tests.scheduler.misbehaving import MISBEHAVIOURS, RETRY_AFTER_S, MisbehavingGnocchi, misbehaving_gnocchi
from tests.scheduler.test_daemon import Daemons, assert_same_as_simulator, wait_for

TIMEOUT_S = 1.2  # the OpenStack managers' timeout_s: the read timeout, and a tenth of the daemon's bound
BOUND_S = FACTOR * TIMEOUT_S
INTERVAL_S = 10  # capture_interval_s
INITIAL_S = 600  # initial_capture_s
OVERLAP_S = 60  # capture_overlap_s
BACKOFF_S = 2  # backoff_initial_s
SCHEDULE = f"""
[schedule]
capture_interval_s = {INTERVAL_S}
refresh_interval_s = 600
lease_interval_s = 1
jitter_s = 0
capture_overlap_s = {OVERLAP_S}
initial_capture_s = {INITIAL_S}
max_window_s = 600
backoff_initial_s = {BACKOFF_S}
backoff_max_s = 60
"""
SEARCH = "Gnocchi POST /v1/search/resource/instance"
HUNG = "Gnocchi timed out on POST /v1/search/resource/instance; retry later"


def openstack(name: str, url: str, timeout_s: float = TIMEOUT_S) -> str:
    return f"""
[managers.{name}]
kind = "openstack"
auth_mode = "basic"
gnocchi_url = "{url}"
timeout_s = {timeout_s}
"""


def lab(now: datetime, seed: int = 7) -> str:
    return f"""
[managers.lab]
kind = "simulator"
vms = 5
interval_s = 5
seed = {seed}
start = "{(now - timedelta(days=1)).isoformat()}"
horizon_days = 3
"""


def steady_lab(now: datetime) -> str:
    """``lab`` with the first seed whose 5 VMs all live and send every 5 s from an hour before ``now`` to an
    hour after it: the simulator's gaps start at hours of the wall clock, so a fixed seed would leave a gap in
    the test's windows now and then, and the test's count of a window is then no longer 5 VMs x its slots."""
    span = Window(now - timedelta(hours=1), now + timedelta(hours=1))
    for seed in range(7, 107):
        config = lab(now, seed)
        table = tomllib.loads(config)["managers"]["lab"]
        simulator = build_collector("lab", parse_manager_config("lab", table))
        if sum(len(batch) for batch in simulator.capture(span)) == 5 * 7200 // 5:
            return config
    raise AssertionError("no seed in 7..106 gives 5 steady VMs around now")


@dataclass
class Watch:
    """The managers' rows, polled: every ``captured_until`` the simulator manager reached, and when it was seen."""

    dsn: str
    lab_marks: list[datetime] = field(default_factory=list)
    next_attempts: dict[str, datetime | None] = field(default_factory=dict)  # as stored (status hides past ones)

    def rows(self) -> dict[str, status.ManagerStatus]:
        """Each manager's status row ({} before the schema exists or while the server is down)."""
        try:
            with psycopg.connect(self.dsn, connect_timeout=5) as conn:
                found = {row.name: row for row in status.manager_status(conn)}
                self.next_attempts = dict(conn.execute("SELECT name, next_attempt_at FROM managers").fetchall())
        except (psycopg.errors.UndefinedTable, psycopg.OperationalError):
            return {}
        mark = found["lab"].captured_until if "lab" in found else None
        if mark is not None and (not self.lab_marks or self.lab_marks[-1] != mark):
            self.lab_marks.append(mark)
        return found


def stored_rows(dsn: str, names: list[str]) -> dict[str, list[tuple[object, ...]]]:
    """What the database holds of ``names``: their resources and marks (to compare before and after)."""
    with psycopg.connect(dsn) as conn:
        return {
            name: conn.execute(
                """SELECT r.kind, r.ems_ref, r.name, r.parent_id, r.first_seen, r.last_seen, r.retired_at,
                          m.captured_until, m.last_refresh_at, m.last_capture_at, m.rolled_until
                   FROM managers m LEFT JOIN resources r ON r.manager_id = m.id WHERE m.name = %s
                   ORDER BY r.kind, r.ems_ref""",
                (name,),
            ).fetchall()
            for name in names
        }


@pytest.fixture
def gnocchi() -> Iterator[MisbehavingGnocchi]:
    with misbehaving_gnocchi() as server:
        yield server


def failures(watch: Watch, name: str) -> int | None:
    """``name``'s failures in a row, None while the server is down."""
    row = watch.rows().get(name)
    return row.failures if row else None


def log_lines(text: str, name: str) -> list[str]:
    """The daemon's lines about ``name``'s failed jobs."""
    return [line for line in text.splitlines() if re.search(f"manager {name}: (refresh|capture) failed", line)]


@pytest.mark.slow
def test_misbehaving_sources_end_within_their_bound_and_hold_up_no_one(
    dsn: str, tmp_path: Path, gnocchi: MisbehavingGnocchi
) -> None:
    names = {how: f"os-{how}" for how in MISBEHAVIOURS}
    config = (
        SCHEDULE + steady_lab(datetime.now(UTC)) + "".join(openstack(names[how], gnocchi.url(how)) for how in names)
    )
    run = Daemons(dsn, tmp_path, config)
    watch = Watch(dsn)
    try:
        daemon = run.start()
        # phase 1: every manager refreshes and captures once, its Gnocchi well-behaved
        wait_for(lambda: all(r.captured_until for r in watch.rows().values()) and len(watch.rows()) == 6, 30, "phase 1")
        before = stored_rows(dsn, list(names.values()))
        for how in MISBEHAVIOURS:
            gnocchi.arm(how, how)
        armed_at = datetime.now(UTC)

        def ended() -> bool:
            rows = watch.rows()
            return (
                rows[names["trickle"]].failures == 1
                and all(rows[names[how]].failures >= 2 for how in ("hang", "500", "truncated"))
                and sum(mark > armed_at for mark in watch.lab_marks) >= 2
            )

        wait_for(ended, 45, "every misbehaving manager to fail and the simulator to capture twice meanwhile")
        rows = watch.rows()
        daemon.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        assert daemon.wait(15) == 0
        assert time.monotonic() - stopping < 5  # a trickle's abandoned helper thread holds up no exit
    finally:
        run.stop_all()
    log = run.log(0)
    assert all(re.match(r"(INFO|WARNING|ERROR) [\w.]+: ", line) for line in log.splitlines()), log  # one line each

    # the simulator's captures started on its schedule, misbehaving sources or not, and stored exactly its samples
    first, *later = watch.lab_marks
    for k, mark in enumerate(later):
        assert abs((mark - later[0]).total_seconds() - k * INTERVAL_S) < 1.0, watch.lab_marks
    trickle = gnocchi.asked("trickle", "trickle")[0]
    trickle_failed = rows[names["trickle"]].last_error_at
    assert trickle_failed is not None
    assert any(trickle.at + 1 < mark.timestamp() < trickle_failed.timestamp() for mark in later)  # while it hung on
    # one window a capture: the first INITIAL_S back, each later one from the last mark minus the overlap
    marks = watch.lab_marks
    windows = [Window(first - timedelta(seconds=INITIAL_S), first)]
    windows += [Window(a - timedelta(seconds=OVERLAP_S), b) for a, b in itertools.pairwise(marks)]
    table = tomllib.loads(config)["managers"]["lab"]
    simulator = build_collector("lab", parse_manager_config("lab", table))
    counts = [sum(len(b) for b in simulator.capture(w)) for w in windows]
    assert re.findall(r"manager lab: captured (\d+) samples", log) == [str(n) for n in counts]
    assert counts[0] == 5 * INITIAL_S // 5  # 5 VMs every 5 s (none created, deleted or in a gap: steady_lab)
    captured = Window(windows[0].start, marks[-1])
    with psycopg.connect(dsn) as conn:
        everything = conn.execute(
            "SELECT count(*) FROM metric_samples s JOIN resources r ON r.id = s.resource_id "
            "JOIN managers m ON m.id = r.manager_id WHERE m.name = 'lab'"
        ).fetchone()
    assert everything is not None
    assert assert_same_as_simulator(dsn, "lab", config, captured) == everything[0] > 0
    assert rows["lab"].failures == 0 and rows["lab"].last_error is None

    # what the misbehaving managers stored before is untouched
    assert stored_rows(dsn, list(names.values())) == before

    # each failure: one line in the status row and in the log, within its bound, backed off
    expected = {
        "hang": HUNG,
        "500": f"{SEARCH} failed on the server (500 database locked); retry later",
        "429": f"{SEARCH} asked to slow down (429); retrying after {RETRY_AFTER_S} s",
        "truncated": f"{SEARCH} answered non-JSON: "
        """'[{"id": "4f9f1a52-0c5e-4cc8-a1a7-b6ba8e4b0c35", "type": "instance", "flavor_na'""",
    }
    for how, name in names.items():
        row = rows[name]
        next_attempt = watch.next_attempts[name]  # of the same look as ``rows``
        assert row.last_error is not None and row.last_error_at is not None and next_attempt is not None
        assert "\n" not in row.last_error
        prefix = f"capture: manager {name!r}: "
        if how == "trickle":
            # a capture asks first for the retention, which an empty Gnocchi learns from the instance search
            pattern = (
                rf"no answer to (capture \S+ \S+ to \S+ \S+ UTC|the retention query) within {BOUND_S:g} s "
                rf"\({FACTOR} x timeout_s\): the source hangs or sends too slowly; retry later"
            )
            assert re.fullmatch(re.escape(prefix) + pattern, row.last_error), row.last_error
        else:
            assert row.last_error == prefix + expected[how]
        answered = gnocchi.asked(how, how)
        assert row.failures == len(answered)  # one failure per misbehaving answer, none lost, none doubled
        took = row.last_error_at.timestamp() - answered[-1].at
        bound = {"hang": TIMEOUT_S, "trickle": BOUND_S}.get(how, 0.0)
        assert bound - 0.2 <= took <= bound + 1.0, (how, took)
        wait = (next_attempt - row.last_error_at).total_seconds()
        assert wait == (RETRY_AFTER_S if how == "429" else BACKOFF_S * 2 ** (row.failures - 1)), (how, wait)
        lines = log_lines(log, name)
        assert len(lines) == row.failures, lines
        said = re.fullmatch(
            rf"WARNING cloudmeter\.scheduler\.daemon: manager {name}: capture failed, next attempt at (.+?): (.*)",
            lines[-1],
        )
        assert said is not None and said.group(2) == row.last_error.removeprefix("capture: "), lines[-1]
        assert datetime.fromisoformat(said.group(1)) == next_attempt
    # phase 1's refresh and capture (which searches for the retention query, then for the window), then one 429
    # and nothing more before its Retry-After
    assert [r.answer for r in gnocchi.asked("429")] == ["ok", "ok", "ok", "429"]


@pytest.mark.slow
def test_a_database_crash_while_a_failing_job_waits_is_one_line(tmp_path: Path, gnocchi: MisbehavingGnocchi) -> None:
    root = Path(tempfile.mkdtemp(prefix="cloudmeter-crash-"))  # not under pytest's: the server's user must reach it
    server = Server(root)
    try:
        gnocchi.arm("hang", "hang")
        config = SCHEDULE.replace("lease_interval_s = 1", "lease_interval_s = 60") + openstack(
            "os-hang", gnocchi.url("hang"), timeout_s=2.0
        )
        run = Daemons(server.dsn, tmp_path, config)
        watch = Watch(server.dsn)
        try:
            run.start()
            wait_for(lambda: len(gnocchi.asked("hang")) == 1, 30, "the refresh to wait on the hanging source")
            server.crash()  # PostgreSQL goes down under the waiting job
            wait_for(lambda: "refresh failed" in run.log(0), 10, "the refresh to fail")
            server.start()
            wait_for(lambda: failures(watch, "os-hang") == 1, 30, "a failure recorded once the server is back")
            row = watch.rows()["os-hang"]
        finally:
            run.stop_all()
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # down already, if the test failed in between
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
    log = run.log(0)
    assert "Traceback" not in log, log
    lines = log_lines(log, "os-hang")
    assert re.fullmatch(
        r"WARNING cloudmeter\.scheduler\.daemon: manager os-hang: refresh failed \(not recorded: the database is "
        r"unreachable: .+\): manager 'os-hang': Gnocchi timed out on POST /v1/search/resource/instance; retry "
        "later",
        lines[0],
    ), lines
    assert row.last_error == f"capture: manager 'os-hang': {HUNG}"
