"""An operator's journey, all through the CLI as README says, on real peers: a Gnocchi with Ceilometer's data
(tests/collectors/ceilometer_cloud.py) and an AWS account (moto's server) as two managers; backfill, a manual
capture ahead of the mark, the daemon as a process across a restart, every report, then one manager removed.

What the journey checks is what went wrong for the operator of issue 20: a manual capture must not skip the
gap before it; backfill captures what the source still has; coverage never exceeds 100 %; unknown capacity is
null (never 0 or Infinity) and --json is JSON; a source that sends nothing looks stale, not healthy; API use
is counted; `managers remove` says what it deleted and leaves the other manager's rows as they were.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests import gnocchi_server
from tests.cli.test_cli import run
from tests.collectors import ceilometer_cloud as cloud
from tests.collectors.test_cloudwatch import moto, moto_url, put
from tests.collectors.test_cloudwatch import run as launch
from tests.collectors.test_gnocchi import expected_row
from tests.collectors.test_gnocchi_policies import strict_json
from tests.gnocchi_server import GnocchiServer
from tests.loopback import ServerFailed

__all__ = ["moto", "moto_url"]  # moto's server fixtures, shared with test_cloudwatch
pytestmark = pytest.mark.slow
METRICS = ("cpu_usage_pct", "cpu_used_cores", "mem_used_bytes", "mem_usage_pct")


@pytest.fixture(scope="module")
def gnocchi(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GnocchiServer]:
    try:
        with gnocchi_server.running(tmp_path_factory.mktemp("gnocchi-journey"), pg_server) as server:
            cloud.load(server.client, server.indexer_dsn)
            yield server
    except ServerFailed as exc:
        pytest.fail(str(exc))


def _ok(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = run(*args, env=env)
    assert done.returncode == 0, (args, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _status(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in strict_json(_ok("status", "--json", env=env).stdout)["managers"]}


def _daemon(env: dict[str, str], seconds: float) -> str:
    """``cloudmeter run`` for ``seconds``, stopped by SIGTERM; its log."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDMETER_")} | env
    process = subprocess.Popen(
        [sys.executable, "-m", "cloudmeter", "-v", "run"], env=full, stderr=subprocess.PIPE, text=True
    )
    time.sleep(seconds)
    process.send_signal(signal.SIGTERM)
    _, log = process.communicate(timeout=120)
    assert process.returncode == 0, log
    assert "Traceback" not in log, log
    return log


def _os_samples(dsn: str) -> dict[tuple[str, int], dict[str, float]]:
    names = {vm.id: vm.name for vm in cloud.VMS}
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            f"""SELECT r.ems_ref, extract(epoch FROM s.ts)::int8, {", ".join(f"s.{m}" for m in METRICS)}
                FROM metric_samples s JOIN resources r ON r.id = s.resource_id
                JOIN managers m ON m.id = r.manager_id WHERE m.name = 'os'"""
        ).fetchall()
    t0 = int(cloud.T0.timestamp())
    return {
        (names[ref], (ts - t0) // cloud.STEP_S): {
            m: math.nan if v is None else v for m, v in zip(METRICS, values, strict=True)
        }
        for ref, ts, *values in rows
    }


def test_two_sources_backfilled_run_reported_and_one_removed(
    gnocchi: GnocchiServer, moto: str, dsn: str, tmp_path: Path
) -> None:
    config = tmp_path / "cloudmeter.toml"
    config.write_text(
        f"""[schedule]
capture_interval_s = 10
refresh_interval_s = 30
jitter_s = 0
lease_interval_s = 1

[managers.os]
kind = "openstack"
auth_mode = "basic"
gnocchi_url = "{gnocchi.url}"
flavors = {{ "m1.large" = {{ vcpus = 4, memory_mib = 8192 }} }}  # no Nova without Keystone: db-1 has no meters

[managers.aws]
kind = "aws"
region = "us-east-1"
endpoint_url = "{moto}"
access_key_id = "AKIDJOURNEY"
secret_access_key = "env:JOURNEY_AWS_SECRET"
"""
    )
    env = {"CLOUDMETER_CONFIG": str(config), "CLOUDMETER_DSN": dsn, "JOURNEY_AWS_SECRET": "journey-secret-value"}
    detailed = launch(moto, "m5.large", "us-east-1a", detailed=True)["InstanceId"]
    later = int(time.time()) // 60 * 60 + 3 * 3600  # the metric exists; its only datapoint lies hours ahead
    put(moto, "AWS/EC2", "CPUUtilization", {"InstanceId": detailed}, [(later, 5.0)])
    since, until = cloud.T0.isoformat(), cloud.at(24).isoformat()

    verified = strict_json(_ok("managers", "verify", "--json", env=env).stdout)
    assert {row["name"]: row["result"] for row in verified} == {"os": "ok", "aws": "ok"}

    # backfill: exactly the scenario's readings
    backfilled = _ok("backfill", "--manager", "os", "--since", since, "--until", until, env=env)
    assert f"os: {sum(len(vm.readings) for vm in cloud.VMS)} samples from " in backfilled.stdout
    _ok("backfill", "--manager", "aws", "--since", since, "--until", until, env=env)
    # a manual capture of a window ahead of the mark: the mark stays, the gap shows as a hole
    ahead = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    _ok(
        "capture",
        "--manager",
        "os",
        "--since",
        ahead.isoformat(),
        "--until",
        (ahead + timedelta(minutes=5)).isoformat(),
        env=env,
    )
    os_state = _status(env)["os"]
    assert os_state["captured_until"] == cloud.at(24).isoformat()
    assert [(h["start"], h["end"]) for h in os_state["holes"]] == [(cloud.at(24).isoformat(), ahead.isoformat())]

    # the daemon, stopped and started again: it fills the hole and goes on from the mark
    first = _daemon(env, 12)
    second = _daemon(env, 8)
    states = _status(env)
    os_state, aws_state = states["os"], states["aws"]
    assert os_state["holes"] == [] and os_state["failures"] == 0 and aws_state["failures"] == 0
    assert datetime.fromisoformat(os_state["captured_until"]) > ahead
    assert os_state["newest_sample_at"] == cloud.at(23).isoformat()  # the source's newest, an hour ago and more
    assert os_state["state"] == "stale" and aws_state["state"] == "stale"  # nothing new: said, not "ok"
    assert os_state["api_requests"] > 0 and aws_state["cloudwatch_metrics"] > 0
    # US$0.01 per 1,000 metrics requested and per 1,000 ListMetrics requests (some of the requests counted)
    cost_units = aws_state["api_cost_usd"] / (0.01 / 1000)
    assert cost_units == pytest.approx(round(cost_units))
    assert (
        aws_state["cloudwatch_metrics"]
        < round(cost_units)
        <= aws_state["cloudwatch_metrics"] + aws_state["api_requests"]
    )
    assert "journey-secret-value" not in first + second

    # the stored samples are exactly the source's, whatever the daemon re-read
    stored = _os_samples(dsn)
    wanted = {(vm.name, k): expected_row(vm, k) for vm in cloud.VMS for k in vm.readings}
    assert sorted(stored) == sorted(wanted)
    for key, values in wanted.items():
        for metric in METRICS:
            got, want = stored[key][metric], values[metric]
            assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, rel=1e-12), (key, metric)

    # every report, as JSON that is JSON; coverage never above 100; unknown capacity null, never 0 or Infinity
    window = ("--from", since, "--to", until)
    for level in ("host", "cluster", "provider"):
        rows = strict_json(_ok("capacity", "utilization", "--level", level, *window, "--json", env=env).stdout)
        assert rows and all(r["coverage_pct"] is None or 0 <= r["coverage_pct"] <= 100 for r in rows)
        for row in rows:
            assert row["vcpus_capacity"] is None and row["cpu_pct_avg"] is None  # no Nova here: unknown
    for report in (
        ("capacity", "headroom", "--vcpus", "1", "--memory-gb", "2", *window),
        ("capacity", "forecast", *window),
        ("capacity", "rightsize", *window),
        ("chargeback", "show", *window),
    ):
        assert isinstance(strict_json(_ok(*report, "--json", env=env).stdout), list), report
    for form in ("csv", "parquet", "xlsx", "focus"):
        out = tmp_path / f"chargeback.{form}"
        _ok("chargeback", "export", "--format", form, "--output", str(out), *window, env=env)
        assert out.stat().st_size > 0

    # remove one manager (its table out of the config first, as the CLI asks): it says what went, and the other's
    # rows stay as they were
    config.write_text(config.read_text().split("[managers.aws]")[0])
    with psycopg.connect(dsn) as conn:
        counted = conn.execute(
            """SELECT count(*), (SELECT count(*) FROM metric_samples s JOIN resources x ON x.id = s.resource_id
                                 WHERE x.manager_id = m.id)
               FROM resources r JOIN managers m ON m.id = r.manager_id WHERE m.name = 'aws' GROUP BY m.id"""
        ).fetchone()
    removed = _ok("managers", "remove", "aws", "--yes", env=env)
    assert counted is not None and counted[0] >= 4  # the region, the account, the zone, the instance
    assert removed.stdout.strip() == (
        f"removed manager aws with {counted[0]} resources, {counted[1]} samples, 0 hourly rollup rows and 0 daily "
        "rollup rows"  # moto had no datapoint in any window read
    )
    assert _os_samples(dsn) == stored
    assert set(_status(env)) == {"os"}
