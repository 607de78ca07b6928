"""``cloudmeter capacity ...`` and ``cloudmeter chargeback ...``: the report commands (typer sub-apps)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from cloudmeter.cli_common import (
    ConfigOption,
    JsonOption,
    console,
    fail,
    handled_errors,
    open_database,
    parse_time,
    print_frame,
    read_settings,
)
from cloudmeter.model import Window
from cloudmeter.reports import capacity, chargeback, charts, export, focus, forecast, headroom, rightsize
from cloudmeter.reports.inputs import regions
from cloudmeter.reports.periods import check_zone
from cloudmeter.reports.ratecard import RateCard, load_rate_card, sample_rate_card

capacity_app = typer.Typer(
    help="Capacity planning: utilization, headroom, forecasts, right-sizing.", no_args_is_help=True
)
chargeback_app = typer.Typer(
    help="Chargeback: costs under a rate card, exports (CSV, Parquet, XLSX, FOCUS).", no_args_is_help=True
)

FromOption = Annotated[
    str | None, typer.Option("--from", help="Start date/time (ISO 8601; a date is local midnight in --tz).")
]
ToOption = Annotated[str | None, typer.Option("--to", help="End, exclusive (ISO 8601); default: the last whole hour.")]
TzOption = Annotated[str, typer.Option("--tz", help="Time zone of dates and days (IANA name).")]
PlotOption = Annotated[Path | None, typer.Option("--plot", help="Also write a PNG chart to this path.")]
RatesOption = Annotated[
    Path | None, typer.Option("--rates", help="Rate card (TOML or YAML); default: the sample card.")
]


def _window(start: str | None, end: str | None, days: int, tz: str) -> Window:
    """--from/--to (dates at local midnight in ``tz``), or the ``days`` before --to (default: the last whole hour)."""
    with handled_errors():
        check_zone(tz)
    stop = parse_time(end, "--to", tz) or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    begin = parse_time(start, "--from", tz) or stop - timedelta(days=days)
    if stop <= begin:
        raise fail(f"--to {stop.isoformat()} is not after --from {begin.isoformat()}; swap them or widen the window", 2)
    return Window(begin, stop)


def _rates(path: Path | None) -> RateCard:
    with handled_errors():
        return load_rate_card(path) if path else sample_rate_card()


@capacity_app.command("utilization")
def utilization_command(
    level: Annotated[str, typer.Option(help="host, cluster or provider.")] = "cluster",
    start: FromOption = None,
    end: ToOption = None,
    days: Annotated[int, typer.Option(min=1, help="Window length when --from is not given.")] = 7,
    tz: TzOption = "UTC",
    plot: PlotOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Avg, p95 and peak CPU/memory/disk/network per host, cluster or provider, coverage, and allocation
    against capacity (overcommit)."""
    window = _window(start, end, days, tz)
    settings = read_settings(config)
    with open_database(settings) as db, db.connection() as conn:
        chosen = capacity.check_level(level)
        frame = capacity.utilization(conn, window, chosen)
        if plot:
            series = capacity.hourly_series(conn, window, chosen)
            charts.plot_trend(series, chosen, "cpu_pct", plot, f"CPU used, % of capacity, per {chosen}")
    print_frame(frame.drop("resource_id"), as_json, title=f"utilization per {chosen}, {window}")


@capacity_app.command("headroom")
def headroom_command(
    vcpus: Annotated[int, typer.Option(help="vCPUs of the flavor to place.")],
    memory_gb: Annotated[float, typer.Option("--memory-gb", help="Memory (GB = 2^30 bytes) of the flavor.")],
    cpu_usage_pct: Annotated[
        float, typer.Option("--cpu-usage-pct", help="Limit on p95 CPU use, % of capacity.")
    ] = 90.0,
    mem_usage_pct: Annotated[float, typer.Option("--mem-usage-pct", help="Limit on p95 memory use, %.")] = 90.0,
    cpu_ratio: Annotated[float, typer.Option("--cpu-allocation-ratio", help="Allowed vCPU overcommit.")] = 4.0,
    mem_ratio: Annotated[float, typer.Option("--mem-allocation-ratio", help="Allowed memory overcommit.")] = 1.0,
    start: FromOption = None,
    end: ToOption = None,
    days: Annotated[int, typer.Option(min=1, help="Lookback when --from is not given.")] = 14,
    tz: TzOption = "UTC",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """How many more VMs of a flavor fit per cluster, host by host, under usage and allocation limits."""
    window = _window(start, end, days, tz)
    with handled_errors():
        flavor = headroom.Flavor(vcpus, memory_gb)
        limits = headroom.Limits(cpu_usage_pct, mem_usage_pct, cpu_ratio, mem_ratio)
    settings = read_settings(config)
    with open_database(settings) as db, db.connection() as conn:
        frame = headroom.headroom(conn, window, flavor, limits)
    print_frame(frame, as_json, title=f"headroom for {vcpus} vCPU / {memory_gb:g} GB, {window}")


@capacity_app.command("forecast")
def forecast_command(
    limit: Annotated[float, typer.Option(help="Exhaustion at this % of capacity.")] = 90.0,
    start: FromOption = None,
    end: ToOption = None,
    days: Annotated[int, typer.Option(min=3, help="History when --from is not given.")] = 28,
    tz: TzOption = "UTC",
    plot: PlotOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Days until each cluster's CPU and memory reach the limit (linear and weekly-seasonal fits on daily peaks)."""
    window = _window(start, end, days, tz)
    settings = read_settings(config)
    with open_database(settings) as db, db.connection() as conn, handled_errors():
        frame = forecast.forecast(conn, window, limit, tz)
        if plot:
            charts.plot_forecast(forecast.daily_peaks(conn, window, tz), frame, plot)
    print_frame(frame, as_json, title=f"forecast to {limit:g}% of capacity, {window}")


@capacity_app.command("rightsize")
def rightsize_command(
    percentile: Annotated[float, typer.Option(help="Usage percentile to size for.")] = 95.0,
    headroom_pct: Annotated[float, typer.Option("--headroom", help="Headroom over the percentile, %.")] = 20.0,
    idle_cpu_pct: Annotated[float, typer.Option("--idle-cpu-pct", help="Idle below this % of vCPUs.")] = 5.0,
    rates: RatesOption = None,
    start: FromOption = None,
    end: ToOption = None,
    days: Annotated[int, typer.Option(min=1, help="Lookback when --from is not given.")] = 14,
    tz: TzOption = "UTC",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Recommended vCPUs and memory per VM, idle VMs, and the monthly cost change under the rate card."""
    window = _window(start, end, days, tz)
    card = _rates(rates)
    with handled_errors():
        policy = rightsize.Policy(percentile, headroom_pct, idle_cpu_pct)
    settings = read_settings(config)
    with open_database(settings) as db, db.connection() as conn, handled_errors():
        frame = rightsize.rightsize(conn, window, card, policy)
    print_frame(frame, as_json, title=f"right-sizing (p{percentile:g} + {headroom_pct:g}%), costs in {card.currency}")


def _charges(config: Path | None, window: Window, card: RateCard, tz: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    settings = read_settings(config)
    with open_database(settings) as db, db.connection() as conn, handled_errors():
        return chargeback.charges(conn, window, card, tz), regions(conn)


GroupOption = Annotated[str, typer.Option("--group-by", help="vm, project, cluster, provider or tag:KEY.")]
IntervalOption = Annotated[str, typer.Option("--interval", help="daily, weekly or monthly (in --tz).")]


@chargeback_app.command("show")
def show_command(
    start: FromOption = None,
    end: ToOption = None,
    days: Annotated[int, typer.Option(min=1, help="Window when --from is not given.")] = 7,
    group_by: GroupOption = "project",
    interval: IntervalOption = "monthly",
    rates: RatesOption = None,
    tz: TzOption = "UTC",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Costs per group, period and rate line, with the grand total."""
    window = _window(start, end, days, tz)
    card = _rates(rates)
    with handled_errors():
        chargeback.group_columns(group_by)
    costs, _ = _charges(config, window, card, tz)
    with handled_errors():
        report = chargeback.summarise(costs, group_by, interval, tz, card.currency)
    print_frame(report.rows.drop("cost_nanos"), as_json, title=f"chargeback per {group_by}, {card.currency}, {window}")
    if not as_json:
        console.print(f"total {chargeback.money(pl.Series([report.total_nanos]))[0]} {card.currency}", highlight=False)


@chargeback_app.command("export")
def export_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    start: Annotated[str, typer.Option("--from", help="First day (ISO 8601 date, local midnight in --tz).")],
    end: Annotated[str, typer.Option("--to", help="End day, exclusive (ISO 8601).")],
    fmt: Annotated[
        str, typer.Option("--format", help="csv, parquet, xlsx or focus (FOCUS 1.2; .parquet or CSV).")
    ] = "csv",
    group_by: GroupOption = "vm",
    interval: IntervalOption = "daily",
    rates: RatesOption = None,
    tz: TzOption = "UTC",
    config: ConfigOption = None,
) -> None:
    """Write the costs of a period grouped by VM, project, cluster, provider or tag (FOCUS: per VM and day)."""
    window = _window(start, end, 1, tz)
    with handled_errors():
        export.check_format(fmt)
        chargeback.group_columns(group_by)
    card = _rates(rates)
    costs, located = _charges(config, window, card, tz)
    with handled_errors():
        if fmt == "focus":
            frame = focus.focus_rows(costs, card.currency, tz, located, interval)
        else:
            frame = chargeback.summarise(costs, group_by, interval, tz, card.currency).rows
        export.write(frame, output, fmt)
    total = chargeback.money(pl.Series([int(costs["cost_nanos"].sum())]))[0]
    console.print(f"wrote {frame.height} rows to {output} ({fmt}); total {total} {card.currency}", highlight=False)
