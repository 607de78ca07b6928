"""Chart specs for the page's script (``static/cloudmeter.js`` draws them with Chart.js): plain dicts built from the
rows the reports return, as JSON values (``serialize.to_json``: non-finite floats null, decimals exact text).

Nothing is computed here that a report computes: values are copied from report rows (money from its exact text,
GB from bytes as ``capacity.hourly_series`` converts them), the forecast's lines are ``forecast.trend_lines``, and
a missing hour or day is null (a gap), never 0. Times on the x axis are epoch milliseconds: an hour is its
start instant, a day its calendar date's UTC midnight (the page labels days in UTC so the date reads as is).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import polars as pl

from cloudmeter.model import Window
from cloudmeter.reports.forecast import UNITS, trend_lines
from cloudmeter.reports.inputs import GIB
from cloudmeter.reports.serialize import to_json

Row = dict[str, Any]
Spec = dict[str, Any]

DAY_MS: Final = 86_400_000
HOUR_MS: Final = 3_600_000
#: Colours: usage blue, peaks light blue, allocation grey, capacity and limits red, fits orange.
USED, PEAK, ALLOCATED, CAPACITY, FIT = "#1f5fa8", "#8fb4e0", "#6b7280", "#c62828", "#e07b00"
ACTIONS: Final = {"idle": "#e07b00", "downsize": "#1f5fa8"}
LINE_COLOURS: Final = ("#1f5fa8", "#e07b00", "#2e8540", "#8e44ad", "#c62828", "#17becf", "#8c564b", "#bcbd22")
#: Bar charts grow with their bars: this many pixels per bar plus room for the axis and legend.
BAR_PX, BAR_FRAME_PX = 30, 90


def rows(frame: pl.DataFrame) -> list[Row]:
    """``frame``'s rows as the API's JSON has them."""
    loaded: list[Row] = json.loads(to_json(frame))
    return loaded


def epoch_ms(value: str | datetime) -> int:
    """An ISO 8601 instant (or a datetime) as epoch milliseconds."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return int(moment.timestamp() * 1000)


def day_ms(value: str | date) -> int:
    """A calendar date as the epoch milliseconds of its UTC midnight."""
    day = date.fromisoformat(value) if isinstance(value, str) else value
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def hour_grid(window: Window) -> list[int]:
    """Every hour's start in ``window``, epoch ms."""
    start, end = epoch_ms(window.start), epoch_ms(window.end)
    first = -(-start // HOUR_MS) * HOUR_MS
    return list(range(first, end, HOUR_MS))


def day_ticks(window: Window, tz: str, most: int = 14) -> list[int]:
    """Local midnights of ``tz`` in ``window`` (epoch ms), every n-th day so there are at most ``most``."""
    zone = ZoneInfo(tz)
    day = window.start.astimezone(zone).date()
    if datetime(day.year, day.month, day.day, tzinfo=zone) < window.start:
        day += timedelta(days=1)
    ticks: list[int] = []
    while (moment := datetime(day.year, day.month, day.day, tzinfo=zone)) < window.end:
        ticks.append(epoch_ms(moment))
        day += timedelta(days=1)
    step = max(1, -(-len(ticks) // most))
    return ticks[::step]


def _points(xs: Sequence[int], by_x: Mapping[int, Any]) -> list[dict[str, Any]]:
    """``{x, y}`` at every ``x``; y null where ``by_x`` has no value."""
    return [{"x": x, "y": by_x.get(x)} for x in xs]


def _has_values(spec: Spec) -> bool:
    return any((p.get("y") if isinstance(p, dict) else p) is not None for d in spec["datasets"] for p in d["data"])


def _finish(spec: Spec) -> Spec:
    """``spec`` marked empty when no dataset has a value (the page says "no data" instead of drawing axes)."""
    spec["empty"] = not _has_values(spec)
    return spec


# --- utilization over time ---------------------------------------------------------------------------------------


def utilization_series(series: pl.DataFrame) -> pl.DataFrame:
    """The columns of ``capacity.hourly_series`` the charts draw, memory in GB (bytes / 2^30, as the report does)."""
    return series.select(
        "ts",
        "group_id",
        "cpu_used_cores_avg",
        "cpu_used_cores_max",
        "allocated_vcpus",
        "capacity_vcpus",
        "mem_gb",
        (pl.col("allocated_memory_bytes") / GIB).alias("allocated_mem_gb"),
        (pl.col("capacity_memory_bytes") / GIB).alias("capacity_mem_gb"),
    )


def utilization_charts(series: list[Row], names: Mapping[int, str], window: Window, tz: str) -> list[Spec]:
    """Per group (``names``: group_id -> name, in the order to show), a CPU chart (busy cores: hourly average,
    hourly peak sample; vCPUs allocated; capacity) and a memory chart (GB used, allocated, capacity)."""
    grid, ticks = hour_grid(window), day_ticks(window, tz)
    specs: list[Spec] = []
    for group_id, name in names.items():
        mine = {epoch_ms(r["ts"]): r for r in series if r["group_id"] == group_id}

        def line(column: str, mine: Mapping[int, Row] = mine) -> list[dict[str, Any]]:
            return _points(grid, {x: r[column] for x, r in mine.items()})

        common = {
            "type": "line",
            "x": "hour",
            "x_min": grid[0] if grid else None,
            "x_max": grid[-1] if grid else None,
            "x_ticks": ticks,
            "group": name,
        }
        specs.append(
            _finish(
                common
                | {
                    "id": f"cpu-{group_id}",
                    "title": f"{name}: CPU",
                    "y_title": "cores",
                    "unit": "cores",
                    "datasets": [
                        _line("busy cores (hourly average)", "cpu_used_cores_avg", line, USED),
                        _line("busiest sample in the hour", "cpu_used_cores_max", line, PEAK, width=1),
                        _line("vCPUs allocated", "allocated_vcpus", line, ALLOCATED, width=1.5, dash=[6, 4]),
                        _line("capacity (hosts' vCPUs)", "capacity_vcpus", line, CAPACITY, stepped=True),
                    ],
                }
            )
        )
        specs.append(
            _finish(
                common
                | {
                    "id": f"mem-{group_id}",
                    "title": f"{name}: memory",
                    "y_title": "GB",
                    "unit": "GB",
                    "datasets": [
                        _line("memory used (hourly average)", "mem_gb", line, USED),
                        _line("memory allocated", "allocated_mem_gb", line, ALLOCATED, width=1.5, dash=[6, 4]),
                        _line("capacity (hosts' memory)", "capacity_mem_gb", line, CAPACITY, stepped=True),
                    ],
                }
            )
        )
    return specs


def _line(
    label: str, key: str, line: Callable[[str], list[dict[str, Any]]], color: str, width: float = 2, **style: Any
) -> dict[str, Any]:
    """A line dataset of column ``key`` (``line`` gives its points)."""
    return {"label": label, "key": key, "data": line(key), "color": color, "width": width, **style}


# --- forecast ----------------------------------------------------------------------------------------------------


def _trend_row(row: Row) -> Row:
    """A forecast row of the API's JSON with its days as dates (what ``forecast.trend_lines`` reads)."""
    return row | {key: date.fromisoformat(row[key]) if row[key] else None for key in ("first_day", "last_day")}


def forecast_charts(forecast: list[Row], peaks: list[Row]) -> list[Spec]:
    """Per cluster and resource, the linear forecast as ``capacity forecast --plot`` draws it: daily peaks (a gap
    on a day without data), the limit, the fit and its 95% bounds (``forecast.trend_lines``), each drawn to where it
    reaches the limit, and a vertical line on the exhaustion date. The x axis ends a little after the fit reaches
    the limit (twice the history when it never does), so a bound that reaches it later is cut at the edge."""
    specs: list[Spec] = []
    for index, row in enumerate(r for r in forecast if r["method"] == "linear"):
        mine = [p for p in peaks if p["cluster"] == row["cluster"] and p["resource"] == row["resource"]]
        by_day = {day_ms(p["day"]): p["peak"] for p in mine}
        days = _day_range(min(by_day), max(by_day)) if by_day else []
        datasets: list[dict[str, Any]] = [
            {"label": "daily peak", "key": "peak", "data": _points(days, by_day), "color": USED, "points": 3}
        ]
        x_min = x_max = days[0] if days else None
        if days:
            x_max = days[-1]
        if row["first_day"] and row["trend_per_day"] is not None:
            first = day_ms(row["first_day"])
            trend = _trend_row(row)
            history = (trend["last_day"] - trend["first_day"]).days
            fit_end = None if row["days_to_exhaustion"] is None else history + row["days_to_exhaustion"]
            horizon = max(history + 1, 2 * history) if fit_end is None else max(history + 1.0, fit_end * 1.1)
            for column, (start, slope) in trend_lines(trend).items():
                until = horizon if row[column] is None else min(history + row[column], horizon)
                datasets.append(
                    {
                        **FIT_LINES[column],
                        "key": column,
                        "color": FIT,
                        "data": [{"x": first, "y": start}, {"x": first + until * DAY_MS, "y": start + slope * until}],
                    }
                )
            x_min, x_max = first, int(first + horizon * DAY_MS)
        if row["target"] is not None and x_min is not None:
            datasets.append(
                {
                    "label": f"limit ({100 * row['target'] / row['capacity']:g}% of capacity)",
                    "key": "target",
                    "color": CAPACITY,
                    "dash": [8, 4],
                    "data": [{"x": x_min, "y": row["target"]}, {"x": x_max, "y": row["target"]}],
                }
            )
        if row["exhaustion_date"] is not None:
            when = day_ms(row["exhaustion_date"])
            top = max([row["target"] or 0.0, *(p["peak"] for p in mine)])
            datasets.append(
                {
                    "label": f"limit reached {row['exhaustion_date']}",
                    "key": "exhaustion_date",
                    "color": CAPACITY,
                    "dash": [2, 3],
                    "width": 1.5,
                    "data": [{"x": when, "y": 0}, {"x": when, "y": top * 1.05}],
                }
            )
            x_max = max(x_max or when, when)
        ticks, fmt = calendar_ticks(x_min, x_max) if x_min is not None and x_max is not None else ([], "day")
        specs.append(
            _finish(
                {
                    "id": f"forecast-{index}",
                    "type": "line",
                    "x": "day",
                    "x_min": x_min,
                    "x_max": x_max,
                    "x_ticks": ticks,
                    "x_format": fmt,
                    "title": f"{row['cluster']}: {row['resource']}",
                    "cluster": row["cluster"],
                    "resource": row["resource"],
                    "y_title": f"daily peak ({UNITS[row['resource']]})",
                    "unit": UNITS[row["resource"]],
                    "summary": forecast_summary(row),
                    "datasets": datasets,
                }
            )
        )
    return specs


#: The fit and its bounds: label and line style.
FIT_LINES: Final = {
    "days_to_exhaustion": {"label": "linear fit", "width": 2},
    "days_lower": {"label": "95% bound, earliest", "width": 1.5, "dash": [3, 3]},
    "days_upper": {"label": "95% bound, latest", "width": 1.5, "dash": [1, 3]},
}


def calendar_ticks(first: int, last: int, most: int = 10) -> tuple[list[int], str]:
    """Ticks for a day axis from ``first`` to ``last`` (epoch ms of UTC midnights): every 1, 2, 7 or 14 days for
    up to ``most`` ticks (format ``day``), else the first of every 1, 2, 3, 6 or 12 months (format ``month``)."""
    span_days = (last - first) / DAY_MS
    for step in (1, 2, 7, 14):
        if span_days / step <= most:
            return list(range(first, last + 1, step * DAY_MS)), "day"
    start = datetime.fromtimestamp(first / 1000, UTC)
    months = span_days / 30.44
    step = next((m for m in (1, 2, 3, 6, 12) if months / m <= most), 24)
    year, month = start.year, start.month + 1
    ticks: list[int] = []
    while True:
        year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
        moment = day_ms(date(year, month, 1))
        if moment > last:
            return ticks, "month"
        if (year * 12 + month - 1) % step == 0:
            ticks.append(moment)
        month += 1


def _day_range(first: int, last: int) -> list[int]:
    return list(range(first, last + DAY_MS, DAY_MS))


def forecast_summary(row: Row) -> str:
    """What a forecast row says, in words."""
    headlines = {
        "forecast": f"reaches the limit on {row['exhaustion_date']}",
        "exhausted": f"already at the limit ({row['exhaustion_date']})",
        "never": "does not reach the limit (flat or falling)",
    }
    headline = headlines.get(row["status"]) or str(row["status"])
    return f"{headline}; {row['note']}" if row["note"] else headline


# --- right-sizing and chargeback (bars) --------------------------------------------------------------------------


def savings_chart(candidates: list[Row], currency: str) -> Spec:
    """Horizontal bars of monthly savings per VM, one colour per action (idle, downsize)."""
    labels = [r["name"] for r in candidates]
    datasets = [
        {
            "label": action,
            "key": "monthly_savings",
            "color": colour,
            "data": [_money(r["monthly_savings"]) if r["action"] == action else None for r in candidates],
            "stack": "savings",
        }
        for action, colour in ACTIONS.items()
    ]
    return _finish(
        {
            "id": "savings",
            "type": "bar",
            "horizontal": True,
            "stacked": True,
            "labels": labels,
            "datasets": datasets,
            "y_title": f"{currency} per month",
            "unit": currency,
            "height": BAR_FRAME_PX + BAR_PX * len(labels),
        }
    )


def _money(value: str | None) -> float | None:
    """A money amount of the API's JSON (exact decimal text) as the number a chart draws."""
    return None if value is None else float(value)


def chargeback_chart(report: list[Row], group: Sequence[str], currency: str, interval: str = "monthly") -> Spec:
    """Horizontal bars per group and period (the period only when there are several), stacked by rate line and
    component: each segment is one row of the report, so a bar's length is the group's cost in the period. A group
    is named by the last of its ``group`` columns, or by all of them (joined by " / ") where that is ambiguous."""
    periods = list(dict.fromkeys(r["period_start"] for r in report))
    short = {_name(r, group[-1:]) for r in report}
    keys = group[-1:] if len(short) == len({_name(r, group) for r in report}) else group
    cut = 7 if interval == "monthly" else 10  # 2026-11, or 2026-11-16

    def label(row: Row) -> str | tuple[str, str]:  # a pair is two lines under the bar
        name = _name(row, keys)
        return name if len(periods) == 1 else (name, row["period_start"][:cut])

    labels = list(dict.fromkeys(label(r) for r in report))
    parts = list(dict.fromkeys((r["line"], r["component"]) for r in report))
    datasets = []
    for index, (line, component) in enumerate(parts):
        cost = {label(r): _money(r["cost"]) for r in report if (r["line"], r["component"]) == (line, component)}
        datasets.append(
            {
                "label": f"{line} ({component})",
                "key": "cost",
                "line": line,
                "component": component,
                "color": LINE_COLOURS[index % len(LINE_COLOURS)],
                "stack": "cost",
                "data": [cost.get(name) for name in labels],
            }
        )
    return _finish(
        {
            "id": "chargeback",
            "type": "bar",
            "horizontal": True,
            "stacked": True,
            "labels": labels,
            "datasets": datasets,
            "y_title": currency,
            "unit": currency,
            "height": BAR_FRAME_PX + 20 * ((len(parts) + 2) // 3) + (BAR_PX + 6 * (len(periods) > 1)) * len(labels),
        }
    )


def _name(row: Row, keys: Sequence[str]) -> str:
    return " / ".join("(none)" if row[key] is None else str(row[key]) for key in keys)


def names_in_order(frame: pl.DataFrame, id_column: str, name_column: str) -> dict[int, str]:
    """``id -> name`` of ``frame``'s rows, ordered by name."""
    pairs: Iterable[tuple[int, str]] = frame.select(id_column, name_column).unique().sort(name_column).iter_rows()
    return dict(pairs)
