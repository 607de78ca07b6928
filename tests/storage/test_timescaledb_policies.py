"""TimescaleDB's compression and retention policies come from the configuration as soon as ``db init`` runs.

On the real TimescaleDB SQL of PGlite (tests/fix_timescale.py), through the real ``cloudmeter`` command:
``db init`` installs them from ``[retention]``; ``status`` (text and ``--json``) says which are missing, differ
or are paused; ``db migrate`` makes them match again and leaves matching ones (their jobs) alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

from cloudmeter.storage.partitions import check_timescaledb_policies


def cloudmeter(*args: str, dsn: str, config: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDMETER_")}
    env.update(
        COLUMNS="80",
        CLOUDMETER_DSN=dsn,
        CLOUDMETER_CONFIG=str(config),
        CLOUDMETER_DATA_DIR=str(config.parent),
        CLOUDMETER_POOL_SIZE="1",  # PGlite has one session
        CLOUDMETER_WRITE_METHOD="insert",  # and no COPY FROM STDIN
    )
    done = subprocess.run(
        [sys.executable, "-m", "cloudmeter", *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stdout + done.stderr
    return done.stdout


def changes(out: str) -> list[str]:
    """The lines of ``db init`` / ``db migrate`` after the one about migrations (which wraps at 80 columns)."""
    verbs = ("added ", "changed ", "removed ", "re-created ", "TimescaleDB policies ")
    return [line for line in out.splitlines() if line.startswith(verbs)]


def retention(config: Path, raw: int, hourly: int, daily: int) -> Path:
    config.write_text(f"[retention]\nraw_days = {raw}\nhourly_days = {hourly}\ndaily_days = {daily}\n")
    return config


def jobs(dsn: str) -> list[tuple[Any, ...]]:
    """(table, proc, drop_after, compress_after, scheduled) of every policy job, and its id last."""
    with psycopg.connect(dsn, prepare_threshold=None) as conn:
        return conn.execute(
            """SELECT hypertable_name, proc_name, config->>'drop_after', config->>'compress_after', scheduled, job_id
               FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL ORDER BY 1, 2"""
        ).fetchall()


def without_ids(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [row[:-1] for row in rows]


def policy(table: str, kind: str, configured: str | None, installed: str | None, state: str) -> dict[str, Any]:
    return {"table": table, "policy": kind, "configured": configured, "installed": installed, "state": state}


def test_db_init_installs_policies_status_reports_drift_and_migrate_fixes_it(
    timescale_clean_dsn: str, tmp_path: Path
) -> None:
    dsn, config = timescale_clean_dsn, retention(tmp_path / "cloudmeter.toml", raw=10, hourly=100, daily=1000)
    assert changes(cloudmeter("db", "init", dsn=dsn, config=config)) == [
        "added the retention policy on metric_samples (10 days)",
        "added the compression policy on metric_samples (3 days)",
        "added the retention policy on metric_hourly (100 days)",
        "added the compression policy on metric_hourly (21 days)",
        "added the retention policy on metric_daily (1000 days)",
    ]
    installed = jobs(dsn)
    assert without_ids(installed) == [
        ("metric_daily", "policy_retention", "1000 days", None, True),
        ("metric_hourly", "policy_compression", None, "21 days", True),
        ("metric_hourly", "policy_retention", "100 days", None, True),
        ("metric_samples", "policy_compression", None, "3 days", True),
        ("metric_samples", "policy_retention", "10 days", None, True),
    ]
    cloudmeter("demo", "--vms", "3", "--days", "1", "--json", dsn=dsn, config=config)  # migrates too
    report = json.loads(cloudmeter("status", "--json", dsn=dsn, config=config))
    assert report["notes"] == [] and {p["state"] for p in report["policies"]} == {"ok"}
    assert report["policies"][0] == policy("metric_samples", "retention", "10 days", "10 days", "ok")

    retention(config, raw=20, hourly=100, daily=1000)  # the configuration changes...
    with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:  # ...and so does the server
        conn.execute("SELECT remove_compression_policy('metric_hourly')")
        conn.execute("SELECT add_compression_policy('metric_daily', compress_after => INTERVAL '60 days')")
        conn.execute(
            "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
            "WHERE hypertable_name = 'metric_daily' AND proc_name = 'policy_retention'"
        )
    report = json.loads(cloudmeter("status", "--json", dsn=dsn, config=config))
    assert report["policies"] == [
        policy("metric_samples", "retention", "20 days", "10 days", "differs"),
        policy("metric_samples", "compression", "3 days", "3 days", "ok"),
        policy("metric_hourly", "retention", "100 days", "100 days", "ok"),
        policy("metric_hourly", "compression", "21 days", None, "missing"),
        policy("metric_daily", "retention", "1000 days", "1000 days", "paused"),
        policy("metric_daily", "compression", None, "60 days", "unwanted"),
    ]
    note = (
        "TimescaleDB policies differ from the configuration: the retention policy on metric_samples is 10 days "
        "(configured: 20 days); no compression policy on metric_hourly (configured: 21 days); the retention "
        "policy on metric_daily (1000 days) is paused; a compression policy on metric_daily (60 days) that "
        "cloudmeter does not configure; run `cloudmeter db migrate` to install them (the daemon's maintenance "
        "also does)"
    )
    assert report["notes"] == [note]
    text = " ".join(cloudmeter("status", dsn=dsn, config=config).split())  # wrapped at 80 columns
    assert f"note: {note}" in text
    assert "policies" in text and "differs" in text and "unwanted" in text
    assert " ".join(cloudmeter("db", "status", dsn=dsn, config=config).split()).count(note) == 1

    assert changes(cloudmeter("db", "migrate", dsn=dsn, config=config)) == [
        "changed the retention policy on metric_samples from 10 days to 20 days",
        "added the compression policy on metric_hourly (21 days)",
        "re-created the paused retention policy on metric_daily (1000 days)",
        "removed the compression policy on metric_daily (60 days; none configured)",
    ]
    fixed = jobs(dsn)
    assert without_ids(fixed) == [
        ("metric_daily", "policy_retention", "1000 days", None, True),
        ("metric_hourly", "policy_compression", None, "21 days", True),
        ("metric_hourly", "policy_retention", "100 days", None, True),
        ("metric_samples", "policy_compression", None, "3 days", True),
        ("metric_samples", "policy_retention", "20 days", None, True),
    ]
    assert fixed[2][-1] == installed[2][-1] and fixed[3][-1] == installed[3][-1]  # matching jobs kept their ids
    report = json.loads(cloudmeter("status", "--json", dsn=dsn, config=config))
    assert report["notes"] == [] and {p["state"] for p in report["policies"]} == {"ok"}
    again = cloudmeter("db", "migrate", dsn=dsn, config=config)
    assert changes(again) == ["TimescaleDB policies match the configuration"]
    assert jobs(dsn) == fixed


def test_intervals_compare_as_intervals_not_as_text(timescale_conn: psycopg.Connection[Any]) -> None:
    from cloudmeter.storage import schema

    schema.migrate(timescale_conn)
    timescale_conn.execute("SELECT add_retention_policy('metric_samples', drop_after => INTERVAL '336 hours')")
    checks = check_timescaledb_policies(timescale_conn, {"raw_days": 14, "hourly_days": 400, "daily_days": 1830})
    assert [(c.table, c.policy, c.configured, c.state) for c in checks][:2] == [
        ("metric_samples", "retention", "14 days", "ok"),
        ("metric_samples", "compression", "3 days", "missing"),
    ]
