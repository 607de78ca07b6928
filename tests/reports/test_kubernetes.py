"""Reports on the hand-computable Kubernetes cluster (tests/reports/kube.py): every number is derived here."""

from __future__ import annotations

import json
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from cloudmeter.cli.capacity import capacity_app
from cloudmeter.model import Window
from cloudmeter.reports import capacity, chargeback, focus, headroom, requests
from cloudmeter.reports.idle import IDLE_PROJECT
from cloudmeter.reports.inputs import regions
from cloudmeter.reports.ratecard import parse_rate_card
from cloudmeter.storage.database import Database
from cloudmeter.storage.readers import read_rollups
from tests.reports.kube import ALLOCATABLE_CORES, ALLOCATABLE_GIB, END, GIB, NET_BPS, START, load

WINDOW = Window(START, END)
JOB = [6 <= h < 18 for h in range(24)]  # job-0's hours
N2_CORES = [0.75 + (1.5 if j else 0.0) for j in JOB]
N2_GIB = [0.75 + (1.0 if j else 0.0) for j in JOB]


@pytest.fixture
def kube(db: Database) -> Database:
    load(db)
    return db


def by(frame: pl.DataFrame, column: str) -> dict[str, dict[str, Any]]:
    return {row[column]: row for row in frame.iter_rows(named=True)}


def test_node_and_cluster_utilization_is_against_allocatable_and_requests_are_the_allocation(kube: Database) -> None:
    with kube.connection() as conn:
        nodes = by(capacity.utilization(conn, WINDOW, "host"), "host")
        cluster = capacity.utilization(conn, WINDOW, "cluster").row(0, named=True)
    n1, n2 = nodes["n1"], nodes["n2"]
    assert (n1["cpu_cores_avg"], n1["cpu_cores_peak"], n1["mem_gb_avg"]) == (0.25, 0.25, 0.5)
    assert n1["cpu_pct_avg"] == pytest.approx(100 * 0.25 / ALLOCATABLE_CORES)
    assert (n1["vcpus_capacity"], n1["mem_gb_capacity"]) == (ALLOCATABLE_CORES, ALLOCATABLE_GIB)
    # app requests 0.5 cores and 1 GiB; the POD container requests nothing and adds nothing
    assert (n1["vcpus_allocated"], n1["mem_gb_allocated"], n1["vms"]) == (0.5, 1.0, 2)
    assert (n1["net_bps_avg"], n1["coverage_pct"], n1["hours_with_data"]) == (2 * NET_BPS, 100.0, 24)
    assert n2["cpu_cores_avg"] == pytest.approx(np.mean(N2_CORES))
    assert n2["cpu_cores_p95"] == pytest.approx(np.percentile(N2_CORES, 95))
    assert n2["mem_gb_avg"] == pytest.approx(np.mean(N2_GIB)) and n2["mem_gb_peak"] == 1.75
    # at the last hour job-0 is gone: web-1's requests only
    assert (n2["vcpus_allocated"], n2["mem_gb_allocated"], n2["vms"]) == (0.5, 1.0, 1)
    assert cluster["cpu_cores_avg"] == pytest.approx(np.mean([0.25 + c for c in N2_CORES]))
    assert (cluster["vcpus_capacity"], cluster["mem_gb_capacity"]) == (2 * ALLOCATABLE_CORES, 2 * ALLOCATABLE_GIB)
    assert cluster["cpu_overcommit"] == pytest.approx(1.0 / 7.0) and cluster["coverage_pct"] == 100.0


def test_pods_sum_their_containers_and_namespaces_their_containers(kube: Database) -> None:
    with kube.connection() as conn:
        names = dict(conn.execute("SELECT id, name FROM resources WHERE kind IN ('pod', 'project')").fetchall())
        rows = read_rollups(conn, "hourly", WINDOW, list(names))
    rows = rows.with_columns(pl.col("resource_id").replace_strict(names, return_dtype=pl.String).alias("name"))
    hourly = {name: group.sort("ts") for (name,), group in rows.group_by("name")}
    web0 = hourly["web-0"]
    assert web0["cpu_used_cores_avg"].to_list() == [0.25] * 24 and web0["net_rx_bps_avg"].to_list() == [NET_BPS] * 24
    assert web0["mem_usage_pct_avg"].to_list() == [50.0] * 24  # 0.5 GiB of the app's 1 GiB request
    assert web0["sample_count"].to_list() == web0["expected_count"].to_list() == [24] * 24  # app + POD, 12 each
    assert hourly["job-0"]["cpu_used_cores_avg"].to_list() == [1.5] * 12
    assert hourly["job-0"]["cpu_usage_pct_avg"].to_list() == [None] * 12  # no CPU request: no percentage
    assert hourly["shop"]["cpu_used_cores_avg"].to_list() == [1.0] * 24
    assert hourly["shop"]["mem_used_bytes_avg"].to_list() == [1.25 * GIB] * 24
    assert hourly["batch"]["ts"].to_list()[0] == START.replace(hour=6) and hourly["batch"].height == 12


def test_container_requests_from_p95_plus_headroom_in_millicores_and_mib(kube: Database) -> None:
    card = parse_rate_card(tomllib.loads(KUBE_CARD), "kube card")
    with kube.connection() as conn:
        day = by(requests.rightsize_containers(conn, WINDOW, card), "pod")
        morning = by(requests.rightsize_containers(conn, Window(START, START + timedelta(hours=12)), card), "pod")
    assert set(day) == {"web-0", "web-1", "job-0"}  # no POD sandbox
    web0, web1, job = day["web-0"], day["web-1"], day["job-0"]
    # web-0: p95 0.25 cores x 1.2 = 0.3; 0.5 GiB x 1.2 = 614.4 MiB -> 615 MiB
    assert (web0["action"], web0["recommended_cpu_request_cores"]) == ("downsize", 0.3)
    assert web0["recommended_memory_request_gb"] == 615 / 1024 and web0["coverage_pct"] == 100.0
    assert (web0["cpu_request_cores"], web0["memory_request_gb"], web0["namespace"]) == (0.5, 1.0, "shop")
    # web-1: 0.75 x 1.2 = 0.9 cores (over its 0.5 request); 0.9 GiB = 921.6 MiB -> 922 MiB
    assert (web1["action"], web1["recommended_cpu_request_cores"], web1["recommended_memory_request_gb"]) == (
        "upsize",
        0.9,
        922 / 1024,
    )
    assert (job["action"], job["recommended_cpu_request_cores"], job["note"]) == (
        "retired",
        None,
        "deleted before the window's end",
    )
    # alive at noon: no CPU request to compare with; 1.5 x 1.2 = 1.8 cores, 1 GiB x 1.2 -> 1229 MiB
    worker = morning["job-0"]
    assert (worker["action"], worker["cpu_request_cores"], worker["recommended_cpu_request_cores"]) == (
        "set",
        None,
        1.8,
    )
    assert worker["recommended_memory_request_gb"] == 1229 / 1024 and worker["memory_request_gb"] == 2.0
    assert worker["hours_with_data"] == 6 and worker["coverage_pct"] == 100.0
    # a month (730 h) of the request lines (0.04 per core-hour, 0.005 per GiB-hour), now and recommended
    now, recommended = (0.5 * 0.04 + 1 * 0.005) * 730, (0.3 * 0.04 + 615 / 1024 * 0.005) * 730
    assert float(web0["monthly_cost"]) == pytest.approx(now, abs=1e-9)
    assert float(web0["monthly_cost_recommended"]) == pytest.approx(recommended, abs=1e-9)
    assert float(web0["monthly_savings"]) == pytest.approx(now - recommended, abs=1e-9)
    assert float(job["monthly_cost"]) == pytest.approx(2 * 0.005 * 730) and job["monthly_savings"] is None


def test_rightsize_level_container_through_the_cli_at_80_columns(kube: Database, dsn: str, tmp_path: Path) -> None:
    app = typer.Typer()
    app.add_typer(capacity_app, name="capacity")
    env = {"CLOUDMETER_DSN": dsn, "CLOUDMETER_DATA_DIR": str(tmp_path), "COLUMNS": "80"}
    window = ["--from", "2026-03-02", "--to", "2026-03-03"]
    result = CliRunner().invoke(app, ["capacity", "rightsize", "--level", "container", *window, "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    assert {(r["pod"], r["container"]): r["action"] for r in json.loads(result.stdout)} == {
        ("job-0", "worker"): "retired",
        ("web-0", "app"): "downsize",
        ("web-1", "app"): "upsize",
    }
    table = CliRunner().invoke(app, ["capacity", "rightsize", "--level", "container", *window], env=env)
    assert table.exit_code == 0, table.stderr
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
    assert "1 containers have no recommendation: deleted before the window's end" in table.stdout
    bad = CliRunner().invoke(app, ["capacity", "rightsize", "--level", "pod", *window], env=env)
    assert (bad.exit_code, bad.stderr.strip()) == (2, "error: level 'pod' is not one of vm, container")


KUBE_CARD = """
currency = "EUR"
[[rate]]
name = "cpu-request"
version = "v1"
measure = "cpu_request_cores"
variable = "0.04"           # per requested core-hour
effective_from = 2026-01-01
[[rate]]
name = "memory-request"
version = "v1"
measure = "memory_request_gb"
variable = "0.005"
effective_from = 2026-01-01
[[rate]]
name = "cpu-allocated"
version = "v1"
measure = "cpu_allocated_cores"
variable = "0.03"           # per core-hour of max(request, usage)
effective_from = 2026-01-01
[[rate]]
name = "memory-allocated"
version = "v1"
measure = "memory_allocated_gb"
variable = "0.002"
effective_from = 2026-01-01
"""


def test_chargeback_by_namespace_prices_requests_and_max_of_request_and_usage(kube: Database) -> None:
    """Per container and line (quantities by hand from kube.py's table; hourly rates):

    web-0/app: requests 0.5 x 24 = 12 core-h, 1 x 24 = 24 GiB-h; allocated max(0.5, 0.25) x 24 = 12, max(1, 0.5)
    x 24 = 24. web-1/app: requests 12 and 24; allocated max(0.5, 0.75) x 24 = 18, max(1, 0.75) x 24 = 24.
    job-0/worker (12 h): no CPU request (0), 2 x 12 = 24 GiB-h; allocated 1.5 x 12 = 18, max(2, 1) x 12
    = 24. web-0/POD requests nothing and measures no CPU or memory: 24 unknown hours, never a charge of 0.
    """
    card = tomllib.loads(KUBE_CARD)
    with kube.connection() as conn:
        frame = chargeback.charges(conn, WINDOW, parse_rate_card(card, "kube card"))
    frame = frame.filter(pl.col("project") != IDLE_PROJECT)  # the nodes' idle capacity: the next test
    cost = {
        (row["name"], row["line"]): (row["quantity"], row["cost_nanos"], row["unknown_hours"])
        for row in frame.group_by("name", "line")
        .agg(pl.col("quantity").sum(), pl.col("cost_nanos").sum(), pl.col("unknown_hours").sum())
        .iter_rows(named=True)
    }
    rate = {"cpu-request": 0.04, "memory-request": 0.005, "cpu-allocated": 0.03, "memory-allocated": 0.002}
    want = {
        ("web-0/app", "cpu-request"): 12, ("web-0/app", "memory-request"): 24,
        ("web-0/app", "cpu-allocated"): 12, ("web-0/app", "memory-allocated"): 24,
        ("web-1/app", "cpu-request"): 12, ("web-1/app", "memory-request"): 24,
        ("web-1/app", "cpu-allocated"): 18, ("web-1/app", "memory-allocated"): 24,
        ("job-0/worker", "memory-request"): 24, ("job-0/worker", "cpu-allocated"): 18,
        ("job-0/worker", "memory-allocated"): 24,
    }  # fmt: skip
    for key, quantity in want.items():
        got = cost.pop(key)
        assert got[0] == pytest.approx(quantity) and got[2] == 0, key
        assert got[1] == round(quantity * rate[key[1]] * 10**9), key
    # no request is a request of 0 (known: no unknown hours); a usage never measured is unknown, not 0
    assert cost == {
        ("job-0/worker", "cpu-request"): (0.0, 0, 0.0),
        ("web-0/POD", "cpu-request"): (0.0, 0, 0.0),
        ("web-0/POD", "memory-request"): (0.0, 0, 0.0),
        ("web-0/POD", "cpu-allocated"): (0.0, 0, 24.0),
        ("web-0/POD", "memory-allocated"): (0.0, 0, 24.0),
    }
    by_namespace = dict(frame.group_by("project").agg(pl.col("cost_nanos").sum()).iter_rows())
    assert by_namespace == {
        "shop": round((12 * 0.04 + 24 * 0.005 + 12 * 0.03 + 24 * 0.002 + 12 * 0.04 + 24 * 0.005 + 18 * 0.03
                       + 24 * 0.002) * 10**9),
        "batch": round((24 * 0.005 + 18 * 0.03 + 24 * 0.002) * 10**9),
    }  # fmt: skip
    assert set(frame["cluster"].to_list()) == {"prod"}


def test_idle_capacity_of_nodes_is_charged_per_cluster_under_the_allocation_lines(kube: Database) -> None:
    """OpenCost's idle: per node-hour, allocatable minus its containers' max(request, usage), priced under the
    allocation lines (never the request lines) as ``__idle__/<node>`` in project ``__idle__`` of cluster prod.

    n1 (3.5 cores, 14 GiB): web-0/app holds max(0.5, 0.25) = 0.5 cores, max(1, 0.5) = 1 GiB (its sandbox, which
    requests nothing and is not measured, holds nothing): idle 3 x 24 = 72 core-h and 13 x 24 = 312 GiB-h.
    n2: web-1/app holds max(0.5, 0.75) = 0.75 cores and max(1, 0.75) = 1 GiB all day, job-0/worker 1.5 cores and
    max(2, 1) = 2 GiB for 12 h: idle 3.5 x 24 - 0.75 x 24 - 1.5 x 12 = 48 core-h, 14 x 24 - 24 - 24 = 288 GiB-h.
    """
    with kube.connection() as conn:
        frame = chargeback.charges(conn, WINDOW, parse_rate_card(tomllib.loads(KUBE_CARD), "kube card"))
        report = chargeback.summarise(frame, "project", "daily", "UTC", "EUR")
    idle = frame.filter(pl.col("project") == IDLE_PROJECT)
    got = {
        (row["name"], row["line"]): (row["quantity"], row["cost_nanos"], row["unknown_hours"], row["cluster"])
        for row in idle.group_by("name", "line", "cluster")
        .agg(pl.col("quantity").sum(), pl.col("cost_nanos").sum(), pl.col("unknown_hours").sum())
        .iter_rows(named=True)
    }
    want = {
        ("__idle__/n1", "cpu-allocated"): (72, 0.03), ("__idle__/n1", "memory-allocated"): (312, 0.002),
        ("__idle__/n2", "cpu-allocated"): (48, 0.03), ("__idle__/n2", "memory-allocated"): (288, 0.002),
    }  # fmt: skip
    assert set(got) == set(want)
    for key, (quantity, rate) in want.items():
        assert got[key][0] == pytest.approx(quantity) and got[key][2:] == (0.0, "prod"), key
        assert got[key][1] == round(quantity * rate * 10**9), key
    by_project = dict(report.rows.group_by("project").agg(pl.col("cost_nanos").sum()).iter_rows())
    assert by_project[IDLE_PROJECT] == round((72 + 48) * 0.03 * 10**9) + round((312 + 288) * 0.002 * 10**9)


def test_focus_rows_of_containers_are_kubernetes_containers(kube: Database) -> None:
    with kube.connection() as conn:
        card = parse_rate_card(tomllib.loads(KUBE_CARD), "kube card")
        rows = focus.focus_rows(chargeback.charges(conn, WINDOW, card), card.currency, "UTC", regions(conn))
    kinds = rows.select("ResourceType", "ServiceCategory", "ServiceName", "ServiceSubcategory").unique()
    assert sorted(kinds.rows()) == [
        ("Container", "Compute", "Kubernetes", "Containers"),
        ("Kubernetes Node (idle)", "Compute", "Kubernetes", "Containers"),
    ]
    names = {"web-0/app", "web-0/POD", "web-1/app", "job-0/worker", "__idle__/n1", "__idle__/n2"}
    assert set(rows["ResourceName"].to_list()) == names
    assert set(rows["RegionId"].to_list()) == {"r1"}
    assert set(rows["SubAccountId"].to_list()) == {"shop", "batch", IDLE_PROJECT}


def test_headroom_in_pods_of_given_requests_node_by_node(kube: Database) -> None:
    """Pods of 0.5 cores / 1 GiB requests, allocation ratio 1, usage limits 90 %: n1 (p95 0.25 cores, 0.5 GiB;
    requests 0.5, 1 GiB) fits min((3.15 - 0.25) / 0.5, (12.6 - 0.5) / 1, (3.5 - 0.5) / 0.5, (14 - 1) / 1) = 5;
    n2 (p95 2.25 cores, 1.75 GiB; at the last hour web-1's requests only) fits min(1.8, 10.85, 6, 13) = 1."""
    pod, limits = headroom.Flavor(0.5, 1.0), headroom.Limits(cpu_allocation_ratio=1.0)
    with kube.connection() as conn:
        row = headroom.headroom(conn, WINDOW, pod, limits).row(0, named=True)
    assert (row["cluster"], row["hosts"], row["fit"], row["limited_by"]) == ("prod", 2, 6, "cpu_usage")
    assert (row["cpu_usage"], row["mem_usage"], row["cpu_allocation"], row["mem_allocation"]) == (
        5 + 1,
        12 + 10,
        12,
        26,
    )
    assert (row["vcpus_capacity"], row["vcpus_allocated"]) == (2 * ALLOCATABLE_CORES, 1.0)


def test_rightsize_level_container_without_any_container_says_so(cloud: Database, dsn: str, tmp_path: Path) -> None:
    app = typer.Typer()
    app.add_typer(capacity_app, name="capacity")
    env = {"CLOUDMETER_DSN": dsn, "CLOUDMETER_DATA_DIR": str(tmp_path), "COLUMNS": "80"}
    window = ["--from", "2026-03-02", "--to", "2026-03-04"]
    result = CliRunner().invoke(app, ["capacity", "rightsize", "--level", "container", *window], env=env)
    assert result.exit_code == 0, result.stderr
    assert "no Kubernetes containers in this window" in result.stdout
    assert "no samples" not in result.stdout  # the VMs have samples: it is the containers that are missing
