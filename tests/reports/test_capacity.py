"""Capacity reports on the hand-computable cloud (tests/reports/cloud.py): every number is derived here."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from cloudmeter.errors import ConfigError
from cloudmeter.model import Window
from cloudmeter.reports import capacity, forecast, headroom, rightsize
from cloudmeter.reports.ratecard import parse_rate_card
from cloudmeter.storage.database import Database
from tests.reports.cloud import START, hours, load

WINDOW = Window(START, hours(48))
# c1 = vm-a (2 cores, 4 GiB) + vm-b (0.0625, 1 GiB) + vm-d (1 core, 2 GiB; hours 12-20 and 24-36: 20 hours)
VM_D = [12 <= h < 20 or 24 <= h < 36 for h in range(48)]
C1_CORES = [3.0625 if d else 2.0625 for d in VM_D]
C1_MEM = [7.0 if d else 5.0 for d in VM_D]
C2_CORES = [k / 4 for k in range(24)] * 2  # vm-c: hour of day / 4


def row(frame: pl.DataFrame, column: str, name: str) -> dict[str, object]:
    return frame.filter(pl.col(column) == name).row(0, named=True)


def check_utilization(db: Database) -> None:
    with db.connection() as conn:
        clusters = capacity.utilization(conn, WINDOW, "cluster")
        provider = capacity.utilization(conn, WINDOW, "provider")
    c1, c2 = row(clusters, "cluster", "c1"), row(clusters, "cluster", "c2")
    assert (c1["hours"], c1["hours_with_data"], c1["vms"]) == (48, 48, 2)  # vm-d retired at hour 36
    assert c1["coverage_pct"] == pytest.approx(100 * (96 + 96 + 40) / (96 + 96 + 48))  # 4 h of vm-d missing
    assert c1["cpu_cores_avg"] == pytest.approx(np.mean(C1_CORES))
    assert (c1["cpu_cores_p95"], c1["cpu_cores_peak"]) == (3.0625, 3.0625)
    assert c1["cpu_pct_avg"] == pytest.approx(100 * np.mean(C1_CORES) / 32)
    assert c1["mem_gb_avg"] == pytest.approx(np.mean(C1_MEM)) and c1["mem_gb_p95"] == 7.0
    assert c1["mem_pct_peak"] == pytest.approx(100 * 7 / 128)
    assert (c1["net_bps_avg"], c1["disk_bps_peak"]) == (524288.0, 0.0)
    assert (c1["vcpus_capacity"], c1["vcpus_allocated"], c1["mem_gb_capacity"], c1["mem_gb_allocated"]) == (
        32,
        6,
        128,
        12,
    )
    assert (c1["cpu_overcommit"], c1["mem_overcommit"]) == (6 / 32, 12 / 128)
    assert c2["cpu_cores_avg"] == pytest.approx(2.875)
    assert c2["cpu_cores_p95"] == pytest.approx(np.percentile(C2_CORES, 95))
    assert c2["cpu_cores_peak"] == 5.75 and c2["coverage_pct"] == 100.0
    lab = provider.row(0, named=True)
    assert (lab["provider"], lab["vcpus_capacity"], lab["vcpus_allocated"]) == ("lab", 48, 14)
    assert lab["cpu_cores_peak"] == pytest.approx(max(a + b for a, b in zip(C1_CORES, C2_CORES, strict=True)))


def test_utilization_per_cluster_and_provider(cloud: Database) -> None:
    check_utilization(cloud)


def test_utilization_per_host_counts_only_its_vms_and_rejects_unknown_levels(cloud: Database) -> None:
    with cloud.connection() as conn:
        hosts = capacity.utilization(conn, WINDOW, "host")
        with pytest.raises(ConfigError, match="--level 'rack' is not one of host, cluster, provider"):
            capacity.utilization(conn, WINDOW, "rack")  # type: ignore[arg-type]
    h2 = row(hosts, "host", "h2")
    assert (h2["cpu_cores_avg"], h2["vcpus_allocated"], h2["cpu_overcommit"]) == (0.0625, 2, 2 / 16)
    assert row(hosts, "host", "h1")["coverage_pct"] == pytest.approx(100 * (96 + 40) / (96 + 48))


def check_headroom(db: Database) -> None:
    with db.connection() as conn:
        fits = headroom.headroom(conn, WINDOW, headroom.Flavor(4, 8))
        tight = headroom.headroom(conn, WINDOW, headroom.Flavor(4, 8), headroom.Limits(cpu_allocation_ratio=0.5))
    c1 = row(fits, "cluster", "c1")
    # h1: p95 3 cores (vm-a + vm-d), 6 GiB; h2: 0.0625 cores, 1 GiB; 16 vCPU / 64 GiB each
    assert c1["cpu_usage"] == int((14.4 - 3) / 4) + int((14.4 - 0.0625) / 4) == 5
    assert c1["mem_usage"] == int((57.6 - 6) / 8) + int((57.6 - 1) / 8) == 13
    assert c1["cpu_allocation"] == int((64 - 4) / 4) + int((64 - 2) / 4) == 30  # vm-d retired: h1 has 4 vCPUs
    assert c1["mem_allocation"] == int((64 - 8) / 8) + int((64 - 4) / 8) == 14
    assert (c1["fit"], c1["limited_by"], c1["hosts"], c1["hosts_without_data"]) == (5, "cpu_usage", 2, 0)
    c2 = row(fits, "cluster", "c2")
    assert (c2["fit"], c2["cpu_usage"], c2["limited_by"]) == (int((14.4 - 5.5) / 4), 2, "cpu_usage")
    t1 = row(tight, "cluster", "c1")  # 0.5 x 16 = 8 vCPUs allowed per host: one more 4-vCPU VM on each
    assert (t1["cpu_allocation"], t1["fit"], t1["limited_by"]) == (2, 2, "cpu_allocation")


def test_headroom_fits_host_by_host_under_each_limit(cloud: Database) -> None:
    check_headroom(cloud)


def test_a_host_retired_before_the_window_leaves_its_clusters_headroom_known(db: Database) -> None:
    load(db)
    with db.connection() as conn:  # an h0 in c1, retired by a refresh a week before the window
        conn.execute(
            """INSERT INTO resources (manager_id, kind, ems_ref, name, parent_id, vcpus, memory_bytes, first_seen,
                                      last_seen, retired_at)
               SELECT manager_id, 'host', 'h0', 'h0', parent_id, 16, 64 * 2^30, %s, %s, %s
               FROM resources WHERE ems_ref = 'h1'""",
            (hours(-24 * 14), hours(-24 * 7), hours(-24 * 7)),
        )
    check_headroom(db)  # the same figures as without it: two hosts in c1, both known


def test_headroom_p95_is_polars_linear_quantile_bit_for_bit() -> None:
    """Runs of random values with nulls (NaN), ties and sizes from 1 to 300: the same float as polars gives."""
    rng = np.random.default_rng(7)
    for trial in range(60):
        values = rng.normal(size=3000) * 10 ** rng.uniform(-3, 9)
        values = np.round(values, 1) if trial % 3 == 0 else values
        values[rng.random(3000) < rng.uniform(0, 0.9)] = np.nan
        bounds = np.unique(np.concatenate([[0, 3000], rng.integers(0, 3000, 20)])).astype(np.int64)
        run = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
        frame = pl.DataFrame({"run": run, "value": pl.Series(values, nan_to_null=True)})
        for q in (0.5, 0.95, 0.99):
            want = frame.group_by("run").agg(pl.col("value").quantile(q, "linear")).sort("run")["value"]
            assert pl.Series(headroom._run_quantiles(values, bounds, q), nan_to_null=True).equals(want)


def test_headroom_refuses_bad_limits() -> None:
    with pytest.raises(ConfigError, match=r"--cpu-usage-pct must be in \(0, 100\]"):
        headroom.Limits(cpu_usage_pct=120)
    with pytest.raises(ConfigError, match="--vcpus > 0"):
        headroom.Flavor(0, 8)


CARD = parse_rate_card(
    {
        "currency": "EUR",
        "rate": [
            {
                "name": "cpu",
                "version": "v1",
                "measure": "vcpu_allocated",
                "per_time": "monthly",
                "variable": "10",
                "fixed": "1",
                "effective_from": date(2026, 1, 1),
            },
            {
                "name": "mem",
                "version": "v1",
                "measure": "memory_gb_allocated",
                "per_time": "daily",
                "tiers": [{"up_to": 4, "rate": "0.1"}, {"rate": "0.05"}],
                "effective_from": date(2026, 1, 1),
            },
        ],
    },
    "test card",
)


def test_rightsize_recommends_percentile_plus_headroom_and_prices_the_change(cloud: Database) -> None:
    with cloud.connection() as conn:
        frame = rightsize.rightsize(conn, WINDOW, CARD)
    got = {r["name"]: r for r in frame.iter_rows(named=True)}
    # name: (vcpus, recommended, memory GB, recommended GB, action)
    want = {
        "vm-a": (4, 3, 8, 5, "downsize"),  # ceil(2 x 1.2) = 3; ceil(4 x 1.2) = 5
        "vm-b": (2, 1, 4, 2, "idle"),  # 0.0625 cores < 5 % of 2 vCPUs, no traffic
        "vm-c": (8, int(np.ceil(np.percentile(C2_CORES, 95) * 1.2)), 16, 15, "downsize"),  # 12 x 1.2 = 14.4
        "vm-d": (2, None, 4, None, "retired"),  # deleted at hour 36, before the window's end: nothing to resize
    }
    for name, (vcpus, rec_vcpus, mem, rec_mem, action) in want.items():
        r = got[name]
        assert (r["vcpus"], r["recommended_vcpus"], r["memory_gb"], r["recommended_memory_gb"], r["action"]) == (
            vcpus, rec_vcpus, mem, rec_mem, action,
        )  # fmt: skip
    assert got["vm-d"]["coverage_pct"] == pytest.approx(100 * 20 / 24) and got["vm-d"]["hours_alive"] == 24

    def monthly(vcpus: int, gb: int) -> str:  # 730 h: 10/vCPU + 1 per month; 0.1/GB-day to 4 GB, 0.05 above
        return f"{10 * vcpus + 1 + (0.1 * min(gb, 4) + 0.05 * max(gb - 4, 0)) * 730 / 24:.9f}"

    a = got["vm-a"]
    assert (str(a["monthly_cost"]), str(a["monthly_cost_recommended"])) == (monthly(4, 8), monthly(3, 5))
    assert a["monthly_savings"] == a["monthly_cost"] - a["monthly_cost_recommended"]
    d = got["vm-d"]
    assert (d["monthly_cost_recommended"], d["monthly_savings"]) == (None, None)
    assert d["note"] == "deleted before the window's end"


def test_rightsize_without_samples_recommends_nothing(cloud: Database) -> None:
    window = Window(hours(20), hours(24))  # vm-d is alive and silent from 20:00 to 24:00
    with cloud.connection() as conn:
        frame = rightsize.rightsize(conn, window, CARD)
    d = frame.filter(pl.col("name") == "vm-d").row(0, named=True)
    assert (d["action"], d["recommended_vcpus"], d["recommended_memory_gb"]) == ("no data", None, None)
    assert (d["cpu_cores_pctl"], d["memory_gb_pctl"], d["monthly_savings"], d["coverage_pct"]) == (None, None, None, 0)
    assert d["monthly_cost"] is not None  # what it costs now is known
    assert frame.filter(pl.col("name") != "vm-d")["coverage_pct"].to_list() == [100.0, 100.0, 100.0]


def test_headroom_on_a_window_without_data_is_unknown_not_zero(cloud: Database) -> None:
    window = Window(hours(-48), hours(-24))  # before anything existed
    with cloud.connection() as conn:
        frame = headroom.headroom(conn, window, headroom.Flavor(2, 4))
    assert frame.height == 2
    for column in ("fit", "limited_by", *headroom.CONSTRAINTS, "vcpus_capacity", "coverage_pct", "data_from"):
        assert frame[column].null_count() == 2, column


def test_coverage_where_no_interval_promises_anything_is_unknown_not_nan(cloud: Database) -> None:
    """VMs placed but never sampled, with no sampling interval known (a new source before its first capture):
    nothing was promised and nothing sent, so coverage is NULL (0/0 is not a number to print)."""
    window = Window(hours(48), hours(60))  # after the captured two days: placed, no samples
    with cloud.connection() as conn:
        conn.execute("DELETE FROM resource_intervals")
        conn.execute("UPDATE managers SET sample_interval_s = NULL")
        frame = capacity.utilization(conn, window, "host")
    assert frame["vms"].to_list() == [1, 1, 1]  # vm-a on h1 (vm-d is gone), vm-b on h2, vm-c on h3
    assert frame["coverage_pct"].to_list() == [None, None, None]
    assert frame["hours_with_data"].to_list() == [0, 0, 0]


def test_forecast_linear_and_seasonal_days_to_exhaustion(db: Database) -> None:
    load(db, days=14, growth=0.5)  # vm-c's daily peak: 5.75 + 0.5 x day
    with db.connection() as conn:
        frame = forecast.forecast(conn, Window(START, START + timedelta(days=14)), limit_pct=90)
    c2 = frame.filter((pl.col("cluster") == "c2") & (pl.col("resource") == "cpu"))
    linear, seasonal = (c2.filter(pl.col("method") == m).row(0, named=True) for m in ("linear", "seasonal"))
    # target 0.9 x 16 = 14.4; the last day's peak 5.75 + 0.5 x 13 = 12.25; (14.4 - 12.25) / 0.5 = 4.3 days
    assert (linear["target"], linear["last_peak"], linear["status"]) == (pytest.approx(14.4), 12.25, "forecast")
    assert linear["trend_per_day"] == pytest.approx(0.5)
    assert linear["days_to_exhaustion"] == pytest.approx(4.3)
    assert linear["days_lower"] == pytest.approx(4.3) and linear["days_upper"] == pytest.approx(4.3)  # exact fit
    # day by day: 5.75 + 0.5 x 18 = 14.75 is the first projected peak over 14.4: 5 days after day 13
    assert (seasonal["days_to_exhaustion"], seasonal["exhaustion_date"]) == (pytest.approx(5.0), date(2026, 3, 20))
    flat = frame.filter(pl.col("resource") == "memory")  # memory never grows; c1's CPU falls when vm-d retires
    assert set(flat["status"]) == {"never"} and flat["days_to_exhaustion"].null_count() == flat.height
    assert set(frame.filter(pl.col("cluster") == "c1")["status"]) == {"never"}
    # 14 days of history, 2026-03-02 to 03-15; 4.3 days ahead is 0.31 of it: no note
    for row in (linear, seasonal):
        assert (row["first_day"], row["last_day"], row["span_days"], row["days_of_data"]) == (
            date(2026, 3, 2), date(2026, 3, 15), 14, 14,
        )  # fmt: skip
    assert (linear["fitted_peak"], linear["trend_stderr"]) == (pytest.approx(12.25), pytest.approx(0, abs=1e-12))
    assert (linear["extrapolation"], linear["note"]) == (pytest.approx(4.3 / 14), None)
    assert frame["note"].null_count() == frame.height


def test_forecast_reports_its_history_and_flags_extrapolation(db: Database) -> None:
    load(db, days=4, growth=0.3)  # c2's daily peaks 5.75, 6.05, 6.35, 6.65 on 2026-03-02..05
    with db.connection() as conn:
        frame = forecast.forecast(conn, Window(START, START + timedelta(days=4)))
    rows = {(r["cluster"], r["resource"], r["method"]): r for r in frame.iter_rows(named=True)}
    linear, seasonal = rows["c2", "cpu", "linear"], rows["c2", "cpu", "seasonal"]
    # (14.4 - 6.65) / 0.3 = 25.83 days after 03-05, 6.46 times the 4 days of history (more than 3: a note)
    assert linear["days_to_exhaustion"] == pytest.approx(7.75 / 0.3)
    assert linear["exhaustion_date"] == date(2026, 3, 31)  # 03-02 + ceil(3 + 25.83)
    assert (linear["first_day"], linear["last_day"], linear["span_days"]) == (date(2026, 3, 2), date(2026, 3, 5), 4)
    assert (linear["extrapolation"], linear["note"]) == (
        pytest.approx(7.75 / 0.3 / 4), "extrapolated 6.5x beyond a 4-day history",
    )  # fmt: skip
    assert (linear["status"], linear["fitted_peak"]) == ("forecast", pytest.approx(6.65))
    # too few days for a weekday term: no number, and why
    assert (seasonal["status"], seasonal["note"]) == ("insufficient data", "4 days with data, seasonal needs 14")
    assert [seasonal[c] for c in ("days_to_exhaustion", "days_lower", "days_upper", "exhaustion_date")] == [None] * 4
    assert (seasonal["first_day"], seasonal["days_of_data"]) == (date(2026, 3, 2), 4)
    # c1 falls, 3.0625, 3.0625, 2.0625, 2.0625 (vm-d retires): mean 2.5625 at x = 1.5, Sxy = -2, Sxx = 5, slope
    # -0.4; residuals -0.1, 0.3, -0.3, 0.1: s^2 = 0.2 / (4 - 2), standard error sqrt(0.1 / 5); never, no note
    c1 = rows["c1", "cpu", "linear"]
    assert (c1["status"], c1["extrapolation"], c1["note"]) == ("never", None, None)
    assert (c1["trend_per_day"], c1["trend_stderr"]) == (pytest.approx(-0.4), pytest.approx((0.1 / 5) ** 0.5))
    assert c1["fitted_peak"] == pytest.approx(2.5625 - 0.4 * 1.5)  # the fit on the last day, x = 3


def test_forecast_needs_enough_days(cloud: Database) -> None:
    with cloud.connection() as conn:
        frame = forecast.forecast(conn, WINDOW)
        empty = forecast.forecast(conn, Window(START - timedelta(days=9), START - timedelta(days=2)))
    assert set(frame["status"]) == {"insufficient data"}  # 2 days: < 3 for linear, < 14 for seasonal
    assert set(frame["note"]) == {"2 days with data, linear needs 3", "2 days with data, seasonal needs 14"}
    assert set(frame["first_day"]) == {date(2026, 3, 2)} and set(frame["span_days"]) == {2}
    for column in ("days_to_exhaustion", "days_lower", "days_upper", "exhaustion_date", "extrapolation"):
        assert frame[column].null_count() == frame.height, column
    assert set(empty["note"]) == {"0 days with data, linear needs 3", "0 days with data, seasonal needs 14"}
    assert empty["first_day"].null_count() == empty.height and set(empty["days_of_data"]) == {0}


def test_a_tiered_price_of_an_unknown_quantity_is_unknown() -> None:
    memory = CARD.lines[1]  # 0.1 per GB to 4 GB, 0.05 above
    prices = memory.price(np.array([np.nan, 2.0, 10.0])).tolist()
    assert np.isnan(prices[0])  # not the first tier's 0.4 for an unknown quantity
    assert prices[1:] == [pytest.approx(0.2), pytest.approx(0.4 + 0.3)]
