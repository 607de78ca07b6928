"""The report commands through typer: JSON output, files written, and exit code 2 naming a bad argument."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from cloudmeter.cli.capacity import capacity_app
from cloudmeter.cli.chargeback import chargeback_app
from cloudmeter.storage.database import Database
from tests.reports.rates import CARD_TOML, TOTAL

app = typer.Typer()
app.add_typer(capacity_app, name="capacity")
app.add_typer(chargeback_app, name="chargeback")
WINDOW = ["--from", "2026-03-02", "--to", "2026-03-04"]


@pytest.fixture
def env(cloud: Database, dsn: str, tmp_path: Path) -> dict[str, str]:
    return {"CLOUDMETER_DSN": dsn, "CLOUDMETER_DATA_DIR": str(tmp_path), "COLUMNS": "250"}


def invoke(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_capacity_commands_print_json(env: dict[str, str], tmp_path: Path) -> None:
    code, out, err = invoke(env, "capacity", "headroom", "--vcpus", "4", "--memory-gb", "8", *WINDOW, "--json")
    assert code == 0, err
    assert {r["cluster"]: r["fit"] for r in json.loads(out)} == {"c1": 5, "c2": 2}
    code, out, err = invoke(env, "capacity", "utilization", *WINDOW, "--json", "--plot", str(tmp_path / "u.png"))
    assert code == 0, err
    assert {r["cluster"]: r["vcpus_capacity"] for r in json.loads(out)} == {"c1": 32.0, "c2": 16.0}
    assert (tmp_path / "u.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, err = invoke(env, "capacity", "rightsize", *WINDOW, "--json")
    assert code == 0, err
    assert {r["name"]: r["action"] for r in json.loads(out)}["vm-b"] == "idle"
    code, out, err = invoke(env, "capacity", "forecast", *WINDOW, "--json", "--plot", str(tmp_path / "f.png"))
    assert code == 0, err
    assert {r["status"] for r in json.loads(out)} == {"insufficient data"} and (tmp_path / "f.png").exists()


def test_chargeback_export_focus_and_the_sample_card(env: dict[str, str], tmp_path: Path) -> None:
    rates = tmp_path / "rates.toml"
    rates.write_text(CARD_TOML)
    out_file = tmp_path / "focus.csv"
    code, out, err = invoke(
        env, "chargeback", "export", "--rates", str(rates), *WINDOW, "--group-by", "project", "--format", "focus",
        "--output", str(out_file),
    )  # fmt: skip
    assert code == 0, err
    assert f"total {TOTAL:,.2f} EUR" in out  # to the cent on screen; the file keeps the exact nanos
    focus = pl.read_csv(out_file, infer_schema=False)
    assert sum(Decimal(v) for v in focus["BilledCost"]) == TOTAL
    code, out, err = invoke(env, "chargeback", "show", *WINDOW, "--group-by", "tag:team", "--json")  # sample card
    assert code == 0, err
    assert {r["tag_team"] for r in json.loads(out)} == {"web", "data", "ml", None}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["chargeback", "export", *WINDOW, "--format", "pdf", "--output", "x"], "--format 'pdf' is not one of"),
        (["chargeback", "export", *WINDOW, "--group-by", "rack", "--output", "x"], "--group-by 'rack' is not one of"),
        (["chargeback", "export", *WINDOW, "--rates", "/nonexistent.toml", "--output", "x"], "give an existing file"),
        (
            ["chargeback", "export", "--from", "2026-03-04", "--to", "2026-03-02", "--output", "x"],
            "is not after --from",
        ),
        (["chargeback", "show", "--from", "March", "--to", "2026-03-02"], "--from 'March' is not an ISO 8601 date"),
        (["capacity", "utilization", "--level", "rack", *WINDOW], "--level 'rack' is not one of host, cluster"),
        (["capacity", "utilization", "--tz", "Mars/Olympus", *WINDOW], "time zone 'Mars/Olympus' is not an IANA"),
        (["capacity", "headroom", "--vcpus", "0", "--memory-gb", "8", *WINDOW], "--vcpus > 0"),
    ],
)
def test_bad_arguments_exit_2_naming_them(env: dict[str, str], args: list[str], message: str) -> None:
    code, _, err = invoke(env, *args)
    assert code == 2
    assert message in " ".join(err.split())
