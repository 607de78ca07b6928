"""``managers list`` and ``managers remove`` say what is there and what went (issue 20), through the real command."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from cloudmeter.collectors.simulator import SimulatorCollector, SimulatorConfig
from cloudmeter.model import Window
from tests.cli.test_cli import run

START = datetime(2026, 1, 1, tzinfo=UTC)
SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")


def test_list_shows_each_managers_source_times_to_the_second_and_those_whose_config_does_not_load(
    dsn: str, tmp_path: Path
) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[managers.filed]\nkind = "simulator"\nvms = 1\n')
    env = {"CLOUDMETER_DSN": dsn, "CLOUDMETER_CONFIG": str(config)}
    added = run("managers", "add", "lab", "--kind", "simulator", "--set", "vms=1", "--set", f"start={START}", env=env)
    vault = run(
        "managers", "add", "vault", "--kind", "openstack", "--set", "auth_mode=basic",
        "--set", "gnocchi_url=http://127.0.0.1:1", "--set", "password=env:CM_TEST_LIST_PW", "--no-verify",
        env=env | {"CM_TEST_LIST_PW": "hunter2"},
    )  # fmt: skip
    refreshed = run("refresh", "--manager", "lab", env=env)
    assert added.returncode == vault.returncode == refreshed.returncode == 0, added.stderr + vault.stderr

    listed = run("managers", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert {name: (row["kind"], row["source"]) for name, row in rows.items()} == {
        "filed": ("simulator", "config"),
        "lab": ("simulator", "cli"),
        "vault": ("openstack", "cli"),
    }
    with psycopg.connect(dsn) as conn:
        stored = conn.execute("SELECT last_refresh_at FROM managers WHERE name = 'lab'").fetchone()
    assert stored is not None and stored[0].microsecond  # PostgreSQL keeps microseconds; the listing does not
    assert rows["lab"]["last_refresh_at"] == stored[0].replace(microsecond=0).isoformat()
    assert SECONDS.fullmatch(rows["lab"]["last_refresh_at"])
    assert rows["vault"]["last_error"] == (
        "config: manager 'vault' (kind 'openstack') is invalid: password: Value error, refers to environment "
        "variable CM_TEST_LIST_PW, which is not set; export it"
    )


def test_remove_says_what_it_deleted(dsn: str) -> None:
    env = {"CLOUDMETER_DSN": dsn}
    fields = {"vms": 1, "clusters": 1, "hosts_per_cluster": 1, "interval_s": 3600}
    added = run(
        "managers", "add", "lab", "--kind", "simulator", "--set", f"start={START}",
        *(arg for key, value in fields.items() for arg in ("--set", f"{key}={value}")), env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    # the first hour with a sample: one sample of the one VM (its creation may come after START)
    lab = SimulatorCollector("lab", SimulatorConfig.model_validate({"kind": "simulator", "start": START, **fields}))
    first = min(int(b.ts_s.min()) for b in lab.capture(Window(START, START + timedelta(days=3))))
    hour = datetime.fromtimestamp(first, UTC)
    captured = run(
        "capture", "-m", "lab", "--since", hour.isoformat(), "--until", (hour + timedelta(hours=1)).isoformat(), env=env
    )
    assert captured.returncode == 0, captured.stderr
    with psycopg.connect(dsn) as conn:
        of_lab = "SELECT r.id FROM resources r JOIN managers m ON m.id = r.manager_id WHERE m.name = 'lab'"
        counts = [
            conn.execute(f"SELECT count(*) FROM {table} WHERE {column} IN ({of_lab})").fetchone()
            for table, column in (
                ("resources", "id"),
                ("metric_samples", "resource_id"),
                ("metric_hourly", "resource_id"),
                ("metric_daily", "resource_id"),
            )
        ]
    resources, samples, hourly, daily = (count[0] for count in counts if count is not None)
    # a region, provider, cluster, host, project and VM; the VM's one sample; the closed hour of each; no day closed
    assert (resources, samples, hourly, daily) == (6, 1, 6, 0)

    removed = run("managers", "remove", "lab", "--yes", env=env)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout == (
        "removed manager lab with 6 resources, 1 sample, 6 hourly rollup rows and 0 daily rollup rows\n"
    )
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM resources").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM metric_samples").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM metric_hourly").fetchone() == (0,)
    gone = run("managers", "remove", "lab", "--yes", env=env)
    assert gone.returncode == 2 and "there is no manager 'lab'" in gone.stderr


def test_verify_at_80_columns_prints_each_failure_on_its_own_line(dsn: str, tmp_path: Path) -> None:
    """The table leaves the long result out on a narrow terminal: the failure is printed below it, whole."""
    config = tmp_path / "c.toml"
    config.write_text('[managers.down]\nkind = "openstack"\nauth_mode = "basic"\ngnocchi_url = "http://127.0.0.1:1"\n')
    verified = run("managers", "verify", env={"CLOUDMETER_DSN": dsn, "CLOUDMETER_CONFIG": str(config), "COLUMNS": "80"})
    assert verified.returncode == 1, verified.stderr
    failure = json.loads(
        run("managers", "verify", "--json", env={"CLOUDMETER_DSN": dsn, "CLOUDMETER_CONFIG": str(config)}).stdout
    )[0]["result"]
    assert failure.startswith("SourceUnavailable: manager 'down': Gnocchi at http://127.0.0.1:1")
    assert f"down: {failure}" in " ".join(verified.stdout.split())  # rich wraps it at 80 columns
