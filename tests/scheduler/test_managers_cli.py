"""``managers add|list|enable|disable|remove`` and ``backfill`` through the real command."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from cloudmeter.collectors.registry import build_collector, parse_manager_config
from cloudmeter.model import Window
from tests.cli.test_cli import run

START = "2026-01-01T00:00:00+00:00"


def test_add_list_disable_backfill_remove(dsn: str, tmp_path: Path) -> None:
    env = {"CLOUDMETER_DSN": dsn, "OS_PASSWORD": "hunter2"}

    added = run("managers", "add", "lab", "--kind", "simulator", "--set", "vms=3", "--set", f"start={START}", env=env)
    again = run("managers", "add", "lab", "--kind", "simulator", env=env)
    clear_secret = run(
        "managers", "add", "os", "--kind", "openstack", "--set", "auth_mode=basic",
        "--set", "gnocchi_url=http://127.0.0.1:1", "--set", "password=hunter2", "--no-verify", env=env,
    )  # fmt: skip
    referenced = run(
        "managers", "add", "os", "--kind", "openstack", "--set", "auth_mode=basic",
        "--set", "gnocchi_url=http://127.0.0.1:1", "--set", "password=env:OS_PASSWORD", "--no-verify", env=env,
    )  # fmt: skip
    unverified = run(
        "managers", "add", "dead", "--kind", "openstack", "--set", "auth_mode=basic",
        "--set", "gnocchi_url=http://127.0.0.1:1", env=env,
    )  # fmt: skip

    assert added.returncode == 0, added.stderr
    assert again.returncode == 2 and "a manager named 'lab' exists already" in again.stderr
    assert clear_secret.returncode == 2 and "give secret field password as env:VARNAME" in clear_secret.stderr
    assert "hunter2" not in clear_secret.stderr
    assert referenced.returncode == 0, referenced.stderr
    assert unverified.returncode == 1 and "not saved: SourceUnavailable" in unverified.stderr

    disabled = run("managers", "disable", "lab", env=env)
    listed = json.loads(run("managers", "list", "--json", env=env).stdout)
    assert disabled.returncode == 0, disabled.stderr
    assert {(m["name"], m["source"], m["enabled"]) for m in listed} == {("lab", "cli", False), ("os", "cli", True)}

    backfill = run(
        "backfill", "--manager", "lab", "--since", "2026-01-01T01:00Z", "--until", "2026-01-01T03:00Z", env=env
    )
    backwards = run(
        "backfill", "--manager", "lab", "--since", "2026-01-01T03:00Z", "--until", "2026-01-01T01:00Z", env=env
    )
    assert backfill.returncode == 0, backfill.stderr
    lab = build_collector("lab", parse_manager_config("lab", {"kind": "simulator", "vms": 3, "start": START}))
    window = Window(datetime(2026, 1, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 3, tzinfo=UTC))
    expected = sum(len(batch) for batch in lab.capture(window))
    assert f"lab: {expected} samples from 2026-01-01 01:00 to 2026-01-01 03:00" in backfill.stdout
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM metric_samples").fetchone() == (expected,)
    assert backwards.returncode == 2 and "is not after --since" in backwards.stderr

    refused = run("managers", "remove", "lab", env=env)
    removed = run("managers", "remove", "lab", "--yes", env=env)
    listed = json.loads(run("managers", "list", "--json", env=env).stdout)
    assert refused.returncode == 2 and "add --yes" in refused.stderr
    assert removed.returncode == 0, removed.stderr
    assert [m["name"] for m in listed] == ["os"]
