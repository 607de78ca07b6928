"""A VM whose sampling interval changes (as an AWS instance that gains detailed monitoring does) is expected, hour
by hour, at the interval it had then: coverage over both hours is its samples over 12 + 60, not over 60 + 60, in
every report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from typer.testing import CliRunner

from cloudmeter.cli.capacity import capacity_app
from cloudmeter.collectors.simulator import SimulatorCollector, SimulatorConfig
from cloudmeter.model import Window
from cloudmeter.scheduler import jobs
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database

START = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)
# one VM on one host, the whole world from seed 3; only which interval it sends at differs
WORLD = {"seed": 3, "vms": 1, "clusters": 1, "hosts_per_cluster": 1, "start": START - timedelta(days=1)}
app = typer.Typer()
app.add_typer(capacity_app, name="capacity")


def simulator(coarse_share: float) -> SimulatorCollector:
    config = SimulatorConfig.model_validate(WORLD | {"coarse_share": coarse_share, "coarse_interval_s": 300})
    return SimulatorCollector("lab", config, clock=lambda: START + 3 * HOUR)


def test_each_hour_is_expected_at_the_interval_it_had(db: Database, dsn: str, tmp_path: Path) -> None:
    coarse, fine = simulator(1.0), simulator(0.0)
    (vm,) = [item for item in coarse.inventory().items if item.ref.kind == "vm"]
    assert vm.created_at is not None and vm.created_at <= START and vm.retired_at is None  # alive throughout
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, "lab", "simulator", coarse.config.public_fields())
    jobs.refresh_inventory(db, manager_id, coarse)
    first = jobs.capture(db, manager_id, coarse, Window(START, START + HOUR))  # at 300 s
    second = jobs.capture(db, manager_id, fine, Window(START + HOUR, START + 2 * HOUR))  # at 60 s
    assert (first.interval_s, second.interval_s) == (300, 60)
    with db.connection() as conn:
        (stored,) = conn.execute(
            "SELECT count(*) FROM metric_samples s JOIN resources r ON r.id = s.resource_id WHERE r.kind = 'vm'"
        ).fetchone() or (0,)
    assert stored == first.rows + second.rows and 0 < first.rows <= 12 and 0 < second.rows <= 60

    window = ["--from", START.isoformat(), "--to", (START + 2 * HOUR).isoformat()]
    env = {"CLOUDMETER_DSN": dsn, "CLOUDMETER_DATA_DIR": str(tmp_path), "COLUMNS": "250"}
    for report in ("utilization", "rightsize"):  # capacity's hours, and the VM-hours rightsize and chargeback use
        result = CliRunner().invoke(app, ["capacity", report, "--json", *window], env=env)
        assert result.exit_code == 0, result.stderr
        (row,) = json.loads(result.stdout)
        assert row["coverage_pct"] == 100 * stored / (12 + 60), report
