"""``cloudmeter chargeback ...``: costs under a rate card, and their exports (a typer sub-app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from cloudmeter.cli.common import MAX_WINDOW_DAYS, ConfigOption, console, handled_errors
from cloudmeter.cli.output import JsonOption, Output, OutputOption, SortOption, TopOption, WideOption, cell, show, view
from cloudmeter.cli.reporting import FromOption, RatesOption, ToOption, TzOption, rate_card, reporting
from cloudmeter.reports import chargeback, export, views
from cloudmeter.reports.paths import check_writable

chargeback_app = typer.Typer(
    help="Chargeback: costs under a rate card, exports (CSV, Parquet, XLSX, FOCUS).", no_args_is_help=True
)


def _total_line(total_nanos: int | None, currency: str | None) -> str:
    """``total 1,234.56 EUR``, or that there is nothing to total (never a made-up 0)."""
    if total_nanos is None:
        return "total: n/a (no charges in this window)"
    return f"total {cell('cost', chargeback.money(pl.Series([total_nanos]))[0])} {currency}"


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
    params = views.Chargeback(group_by, interval, rates, views.Period(start, end, days, tz))
    with handled_errors():
        params.period.window()
    card = rate_card(rates)
    with handled_errors():
        params.check()
    with reporting(config) as conn, handled_errors():
        shown = views.chargeback_report(conn, params, card)
    chosen_view = view(output, as_json, sort, top, wide, tz)
    show(shown.frame, chosen_view, shown.title)
    if chosen_view.output is Output.table:
        console.print(_total_line(shown.total_nanos, shown.currency), highlight=False)


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
    params = views.Chargeback(group_by, interval, rates, views.Period(start, end, 1, tz))
    with handled_errors():
        params.period.window()
        export.check_format(fmt)
        params.check()
        check_writable(output, "export")
    card = rate_card(rates)
    with reporting(config) as conn, handled_errors():
        shown = views.chargeback_export(conn, params, fmt, card)
    with handled_errors():
        export.write(shown.frame, output, fmt)
    total = _total_line(shown.total_nanos, shown.currency)
    console.print(f"wrote {shown.frame.height} rows to {output} ({fmt}); {total}", highlight=False)
