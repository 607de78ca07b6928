"""``cloudmeter chargeback ...``: costs under a rate card, and their exports (a typer sub-app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from cloudmeter.cli.common import MAX_WINDOW_DAYS, ConfigOption, console, handled_errors
from cloudmeter.cli.output import JsonOption, Output, OutputOption, SortOption, TopOption, WideOption, cell, show, view
from cloudmeter.cli.reporting import FromOption, RatesOption, ToOption, TzOption, rate_card, report_window, reporting
from cloudmeter.model import Window
from cloudmeter.reports import chargeback, export, focus
from cloudmeter.reports.inputs import regions
from cloudmeter.reports.paths import check_writable
from cloudmeter.reports.ratecard import RateCard

chargeback_app = typer.Typer(
    help="Chargeback: costs under a rate card, exports (CSV, Parquet, XLSX, FOCUS).", no_args_is_help=True
)


def _total_line(rows: pl.DataFrame, total_nanos: int, currency: str) -> str:
    """``total 1,234.56 EUR``, or that there is nothing to total (never a made-up 0)."""
    if not rows.height:
        return "total: n/a (no charges in this window)"
    return f"total {cell('cost', chargeback.money(pl.Series([total_nanos]))[0])} {currency}"


def _charges(config: Path | None, window: Window, card: RateCard, tz: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    with reporting(config) as conn, handled_errors():
        return chargeback.charges(conn, window, card, tz), regions(conn)


GroupOption = Annotated[str, typer.Option("--group-by", help="vm, project, cluster, provider or tag:KEY.")]
IntervalOption = Annotated[str, typer.Option("--interval", help="daily, weekly or monthly (in --tz).")]


@chargeback_app.command("show")
def show_command(
    start: FromOption = None,
    end: ToOption = None,
    days: Annotated[int, typer.Option(min=1, max=MAX_WINDOW_DAYS, help="Window when --from is not given.")] = 7,
    group_by: GroupOption = "project",
    interval: IntervalOption = "monthly",
    rates: RatesOption = None,
    tz: TzOption = "UTC",
    config: ConfigOption = None,
    output: OutputOption = Output.table,
    as_json: JsonOption = False,
    sort: SortOption = None,
    top: TopOption = None,
    wide: WideOption = False,
) -> None:
    """Costs per group, period and rate line, with the grand total."""
    window = report_window(start, end, days, tz)
    card = rate_card(rates)
    with handled_errors():
        chargeback.group_columns(group_by)
    costs, _ = _charges(config, window, card, tz)
    with handled_errors():
        report = chargeback.summarise(costs, group_by, interval, tz, card.currency)
    chosen_view = view(output, as_json, sort, top, wide, tz)
    rows = report.rows.drop("cost_nanos")
    first = [*chargeback.group_columns(group_by), "period_start", "line", "component", "cost", "quantity", "unit"]
    show(rows.select(*first, pl.exclude(first)), chosen_view, f"chargeback per {group_by}, {card.currency}, {window}")
    if chosen_view.output is Output.table:
        console.print(_total_line(rows, report.total_nanos, card.currency), highlight=False)


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
    window = report_window(start, end, 1, tz)
    with handled_errors():
        export.check_format(fmt)
        chargeback.group_columns(group_by)
        check_writable(output, "export")
    card = rate_card(rates)
    costs, located = _charges(config, window, card, tz)
    with handled_errors():
        if fmt == "focus":
            frame = focus.focus_rows(costs, card.currency, tz, located, interval)
        else:
            frame = chargeback.summarise(costs, group_by, interval, tz, card.currency).rows
        export.write(frame, output, fmt)
    total = _total_line(costs, int(costs["cost_nanos"].sum()), card.currency)
    console.print(f"wrote {frame.height} rows to {output} ({fmt}); {total}", highlight=False)
