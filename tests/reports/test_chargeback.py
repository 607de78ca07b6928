"""Chargeback on the test cloud under a hand-priced card: exact totals, reconciliation, unknown usage, periods."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import polars as pl
import pytest

from cloudmeter.errors import ConfigError
from cloudmeter.model import Window
from cloudmeter.reports import chargeback, segments
from cloudmeter.reports.ratecard import parse_rate_card
from cloudmeter.storage.database import Database
from tests.reports.cloud import START, hours
from tests.reports.rates import CARD_TOML, COSTS, TOTAL, nanos, vm_total

CARD = parse_rate_card(tomllib.loads(CARD_TOML), "test card")
WINDOW = Window(START, hours(48))


def charges(db: Database, card: object = CARD, tz: str = "UTC") -> pl.DataFrame:
    with db.connection() as conn:
        return chargeback.charges(conn, WINDOW, card, tz)  # type: ignore[arg-type]


def check_costs_per_vm_and_line(frame: pl.DataFrame) -> None:
    per_line = frame.group_by("name", "line").agg(pl.col("cost_nanos").sum())
    got = {(n, line): c for n, line, c in per_line.iter_rows()}
    want = {(n, line): nanos(c) for n, lines in COSTS.items() for line, c in lines.items()}
    assert got == want
    assert frame["cost_nanos"].sum() == nanos(TOTAL) == 15_991_750_000


def test_costs_per_vm_and_rate_line_are_exact(cloud: Database) -> None:
    check_costs_per_vm_and_line(charges(cloud))


def test_totals_reconcile_exactly_across_groupings(cloud: Database) -> None:
    frame = charges(cloud)
    want = {
        "project": {"alpha": vm_total("vm-a") + vm_total("vm-b"), "beta": vm_total("vm-c") + vm_total("vm-d")},
        "cluster": {"c1": vm_total("vm-a") + vm_total("vm-b") + vm_total("vm-d"), "c2": vm_total("vm-c")},
        "tag:env": {"prod": vm_total("vm-a") + vm_total("vm-c"), "dev": vm_total("vm-b"), None: vm_total("vm-d")},
        "provider": {"lab": TOTAL},
        "vm": {name: vm_total(name) for name in COSTS},
    }
    for group_by, totals in want.items():
        report = chargeback.summarise(frame, group_by, "monthly", "UTC", "EUR")
        column = {"tag:env": "tag_env", "provider": "manager", "vm": "name"}.get(group_by, group_by)
        got = report.rows.group_by(column).agg(pl.col("cost").sum(), pl.col("cost_nanos").sum())
        assert {k: c for k, c, _ in got.iter_rows()} == totals, group_by
        assert got["cost_nanos"].sum() == report.total_nanos == nanos(TOTAL)
        assert report.rows["cost"].dtype == pl.Decimal(38, 9)


def test_hours_without_samples_are_unknown_usage_while_allocation_is_charged(cloud: Database) -> None:
    vm_d = charges(cloud).filter(pl.col("name") == "vm-d")
    by_line = {(r["line"], r["component"]): r for r in vm_d.group_by("line", "component").agg(
        pl.col("quantity").sum(), pl.col("unknown_hours").sum()).iter_rows(named=True)}  # fmt: skip
    assert (by_line[("cores", "variable")]["quantity"], by_line[("cores", "variable")]["unknown_hours"]) == (20, 4)
    assert (by_line[("network", "variable")]["unknown_hours"], by_line[("compute", "variable")]["quantity"]) == (4, 48)
    assert by_line[("compute", "fixed")]["quantity"] == 24  # lifetime 12:00 to 12:00 the next day


def test_monthly_rates_and_days_follow_the_time_zone(cloud: Database) -> None:
    card = parse_rate_card(
        {
            "currency": "EUR",
            "rate": [
                {
                    "name": "cpu",
                    "version": "v1",
                    "measure": "vcpu_allocated",
                    "per_time": "monthly",
                    "variable": "12",
                    "effective_from": "2026-01-01",
                }
            ],
        },
        "monthly card",
    )
    frame = charges(cloud, card, "Europe/Berlin").filter(pl.col("name") == "vm-a")
    # March 2026 in Berlin has 743 hours (DST on the 29th): 48 h of 4 vCPUs at 12 a month
    assert frame["cost_nanos"].sum() == round(Decimal(4 * 12 * 48) / 743 * 10**9)
    # local days: the data starts at 01:00 Berlin (00:00 UTC) on the 2nd and ends at 01:00 on the 4th
    days = chargeback.summarise(frame, "vm", "daily", "Europe/Berlin", "EUR").rows
    assert days["quantity"].to_list() == [4 * 23, 4 * 24, 4 * 1]
    assert days["period_start"].to_list() == [datetime(2026, 3, d, 23, tzinfo=UTC) for d in (1, 2, 3)]
    month = chargeback.summarise(frame, "vm", "monthly", "Europe/Berlin", "EUR").rows.row(0, named=True)
    assert (month["period_start"], month["period_end"]) == (
        datetime(2026, 2, 28, 23, tzinfo=UTC),
        datetime(2026, 3, 31, 22, tzinfo=UTC),
    )
    week = chargeback.summarise(frame, "vm", "weekly", "Europe/Berlin", "EUR").rows.row(0, named=True)
    assert week["period_start"] == datetime(2026, 3, 1, 23, tzinfo=UTC)  # Monday 2 March, local midnight


def test_equally_specific_lines_for_one_vm_are_an_error(cloud: Database) -> None:
    raw = tomllib.loads(CARD_TOML)
    raw["rate"].append({"name": "web", "version": "v1", "measure": "vcpu_allocated", "variable": "1",
                        "effective_from": "2026-01-01", "tags": {"team": "data"}})  # fmt: skip
    with pytest.raises(ConfigError, match="'compute-dev' and 'web' both price vcpu_allocated"):
        charges(cloud, parse_rate_card(raw, "clash"))


def test_bad_grouping_and_interval_name_the_fix() -> None:
    empty = chargeback.summarise  # the checks come before any data is touched
    with pytest.raises(ConfigError, match="--group-by 'team' is not one of vm, project, cluster, provider or tag:KEY"):
        empty(pl.DataFrame(), "team", "daily", "UTC", "EUR")
    with pytest.raises(ConfigError, match="--interval 'hourly' is not one of daily, weekly, monthly"):
        empty(pl.DataFrame(), "vm", "hourly", "UTC", "EUR")


def test_segment_sums_and_graduated_prices_are_numpys_to_the_bit() -> None:
    """The segments kernel sums a run as ``np.add.reduceat`` does and prices as ``RateLine.price`` does."""
    rng = np.random.default_rng(3)
    for n in range(1, 130):
        values = rng.normal(size=n) * 10 ** rng.uniform(-5, 5, size=n)
        assert segments._run_sum(values, n) == np.add.reduceat(values, [0])[0]
    quantity = np.concatenate([rng.uniform(-1, 300, 5000), [np.nan, 0.0, -0.0, np.inf]])
    for line in CARD.lines:
        lower, width, rate = line.tier_floats()
        priced = [segments._graduated(q, lower, width, rate, len(rate)) for q in quantity]
        np.testing.assert_array_equal(np.array(priced), line.price(quantity))
