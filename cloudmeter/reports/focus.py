"""FOCUS 1.2 cost and usage rows from chargeback charges (one row per VM, rate line, component and period).

All 21 mandatory columns, the conditional ones that apply to metered VMs (ResourceId, ResourceName,
ResourceType, SubAccountId/Name/Type, Tags, RegionId/Name, ConsumedQuantity/Unit, ListUnitPrice,
ContractedUnitPrice, PricingCategory, ChargeFrequency, SkuId, SkuPriceId) and cloudmeter's own columns
prefixed ``x_``. No discounts exist, so BilledCost = EffectiveCost = ListCost = ContractedCost.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from cloudmeter.reports.chargeback import money
from cloudmeter.reports.periods import period_end, period_start
from cloudmeter.reports.ratecard import MEASURES

FOCUS_VERSION: Final = "1.2"
MANDATORY: Final[tuple[str, ...]] = (
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodEnd",
    "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost", "PricingQuantity",
    "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
)  # fmt: skip
CONDITIONAL: Final[tuple[str, ...]] = (
    "ChargeFrequency", "ConsumedQuantity", "ConsumedUnit", "ContractedUnitPrice", "ListUnitPrice",
    "PricingCategory", "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType", "SkuId",
    "SkuPriceId", "SubAccountId", "SubAccountName", "SubAccountType", "Tags",
)  # fmt: skip
EXTRA: Final[tuple[str, ...]] = (
    "x_RateLine", "x_RateVersion", "x_Measure", "x_Component", "x_UnknownUsageHours", "x_Cluster", "x_CostNanos",
)  # fmt: skip
SERVICE_NAMES: Final = {"Compute": "Virtual Machines", "Storage": "Block Storage", "Networking": "Data Transfer"}
TIME_UNITS: Final = {"hourly": "Hours", "daily": "Days", "weekly": "Weeks", "monthly": "Months"}
ISSUER: Final = "cloudmeter"


def _unit_columns() -> pl.DataFrame:
    rows = []
    for measure, spec in MEASURES.items():
        for per_time, suffix in TIME_UNITS.items():
            pricing = "GB" if spec.volume else f"{spec.unit}-{suffix}"
            consumed = "GB" if spec.volume else f"{spec.unit}-Hours"
            category = spec.category
            rows.append((measure, per_time, pricing, consumed, category, SERVICE_NAMES[category]))
    names = ["x_Measure", "per_time", "pricing_unit", "ConsumedUnit", "ServiceCategory", "ServiceName"]
    return pl.DataFrame(rows, schema=names, orient="row")


def focus_rows(
    charges: pl.DataFrame, currency: str, tz: str, regions: pl.DataFrame, interval: str = "daily"
) -> pl.DataFrame:
    """FOCUS 1.2 rows of ``charges`` (chargeback.charges) per ``interval`` in ``tz``; ``regions`` maps
    resource_id to ``region`` (RegionId and RegionName). Periods are UTC instants of local midnights."""
    midnight = (
        pl.col("day").cast(pl.Datetime("us")).dt.replace_time_zone(tz, non_existent="null").dt.convert_time_zone("UTC")
    )
    keys = ["resource_id", "ems_ref", "name", "manager", "project", "cluster", "tags", "line", "version", "measure",
            "component", "unit", "per_time", "unit_price", "ChargePeriodStart"]  # fmt: skip
    grouped = (
        charges.with_columns(period_start(midnight, interval, tz).alias("ChargePeriodStart"))
        .group_by(keys)
        .agg(
            pl.col("quantity").sum(),
            pl.col("pricing_quantity").sum(),
            pl.col("unknown_hours").sum(),
            pl.col("cost_nanos").sum(),
        )
        .join(regions, on="resource_id", how="left")
        .join(_unit_columns(), left_on=["measure", "per_time"], right_on=["x_Measure", "per_time"], how="left")
        .sort("ChargePeriodStart", "resource_id", "line", "component")
    )
    fixed = pl.col("component") == "fixed"
    billing_start = period_start(pl.col("ChargePeriodStart"), "monthly", tz)
    price = money(grouped["cost_nanos"])
    frame = grouped.with_columns(
        price.alias("BilledCost"),
        pl.col("manager").alias("BillingAccountId"),
        pl.col("manager").alias("BillingAccountName"),
        pl.lit(currency).alias("BillingCurrency"),
        billing_start.alias("BillingPeriodStart"),
        period_end(billing_start, "monthly", tz).alias("BillingPeriodEnd"),
        pl.lit("Usage").alias("ChargeCategory"),
        pl.lit(None, pl.String).alias("ChargeClass"),
        pl.format(
            "{} {} of {} ({} {}), rate line {} version {}",
            pl.col("measure"),
            pl.when(fixed).then(pl.lit("fixed fee")).otherwise(pl.lit("usage")),
            pl.col("name"),
            pl.col("per_time"),
            pl.col("unit"),
            pl.col("line"),
            pl.col("version"),
        ).alias("ChargeDescription"),
        period_end(pl.col("ChargePeriodStart"), interval, tz).alias("ChargePeriodEnd"),
        price.alias("ContractedCost"),
        price.alias("EffectiveCost"),
        pl.lit(ISSUER).alias("InvoiceIssuerName"),
        price.alias("ListCost"),
        pl.col("pricing_quantity").alias("PricingQuantity"),
        pl.when(fixed)
        .then(pl.col("per_time").replace_strict(TIME_UNITS, return_dtype=pl.String))
        .otherwise(pl.col("pricing_unit"))
        .alias("PricingUnit"),
        pl.col("manager").alias("ProviderName"),
        pl.col("manager").alias("PublisherName"),
        pl.when(fixed).then(pl.lit("Recurring")).otherwise(pl.lit("Usage-Based")).alias("ChargeFrequency"),
        pl.when(fixed).then(None).otherwise(pl.col("quantity")).alias("ConsumedQuantity"),
        pl.when(fixed).then(None).otherwise(pl.col("ConsumedUnit")).alias("ConsumedUnit"),
        pl.col("unit_price").cast(pl.Decimal(38, 9)).alias("ContractedUnitPrice"),
        pl.col("unit_price").cast(pl.Decimal(38, 9)).alias("ListUnitPrice"),
        pl.lit("Standard").alias("PricingCategory"),
        pl.col("region").alias("RegionId"),
        pl.col("region").alias("RegionName"),
        pl.col("ems_ref").alias("ResourceId"),
        pl.col("name").alias("ResourceName"),
        pl.lit("Virtual Machine").alias("ResourceType"),
        pl.col("measure").alias("SkuId"),
        pl.format("{}@{}", pl.col("line"), pl.col("version")).alias("SkuPriceId"),
        pl.col("project").alias("SubAccountId"),
        pl.col("project").alias("SubAccountName"),
        pl.when(pl.col("project").is_not_null()).then(pl.lit("Project")).alias("SubAccountType"),
        pl.col("tags").fill_null("{}").alias("Tags"),
        pl.col("line").alias("x_RateLine"),
        pl.col("version").alias("x_RateVersion"),
        pl.col("measure").alias("x_Measure"),
        pl.col("component").alias("x_Component"),
        pl.col("unknown_hours").alias("x_UnknownUsageHours"),
        pl.col("cluster").alias("x_Cluster"),
        pl.col("cost_nanos").alias("x_CostNanos"),
    )
    return frame.select(*MANDATORY, *CONDITIONAL, *EXTRA)
