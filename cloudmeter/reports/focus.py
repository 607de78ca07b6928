"""FOCUS 1.2 cost and usage rows from chargeback charges (one row per VM, rate line, component and period).

All 21 mandatory columns, the recommended ChargeFrequency, InvoiceId (null: cloudmeter issues no invoice) and
ServiceSubcategory, the conditional ones that apply to metered VMs (ResourceId, ResourceName, ResourceType,
SubAccountId/Name/Type, Tags, RegionId/Name, ConsumedQuantity/Unit, ListUnitPrice, ContractedUnitPrice,
PricingCategory, SkuId, SkuPriceId) and cloudmeter's own columns prefixed ``x_``. No discounts exist, so
BilledCost = EffectiveCost = ListCost = ContractedCost.

An internal chargeback is the spec's "internal infrastructure offering" (appendix "Origination of cost data"):
the provider, publisher and invoice issuer are the same internal offering, the manager's cloud. Every row is
Usage: variable charges meter a quantity, fixed fees the hours a VM exists, both recorded only while it does.
Units follow the spec's UnitFormat, where cloudmeter's GB (2^30 bytes) is GiB.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from cloudmeter.reports.chargeback import money
from cloudmeter.reports.export import exact_decimals
from cloudmeter.reports.periods import period_end, period_start
from cloudmeter.reports.ratecard import MEASURES

FOCUS_VERSION: Final = "1.2"
MANDATORY: Final[tuple[str, ...]] = (
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodEnd",
    "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost", "PricingQuantity",
    "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
)  # fmt: skip
RECOMMENDED: Final[tuple[str, ...]] = ("ChargeFrequency", "InvoiceId", "ServiceSubcategory")
CONDITIONAL: Final[tuple[str, ...]] = (
    "ConsumedQuantity", "ConsumedUnit", "ContractedUnitPrice", "ListUnitPrice",
    "PricingCategory", "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType", "SkuId",
    "SkuPriceId", "SubAccountId", "SubAccountName", "SubAccountType", "Tags",
)  # fmt: skip
EXTRA: Final[tuple[str, ...]] = (
    "x_RateLine", "x_RateVersion", "x_Measure", "x_Component", "x_UnknownUsageHours", "x_Cluster", "x_CostNanos",
)  # fmt: skip
#: ServiceCategory -> (ServiceName, ServiceSubcategory): a subcategory the spec allows under that category.
SERVICES: Final = {
    "Compute": ("Virtual Machines", "Virtual Machines"),
    "Storage": ("Block Storage", "Block Storage"),
    "Networking": ("Data Transfer", "Network Connectivity"),
}
#: A Kubernetes container's compute: (ServiceName, ServiceSubcategory); its ResourceType.
CONTAINERS: Final = ("Kubernetes", "Containers")
#: The ResourceType of a Kubernetes node's idle capacity (rows named ``__idle__/<node>``), in the same service.
NODE: Final = "Kubernetes Node (idle)"
TIME_UNITS: Final = {"hourly": "Hours", "daily": "Days", "weekly": "Weeks", "monthly": "Months"}
UNITS: Final = {"GB": "GiB"}  # cloudmeter's unit names -> FOCUS UnitFormat


def _unit_columns() -> pl.DataFrame:
    rows = []
    for measure, spec in MEASURES.items():
        unit = UNITS.get(spec.unit, spec.unit)
        service, subcategory = SERVICES[spec.category]
        for per_time, suffix in TIME_UNITS.items():
            pricing = unit if spec.volume else f"{unit}-{suffix}"
            consumed = unit if spec.volume else f"{unit}-Hours"
            rows.append((measure, per_time, pricing, consumed, spec.category, service, subcategory))
    names = ["x_Measure", "per_time", "pricing_unit", "consumed_unit", "ServiceCategory", "ServiceName",
             "ServiceSubcategory"]  # fmt: skip
    return pl.DataFrame(rows, schema=names, orient="row")


def focus_rows(
    charges: pl.DataFrame, currency: str, tz: str, regions: pl.DataFrame, interval: str = "daily"
) -> pl.DataFrame:
    """FOCUS 1.2 rows of ``charges`` (chargeback.charges) per ``interval`` in ``tz``; ``regions`` maps
    resource_id to ``region`` (RegionId and RegionName) and ``kind`` (a container's compute is the service
    Kubernetes, subcategory Containers, ResourceType Container; a node's idle capacity the same with ResourceType
    ``NODE``). Periods are UTC instants of local midnights."""
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
    container = pl.col("kind") == "container"
    node = pl.col("kind") == "host"  # a Kubernetes node's idle capacity (``reports.idle``)
    compute = (container | node) & (pl.col("ServiceCategory") == "Compute")
    grouped = grouped.with_columns(
        pl.when(compute).then(pl.lit(CONTAINERS[0])).otherwise("ServiceName").alias("ServiceName"),
        pl.when(compute).then(pl.lit(CONTAINERS[1])).otherwise("ServiceSubcategory").alias("ServiceSubcategory"),
    )
    fixed = pl.col("component") == "fixed"
    billing_start = period_start(pl.col("ChargePeriodStart"), "monthly", tz)
    price = money(grouped["cost_nanos"])
    unit_price = exact_decimals(grouped["unit_price"])
    fee_suffix = pl.when(fixed).then(pl.lit("/fixed")).otherwise(pl.lit(""))  # a fee is a price of its own
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
        pl.col("manager").alias("InvoiceIssuerName"),
        price.alias("ListCost"),
        pl.col("pricing_quantity").alias("PricingQuantity"),
        pl.when(fixed)
        .then(pl.col("per_time").replace_strict(TIME_UNITS, return_dtype=pl.String))
        .otherwise(pl.col("pricing_unit"))
        .alias("PricingUnit"),
        pl.col("manager").alias("ProviderName"),
        pl.col("manager").alias("PublisherName"),
        pl.lit("Usage-Based").alias("ChargeFrequency"),
        pl.lit(None, pl.String).alias("InvoiceId"),
        pl.col("quantity").alias("ConsumedQuantity"),
        pl.when(fixed).then(pl.lit("Hours")).otherwise(pl.col("consumed_unit")).alias("ConsumedUnit"),
        unit_price.alias("ContractedUnitPrice"),
        unit_price.alias("ListUnitPrice"),
        pl.lit("Standard").alias("PricingCategory"),
        pl.col("region").alias("RegionId"),
        pl.col("region").alias("RegionName"),
        pl.col("ems_ref").alias("ResourceId"),
        pl.col("name").alias("ResourceName"),
        pl.when(container)
        .then(pl.lit("Container"))
        .when(node)
        .then(pl.lit(NODE))
        .otherwise(pl.lit("Virtual Machine"))
        .alias("ResourceType"),
        pl.col("measure").alias("SkuId"),
        pl.format("{}@{}{}", "line", "version", fee_suffix).alias("SkuPriceId"),
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
    return frame.select(*MANDATORY, *RECOMMENDED, *CONDITIONAL, *EXTRA)
