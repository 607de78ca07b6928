"""The dashboard files are valid Grafana dashboards that import with the user's own datasource, read only the
data contract's tables, are what ``dashboards/build.py`` writes, and have every query checked by a test."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from dashboards import build
from tests.dashboards import panels as panel_module
from tests.dashboards.conftest import WINDOW
from tests.dashboards.grafana import ALL_VALUE, VARIABLE_REGEX, Variable, expand
from tests.dashboards.panels import BOARD_FILES, COVERED, ROOT, board, grafana_range

DS = {"type": "grafana-postgresql-datasource", "uid": "${DS_CLOUDMETER}"}
#: the data contract's tables (README, "Tables"), the only ones a dashboard may read
CONTRACT = {"managers", "resources", "resource_history", "resource_intervals", "metric_samples", "metric_hourly",
            "metric_daily"}  # fmt: skip
BUILT_INS = {"__interval", "__interval_ms"}
DASHBOARD_KEYS = {"__inputs", "__requires", "panels", "schemaVersion", "templating", "time", "title", "uid", "editable"}
PANEL_KEYS = {"id", "type", "title", "gridPos"}


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(key, SQL) of every panel query and query variable: key is the panel title or ``var:NAME``."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["rawSql"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"var:{variable['name']}", variable["query"]


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")


@pytest.mark.parametrize("name", BOARD_FILES)
def test_the_files_are_what_build_writes(name: str) -> None:
    path = ROOT / "dashboards" / BOARD_FILES[name]
    stem = Path(BOARD_FILES[name]).stem
    assert path.read_text(encoding="utf-8") == json.dumps(build.BOARDS[stem](), indent=2, ensure_ascii=False) + "\n"
    assert set(build.BOARDS) == {Path(f).stem for f in BOARD_FILES.values()}
    assert build.main(["--check"]) == 0


@pytest.mark.parametrize("name", BOARD_FILES)
def test_each_is_a_grafana_dashboard_importable_with_any_postgresql_datasource(name: str) -> None:
    dashboard = board(name)
    assert set(dashboard) >= DASHBOARD_KEYS and dashboard["schemaVersion"] == build.SCHEMA_VERSION
    assert dashboard["id"] is None and dashboard["uid"].startswith("cloudmeter-") and len(dashboard["uid"]) <= 40
    (source,) = dashboard["__inputs"]
    assert source == {**source, "name": "DS_CLOUDMETER", "type": "datasource", "pluginId": DS["type"]}
    required = {(r["type"], r["id"]) for r in dashboard["__requires"]}
    kinds = {p["type"] for p in dashboard["panels"]}
    assert {("grafana", "grafana"), ("datasource", DS["type"])} | {("panel", k) for k in kinds} == required
    ids = [p["id"] for p in dashboard["panels"]]
    titles = [p["title"] for p in dashboard["panels"]]
    assert len(set(ids)) == len(ids) and all(isinstance(i, int) for i in ids)
    assert len(set(titles)) == len(titles)
    for panel in dashboard["panels"]:
        assert set(panel) >= PANEL_KEYS, panel["title"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) and grid[k] >= 0 for k in "hwxy") and grid["x"] + grid["w"] <= 24
        if panel["type"] == "text":
            assert "targets" not in panel and panel["options"]["content"]
            continue
        assert panel["datasource"] == DS and panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DS and target["rawQuery"] is True and target["rawSql"].strip()
            assert target["format"] == ("time_series" if panel["type"] == "timeseries" else "table")
    for a, b in combinations(dashboard["panels"], 2):
        ga, gb = a["gridPos"], b["gridPos"]
        apart = ga["x"] + ga["w"] <= gb["x"] or gb["x"] + gb["w"] <= ga["x"]
        apart |= ga["y"] + ga["h"] <= gb["y"] or gb["y"] + gb["h"] <= ga["y"]
        assert apart, f"{a['title']!r} overlaps {b['title']!r}"


@pytest.mark.parametrize("name", BOARD_FILES)
def test_no_datasource_is_hard_coded(name: str) -> None:
    dashboard = board(name)
    for path, value in walk(dashboard):
        if path.endswith(".datasource"):
            assert value == DS, path
        if path.endswith(".uid") and path != ".uid":
            assert value == DS["uid"], path
    for variable in dashboard["templating"]["list"]:
        assert variable["type"] in ("query", "textbox"), variable["name"]
        if variable["type"] == "query":
            assert variable["datasource"] == DS and variable["definition"] == variable["query"]


@pytest.mark.parametrize("name", BOARD_FILES)
def test_queries_read_only_contract_tables_and_defined_variables(name: str) -> None:
    dashboard = board(name)
    defined = {v["name"] for v in dashboard["templating"]["list"]} | BUILT_INS
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tables_section = readme[readme.index("## Tables") : readme.index("### Rollups")]
    for key, sql in queries(dashboard):
        ctes = set(re.findall(r"(\w+) AS (?:NOT )?(?:MATERIALIZED )?\(", sql))
        read = set(re.findall(r"\b(?:FROM|JOIN)\s+(\w+)\b(?!\s*\()", sql)) - ctes - {"LATERAL"}
        assert read <= CONTRACT, f"{key} reads {read - CONTRACT}"
        assert all(f"`{table}(" in tables_section or f"`{table}`" in tables_section for table in read), key
        for match in VARIABLE_REGEX.finditer(sql):
            variable = match.group(1) or match.group(2) or match.group(4)
            assert variable.startswith("__") or variable in defined, f"{key}: ${variable} is not defined"
            assert not variable.startswith("__") or variable in BUILT_INS or sql[match.end() : match.end() + 1] == "("
        for column in re.findall(r"\bmh\.(\w+)", sql):  # the rollup columns the README documents
            metric = re.sub(r"_(avg|min|max|p95)$", "", column)
            assert re.search(rf"\b{metric}\b", tables_section), f"{key}: mh.{column}"
    for title in (p["title"] for p in dashboard["panels"]):
        for match in VARIABLE_REGEX.finditer(title):
            assert (match.group(1) or match.group(4)) in defined, title


@pytest.mark.parametrize("name", BOARD_FILES)
def test_every_query_expands_to_sql_without_grafana_syntax_left(name: str) -> None:
    dashboard = board(name)
    variables = {
        v["name"]: Variable(v["name"], ALL_VALUE, True, True, options=("1", "2"))
        if v["type"] == "query" and v["multi"]
        else Variable(v["name"], v.get("query") if v["type"] == "textbox" else "1")
        for v in dashboard["templating"]["list"]
    }
    start, end = grafana_range(WINDOW)
    for key, sql in queries(dashboard):
        expanded = expand(sql, start, end, variables)
        assert "$" not in expanded and "[[" not in expanded, key


def test_every_panel_and_query_variable_is_checked_by_a_test() -> None:
    for module in sorted(p.stem for p in Path(__file__).parent.glob("test_*.py")):
        importlib.import_module(f"tests.dashboards.{module}")
    wanted = {(name, key) for name in BOARD_FILES for key, _ in queries(board(name))}
    assert wanted - COVERED == set(), "queries no test checks"
    assert COVERED - wanted == set(), "tests that name a panel or variable that is gone"
    assert panel_module.COVERED is COVERED
