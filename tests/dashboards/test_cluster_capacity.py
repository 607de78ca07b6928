"""The cluster capacity dashboard: each panel's SQL, expanded as Grafana expands it, against the report it claims
to show (``capacity.hourly_series``, ``capacity.utilization``, ``headroom.headroom``) over the same hours."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from cloudmeter.model import Window
from cloudmeter.reports import capacity, headroom
from tests.dashboards.conftest import DAYS, WINDOW, Loaded
from tests.dashboards.grafana import Variable
from tests.dashboards.panels import (
    all_clusters,
    all_managers,
    assert_frames_equal,
    choice,
    covers,
    ids,
    panel_sql,
    run,
)

BOARD = "capacity"
CPU = "CPU: cores used, vCPUs allocated and physical"
MEMORY = "Memory: used, allocated and physical"
PCT = "CPU and memory used, % of physical capacity"
COVERAGE = "Coverage: samples received, % of those promised"
P95 = "p95 per cluster over the time range"
FREE = "Free vCPUs and GB per cluster (whole units, host by host)"
HEADROOM = "Headroom: VMs of ${flavor_vcpus} vCPU / ${flavor_memory_gb} GB that fit"
SERIES = {
    CPU: {"cores used": "cpu_used_cores_avg", "vCPUs allocated": "allocated_vcpus", "vCPUs physical": "capacity_vcpus"},
    MEMORY: {
        "memory used": "mem_used_bytes_avg",
        "memory allocated": "allocated_memory_bytes",
        "memory physical": "capacity_memory_bytes",
    },
    PCT: {"CPU used %": "cpu_pct", "memory used %": "mem_pct"},
}


def limits(flavor: headroom.Flavor, given: headroom.Limits) -> dict[str, Variable]:
    values = {
        "flavor_vcpus": str(flavor.vcpus),
        "flavor_memory_gb": str(flavor.memory_gb),
        "cpu_usage_pct": str(given.cpu_usage_pct),
        "mem_usage_pct": str(given.mem_usage_pct),
        "cpu_allocation_ratio": str(given.cpu_allocation_ratio),
        "mem_allocation_ratio": str(given.mem_allocation_ratio),
    }
    return {name: Variable(name, value) for name, value in values.items()}


def reference_series(loaded: Loaded, interval: timedelta) -> pl.DataFrame:
    """``hourly_series`` of every cluster, averaged over buckets of ``interval`` (one hour: as it is)."""
    with loaded.db.connection() as conn:
        hourly = capacity.hourly_series(conn, WINDOW, "cluster")
    seconds = int(interval.total_seconds())
    bucket = pl.from_epoch(pl.col("ts").dt.epoch("s") // seconds * seconds, "s").dt.replace_time_zone("UTC")
    means = [pl.col(c).mean() for cols in SERIES.values() for c in cols.values()]
    return hourly.group_by(bucket.alias("time"), "cluster").agg(
        *means, (100 * pl.col("vm_samples").sum() / pl.col("vm_expected").sum()).alias("coverage")
    )


@covers((BOARD, CPU), (BOARD, MEMORY), (BOARD, PCT), (BOARD, COVERAGE))
@pytest.mark.parametrize("interval", [timedelta(hours=1), timedelta(hours=6), timedelta(days=1)], ids=str)
def test_hourly_series_are_the_reports_hour_by_hour(loaded: Loaded, interval: timedelta) -> None:
    want = reference_series(loaded, interval)
    with loaded.db.connection() as conn:
        variables = {"manager": all_managers(conn), "cluster": all_clusters(conn)}
        for title, columns in SERIES.items():
            got = run(conn, panel_sql(BOARD, title)[0], WINDOW, variables, interval)
            assert got.columns == ["time", "cluster", *columns]
            assert got["time"].to_list() == sorted(got["time"].to_list())  # time series need time order
            assert_frames_equal(got, want, ["time", "cluster"], columns)
        got = run(conn, panel_sql(BOARD, COVERAGE)[0], WINDOW, variables, interval)
        assert_frames_equal(got, want, ["time", "cluster"], {"coverage %": "coverage"})
        assert (got["coverage %"] <= 100.0).all()


@covers((BOARD, CPU), (BOARD, PCT), (BOARD, COVERAGE))
def test_a_range_from_mid_hour_to_past_the_data_starts_at_the_next_hour_and_leaves_usage_null(loaded: Loaded) -> None:
    grafana = Window(WINDOW.start + timedelta(hours=7, minutes=20), WINDOW.end + timedelta(hours=5))
    hours = Window(WINDOW.start + timedelta(hours=8), WINDOW.end + timedelta(hours=5))
    with loaded.db.connection() as conn:
        want = capacity.hourly_series(conn, hours, "cluster").rename({"ts": "time"})
        variables = {"manager": all_managers(conn), "cluster": all_clusters(conn)}
        for title in (CPU, PCT):
            got = run(conn, panel_sql(BOARD, title)[0], grafana, variables)
            assert_frames_equal(got, want, ["time", "cluster"], SERIES[title])
        coverage = run(conn, panel_sql(BOARD, COVERAGE)[0], grafana, variables)
    assert min(got["time"]) == hours.start
    after = got.filter(pl.col("time") >= WINDOW.end)
    assert after.height == 4 * 5 and after["CPU used %"].null_count() == after.height  # no samples: NULL, not 0
    assert coverage.filter(pl.col("time") >= WINDOW.end)["coverage %"].to_list() == [0.0] * 20  # VMs, no samples


@covers((BOARD, CPU))
def test_the_manager_and_cluster_variables_select_rows(loaded: Loaded) -> None:
    want = reference_series(loaded, timedelta(hours=1))
    with loaded.db.connection() as conn:
        sim_clusters = ids(conn, "SELECT id FROM resources WHERE kind = 'cluster' AND manager_id = %s", loaded.sim_id)
        variables = {
            "manager": choice("manager", [str(loaded.sim_id)]),
            "cluster": choice("cluster", sim_clusters[:1]),
        }
        got = run(conn, panel_sql(BOARD, CPU)[0], WINDOW, variables)
        (name,) = conn.execute("SELECT name FROM resources WHERE id = %s", (int(sim_clusters[0]),)).fetchone() or ()
    assert set(got["cluster"]) == {name} and got.height == 24 * DAYS
    assert_frames_equal(got, want.filter(pl.col("cluster") == name), ["time", "cluster"], SERIES[CPU])


@covers((BOARD, P95))
def test_the_p95_table_is_utilization_by_cluster(loaded: Loaded) -> None:
    with loaded.db.connection() as conn:
        want = capacity.utilization(conn, WINDOW, "cluster")
        got = run(
            conn, panel_sql(BOARD, P95)[0], WINDOW, {"manager": all_managers(conn), "cluster": all_clusters(conn)}
        )
    columns = [c for c in got.columns if c != "cluster"]
    assert {"coverage_pct", "cpu_cores_p95", "mem_gb_p95", "hours_with_data"} <= set(columns)
    assert_frames_equal(got, want, ["cluster"], {c: c for c in columns})
    c1 = got.filter(pl.col("cluster") == "c1").row(0, named=True)
    assert (c1["cpu_cores_p95"], c1["vcpus_capacity"], c1["hours_with_data"]) == (3.0625, 32.0, 48)


@covers((BOARD, HEADROOM), (BOARD, FREE))
@pytest.mark.parametrize(
    ("flavor", "given"),
    [
        (headroom.Flavor(4, 8), headroom.Limits()),
        (headroom.Flavor(2, 3.5), headroom.Limits(cpu_usage_pct=70, mem_usage_pct=80, cpu_allocation_ratio=0.5)),
        (headroom.Flavor(8, 32), headroom.Limits(mem_allocation_ratio=1.5)),
    ],
    ids=["defaults", "tight", "large"],
)
def test_headroom_tables_are_the_headroom_report(
    loaded: Loaded, flavor: headroom.Flavor, given: headroom.Limits
) -> None:
    with loaded.db.connection() as conn:
        want = headroom.headroom(conn, WINDOW, flavor, given)
        unit = headroom.headroom(conn, WINDOW, headroom.Flavor(1, 1.0), given)
        variables = {"manager": all_managers(conn), "cluster": all_clusters(conn), **limits(flavor, given)}
        got = run(conn, panel_sql(BOARD, HEADROOM)[0], WINDOW, variables)
        free = run(conn, panel_sql(BOARD, FREE)[0], WINDOW, variables)
    assert_frames_equal(got, want, ["cluster"], {c: c for c in got.columns if c != "cluster"})
    assert_frames_equal(
        free,
        unit,
        ["cluster"],
        {
            "free vCPUs (usage)": "cpu_usage",
            "free vCPUs (allocation)": "cpu_allocation",
            "free GB (usage)": "mem_usage",
            "free GB (allocation)": "mem_allocation",
            "hosts_without_data": "hosts_without_data",
            "coverage_pct": "coverage_pct",
        },
    )
    assert got["fit"].null_count() < got.height  # the comparison is not between two empty tables
