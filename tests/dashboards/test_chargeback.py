"""The chargeback dashboard against the rate-card engine: its quantities per project and local day are the
quantities ``chargeback.charges`` prices (grouped by ``summarise``), and its indicative cost is the engine's cost
exactly when the card is what the dashboard assumes (one flat hourly price per measure, nothing else)."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import psycopg
import pytest

from cloudmeter.model import Window
from cloudmeter.reports import chargeback, usage
from cloudmeter.reports.ratecard import parse_rate_card
from tests.dashboards.conftest import WINDOW, Loaded
from tests.dashboards.grafana import Variable
from tests.dashboards.panels import all_managers, assert_frames_equal, choice, covers, panel_sql, run

BOARD = "chargeback"
VCPU = "Allocated vCPU-hours per project per day"
MEMORY = "Allocated memory GB-hours per project per day"
CORES = "Busy core-hours per project per day"
COST = "Indicative cost per project per day (${currency}, flat prices: not the rate card)"
TABLE = "Usage per project over the time range"
#: measure -> (the dashboard's quantity column, price variable, a price)
MEASURES = {
    "vcpu_allocated": ("vcpu_hours", "price_vcpu_hour", "0.0164"),
    "memory_gb_allocated": ("memory_gb_hours", "price_memory_gb_hour", "0.0041"),
    "disk_gb_allocated": ("disk_gb_hours", "price_disk_gb_hour", "0.00011"),
    "cpu_cores_used": ("core_hours_used", "price_core_hour", "0.004"),
    "memory_gb_used": ("memory_gb_hours_used", "price_memory_gb_used_hour", "0.0007"),
    "network_gb": ("network_gb", "price_network_gb", "0.01"),
}
FLAT = parse_rate_card(
    {
        "currency": "EUR",
        "rate": [
            {"name": measure, "version": "flat", "measure": measure, "variable": price,
             "effective_from": date(2020, 1, 1)}
            for measure, (_, _, price) in MEASURES.items()
        ],
    },
    "the dashboard's flat prices",
)  # fmt: skip


def variables(conn: psycopg.Connection, tz: str, managers: Variable | None = None) -> dict[str, Variable]:
    prices = {var: Variable(var, price) for _, var, price in MEASURES.values()}
    chosen = managers or all_managers(conn)
    return {"manager": chosen, "tz": Variable("tz", tz), "currency": Variable("currency", "EUR"), **prices}


def engine(loaded: Loaded, tz: str, window: Window = WINDOW) -> pl.DataFrame:
    """Per project and local day: each measure's quantity and unknown hours and the cost, from the rate-card
    engine under the flat card."""
    with loaded.db.connection() as conn:
        report = chargeback.summarise(chargeback.charges(conn, window, FLAT, tz), "project", "daily", tz, "EUR")
    rows = report.rows.filter(pl.col("component") == "variable")
    wide = rows.pivot(on="measure", index=["project", "period_start"], values="quantity", aggregate_function="sum")
    unknown = rows.filter(pl.col("measure") == "cpu_cores_used").select(
        "project", "period_start", pl.col("unknown_hours").alias("cpu_unknown_hours")
    )
    cost = rows.group_by("project", "period_start").agg((pl.col("cost_nanos").sum() / 1e9).alias("cost"))
    return (
        wide.join(unknown, on=["project", "period_start"], how="left", nulls_equal=True)
        .join(cost, on=["project", "period_start"], nulls_equal=True)
        .rename({"period_start": "time"})
    )


@covers((BOARD, VCPU), (BOARD, MEMORY), (BOARD, CORES), (BOARD, COST))
@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "Asia/Kolkata"])
def test_daily_quantities_are_what_the_engine_prices_and_the_cost_is_its_cost_at_flat_prices(
    loaded: Loaded, tz: str
) -> None:
    want = engine(loaded, tz)
    with loaded.db.connection() as conn:
        chosen = variables(conn, tz)
        for title, column, measure in ((VCPU, "vCPU-hours", "vcpu_allocated"), (MEMORY, "GB-hours",
                                       "memory_gb_allocated"), (CORES, "core-hours", "cpu_cores_used")):  # fmt: skip
            got = run(conn, panel_sql(BOARD, title)[0], WINDOW, chosen)
            assert got.columns == ["time", "project", column]
            assert_frames_equal(got, want, ["time", "project"], {column: measure})
        got = run(conn, panel_sql(BOARD, COST)[0], WINDOW, chosen)
    # money is rounded to nano-units once per VM and line: a few nanos per project-day at most
    assert_frames_equal(got, want, ["time", "project"], {"indicative cost": "cost"}, rel=1e-7)
    days = 2 if tz == "UTC" else 3  # Berlin's and Kolkata's days straddle the UTC window's ends
    assert got["time"].n_unique() == days


@covers((BOARD, TABLE))
@pytest.mark.parametrize("shift", [timedelta(0), timedelta(hours=7, minutes=20)], ids=["whole", "mid-hour from"])
def test_the_table_sums_the_engines_quantities_over_the_range(loaded: Loaded, shift: timedelta) -> None:
    window = Window(WINDOW.start + shift, WINDOW.end)
    hours = Window(WINDOW.start + timedelta(hours=-(-shift.total_seconds() // 3600)), WINDOW.end)  # whole hours in it
    per_day = engine(loaded, "UTC", hours)
    want = per_day.group_by("project").agg(
        *(pl.col(m).sum() for m in MEASURES), pl.col("cpu_unknown_hours").sum(), pl.col("cost").sum()
    )
    with loaded.db.connection() as conn:
        vm_hours = usage.vm_hours(conn, hours)
        got = run(conn, panel_sql(BOARD, TABLE)[0], window, variables(conn, "UTC"))
    want = want.join(
        vm_hours.group_by("project").agg((pl.col("seconds").sum() / 3600).alias("vm_hours")), on="project", how="left"
    )
    columns = {column: measure for measure, (column, _, _) in MEASURES.items()}
    assert_frames_equal(
        got,
        want,
        ["project"],
        {**columns, "cpu_unknown_hours": "cpu_unknown_hours", "vm_hours": "vm_hours", "indicative_cost": "cost"},
        rel=1e-7,
    )
    beta = got.filter(pl.col("project") == "beta").row(0, named=True)
    assert beta["cpu_unknown_hours"] == 4.0  # vm-d's silent hours, 20:00 to 24:00 on the first day


@covers((BOARD, VCPU))
def test_the_manager_variable_selects_its_projects(loaded: Loaded) -> None:
    with loaded.db.connection() as conn:
        got = run(
            conn, panel_sql(BOARD, VCPU)[0], WINDOW, variables(conn, "UTC", choice("manager", [str(loaded.lab_id)]))
        )
    assert set(got["project"]) == {"alpha", "beta"}
    day1 = {r["project"]: r["vCPU-hours"] for r in got.filter(pl.col("time").dt.day() == 2).iter_rows(named=True)}
    assert day1 == {"alpha": (4 + 2) * 24.0, "beta": 8 * 24.0 + 2 * 12.0}  # vm-d from noon on
