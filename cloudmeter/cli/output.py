"""How the commands print a DataFrame: a table that fits the terminal, or JSON or CSV for scripts.

Tables follow kubectl and gh: one row per thing; the columns in the order the command ranks them, as many as
fit the terminal's width (the rest are named under the table: ``--wide`` shows them, JSON and CSV always
carry every one); numbers formatted for people by the unit their name carries (money to cents, percentages
to one decimal, bytes in KiB/MiB/GiB, times to the minute) and NULL shown as ``-``. A cell is never cut.
JSON and CSV carry the frame's own values, unrounded.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo

import polars as pl
import typer
from rich import box
from rich.measure import Measurement
from rich.table import Table

from cloudmeter.cli.common import console, handled_errors
from cloudmeter.reports.serialize import ordered, to_csv, to_json


class Output(StrEnum):
    """What a report prints."""

    table = "table"
    json = "json"
    csv = "csv"


OutputOption = Annotated[Output, typer.Option("--output", "-o", help="table, json or csv.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Same as --output json.")]
SortOption = Annotated[
    str | None, typer.Option("--sort", metavar="COLUMN", help="Sort rows by COLUMN (-COLUMN: descending).")
]
TopOption = Annotated[int | None, typer.Option("--top", min=1, help="Only the first N rows (after --sort).")]
WideOption = Annotated[bool, typer.Option("--wide", help="Every column, however wide the table gets.")]

_MONEY = ("cost", "savings", "price", "amount", "total")
_UNITS = (("", 1), ("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40), ("Pi", 1 << 50))


@dataclass(frozen=True)
class View:
    """How to print one report: format, row order and count, and whether every column is shown."""

    output: Output = Output.table
    sort: str | None = None
    top: int | None = None
    wide: bool = False
    tz: str | None = None  # times in tables: this zone, else the machine's


def view(
    output: Output,
    as_json: bool,
    sort: str | None = None,
    top: int | None = None,
    wide: bool = False,
    tz: str | None = None,
) -> View:
    """The ``View`` the common report options ask for (``--json`` is ``--output json``)."""
    return View(Output.json if as_json else output, sort, top, wide, tz)


def show(frame: pl.DataFrame, chosen: View = View(), title: str | None = None) -> None:
    """Print ``frame`` as ``chosen`` says: sorted, cut to ``top`` rows, as a table, JSON or CSV."""
    with handled_errors():
        frame = ordered(frame, chosen.sort, chosen.top)
    if chosen.output is Output.json:
        typer.echo(to_json(frame))
    elif chosen.output is Output.csv:
        typer.echo(to_csv(frame), nl=False)
    else:
        _print_table(frame, chosen, title)


def _print_table(frame: pl.DataFrame, chosen: View, title: str | None) -> None:
    zone = ZoneInfo(chosen.tz) if chosen.tz else None
    cells = {name: [cell(name, value, zone) for value in frame[name]] for name in frame.columns}
    shown = list(frame.columns)
    while not chosen.wide and len(shown) > 1 and _width(_table(frame, cells, shown, title)) > console.width:
        shown.pop()
    left_out = frame.columns[len(shown) :]
    if not frame.height:
        console.print(f"{title + ': ' if title else ''}no rows", highlight=False)
        return
    console.print(_table(frame, cells, shown, title))
    if left_out:
        console.print(
            f"[dim]{len(left_out)} more: {', '.join(left_out)} (--wide, or --output json|csv)[/]", highlight=False
        )


def _table(frame: pl.DataFrame, cells: dict[str, list[str]], columns: list[str], title: str | None) -> Table:
    """The table of ``columns``; each header wraps between words to its column's widest cell."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    for name in columns:
        widest = max((len(text) for text in cells[name]), default=1)
        header = "\n".join(textwrap.wrap(name.replace("_", " "), width=widest, break_long_words=False))
        numeric = frame[name].dtype.is_numeric() or frame[name].dtype == pl.Decimal
        table.add_column(header, justify="right" if numeric else "left", no_wrap=True)
    for row in zip(*(cells[name] for name in columns), strict=True):
        table.add_row(*row)
    return table


def _width(table: Table) -> int:
    """The width ``table`` needs to show every cell whole."""
    return Measurement.get(console, console.options.update(width=10_000), table).maximum


def cell(name: str, value: object, zone: ZoneInfo | None = None) -> str:
    """``value`` of column ``name`` as people read it (times in ``zone``, else the machine's); NULL as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return short_time(value, zone)
    if isinstance(value, Decimal | float) and any(word in name for word in _MONEY):
        return f"{value:,.2f}"
    if isinstance(value, float | Decimal):
        return _number(name, float(value))
    if isinstance(value, int) and "_bytes" in name:
        return size(float(value))
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _number(name: str, value: float) -> str:
    if "_bytes" in name:
        return size(value)
    if "request_" in name:  # Kubernetes requests are set in millicores and MiB
        return size(value * 2**30) if name.endswith("_gb") else f"{value:.3f}"
    if "_bps" in name:
        return f"{size(value)}/s"
    if "pct" in name or "_gb" in name:
        return f"{value:,.1f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def size(value: float) -> str:
    """Bytes with a binary prefix: ``512 B``, ``1.5 KiB``, ``12.0 GiB``."""
    for prefix, scale in reversed(_UNITS):
        if abs(value) >= scale or scale == 1:
            return f"{value:,.0f} B" if scale == 1 else f"{value / scale:.1f} {prefix}B"
    raise AssertionError("unreachable")


def short_time(moment: datetime, zone: ZoneInfo | None = None) -> str:
    """A time in ``zone`` (else the machine's), to the minute: ``2026-12-07 14:05``, or ``2026-12-07`` at
    midnight (a day's or a period's start)."""
    local = moment.astimezone(zone) if moment.tzinfo else moment
    return f"{local:%Y-%m-%d}" if (local.hour, local.minute) == (0, 0) else f"{local:%Y-%m-%d %H:%M}"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``count`` and ``noun`` as English says it: ``1 batch``, ``2 batches`` (``nouns``, default ``noun + "s"``)."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


def time_ranges(ranges: Iterable[tuple[datetime, datetime]], zone: ZoneInfo | None = None) -> str:
    """Time ranges to the minute in ``zone`` (else the machine's): ``2026-03-09 01:00 to 2026-11-07 07:00; ...``."""
    return "; ".join(f"{short_time(start, zone)} to {short_time(end, zone)}" for start, end in ranges)
