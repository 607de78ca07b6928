"""Fuzz: mutated config files and CLI arguments are refused in one line naming what is wrong (exit 2), never a
traceback, and a refused command leaves the stored data as it was."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cloudmeter.cli import app
from cloudmeter.config import Settings, load_settings
from cloudmeter.errors import ConfigError
from cloudmeter.storage.database import Database

SETTINGS = ["dsn", "data_dir", "pool_size", "write_method", "time_zones", "metrics_port", "pool_sise", "zones"]
SCHEDULE = ["capture_interval_s", "refresh_interval_s", "max_window_s", "capture_overlap_s", "jitter_s", "lease_s"]
RETENTION = ["raw_days", "hourly_days", "daily_days", "raw_dayz"]
LITERALS = st.sampled_from(
    [
        "0", "-1", "1", "60", "4", "1000000000000000", "99999999999999999999", "3.5", "nan", "inf", "-inf", "true",
        '""', '"UTC"', '"America"', '"Mars/Base"', '"Europe/Berlin"', '"copy"', '"postgresql://u:pw@[::1:5/cm"',
        '"host=db password = pw"', '"postgres//x"', "[]", '["UTC", "America"]', "[1, 2]", "{}", '{ kind = "aws" }',
        '{ kind = "simulator", vms = -3 }', '{ kind = "simulator", interval_s = 7 }', "1979-05-27T07:32:00Z",
    ]
)  # fmt: skip


@st.composite
def config_files(draw: st.DrawFn) -> bytes:
    """TOML with settings (right and mistyped names) set to values of every type, sometimes broken as bytes."""
    lines = [f"{draw(st.sampled_from(SETTINGS))} = {draw(LITERALS)}" for _ in range(draw(st.integers(0, 3)))]
    for table, keys in (("schedule", SCHEDULE), ("retention", RETENTION)):
        if draw(st.booleans()):
            lines.append(f"[{table}]")
            lines += [f"{draw(st.sampled_from(keys))} = {draw(LITERALS)}" for _ in range(draw(st.integers(1, 3)))]
    if draw(st.booleans()):
        name = draw(st.sampled_from(["lab", "a b", "x.y", "0"]))
        lines += ["[managers]", f'"{name}" = {draw(LITERALS)}']
    text = "\n".join(lines).encode()
    cut = draw(st.sampled_from(["none", "truncate", "latin1", "nul"]))
    if cut == "truncate" and text:
        text = text[: draw(st.integers(0, len(text)))]
    elif cut == "latin1":
        text += "\n# café".encode("latin-1")
    elif cut == "nul":
        text += b"\x00"
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config_files())
def test_a_config_file_loads_or_is_a_config_error(tmp_path: Path, text: bytes) -> None:
    path = tmp_path / "cloudmeter.toml"
    path.write_bytes(text)
    try:
        loaded = load_settings(path)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc)
        assert "pw@" not in str(exc) and "password = pw" not in str(exc)
    else:
        assert isinstance(loaded, Settings)


def checksum(dsn: str) -> tuple[object, ...]:
    """Every stored row that a command could change."""
    with psycopg.connect(dsn) as conn:
        return tuple(
            conn.execute(
                f"SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {table} t"
            ).fetchone()
            for table in ("managers", "resources", "resource_history", "metric_samples", "metric_hourly")
        )


TIMES = ["2026-03-02", "2026-03-02T01:00Z", "2026-03-03", "yesterday", "0001-01-01", "9999-12-31", "2026-13-01",
         "2026-03-02T00:30+14:00", "", "1e9"]  # fmt: skip
COMMANDS = st.one_of(
    st.tuples(st.just("capture"), st.just("-m"), st.sampled_from(["sim", "lab", "nope"]),
              st.just("--since"), st.sampled_from(TIMES), st.just("--until"), st.sampled_from(TIMES)),
    st.tuples(st.just("rollup"), st.just("-m"), st.sampled_from(["sim", "nope"]),
              st.just("--since"), st.sampled_from(TIMES), st.just("--until"), st.sampled_from(TIMES)),
    st.tuples(st.just("backfill"), st.just("-m"), st.sampled_from(["sim", "nope"]), st.just("--since"),
              st.sampled_from(TIMES), st.just("--until"), st.sampled_from(TIMES)),
    st.tuples(st.just("managers"), st.sampled_from(["add", "remove", "enable", "disable"]),
              st.sampled_from(["sim", "lab", "new", ""]), st.sampled_from(["--kind", "--yes", "--set"]),
              st.sampled_from(["simulator", "aws", "vms=-1", "password=clear", "x"])),
    st.tuples(st.just("capacity"), st.sampled_from(["utilization", "rightsize", "forecast"]),
              st.sampled_from(["--from", "--to", "--days", "--tz", "--level", "--top", "--sort", "--output"]),
              st.sampled_from([*TIMES, "-5", "0", "99999999999", "America", "rack", "-x", "xml"])),
    st.tuples(st.just("chargeback"), st.sampled_from(["show", "export"]),
              st.sampled_from(["--group-by", "--interval", "--rates", "--format", "--output", "--days"]),
              st.sampled_from(["tag:", "vm", "yearly", "/nonexistent/x", "pdf", "-1", "tag:team"])),
)  # fmt: skip


@pytest.fixture
def cli_env(cloud: Database, dsn: str, tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "cloudmeter.toml"
    config.write_text('[managers.sim]\nkind = "simulator"\nvms = 2\nstart = 2026-03-02T00:00:00Z\n')
    return {"CLOUDMETER_DSN": dsn, "CLOUDMETER_DATA_DIR": str(tmp_path), "CLOUDMETER_CONFIG": str(config)}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(COMMANDS)
@example(("capacity", "utilization", "--days", "99999999999"))  # OverflowError once
@example(("capacity", "forecast", "--from", "0001-01-01"))
@example(("capture", "-m", "sim", "--since", "2026-03-03", "--until", "2026-03-02"))  # ValueError once
def test_cli_arguments_never_end_in_a_traceback_and_a_refusal_changes_nothing(
    cli_env: dict[str, str], dsn: str, args: tuple[str, ...]
) -> None:
    before = checksum(dsn)
    result = CliRunner().invoke(app, list(args), env={**cli_env, "COLUMNS": "80"})
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
    assert result.exit_code in (0, 1, 2), (args, result.exit_code)
    if result.exit_code:
        assert "Traceback" not in result.stderr + result.stdout, args
    if result.exit_code == 2:
        assert checksum(dsn) == before, args
