"""Every report read in an 80-column terminal: nothing cut, rows are things, and the same rows as JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from cloudmeter.cli.capacity import capacity_app
from cloudmeter.cli.chargeback import chargeback_app
from cloudmeter.cli.output import cell
from cloudmeter.storage import schema
from cloudmeter.storage.database import Database

app = typer.Typer()
app.add_typer(capacity_app, name="capacity")
app.add_typer(chargeback_app, name="chargeback")
WINDOW = ["--from", "2026-03-02", "--to", "2026-03-04"]
REPORTS = {
    "utilization per host": ("capacity", "utilization", "--level", "host", *WINDOW),
    "utilization per cluster": ("capacity", "utilization", *WINDOW),
    "headroom": ("capacity", "headroom", "--vcpus", "2", "--memory-gb", "4", *WINDOW),
    "forecast": ("capacity", "forecast", "--from", "2026-03-01", "--to", "2026-03-04"),
    "rightsize": ("capacity", "rightsize", *WINDOW),
    "chargeback": ("chargeback", "show", *WINDOW, "--group-by", "vm", "--interval", "daily"),
}


@pytest.fixture
def env(cloud: Database, dsn: str, tmp_path: Path) -> dict[str, str]:
    return {"CLOUDMETER_DSN": dsn, "CLOUDMETER_DATA_DIR": str(tmp_path), "COLUMNS": "80"}


def invoke(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("name", list(REPORTS))
def test_tables_fit_80_columns_and_cut_no_cell(env: dict[str, str], name: str) -> None:
    args = REPORTS[name]
    table = invoke(env, *args)
    rows = json.loads(invoke(env, *args, "--output", "json"))
    assert rows, "the test cloud has data in this window"
    assert "…" not in table
    assert max(len(line.rstrip()) for line in table.splitlines()) <= 80
    lines = table.splitlines()
    first = next(iter(rows[0]))
    shown = [c for c in rows[0] if c.replace("_", " ") in table or c.split("_")[0] in table]
    for row in rows:  # each row's first cell and every shown number, whole, on one line of the table
        matching = [line for line in lines if cell(first, row[first]) in line]
        assert matching, (first, row[first])
        assert any(all(cell(c, _value(row[c])) in line for c in shown[:3]) for line in matching), row


def _value(json_value: object) -> object:
    """A JSON value as the frame held it: exact decimals travel as text."""
    is_decimal = isinstance(json_value, str) and re.fullmatch(r"-?\d+\.\d+", json_value)
    return Decimal(json_value) if is_decimal else json_value  # type: ignore[arg-type]


def test_csv_carries_the_json_rows_and_sort_and_top_pick_them(env: dict[str, str]) -> None:
    args = REPORTS["rightsize"]
    rows = json.loads(invoke(env, *args, "--json"))
    parsed = list(csv.DictReader(io.StringIO(invoke(env, *args, "--output", "csv"))))
    assert [r["name"] for r in parsed] == [r["name"] for r in rows]
    assert list(parsed[0]) == list(rows[0])
    top = json.loads(invoke(env, *args, "--json", "--sort=-cpu_cores_pctl", "--top", "2"))
    want = sorted((r for r in rows if r["cpu_cores_pctl"] is not None), key=lambda r: -r["cpu_cores_pctl"])[:2]
    assert [r["name"] for r in top] == [r["name"] for r in want]


def test_sort_by_an_unknown_column_names_the_columns(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, [*REPORTS["headroom"], "--sort", "speed"], env=env)
    assert result.exit_code == 2
    assert "--sort 'speed' is not a column; choose one of: cluster, fit," in result.stderr


def test_cells_are_formatted_by_unit() -> None:
    assert [cell("monthly_cost", 1234.5), cell("coverage_pct", 99.456), cell("mem_used_bytes_avg", 3 * 2**30)] == [
        "1,234.50",
        "99.5",
        "3.0 GiB",
    ]
    assert [cell("net_bps_avg", 2048.0), cell("fit", None), cell("idle", True), cell("vms", 12345)] == [
        "2.0 KiB/s",
        "-",
        "yes",
        "12,345",
    ]
    assert [cell("recommended_cpu_request_cores", 0.3), cell("memory_request_gb", 615 / 1024)] == ["0.300", "615.0 MiB"]


def test_an_export_to_a_missing_directory_is_one_line_before_any_work(env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "missing" / "x.csv"
    result = CliRunner().invoke(app, ["chargeback", "export", *WINDOW, "--output", str(target)], env=env)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: cannot write export {target}: No such file or directory"


@pytest.mark.parametrize("name", ["utilization per cluster", "chargeback"])
def test_a_report_on_a_database_without_schema_says_what_to_do(dsn: str, tmp_path: Path, name: str) -> None:
    env = {"CLOUDMETER_DSN": dsn, "CLOUDMETER_DATA_DIR": str(tmp_path), "COLUMNS": "80"}
    result = CliRunner().invoke(app, list(REPORTS[name]), env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no cloudmeter data in ") and "run `cloudmeter demo`" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_report_on_an_older_schema_says_to_migrate(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as old_program, psycopg.connect(dsn) as conn:
        old_program.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:-1])
        old_program.setattr(schema, "LATEST", schema.LATEST - 1)
        schema.migrate(conn)
    env = {"CLOUDMETER_DSN": dsn, "CLOUDMETER_DATA_DIR": str(tmp_path), "COLUMNS": "80"}
    result = CliRunner().invoke(app, list(REPORTS["utilization per cluster"]), env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: the schema of ")
    assert f"is at version {schema.LATEST - 1}, this cloudmeter's is {schema.LATEST}: run `cloudmeter db migrate`" in (
        " ".join(result.stderr.split())
    )


def test_a_database_error_is_one_line(cloud: Database, dsn: str, tmp_path: Path) -> None:
    with cloud.connection() as conn:
        conn.execute("DROP TABLE resource_history")  # the schema changed under the command
    env = {"CLOUDMETER_DSN": dsn, "CLOUDMETER_DATA_DIR": str(tmp_path), "COLUMNS": "80"}
    result = CliRunner().invoke(app, list(REPORTS["rightsize"]), env=env)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        'error: PostgreSQL: relation "resource_history" does not exist (SQLSTATE 42P01); `cloudmeter status` shows '
        "the database"
    )
