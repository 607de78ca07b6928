"""Exports: CSV, Parquet and XLSX read back; FOCUS 1.2 validated column by column."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import polars as pl
import pyarrow.parquet as pq
import pytest

from cloudmeter.errors import ConfigError
from cloudmeter.model import Window
from cloudmeter.reports import chargeback, export, focus
from cloudmeter.reports.inputs import regions
from cloudmeter.reports.ratecard import parse_rate_card
from cloudmeter.storage.database import Database
from tests.reports.cloud import START, hours
from tests.reports.rates import CARD_TOML, TOTAL

CARD = parse_rate_card(tomllib.loads(CARD_TOML), "test card")

# FOCUS 1.2: the columns whose feature level is Mandatory, from the specification's column list.
FOCUS_12_MANDATORY = {
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodEnd",
    "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost", "PricingQuantity",
    "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
}  # fmt: skip
FOCUS_SERVICE_CATEGORIES = {"AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases",
                            "Developer Tools", "Multicloud", "Identity", "Integration", "Internet of Things",
                            "Management and Governance", "Media", "Migration", "Mobile", "Networking", "Security",
                            "Storage", "Web", "Other"}  # fmt: skip


@pytest.fixture
def costs(cloud: Database) -> tuple[pl.DataFrame, pl.DataFrame]:
    with cloud.connection() as conn:
        return chargeback.charges(conn, Window(START, hours(48)), CARD), regions(conn)


def test_csv_parquet_and_xlsx_hold_the_same_rows(costs: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path) -> None:
    rows = chargeback.summarise(costs[0], "project", "daily", "UTC", "EUR").rows
    export.write(rows, tmp_path / "c.csv", "csv")
    export.write(rows, tmp_path / "c.parquet", "parquet")
    export.write(rows, tmp_path / "c.xlsx", "xlsx")
    assert pl.read_parquet(tmp_path / "c.parquet").drop("unit_price").equals(rows.drop("unit_price"))
    csv = pl.read_csv(tmp_path / "c.csv", infer_schema=False)
    assert sum(Decimal(v) for v in csv["cost"]) == TOTAL
    assert sorted(set(csv["period_start"])) == ["2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z"]
    sheet = openpyxl.load_workbook(tmp_path / "c.xlsx").active
    assert sheet is not None
    table = list(sheet.iter_rows(values_only=True))
    assert list(table[0]) == rows.columns and len(table) == rows.height + 1
    cost = rows.columns.index("cost")
    assert sum(Decimal(str(r[cost])) for r in table[1:]) == TOTAL
    assert table[1][rows.columns.index("period_start")] == datetime(2026, 3, 2)  # UTC, no zone in Excel
    with pytest.raises(ConfigError, match="--format 'pdf' is not one of csv, parquet, xlsx, focus"):
        export.write(rows, tmp_path / "c.pdf", "pdf")


def test_money_prices_and_quantities_are_numbers_in_parquet_and_xlsx(
    costs: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path
) -> None:
    """Parquet: decimals for money and unit prices, doubles for quantities; XLSX: numeric cells; CSV: the unit
    prices as written in the rate card."""
    rows = chargeback.summarise(costs[0], "vm", "daily", "UTC", "EUR").rows
    for fmt in ("csv", "parquet", "xlsx"):
        export.write(rows, tmp_path / f"c.{fmt}", fmt)
    prices = {("compute", "variable"): "0.01", ("compute", "fixed"): "0.01", ("compute-dev", "variable"): "0.005",
              ("cores", "variable"): "0.02", ("memory", "variable"): None, ("disk", "variable"): "0.0001",
              ("network", "variable"): "0.01"}  # fmt: skip
    numbers = ("cost", "unit_price", "quantity", "unknown_hours")

    types = {name: str(pq.read_schema(tmp_path / "c.parquet").field(name).type) for name in numbers}
    assert types == {"cost": "decimal128(38, 9)", "unit_price": "decimal128(38, 9)", "quantity": "double",
                     "unknown_hours": "double"}  # fmt: skip
    back = pl.read_parquet(tmp_path / "c.parquet").select("line", "component", "unit_price").unique()
    assert {(line, part): price for line, part, price in back.rows()} == {
        key: None if price is None else Decimal(price) for key, price in prices.items()
    }

    sheet = openpyxl.load_workbook(tmp_path / "c.xlsx").active
    assert sheet is not None
    header, *table = sheet.iter_rows(values_only=True)
    at = {name: header.index(name) for name in ("line", "component", *numbers)}
    for r in table:
        price = prices[r[at["line"]], r[at["component"]]]
        assert r[at["unit_price"]] == (None if price is None else float(price))
        assert all(type(r[at[name]]) in {int, float} for name in numbers if name != "unit_price"), r
    assert len(table) == rows.height

    csv = pl.read_csv(tmp_path / "c.csv", infer_schema=False).select("line", "component", "unit_price").unique()
    assert {(line, part): price for line, part, price in csv.rows()} == prices

    focus_frame = focus.focus_rows(costs[0], "EUR", "UTC", costs[1])
    export.write(focus_frame, tmp_path / "focus.parquet", "focus")
    schema = pq.read_schema(tmp_path / "focus.parquet")
    for name in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ListUnitPrice", "ContractedUnitPrice"):
        assert str(schema.field(name).type) == "decimal128(38, 9)", name
    for name in ("PricingQuantity", "ConsumedQuantity", "x_UnknownUsageHours"):
        assert str(schema.field(name).type) == "double", name


def test_focus_columns_one_by_one(costs: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path) -> None:
    rows = focus.focus_rows(costs[0], "EUR", "UTC", costs[1])
    assert set(rows.columns) >= FOCUS_12_MANDATORY
    assert {"ResourceId", "SubAccountId", "Tags"} <= set(rows.columns)
    custom = set(rows.columns) - FOCUS_12_MANDATORY - set(focus.RECOMMENDED) - set(focus.CONDITIONAL)
    assert custom and all(name.startswith("x_") for name in custom)
    assert sum(rows["BilledCost"].to_list(), Decimal(0)) == TOTAL
    for name in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"):
        assert rows[name].dtype == pl.Decimal(38, 9) and rows[name].null_count() == 0
    assert set(rows["ServiceCategory"]) <= FOCUS_SERVICE_CATEGORIES
    assert set(rows["ChargeCategory"]) == {"Usage"} and rows["ChargeClass"].null_count() == rows.height
    assert (rows["ChargePeriodEnd"] > rows["ChargePeriodStart"]).all()
    assert (rows["BillingPeriodStart"] <= rows["ChargePeriodStart"]).all()

    one = rows.filter(
        (pl.col("ResourceId") == "vm-a") & (pl.col("x_RateLine") == "compute") & (pl.col("x_Component") == "variable")
        & (pl.col("ChargePeriodStart") == datetime(2026, 3, 2, tzinfo=UTC))
    )  # fmt: skip
    assert one.height == 1
    r = one.row(0, named=True)
    expected = {
        "BilledCost": Decimal("0.96"), "EffectiveCost": Decimal("0.96"), "ListCost": Decimal("0.96"),
        "ContractedCost": Decimal("0.96"), "BillingAccountId": "lab", "BillingAccountName": "lab",
        "BillingCurrency": "EUR", "BillingPeriodStart": datetime(2026, 3, 1, tzinfo=UTC),
        "BillingPeriodEnd": datetime(2026, 4, 1, tzinfo=UTC), "ChargeCategory": "Usage", "ChargeClass": None,
        "ChargePeriodStart": datetime(2026, 3, 2, tzinfo=UTC), "ChargePeriodEnd": datetime(2026, 3, 3, tzinfo=UTC),
        "InvoiceIssuerName": "lab", "PricingQuantity": 96.0, "PricingUnit": "vCPU-Hours",
        "ProviderName": "lab", "PublisherName": "lab", "ServiceCategory": "Compute", "ServiceName": "Virtual Machines",
        "ChargeFrequency": "Usage-Based", "ConsumedQuantity": 96.0, "ConsumedUnit": "vCPU-Hours",
        "ContractedUnitPrice": Decimal("0.01"), "ListUnitPrice": Decimal("0.01"), "PricingCategory": "Standard",
        "RegionId": "r1", "RegionName": "r1", "ResourceId": "vm-a", "ResourceName": "vm-a",
        "ResourceType": "Virtual Machine", "SkuId": "vcpu_allocated", "SkuPriceId": "compute@v1",
        "SubAccountId": "alpha", "SubAccountName": "alpha", "SubAccountType": "Project",
        "x_RateLine": "compute", "x_RateVersion": "v1", "x_Measure": "vcpu_allocated", "x_Component": "variable",
        "x_UnknownUsageHours": 0.0, "x_Cluster": "c1", "x_CostNanos": 960_000_000,
    }  # fmt: skip
    for name, value in expected.items():
        assert r[name] == value, name
    assert json.loads(r["Tags"]) == {"env": "prod", "team": "web"}
    assert r["ChargeDescription"] == "vcpu_allocated usage of vm-a (hourly vCPU), rate line compute version v1"

    fee = rows.filter((pl.col("ResourceId") == "vm-d") & (pl.col("x_Component") == "fixed")).sort("ChargePeriodStart")
    assert fee["ChargeFrequency"].to_list() == ["Usage-Based"] * 2 and fee["PricingUnit"].to_list() == ["Hours"] * 2
    assert fee["PricingQuantity"].to_list() == [12.0, 12.0] and fee["ConsumedQuantity"].to_list() == [12.0, 12.0]
    memory = rows.filter((pl.col("ResourceId") == "vm-c") & (pl.col("x_RateLine") == "memory"))
    assert memory["ListUnitPrice"].null_count() == memory.height  # graduated: no single unit price
    assert json.loads(rows.filter(pl.col("ResourceId") == "vm-d")["Tags"][0]) == {}

    export.write(rows, tmp_path / "focus.parquet", "focus")
    export.write(rows, tmp_path / "focus.csv", "focus")
    assert pl.read_parquet(tmp_path / "focus.parquet").equals(rows)
    csv = pl.read_csv(tmp_path / "focus.csv", infer_schema=False)
    assert csv.columns == rows.columns and csv["ChargePeriodStart"][0] == "2026-03-02T00:00:00Z"
