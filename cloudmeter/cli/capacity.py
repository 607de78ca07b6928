"""``cloudmeter capacity ...``: utilization, headroom, forecast and right-sizing reports (a typer sub-app)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from cloudmeter.cli.common import MAX_WINDOW_DAYS, ConfigOption, console, handled_errors, read_settings
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
from cloudmeter.cli.reporting import FromOption, RatesOption, ToOption, TzOption, rate_card, reporting
from cloudmeter.model import Window
from cloudmeter.reports import capacity, charts, forecast, views
from cloudmeter.reports.paths import check_writable

capacity_app = typer.Typer(
    help="Capacity planning: utilization, headroom, forecasts, right-sizing.", no_args_is_help=True
)

PlotOption = Annotated[Path | None, typer.Option("--plot", help="Also write a PNG chart to this path.")]


def report(shown: views.Shown, chosen: View) -> None:
    """Print a capacity report (``reports.views`` orders its columns) and, in a table, what part of its window
    its data covers."""
    frame = shown.frame
    show(frame, chosen, shown.title)
    if chosen.output is Output.table:
        for note in [*coverage_notes(frame, shown.window), *capacity_notes(frame), *shown.notes]:
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
        if frame.height and "coverage_pct" in frame.columns and frame["coverage_pct"].null_count() == frame.height:
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


def _rightsize_notes(frame: pl.DataFrame, currency: str, level: str) -> None:
    counts = dict(frame.group_by("action").len().iter_rows())
    things = "containers" if level == "container" else "VMs"
    for action, why in (("no data", "no samples in the window"), ("retired", "deleted before the window's end")):
        if counts.get(action):
            console.print(f"[yellow]note:[/] {counts[action]} {things} have no recommendation: {why}", highlight=False)
    if "monthly_savings" not in frame.columns:
        return
    savings = frame["monthly_savings"].drop_nulls()
    if len(savings):
        total = cell("monthly_savings", savings.sum())
        applied = f"monthly savings if all are applied: {total} {currency} ({len(savings)} {things})"
        console.print(applied, highlight=False)


@capacity_app.command("utilization")
def utilization_command(
    level: Annotated[str, typer.Option(help="host, cluster or provider.")] = "cluster",
    view_name: Annotated[
        str,
        typer.Option(
            "--view",
            help="vms: the sum of the VMs; host_measured: the hosts' own measurement (vmware), the VMs' sum and "
            "the overhead between them, per host or cluster, within the raw retention.",
        ),
    ] = "vms",
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
    against capacity (overcommit); with --view host_measured, what the hosts measure of themselves beside it."""
    with handled_errors():
        raw_days = read_settings(config).retention.raw_days
    params = views.Utilization(level, views.Period(start, end, days, tz), view_name, raw_days)
    with handled_errors():
        params.check()
        params.period.window()
        if plot:
            check_writable(plot, "chart")
    with reporting(config) as conn, handled_errors():
        shown = views.utilization(conn, params)
        if plot:
            chosen = params.check()
            series = capacity.hourly_series(conn, shown.window, chosen)
            charts.plot_trend(series, chosen, "cpu_pct", plot, f"CPU used, % of capacity, per {chosen}")
    report(shown, view(output, as_json, sort, top, wide, tz))


@capacity_app.command("headroom")
def headroom_command(
    vcpus: Annotated[
        float, typer.Option(help="vCPUs of the flavor to place (Kubernetes: a pod's CPU request in cores, 0.5).")
    ],
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
    """How many more VMs of a flavor fit per cluster, host by host, under usage and allocation limits; on
    Kubernetes, pods of given requests node by node (--vcpus 0.5 --memory-gb 1 --cpu-allocation-ratio 1)."""
    period = views.Period(start, end, days, tz)
    params = views.Headroom(vcpus, memory_gb, cpu_usage_pct, mem_usage_pct, cpu_ratio, mem_ratio, period)
    with handled_errors():
        period.window()
        params.check()
    with reporting(config) as conn, handled_errors():
        shown = views.headroom_report(conn, params)
    report(shown, view(output, as_json, sort, top, wide, tz))


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
    params = views.Forecast(limit, views.Period(start, end, days, tz))
    with handled_errors():
        params.period.window()
        if plot:
            check_writable(plot, "chart")
    with reporting(config) as conn, handled_errors():
        shown = views.forecast_report(conn, params)
        if plot:
            charts.plot_forecast(forecast.daily_peaks(conn, shown.window, tz), shown.frame, plot)
    chosen = view(output, as_json, sort, top, wide, tz)
    report(shown, chosen)
    if chosen.output is Output.table:
        for row in shown.frame.filter(pl.col("note").is_not_null()).iter_rows(named=True):
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
    level: Annotated[
        str, typer.Option(help="vm: vCPUs and memory per VM; container: requests per Kubernetes container.")
    ] = "vm",
) -> None:
    """Recommended vCPUs and memory per VM, idle VMs, and the monthly cost change under the rate card; or
    recommended CPU and memory requests per Kubernetes container (--level container)."""
    params = views.Rightsize(percentile, headroom_pct, idle_cpu_pct, rates, views.Period(start, end, days, tz), level)
    with handled_errors():
        params.period.window()
        params.check()
    card = rate_card(rates)
    with reporting(config) as conn, handled_errors():
        shown = views.rightsize_report(conn, params, card)
    chosen_view = view(output, as_json, sort, top, wide, tz)
    report(shown, chosen_view)
    if chosen_view.output is Output.table:
        _rightsize_notes(shown.frame, card.currency, level)
