"""Coverage of an AWS manager whose instances have different intervals, on moto's server and a real PostgreSQL.

One detailed-monitoring instance (60-s data) and one with basic monitoring (300-s data) share a zone (a
cluster): each VM's hourly row expects what its own interval promises, the cluster the sum, and the
cluster's series holds the basic instance's 5-minute value over each of its five minutes. The figures are
derived by hand in the comments; ``capacity utilization --level cluster --json`` is run as a user would.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cloudmeter.cli.capacity import capacity_app
from cloudmeter.collectors.aws import CloudWatchCollector
from cloudmeter.model import Window, epoch_s
from cloudmeter.scheduler import jobs
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database
from tests.collectors.aws_fixtures import at
from tests.collectors.test_cloudwatch import collector, moto, moto_url, put, run

__all__ = ["moto", "moto_url"]  # the moto server fixtures, shared with test_cloudwatch

app = typer.Typer()
app.add_typer(capacity_app, name="capacity")


def test_each_instance_expects_its_own_interval(moto: str, db: Database, dsn: str, tmp_path: Path) -> None:
    t0 = -(-epoch_s(datetime.now(UTC)) // 3600) * 3600 + 3600  # launched now, the data an hour or two ahead
    detailed = run(moto, "m5.large", "us-east-1a", detailed=True)["InstanceId"]  # 2 vCPUs
    basic = run(moto, "t3.micro", "us-east-1a")["InstanceId"]  # 2 vCPUs, basic monitoring
    # detailed: 40 % every minute of the first 45; basic: 10 % every 5 minutes of the first 30 (6 of 12)
    put(moto, "AWS/EC2", "CPUUtilization", {"InstanceId": detailed}, [(t0 + 60 * k, 40.0) for k in range(45)])
    put(moto, "AWS/EC2", "CPUUtilization", {"InstanceId": basic}, [(t0 + 300 * k, 10.0) for k in range(6)])
    lab = CloudWatchCollector("lab", collector(moto).config, clock=lambda: at(t0 + 7200))
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, "lab", "aws", lab.config.public_fields())
    jobs.refresh_inventory(db, manager_id, lab)

    result = jobs.capture(db, manager_id, lab, Window(at(t0), at(t0 + 3600)))

    assert (result.rows, result.interval_s) == (45 + 6, 60)  # one instance at each: the finer wins the tie
    with db.connection() as conn:
        rows = conn.execute(
            """SELECT r.kind, r.ems_ref, h.sample_count, h.expected_count, h.child_count, h.children_with_data,
                      h.cpu_used_cores_avg, h.cpu_used_cores_min, h.cpu_used_cores_max
               FROM metric_hourly h JOIN resources r ON r.id = h.resource_id ORDER BY r.kind, r.ems_ref"""
        ).fetchall()
        stored = conn.execute(
            """SELECT r.ems_ref, i.interval_s, extract(epoch FROM i.valid_from)::int8,
                      extract(epoch FROM i.valid_to)::int8
               FROM resource_intervals i JOIN resources r ON r.id = i.resource_id ORDER BY r.ems_ref"""
        ).fetchall()
    assert sorted(stored) == sorted([(detailed, 60, t0, t0 + 3600), (basic, 300, t0, t0 + 3600)])
    got = {(kind, ref): tuple(row) for kind, ref, *row in rows}
    approx = pytest.approx
    assert got[("vm", detailed)][:2] == (45, 60)  # 45 of the 60 a 60-s series promises
    assert got[("vm", basic)][:2] == (6, 12)  # 6 of 12, not of 60
    # The zone: 45 + 6 of 60 + 12. Its series is on the 60-s grid; the basic instance's 0.2 cores hold over
    # each of its 5 minutes: 1.0 core for minutes 0-29, 0.8 for 30-44; nothing from minute 45 on.
    cluster = got[("cluster", "us-east-1a")]
    assert cluster[:4] == (51, 72, 2, 2)
    assert cluster[4:] == (approx((30 * 1.0 + 15 * 0.8) / 45), approx(0.8), approx(1.0))
    for level in ("provider", "region"):
        assert [row[:2] for (kind, _), row in got.items() if kind == level] == [(51, 72)]
    assert all(row[0] <= row[1] for row in got.values())

    window = ["--from", at(t0).isoformat(), "--to", at(t0 + 3600).isoformat()]
    code = CliRunner().invoke(
        app,
        ["capacity", "utilization", "--level", "cluster", "--json", *window],
        env={"CLOUDMETER_DSN": dsn, "CLOUDMETER_DATA_DIR": str(tmp_path), "COLUMNS": "250"},
    )
    assert code.exit_code == 0, code.stderr
    report = {row["cluster"]: row for row in json.loads(code.stdout)}
    assert report["us-east-1a"]["coverage_pct"] == approx(100 * 51 / 72)  # 70.83, never above 100
    assert report["us-east-1a"]["cpu_cores_avg"] == approx(42 / 45)
