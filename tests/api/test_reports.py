"""Every report over HTTP equals the CLI's on the same database: ``--json`` (the very text), ``--output csv``, the
chargeback files; bad parameters are 422 naming them; the OpenAPI schema lists every endpoint with its
parameters; ``/metrics`` answers Prometheus text."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import polars as pl
import pyarrow.parquet as pq
import pytest

from tests.api.conftest import Api

FROM, TO = "2026-03-02", "2026-03-05T06:00Z"
WINDOW = {"from": FROM, "to": TO}

#: (CLI arguments, API path, query parameters): the same report asked both ways.
REPORTS: list[tuple[list[str], str, dict[str, Any]]] = [
    (["capacity", "utilization"], "/api/v1/capacity/utilization", {}),
    (["capacity", "utilization", "--level", "host", "--tz", "Europe/Berlin"], "/api/v1/capacity/utilization",
     {"level": "host", "tz": "Europe/Berlin"}),
    (["capacity", "utilization", "--level", "provider", "--sort=-cpu_pct_avg", "--top", "1"],
     "/api/v1/capacity/utilization", {"level": "provider", "sort": "-cpu_pct_avg", "top": 1}),
    (["capacity", "utilization", "--level", "host", "--view", "host_measured"], "/api/v1/capacity/utilization",
     {"level": "host", "view": "host_measured"}),
    (["capacity", "utilization", "--view", "host_measured"], "/api/v1/capacity/utilization",
     {"view": "host_measured"}),
    (["capacity", "headroom", "--vcpus", "4", "--memory-gb", "8"], "/api/v1/capacity/headroom",
     {"vcpus": 4, "memory_gb": 8}),
    (["capacity", "headroom", "--vcpus", "2", "--memory-gb", "4.5", "--cpu-usage-pct", "70", "--mem-usage-pct",
      "80", "--cpu-allocation-ratio", "2", "--mem-allocation-ratio", "1.5"], "/api/v1/capacity/headroom",
     {"vcpus": 2, "memory_gb": 4.5, "cpu_usage_pct": 70, "mem_usage_pct": 80, "cpu_allocation_ratio": 2,
      "mem_allocation_ratio": 1.5}),
    (["capacity", "forecast"], "/api/v1/capacity/forecast", {}),
    (["capacity", "forecast", "--limit", "50", "--tz", "Europe/Berlin"], "/api/v1/capacity/forecast",
     {"limit": 50, "tz": "Europe/Berlin"}),
    (["capacity", "rightsize"], "/api/v1/capacity/rightsize", {}),
    (["capacity", "rightsize", "--percentile", "90", "--headroom", "10", "--idle-cpu-pct", "3",
      "--sort=-monthly_savings", "--top", "5"], "/api/v1/capacity/rightsize",
     {"percentile": 90, "headroom": 10, "idle_cpu_pct": 3, "sort": "-monthly_savings", "top": 5}),
    (["chargeback", "show"], "/api/v1/chargeback", {}),
    (["chargeback", "show", "--group-by", "vm", "--interval", "daily"], "/api/v1/chargeback",
     {"group_by": "vm", "interval": "daily"}),
    (["chargeback", "show", "--group-by", "tag:env", "--interval", "weekly", "--tz", "Europe/Berlin"],
     "/api/v1/chargeback", {"group_by": "tag:env", "interval": "weekly", "tz": "Europe/Berlin"}),
    (["chargeback", "show", "--group-by", "cluster"], "/api/v1/chargeback", {"group_by": "cluster"}),
]  # fmt: skip
IDS = [" ".join(args) for args, _, _ in REPORTS]


@pytest.mark.parametrize(("args", "path", "params"), REPORTS, ids=IDS)
def test_every_report_equals_the_clis_json(
    api: Api, viewer: httpx.Client, args: list[str], path: str, params: dict[str, Any]
) -> None:
    code, out, err = api.cli(*args, "--from", FROM, "--to", TO, "--json")
    assert code == 0, err
    answer = viewer.get(path, params={**WINDOW, **params})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.text == out.rstrip("\n")  # the same text, not only the same values
    rows = json.loads(answer.text)
    assert rows, "a report without rows proves little"


@pytest.mark.parametrize(("args", "path", "params"), REPORTS[::3], ids=IDS[::3])
def test_csv_equals_the_clis_output_csv(
    api: Api, viewer: httpx.Client, args: list[str], path: str, params: dict[str, Any]
) -> None:
    code, out, err = api.cli(*args, "--from", FROM, "--to", TO, "--output", "csv")
    assert code == 0, err
    by_param = viewer.get(path, params={**WINDOW, **params, "format": "csv"})
    by_accept = viewer.get(path, params={**WINDOW, **params}, headers={"Accept": "text/csv"})
    for answer in (by_param, by_accept):
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "text/csv; charset=utf-8"
        assert answer.text == out


def test_the_default_window_is_the_clis(api: Api, viewer: httpx.Client) -> None:
    """Without from/to, both read the days before the last whole hour (the data is older: no rows, same rows)."""
    code, out, err = api.cli("capacity", "utilization", "--days", "3660", "--json")
    assert code == 0, err
    answer = viewer.get("/api/v1/capacity/utilization", params={"days": 3660})
    assert answer.json() == json.loads(out)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "xlsx", "focus"])
def test_chargeback_downloads_are_the_clis_export_files(
    api: Api, viewer: httpx.Client, tmp_path: Path, fmt: str
) -> None:
    written = tmp_path / f"export.{fmt}"
    code, _, err = api.cli(
        "chargeback", "export", "--from", FROM, "--to", "2026-03-05", "--format", fmt, "--group-by", "project",
        "--tz", "Europe/Berlin", "--output", str(written),
    )  # fmt: skip
    assert code == 0, err
    params = {"from": FROM, "to": "2026-03-05", "format": fmt, "group_by": "project", "tz": "Europe/Berlin"}
    with viewer.stream("GET", "/api/v1/chargeback/export", params=params) as answer:
        assert answer.status_code == 200, answer.read()
        body = b"".join(answer.iter_bytes())
        disposition = answer.headers["content-disposition"]
    ending = {"focus": "focus.csv"}.get(fmt, fmt)
    assert disposition == f'attachment; filename="chargeback-20260302-20260305.{ending}"'
    if fmt in ("csv", "focus"):
        assert body == written.read_bytes()
    if fmt == "parquet":
        assert pq.read_table(io.BytesIO(body)).equals(pq.read_table(written))
        assert pq.read_table(io.BytesIO(body)).num_rows > 0
    if fmt == "xlsx":
        sheets = [openpyxl.load_workbook(source).active for source in (io.BytesIO(body), written)]
        rows = [[list(row) for row in sheet.iter_rows(values_only=True)] for sheet in sheets if sheet is not None]
        assert len(rows) == 2 and rows[0] == rows[1] and len(rows[0]) > 1
    if fmt == "focus":
        columns = pl.read_csv(io.BytesIO(body), infer_schema=False).columns
        for column in ("BilledCost", "EffectiveCost", "BillingCurrency", "ChargePeriodStart", "ChargePeriodEnd",
                       "ResourceId", "ServiceCategory", "ProviderName", "x_CostNanos"):  # fmt: skip
            assert column in columns


def test_a_file_format_on_the_report_points_to_the_export(viewer: httpx.Client) -> None:
    answer = viewer.get("/api/v1/chargeback", params={**WINDOW, "format": "xlsx"})
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["query", "format"] and "/api/v1/chargeback/export?format=xlsx" in error["msg"]


@pytest.mark.parametrize(
    ("path", "params", "field", "says"),
    [
        ("/api/v1/capacity/utilization", {"days": 0}, "days", "greater than or equal to 1"),
        ("/api/v1/capacity/forecast", {"days": 2}, "days", "greater than or equal to 3"),
        ("/api/v1/capacity/utilization", {"level": "galaxy"}, "level", "'host', 'cluster' or 'provider'"),
        ("/api/v1/capacity/utilization", {"from": "yesterday"}, "from", "from 'yesterday' is not an ISO 8601 date"),
        ("/api/v1/capacity/utilization", {"from": "2026-03-05", "to": "2026-03-02"}, "to", "is not after from"),
        ("/api/v1/capacity/utilization", {"from": "1900-01-01"}, "from", "give a time between 1970 and 2200"),
        ("/api/v1/capacity/utilization", {"from": "2000-01-01", "to": "2026-01-01"}, "to", "spans more than 3660"),
        ("/api/v1/capacity/utilization", {"tz": "Mars/Olympus"}, "tz", "time zone 'Mars/Olympus' is not an IANA"),
        ("/api/v1/capacity/utilization", {"sort": "nope"}, "sort", "sort 'nope' is not a column"),
        ("/api/v1/capacity/utilization", {"top": 0}, "top", "greater than or equal to 1"),
        ("/api/v1/capacity/utilization", {"format": "pdf"}, "format", "'json' or 'csv'"),
        ("/api/v1/capacity/utilization", {"view": "hosts"}, "view", "'vms' or 'host_measured'"),
        (
            "/api/v1/capacity/utilization",
            {"view": "host_measured", "level": "provider"},
            "level",
            "view host_measured is per host or cluster, not 'provider'; give level host or level cluster",
        ),
        ("/api/v1/capacity/headroom", {"memory_gb": 8}, "vcpus", "Field required"),
        ("/api/v1/capacity/headroom", {"vcpus": 0, "memory_gb": 8}, "vcpus", "greater than 0"),
        ("/api/v1/capacity/headroom", {"vcpus": 2, "memory_gb": "lots"}, "memory_gb", "valid number"),
        ("/api/v1/capacity/headroom", {"vcpus": 2, "memory_gb": 8, "cpu_usage_pct": 101}, "cpu_usage_pct", "100"),
        ("/api/v1/capacity/forecast", {"limit": 0}, "limit", "greater than 0"),
        ("/api/v1/capacity/rightsize", {"percentile": 150}, "percentile", "less than or equal to 100"),
        ("/api/v1/chargeback", {"group_by": "rack"}, "group_by", "group_by 'rack' is not one of vm, project"),
        ("/api/v1/chargeback", {"interval": "hourly"}, "interval", "interval 'hourly' is not one of daily"),
        ("/api/v1/chargeback/export", {"from": FROM}, "to", "Field required"),
        ("/api/v1/chargeback/export", {**WINDOW, "format": "pdf"}, "format", "'csv', 'parquet', 'xlsx' or 'focus'"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(
    viewer: httpx.Client, path: str, params: dict[str, Any], field: str, says: str
) -> None:
    answer = viewer.get(path, params=params)
    assert answer.status_code == 422, answer.text
    errors = answer.json()["detail"]
    assert [error["loc"] for error in errors] == [["query", field]], errors
    assert says in errors[0]["msg"]
    assert "Traceback" not in answer.text and "--" not in errors[0]["msg"]  # the API's names, not the CLI's options


def test_openapi_lists_every_endpoint_with_its_parameters(api: Api) -> None:
    with api.client() as anonymous:  # the schema and its docs need no token
        schema = anonymous.get("/api/v1/openapi.json").json()
        assert anonymous.get("/api/v1/docs").status_code == 200
    parameters = {
        (path, method): {p["name"] for p in operation.get("parameters", ())}
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    }
    window = {"from", "to", "days", "tz"}
    shown = {"sort", "top", "format"}
    expected = {
        ("/api/v1/status", "get"): set(),
        ("/api/v1/managers", "get"): shown,
        ("/api/v1/managers", "post"): set(),
        ("/api/v1/managers/{name}/enable", "post"): {"name"},
        ("/api/v1/managers/{name}/disable", "post"): {"name"},
        ("/api/v1/managers/{name}/refresh", "post"): {"name"},
        ("/api/v1/capacity/utilization", "get"): {"level", "view", *window, *shown},
        ("/api/v1/capacity/headroom", "get"): {"vcpus", "memory_gb", "cpu_usage_pct", "mem_usage_pct",
                                               "cpu_allocation_ratio", "mem_allocation_ratio", *window, *shown},
        ("/api/v1/capacity/forecast", "get"): {"limit", *window, *shown},
        ("/api/v1/capacity/rightsize", "get"): {"percentile", "headroom", "idle_cpu_pct", "level", *window, *shown},
        ("/api/v1/chargeback", "get"): {"group_by", "interval", *window, *shown},
        ("/api/v1/chargeback/export", "get"): {"from", "to", "format", "group_by", "interval", "tz"},
        ("/api/v1/rollups", "get"): {"interval", "resource_id", "manager", "ems_ref", "level", *window, "limit",
                                     "cursor", "format"},
        ("/api/v1/events", "get"): {"manager", "resource", "since", "until", "kind", "format"},
        ("/api/v1/whoami", "get"): set(),
    }  # fmt: skip
    api_paths = {key: value for key, value in parameters.items() if key[0].startswith("/api/v1/")}
    assert api_paths == expected
    assert set(schema["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyCookie"}
    assert "NewManager" in schema["components"]["schemas"]


def test_metrics_answers_prometheus_text(api: Api) -> None:
    with api.client() as anonymous:
        answer = anonymous.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    assert "# TYPE cloudmeter_jobs_total counter" in answer.text
    assert "# TYPE cloudmeter_capture_lag_seconds gauge" in answer.text
