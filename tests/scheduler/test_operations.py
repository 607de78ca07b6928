"""Operations (issue 20): what a running daemon says and records about its managers, checked on one real
``cloudmeter run`` process against PostgreSQL 18, the simulator, a loopback Gnocchi and moto's AWS.

Five managers, each showing one thing:

    quiet   a simulator captured by hand up to two hours ago (with a hole), whose VMs are then gone: the daemon
            catches up windows that bring nothing in one log line naming the newest sample, and flags it stale
    gn      OpenStack on a loopback Gnocchi keeping 30 days (``retention_days``), last captured 40 days ago: the
            daemon skips what the source no longer keeps in one warning and records it; every request counted
    aws     one EC2 instance in moto: requests per call, CloudWatch metrics and their US$ per cycle and in total
    broken  a simulator that always fails: each retry runs at its ``next_attempt_at`` (1 s, 2 s, 4 s later)
    vault   added with ``password = env:VAR``, the variable unset where the daemon runs: a failing ``config`` job,
            backed off like any failure

Expected values come from the sources themselves (the simulator's own batches, the loopback Gnocchi's request
log, the documented CloudWatch calls and prices) and from the times the test set, never from the daemon.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from moto.server import ThreadedMotoServer
from psycopg.conninfo import make_conninfo

from cloudmeter.collectors.simulator import SimulatorCollector, SimulatorConfig
from cloudmeter.model import Window
from cloudmeter.storage import status
from cloudmeter.storage.database import Database
from tests.loopback import free_port
from tests.scheduler.misbehaving import MisbehavingGnocchi, misbehaving_gnocchi

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
T1 = NOW - timedelta(hours=2)  # quiet's samples end here
QUIET_VMS = 2
QUIET = {
    "vms": QUIET_VMS,
    "interval_s": 60,
    "seed": 3,
    "clusters": 1,
    "hosts_per_cluster": 2,
    "start": T1 - timedelta(days=1),
}
GN_MARK = NOW - timedelta(days=40)  # gn's captured_until before the daemon starts
INTERVAL_S = 60
STALE_AFTER_S = 6 * INTERVAL_S  # the default stale_after_intervals (6) x capture_interval_s
SCHEDULE = f"""
[schedule]
capture_interval_s = {INTERVAL_S}
refresh_interval_s = 600
lease_interval_s = 1
jitter_s = 0
capture_overlap_s = 120
initial_capture_s = 21600
max_window_s = 604800
backoff_initial_s = 1
backoff_max_s = 60
"""
VAULT_VARIABLE = "CM_TEST_VAULT_PASSWORD"


def simulator(name: str, fields: dict[str, Any]) -> str:
    lines = "".join(
        f"{key} = {json.dumps(v.isoformat() if isinstance(v, datetime) else v)}\n" for key, v in fields.items()
    )
    return f'\n[managers.{name}]\nkind = "simulator"\n{lines}'


def config(gnocchi: MisbehavingGnocchi, moto: str, port: int, quiet_vms: int) -> str:
    return (
        f"metrics_port = {port}\n"
        + SCHEDULE
        + simulator("quiet", QUIET | {"vms": quiet_vms})
        + simulator("broken", {"vms": 1, "fail": "unavailable"})
        + f"""
[managers.gn]
kind = "openstack"
auth_mode = "basic"
gnocchi_url = "{gnocchi.url("gn")}"
retention_days = 30
timeout_s = 5

[managers.aws]
kind = "aws"
region = "us-east-1"
endpoint_url = "{moto}"
access_key_id = "AKIDTEST"
secret_access_key = "testing"
"""
    )


def cli(dsn: str, config_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDMETER_", VAULT_VARIABLE))}
    full |= {"CLOUDMETER_DSN": dsn, "CLOUDMETER_CONFIG": str(config_path), "COLUMNS": "200"} | env
    done = subprocess.run(
        [sys.executable, "-m", "cloudmeter", *args], env=full, capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done


@dataclass
class Poll:
    """One look at the managers' rows while the daemon runs: the raw rows and what ``status`` makes of them."""

    at: datetime
    raw: dict[str, tuple[int, datetime | None, datetime | None]]  # failures, last_error_at, next_attempt_at
    shown: dict[str, status.ManagerStatus]


@dataclass
class Run:
    """What the daemon did: its log, the polls, what the sources saw, /metrics, status before and after."""

    dsn: str
    config: Path
    log: str = ""
    polls: list[Poll] = field(default_factory=list)
    gnocchi_requests: dict[str, int] = field(default_factory=dict)
    exposed: str = ""
    before: dict[str, Any] = field(default_factory=dict)
    before_table: str = ""
    after: dict[str, Any] = field(default_factory=dict)
    after_table: str = ""
    quiet_newest: datetime | None = None
    instance_launched: datetime | None = None

    def managers(self, report: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {m["name"]: m for m in report["managers"]}


def _poll(dsn: str) -> Poll | None:
    try:
        with psycopg.connect(dsn) as conn:
            now = conn.execute("SELECT now()").fetchone()
            rows = conn.execute("SELECT name, failures, last_error_at, next_attempt_at FROM managers").fetchall()
            shown = {m.name: m for m in status.manager_status(conn, STALE_AFTER_S)}
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
        return None
    assert now is not None
    return Poll(now[0], {name: (f, e, n) for name, f, e, n in rows}, shown)


def _quiet_newest(window: Window) -> datetime:
    """The newest sample the simulator yields for quiet in ``window``: what the database must hold as newest."""
    collector = SimulatorCollector("quiet", SimulatorConfig.model_validate({"kind": "simulator", **QUIET}))
    return datetime.fromtimestamp(max(int(b.ts_s.max()) for b in collector.capture(window)), UTC)


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # moto's backends are one per process: empty them of what other modules' servers left (their instances)
    urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST")).close()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def run(pg_server: str, moto: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("operations")
    name = f"operations_{os.getpid()}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = make_conninfo(pg_server, dbname=name)
    port = free_port()
    ec2 = boto3.client(
        "ec2", region_name="us-east-1", endpoint_url=moto, aws_access_key_id="t", aws_secret_access_key="t"
    )
    try:
        with misbehaving_gnocchi() as gnocchi:
            result = Run(dsn, tmp / "cloudmeter.toml")
            # quiet: two hours captured by hand, an hour apart (a hole between); then its VMs are gone
            result.config.write_text(config(gnocchi, moto, port, quiet_vms=QUIET_VMS))
            for since, until in ((T1 - timedelta(hours=3), T1 - timedelta(hours=2)), (T1 - timedelta(hours=1), T1)):
                cli(
                    dsn,
                    result.config,
                    "capture",
                    "-m",
                    "quiet",
                    "--since",
                    since.isoformat(),
                    "--until",
                    until.isoformat(),
                )
            result.quiet_newest = _quiet_newest(Window(T1 - timedelta(hours=1), T1))
            env = {VAULT_VARIABLE: "hunter2"}
            cli(
                dsn, result.config, "managers", "add", "vault", "--kind", "openstack", "--set", "auth_mode=basic",
                "--set", f"gnocchi_url={gnocchi.url('vault')}", "--set", f"password=env:{VAULT_VARIABLE}",
                "--no-verify", **env,
            )  # fmt: skip
            with Database(dsn, tmp) as db, db.connection() as conn:  # gn: captured up to 40 days ago
                conn.execute(
                    """INSERT INTO managers (name, kind, captured, captured_until)
                       VALUES ('gn', 'openstack', tstzmultirange(tstzrange(%s, %s)), %s)""",
                    (GN_MARK - timedelta(hours=1), GN_MARK, GN_MARK),
                )
                conn.commit()
            result.before = json.loads(cli(dsn, result.config, "status", "--json").stdout)
            result.before_table = cli(dsn, result.config, "status").stdout
            launched = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.micro")
            result.instance_launched = launched["Instances"][0]["LaunchTime"]

            result.config.write_text(config(gnocchi, moto, port, quiet_vms=0))
            daemon_env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDMETER_", VAULT_VARIABLE))}
            daemon_env |= {
                "CLOUDMETER_CONFIG": str(result.config),
                "CLOUDMETER_DSN": dsn,
                "CLOUDMETER_DATA_DIR": str(tmp),
            }
            log_path = tmp / "daemon.log"
            with log_path.open("w") as log:
                daemon = subprocess.Popen(
                    [sys.executable, "-m", "cloudmeter", "run"], env=daemon_env, stdout=log, stderr=subprocess.STDOUT
                )
            try:
                deadline = time.monotonic() + 45
                while time.monotonic() < deadline:
                    poll = _poll(dsn)
                    if poll is not None:
                        result.polls.append(poll)
                        shown = poll.shown
                        done = all(len(shown[n].cycle_samples) == 1 for n in ("quiet", "gn", "aws") if n in shown)
                        if done and len(shown) == 5 and min(shown[n].failures for n in ("broken", "vault")) >= 4:
                            break
                    time.sleep(0.1)
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
                    result.exposed = response.read().decode()
                with gnocchi.lock:
                    for request in gnocchi.requests:
                        result.gnocchi_requests[request.prefix] = result.gnocchi_requests.get(request.prefix, 0) + 1
            finally:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(30)
            result.log = log_path.read_text()
            result.after = json.loads(cli(dsn, result.config, "status", "--json").stdout)
            result.after_table = cli(dsn, result.config, "status").stdout
            yield result
    finally:
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _minute(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M}"


def _exposed(text: str, name: str, **labels: str) -> float:
    """The value of sample ``name`` with exactly ``labels`` on the /metrics page."""
    shown = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    found = re.search(rf"^{name}\{{{re.escape(shown)}\}} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name}{{{shown}}} not exposed"
    return float(found.group(1))


# --- item 8: a retry runs at next_attempt_at, and status never shows a next attempt in the past ---------------


def _failures(run: Run, name: str) -> list[tuple[int, datetime, datetime]]:
    """Each failure of ``name`` in a row as the polls saw it: (count, when, next attempt)."""
    seen: dict[int, tuple[int, datetime, datetime]] = {}
    for poll in run.polls:
        failures, at, retry = poll.raw.get(name, (0, None, None))
        if failures and at is not None and retry is not None:
            seen.setdefault(failures, (failures, at, retry))
    return [seen[n] for n in sorted(seen)]


@pytest.mark.parametrize("name", ["broken", "vault"])
def test_each_retry_runs_at_its_next_attempt_and_the_wait_doubles(run: Run, name: str) -> None:
    seen = _failures(run, name)
    assert [count for count, _, _ in seen[:4]] == [1, 2, 3, 4]
    for count, at, retry in seen[:4]:
        assert retry - at == timedelta(seconds=2 ** (count - 1))  # backoff_initial_s = 1, doubling
    for (_, _, retry), (_, next_at, _) in itertools.pairwise(seen[:4]):
        assert timedelta(0) <= next_at - retry < timedelta(seconds=0.75)  # tried again when it said


@pytest.mark.parametrize("name", ["broken", "vault"])
def test_status_never_shows_a_next_attempt_in_the_past(run: Run, name: str) -> None:
    shown = [poll for poll in run.polls if name in poll.shown and poll.shown[name].failures]
    assert len(shown) > 20  # polled every 0.1 s through at least 7 s of failures
    for poll in shown:
        row = poll.shown[name]
        assert row.state == "failing"
        assert row.next_attempt_at is None or row.next_attempt_at > poll.at


# --- item 7: a manager whose env: secret is missing fails like any failure ------------------------------------


def test_a_missing_env_secret_is_a_failing_config_job_logged_once_per_attempt(run: Run) -> None:
    vault = run.managers(run.after)["vault"]
    reason = (
        f"manager 'vault' (kind 'openstack') is invalid: password: Value error, refers to environment variable "
        f"{VAULT_VARIABLE}, which is not set; export it"
    )
    assert vault["state"] == "failing"
    assert vault["last_error"] == f"config: {reason}"
    lines = [line for line in run.log.splitlines() if "manager vault" in line]
    assert len(lines) == vault["failures"] >= 4
    assert all(
        re.fullmatch(rf"WARNING \S+: manager vault: config failed, next attempt at \S+ \S+: {re.escape(reason)}", line)
        for line in lines
    ), lines
    assert run.gnocchi_requests.get("vault", 0) == 0
    assert f"vault: {vault['failures']} failures in a row" in run.after_table


# --- item 2: what the source no longer keeps is skipped in one warning, recorded and shown --------------------


def test_what_the_source_no_longer_keeps_is_skipped_in_one_warning_and_recorded(run: Run) -> None:
    gn = run.managers(run.after)["gn"]
    ((skipped),) = gn["skipped"]
    start, end = datetime.fromisoformat(skipped["start"]), datetime.fromisoformat(skipped["end"])
    assert start == GN_MARK
    first_poll = run.polls[0].at
    assert first_poll - timedelta(days=30, seconds=5) < end < run.polls[-1].at - timedelta(days=30)
    warnings = [line for line in run.log.splitlines() if "skipping" in line]
    assert warnings == [
        f"WARNING cloudmeter.scheduler.cycle: manager gn: skipping {_minute(start)} to {_minute(end)} UTC: "
        "the source keeps 30 days"
    ]
    assert gn["holes"] == []
    assert datetime.fromisoformat(gn["captured_until"]) > end + timedelta(days=29)  # caught up since
    assert f"gn: skipped as gone at the source: {_minute(start)} to {_minute(end)}" in run.after_table


def test_holes_show_in_status_until_they_are_filled(run: Run) -> None:
    quiet = run.managers(run.before)["quiet"]
    hole = {"start": _iso(T1 - timedelta(hours=2)), "end": _iso(T1 - timedelta(hours=1))}
    assert quiet["holes"] == [hole]
    assert quiet["captured_until"] == _iso(T1 - timedelta(hours=2))
    line = f"quiet: not captured yet (holes): {_minute(T1 - timedelta(hours=2))} to {_minute(T1 - timedelta(hours=1))}"
    assert line in run.before_table
    assert run.managers(run.after)["quiet"]["holes"] == []  # the daemon's catch-up filled it
    assert "holes" not in run.after_table


# --- item 6: stale data ---------------------------------------------------------------------------------------


def test_a_run_of_empty_windows_is_one_line_naming_the_newest_sample(run: Run) -> None:
    assert run.quiet_newest is not None
    assert "captured 0 samples" not in run.log
    lines = [line for line in run.log.splitlines() if "manager quiet: captured" in line]
    mark = T1 - timedelta(hours=2)
    until = datetime.fromisoformat(run.managers(run.after)["quiet"]["captured_until"])
    assert lines == [
        f"INFO cloudmeter.scheduler.cycle: manager quiet: captured nothing in "
        f"{_minute(mark - timedelta(seconds=120))} to {_minute(until)} UTC: the source sent no measures for it; "
        f"the newest sample stored is from {_minute(run.quiet_newest)} UTC"
    ]
    gn_lines = [line for line in run.log.splitlines() if "manager gn: captured" in line]
    gn_until = datetime.fromisoformat(run.managers(run.after)["gn"]["captured_until"])
    windows = -(-(gn_until - (gn_until - timedelta(days=30))) // timedelta(days=7))  # 30 days, 7 a window
    assert len(gn_lines) == 1 and f"captured nothing in {windows} windows, " in gn_lines[0]
    assert gn_lines[0].endswith("the source sent no measures for them; no sample is stored yet")


def test_status_shows_the_newest_sample_the_last_cycles_and_flags_a_stale_source(run: Run) -> None:
    shown = run.managers(run.after)
    quiet = shown["quiet"]
    assert run.quiet_newest is not None
    assert quiet["newest_sample_at"] == _iso(run.quiet_newest)
    assert quiet["cycle_samples"] == [0]
    quiet_s = (datetime.fromisoformat(quiet["captured_until"]) - run.quiet_newest).total_seconds()
    assert quiet["quiet_s"] == pytest.approx(quiet_s, abs=1) and quiet_s > STALE_AFTER_S
    assert quiet["state"] == "stale"
    assert run.managers(run.before)["quiet"]["state"] == "ok"  # caught up to its newest sample then
    assert shown["gn"]["state"] == "stale" and shown["gn"]["newest_sample_at"] is None
    stale_lines = [line for line in run.log.splitlines() if "manager quiet: stale" in line]
    assert stale_lines == [
        f"WARNING cloudmeter.scheduler.cycle: manager quiet: stale: the source has sent nothing for "
        f"{_spoken(quiet_s)} of captured time (more than 6 capture intervals); the newest sample stored is from "
        f"{_minute(run.quiet_newest)} UTC"
    ]
    assert (
        f"quiet: stale: nothing from the source for {_spoken(quiet_s)} of captured time (more than 6 minutes); "
        f"the newest sample is from {_minute(run.quiet_newest)}" in run.after_table
    )
    assert _exposed(run.exposed, "cloudmeter_source_stale", manager="quiet") == 1.0
    assert (
        _exposed(run.exposed, "cloudmeter_newest_sample_timestamp_seconds", manager="quiet")
        == run.quiet_newest.timestamp()
    )
    assert _exposed(run.exposed, "cloudmeter_source_stale", manager="gn") == 1.0


def _spoken(seconds: float) -> str:
    """``seconds`` (over an hour, under a day) as the daemon says it: ``2 hours 5 minutes``."""
    hours, minutes = divmod(round(seconds) // 60, 60)
    return f"{hours} hour{'s' if hours != 1 else ''}" + (
        f" {minutes} minute{'s' if minutes != 1 else ''}" if minutes else ""
    )


# --- operators: API requests and their cost per manager and cycle ---------------------------------------------


def test_every_gnocchi_request_is_counted_in_status_and_prometheus(run: Run) -> None:
    gn = run.managers(run.after)["gn"]
    asked = run.gnocchi_requests["gn"]
    assert asked > 0
    assert gn["api_requests"] == asked
    assert _exposed(run.exposed, "cloudmeter_source_requests_total", manager="gn", api="gnocchi") == asked
    assert gn["api_cost_usd"] == 0 and gn["cloudwatch_metrics"] == 0
    assert 0 < gn["cycle_requests"] < asked  # the capture's; the refresh asked the rest


def test_cloudwatch_requests_metrics_and_their_price_per_cycle_and_in_total(run: Run) -> None:
    aws = run.managers(run.after)["aws"]
    # the refresh: DescribeInstances, DescribeInstanceTypes (t3.micro); the capture of [now - 6 h, now), one
    # window in which the instance runs (basic monitoring: 300 s periods, 72 of them: one request of its 7 series):
    # DescribeInstances, ListMetrics (the agent's memory metric: none), GetMetricData naming 7 metrics
    per_call = {
        "ec2:DescribeInstances": 2,
        "ec2:DescribeInstanceTypes": 1,
        "cloudwatch:ListMetrics": 1,
        "cloudwatch:GetMetricData": 1,
    }
    price = 7 * 0.01 / 1000 + 1 * 0.01 / 1000  # 7 metrics, 1 ListMetrics request, US$0.01 per 1,000 each
    assert (aws["api_requests"], aws["cloudwatch_metrics"], aws["api_cost_usd"]) == (5, 7, pytest.approx(price))
    assert (aws["cycle_requests"], aws["cycle_metrics"], aws["cycle_cost_usd"]) == (3, 7, pytest.approx(price))
    for api, count in per_call.items():
        assert _exposed(run.exposed, "cloudmeter_source_requests_total", manager="aws", api=api) == count
    assert _exposed(run.exposed, "cloudmeter_cloudwatch_metrics_requested_total", manager="aws") == 7
    assert _exposed(run.exposed, "cloudmeter_source_cost_usd_total", manager="aws") == pytest.approx(price)
