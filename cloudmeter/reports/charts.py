"""PNG charts (matplotlib, no pyplot): hourly utilization trends and forecast fits.

Each function checks that ``path`` can be written before drawing (``paths.check_writable``: a ConfigError naming
the path and the OS error), draws into ``figure`` (a new one by default; pass one to inspect what was drawn) and
writes it.
Value axes name their unit and start at 0; a chart without data says "no data".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import matplotlib.dates as mdates
import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cloudmeter.reports.forecast import UNITS, trend_lines
from cloudmeter.reports.paths import check_writable, unwritable

#: Axis labels with units of the columns ``capacity.hourly_series`` adds.
LABELS: Final = {
    "cpu_pct": "CPU used (% of capacity)",
    "mem_pct": "memory used (% of capacity)",
    "mem_gb": "memory used (GB)",
    "disk_bps": "disk read + write (bytes/s)",
    "net_bps": "network in + out (bytes/s)",
}
#: Distinct colours for the busiest groups (tab10 without its grey, which is the others' band).
PALETTE: Final = ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9")
OTHERS_COLOUR: Final = "C7"
TOP: Final = len(PALETTE) - 1
NO_DATA: Final = "no data"


def _save(fig: Figure, path: Path) -> Path:
    try:
        fig.savefig(path, dpi=100, bbox_inches="tight")
    except OSError as exc:
        raise unwritable(path, "chart", exc.strerror or str(exc)) from exc
    return path


def _no_data(ax: Axes, title: str) -> None:
    """Say "no data" where a chart would be."""
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, NO_DATA, transform=ax.transAxes, ha="center", va="center", fontsize="x-large", color="grey")


def _date_axis(ax: Axes) -> None:
    """Dates (UTC) along x, the value axis from 0, a light grid."""
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))  # type: ignore[no-untyped-call]
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)


def plot_trend(
    series: pl.DataFrame, label: str, value: str, path: Path, title: str, *, figure: Figure | None = None
) -> Path:
    """``value`` over ``ts`` per ``label``: up to 9 groups each in its own colour; more, the 8 highest by mean
    and the others as one grey band (their hourly min to max). Written to ``path``."""
    check_writable(path, "chart")
    fig = Figure() if figure is None else figure
    fig.set_size_inches(11, 4)
    ax = fig.subplots()
    data = series.filter(pl.col(value).is_not_null())
    if not data.height:
        _no_data(ax, title)
        return _save(fig, path)
    ranked = data.group_by(label).agg(pl.col(value).mean()).sort([value, label], descending=[True, False])
    names = ranked[label].to_list()
    shown, others = (names, []) if len(names) <= len(PALETTE) else (names[:TOP], names[TOP:])
    for name, colour in zip(shown, PALETTE, strict=False):
        part = series.filter(pl.col(label) == name).sort("ts")
        ax.plot(part["ts"].to_list(), part[value].to_numpy(), color=colour, label=str(name))
    if others:
        band = (
            series.filter(pl.col(label).is_in(others))
            .group_by("ts")
            .agg(pl.col(value).min().alias("low"), pl.col(value).max().alias("high"))
            .sort("ts")
        )
        ax.fill_between(
            band["ts"].to_list(), band["low"].to_numpy(), band["high"].to_numpy(), color=OTHERS_COLOUR, alpha=0.3,
            linewidth=0, label=f"{len(others)} other {label}s (min to max)",
        )  # fmt: skip
    ax.set(title=title, ylabel=LABELS.get(value, value), xlabel="hour (UTC)")
    _date_axis(ax)
    heading = f"top {TOP} of {len(names)} by mean" if others else None
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", title=heading, title_fontsize="small")
    return _save(fig, path)


def _at(day: date, offset: float = 0.0) -> float:
    """The date axis position of midnight on ``day`` plus ``offset`` days."""
    return float(mdates.date2num(datetime(day.year, day.month, day.day))) + offset  # type: ignore[no-untyped-call]


def _summary(row: Mapping[str, Any]) -> str:
    """What a forecast row says, in a panel's title."""
    headline = {
        "forecast": f"limit reached {row['exhaustion_date']}",
        "exhausted": f"already at the limit on {row['exhaustion_date']}",
        "never": "does not reach the limit",
    }.get(row["status"], row["status"])
    return f"{headline}; {row['note']}" if row["note"] else headline


def _forecast_panel(ax: Axes, peaks: pl.DataFrame, row: Mapping[str, Any]) -> None:
    """One cluster and resource: its daily peaks, the limit, the fit and its bounds to where they reach the limit,
    and a vertical marker at the exhaustion date."""
    title = f"{row['cluster']} {row['resource']}: {_summary(row)}"
    if not peaks.height:
        _no_data(ax, title)
        return
    first = row["first_day"]
    ax.plot([_at(day) for day in peaks["day"]], peaks["peak"].to_numpy(), "o-", color="C0", label="daily peak")
    if row["target"] is not None:
        pct = 100 * row["target"] / row["capacity"]
        ax.axhline(row["target"], color="C3", linestyle="--", label=f"limit ({pct:g}% of capacity)")
    lines = trend_lines(row)
    history = (row["last_day"] - first).days
    crossings = [history + row[column] for column in lines if row[column] is not None]
    end = max([history, *crossings])
    labels = {  # a label starting with "_" has no legend entry: one for both bounds
        "days_to_exhaustion": "linear fit (least squares)",
        "days_lower": "95% bounds (slope ± 1.96 SE)",
        "days_upper": "_upper bound",
    }
    for column, (start, slope) in lines.items():
        until = end if row[column] is None else history + row[column]
        ax.plot(
            [_at(first), _at(first, until)], [start, start + slope * until], color="C1",
            linestyle="-" if column == "days_to_exhaustion" else ":", label=labels[column], gid=column,
        )  # fmt: skip
    if row["exhaustion_date"] is not None:
        when = _at(row["exhaustion_date"])
        ax.axvline(when, color="C3", linestyle="-.", label="limit reached", gid="exhaustion_date")
        ax.annotate(
            str(row["exhaustion_date"]), (when, 0.02), xycoords=ax.get_xaxis_transform(), xytext=(4, 0),
            textcoords="offset points", rotation=90, va="bottom", color="C3",
        )  # fmt: skip
    ax.set(title=title, ylabel=f"daily peak ({UNITS[row['resource']]})", xlabel="day")
    ax.title.set_fontsize("medium")
    _date_axis(ax)


def plot_forecast(peaks: pl.DataFrame, forecast: pl.DataFrame, path: Path, *, figure: Figure | None = None) -> Path:
    """Per cluster (rows) and resource (columns): the daily peaks and the linear forecast's own fit and bounds
    (``forecast.trend_lines``) up to the exhaustion date, marked. Written to ``path``."""
    check_writable(path, "chart")
    fig = Figure() if figure is None else figure
    panels = forecast.filter(pl.col("method") == "linear")
    clusters, resources = panels["cluster"].unique(maintain_order=True), panels["resource"].unique(maintain_order=True)
    fig.set_size_inches(7 * max(len(resources), 1), 4 * max(len(clusters), 1))
    axes = fig.subplots(max(len(clusters), 1), max(len(resources), 1), squeeze=False)
    if not panels.height:
        _no_data(axes[0, 0], "forecast")
    row_of = {name: i for i, name in enumerate(clusters)}
    column_of = {name: j for j, name in enumerate(resources)}
    for row in panels.iter_rows(named=True):
        ax = axes[row_of[row["cluster"]], column_of[row["resource"]]]
        mine = (pl.col("cluster") == row["cluster"]) & (pl.col("resource") == row["resource"])
        _forecast_panel(ax, peaks.filter(mine).sort("day"), row)
    legend = {label: handle for ax in fig.axes for handle, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    fig.tight_layout(rect=(0, 0.06 if legend else 0, 1, 1))
    if legend:
        fig.legend(legend.values(), legend.keys(), loc="lower center", ncols=len(legend), fontsize="small")
    return _save(fig, path)
