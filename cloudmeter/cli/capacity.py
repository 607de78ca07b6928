"""``cloudmeter capacity ...``: utilization, headroom, forecast and right-sizing reports (a typer sub-app)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from cloudmeter.cli.common import MAX_WINDOW_DAYS, ConfigOption, console, handled_errors
from cloudmeter.cli.output import (
    JsonOption,
    Output,
    OutputOption,
    SortOption,
    TopOption,
    View,
    WideOption,
    cell,
    show,
    view,
)
from cloudmeter.cli.reporting import FromOption, RatesOption, ToOption, TzOption, rate_card, report_window, reporting
from cloudmeter.model import Window
from cloudmeter.reports import capacity, charts, forecast, headroom, rightsize
from cloudmeter.reports.paths import check_writable

capacity_app = typer.Typer(
    help="Capacity planning: utilization, headroom, forecasts, right-sizing.", no_args_is_help=True
)

PlotOption = Annotated[Path | None, typer.Option("--plot", help="Also write a PNG chart to this path.")]

#: Columns a table shows first (the rest follow in the report's order, as the terminal's width allows).
_UTILIZATION = ("coverage_pct", "cpu_pct_avg", "cpu_pct_p95", "cpu_pct_peak", "mem_pct_avg", "mem_pct_p95")
_FORECAST = ("resource", "method", "status", "exhaustion_date", "days_to_exhaustion", "extrapolation", "days_of_data")
_HEADROOM = ("cluster", "fit", "limited_by", "coverage_pct", "hosts", "hosts_without_data")


def report(frame: pl.DataFrame, chosen: View, title: str, window: Window, first: tuple[str, ...] = ()) -> None:
    """Print a capacity report (its ``first`` columns leading, after the row's name) and, in a table, what part
    of ``window`` its data covers."""
    leading = [frame.columns[0], *(c for c in first if c in frame.columns and c != frame.columns[0])]
    show(frame.select(*leading, pl.exclude(leading)), chosen, title)
    if chosen.output is Output.table:
        for note in [*coverage_notes(frame, window), *capacity_notes(frame)]:
            console.print(f"[yellow]note:[/] {note}", highlight=False)


def capacity_notes(frame: pl.DataFrame) -> list[str]:
    """Rows whose capacity is unknown: their percentages of it are unknown too, and how to make it known."""
    columns = [c for c in ("vcpus_capacity", "mem_gb_capacity") if c in frame.columns]
    if not columns:
        return []
    unknown = frame.filter(pl.any_horizontal(pl.col(c).is_null() for c in columns)).height
    if not unknown:
        return []
    return [
        f"{unknown} of {frame.height} rows have no known host capacity, so their % and overcommit figures are "
        "unknown (-): OpenStack reads it from Nova's hypervisors (the user needs the admin role), or set "
        "host_capacity in the manager's config"
    ]


def coverage_notes(frame: pl.DataFrame, window: Window) -> list[str]:
    """What a reader must know before trusting the numbers: no data, or data on only part of the window."""
    if "data_from" not in frame.columns or frame["data_from"].null_count() == frame.height:
        if "coverage_pct" in frame.columns and frame["coverage_pct"].null_count() == frame.height:
            return ["no samples in this window: every figure is unknown (-), not zero"]
        return []
    first, last = frame["data_from"].min(), frame["data_to"].max()
    assert isinstance(first, datetime) and isinstance(last, datetime)
    span, asked = last - first, window.end - window.start
    if span >= asked:
        return []
    return [
        f"data covers {span.total_seconds() / 86400:.1f} of the window's {asked.total_seconds() / 86400:.1f} days "
        f"({first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC)"
    ]


def _rightsize_notes(frame: pl.DataFrame, currency: str) -> None:
    counts = dict(frame.group_by("action").len().iter_rows())
    savings = frame["monthly_savings"].drop_nulls()
    for action, why in (("no data", "no samples in the window"), ("retired", "deleted before the window's end")):
        if counts.get(action):
            console.print(f"[yellow]note:[/] {counts[action]} VMs have no recommendation: {why}", highlight=False)
    if len(savings):
        total = cell("monthly_savings", savings.sum())
        console.print(f"monthly savings if all are applied: {total} {currency} ({len(savings)} VMs)", highlight=False)


@capacity_app.command("utilization")
def utilization_command(
    level: Annotated[str, typer.Option(help="host, cluster or provider.")] = "cluster",
    start: FromOption = None,
    end: ToOption = None,
    days: Annotated[int, typer.Option(min=1, max=MAX_WINDOW_DAYS, help="Window length when --from is not given.")] = 7,
    tz: TzOption = "UTC",
    plot: PlotOption = None,
    config: ConfigOption = None,
    output: OutputOption = Output.table,
    as_json: JsonOption = False,
    sort: SortOption = None,
    top: TopOption = None,
    wide: WideOption = False,
) -> None:
    """Avg, p95 and peak CPU/memory/disk/network per host, cluster or provider, coverage, and allocation
    against capacity (overcommit)."""
    window = report_window(start, end, days, tz)
    if plot:
        with handled_errors():
            check_writable(plot, "chart")
    with reporting(config) as conn:
        chosen = capacity.check_level(level)
        frame = capacity.utilization(conn, window, chosen)
        if plot:
            series = capacity.hourly_series(conn, window, chosen)
            charts.plot_trend(series, chosen, "cpu_pct", plot, f"CPU used, % of capacity, per {chosen}")
    chosen_view = view(output, as_json, sort, top, wide, tz)
    report(frame.drop("resource_id"), chosen_view, f"utilization per {chosen}, {window}", window, _UTILIZATION)


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
    days: Annotated[int, typer.Option(min=1, max=MAX_WINDOW_DAYS, help="Lookback when --from is not given.")] = 14,
    tz: TzOption = "UTC",
    config: ConfigOption = None,
    output: OutputOption = Output.table,
    as_json: JsonOption = False,
    sort: SortOption = None,
    top: TopOption = None,
    wide: WideOption = False,
) -> None:
    """How many more VMs of a flavor fit per cluster, host by host, under usage and allocation limits."""
    window = report_window(start, end, days, tz)
    with handled_errors():
        flavor = headroom.Flavor(vcpus, memory_gb)
        limits = headroom.Limits(cpu_usage_pct, mem_usage_pct, cpu_ratio, mem_ratio)
    with reporting(config) as conn:
        frame = headroom.headroom(conn, window, flavor, limits)
    title = f"headroom for {vcpus} vCPU / {memory_gb:g} GB, {window}"
    report(frame, view(output, as_json, sort, top, wide, tz), title, window, _HEADROOM)


@capacity_app.command("forecast")
def forecast_command(
    limit: Annotated[float, typer.Option(help="Exhaustion at this % of capacity.")] = 90.0,
    start: FromOption = None,
    end: ToOption = None,
    days: Annotated[int, typer.Option(min=3, max=MAX_WINDOW_DAYS, help="History when --from is not given.")] = 28,
    tz: TzOption = "UTC",
    plot: PlotOption = None,
    config: ConfigOption = None,
    output: OutputOption = Output.table,
    as_json: JsonOption = False,
    sort: SortOption = None,
    top: TopOption = None,
    wide: WideOption = False,
) -> None:
    """Days until each cluster's CPU and memory reach the limit (linear and weekly-seasonal fits on daily peaks)."""
    window = report_window(start, end, days, tz)
    if plot:
        with handled_errors():
            check_writable(plot, "chart")
    with reporting(config) as conn, handled_errors():
        frame = forecast.forecast(conn, window, limit, tz)
        if plot:
            charts.plot_forecast(forecast.daily_peaks(conn, window, tz), frame, plot)
    chosen = view(output, as_json, sort, top, wide, tz)
    report(frame, chosen, f"forecast to {limit:g}% of capacity, {window}", window, _FORECAST)
    if chosen.output is Output.table:
        for row in frame.filter(pl.col("note").is_not_null()).iter_rows(named=True):
            label = f"{row['cluster']} {row['resource']} {row['method']}"
            console.print(f"[yellow]note:[/] {label}: {row['note']}", highlight=False)


@capacity_app.command("rightsize")
def rightsize_command(
    percentile: Annotated[float, typer.Option(help="Usage percentile to size for.")] = 95.0,
    headroom_pct: Annotated[float, typer.Option("--headroom", help="Headroom over the percentile, %.")] = 20.0,
    idle_cpu_pct: Annotated[float, typer.Option("--idle-cpu-pct", help="Idle below this % of vCPUs.")] = 5.0,
    rates: RatesOption = None,
    start: FromOption = None,
    end: ToOption = None,
    days: Annotated[int, typer.Option(min=1, max=MAX_WINDOW_DAYS, help="Lookback when --from is not given.")] = 14,
    tz: TzOption = "UTC",
    config: ConfigOption = None,
    output: OutputOption = Output.table,
    as_json: JsonOption = False,
    sort: SortOption = None,
    top: TopOption = None,
    wide: WideOption = False,
) -> None:
    """Recommended vCPUs and memory per VM, idle VMs, and the monthly cost change under the rate card."""
    window = report_window(start, end, days, tz)
    card = rate_card(rates)
    with handled_errors():
        policy = rightsize.Policy(percentile, headroom_pct, idle_cpu_pct)
    with reporting(config) as conn, handled_errors():
        frame = rightsize.rightsize(conn, window, card, policy)
    title = f"right-sizing (p{percentile:g} + {headroom_pct:g}%), costs in {card.currency}, {window}"
    chosen_view = view(output, as_json, sort, top, wide, tz)
    report(frame.drop("resource_id"), chosen_view, title, window)
    if chosen_view.output is Output.table:
        _rightsize_notes(frame, card.currency)
