"""The pages: overview (managers), utilization over time, forecast, right-sizing, chargeback.

Each page is rendered on the server from the same report functions the API serves (``reports.views``, and the
series the CLI's ``--plot`` charts draw: ``capacity.hourly_series``, ``forecast.daily_peaks``), in one request:
its tables are HTML, its charts a JSON island of specs (``charts``) that ``static/cloudmeter.js`` draws. No page
fetches the API, so a page shows complete and consistent numbers or an error, never half of each; each names the
API URL that serves the same numbers. A page without a valid cookie redirects to ``/login``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final
from urllib.parse import urlencode

import polars as pl
from fastapi import APIRouter, Query, Request, status
from fastapi.responses import HTMLResponse, Response

from cloudmeter.api.auth import Principal, database
from cloudmeter.api.web import charts
from cloudmeter.api.web.render import page
from cloudmeter.api.web.session import signed_in, to_login
from cloudmeter.config import Settings
from cloudmeter.errors import ConfigError
from cloudmeter.reports import capacity, forecast, views
from cloudmeter.reports.chargeback import money
from cloudmeter.reports.ratecard import RateCard
from cloudmeter.reports.serialize import jsonable, ordered
from cloudmeter.scheduler.views import status_report
from cloudmeter.storage.dsn import scrub

router = APIRouter(include_in_schema=False)

Days = Annotated[int, Query(ge=1, le=views.MAX_WINDOW_DAYS)]
Tz = Annotated[str, Query(max_length=64)]
From = Annotated[str | None, Query(alias="from", max_length=40)]
To = Annotated[str | None, Query(alias="to", max_length=40)]
#: Right-sizing candidates: actions that save money, and how many the page shows.
SAVING_ACTIONS: Final = ("idle", "downsize")
TOP_CANDIDATES: Final = 15


@dataclass(frozen=True)
class Column:
    """A table column: the row's key, its heading, how its cells are formatted (``render.cell``) and whether a
    phone's width leaves it out."""

    key: str
    label: str
    kind: str = "text"
    wide_only: bool = False


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _card(request: Request) -> RateCard:
    """The API's rate card (``[api] rates``, else the sample card), loaded when the app was made."""
    card: RateCard = request.app.state.card
    return card


def _api(path: str, params: dict[str, Any]) -> str:
    """The API URL that serves the same numbers."""
    shown = {k: v for k, v in params.items() if v is not None}
    return f"/api/v1/{path}" + (f"?{urlencode(shown)}" if shown else "")


def _render(
    request: Request, template: str, who: Principal, build: Callable[[], dict[str, Any]], form: dict[str, Any]
) -> Response:
    """``template`` with what ``build`` returns; a parameter the reports refuse shows the page with the message
    (422) instead of its numbers."""
    context: dict[str, Any] = {"who": who, "form": form, "tz": form.get("tz", "UTC"), "error": None}
    try:
        context |= build()
    except ConfigError as exc:
        context |= {"error": views_message(str(exc)), "payload": {"charts": []}}
        return page(request, template, context, status.HTTP_422_UNPROCESSABLE_CONTENT)
    return page(request, template, context)


def _period(period: views.Period) -> dict[str, Any]:
    """The API's query parameters for ``period``."""
    return {"from": period.start, "to": period.end, "days": period.days, "tz": period.tz}


def _form(period: views.Period) -> dict[str, Any]:
    """The form fields for ``period`` (an unset bound is empty)."""
    return {"from": period.start or "", "to": period.end or "", "days": period.days, "tz": period.tz}


def views_message(text: str) -> str:
    """A report's refusal as one line, nothing DSN-shaped in it."""
    return scrub(text.strip().splitlines()[0]) if text.strip() else "invalid parameters"


# --- overview ----------------------------------------------------------------------------------------------------

MANAGER_COLUMNS: Final = (
    Column("name", "manager"),
    Column("state", "state", "state"),
    Column("kind", "kind", wide_only=True),
    Column("captured_until", "captured until", "time", wide_only=True),
    Column("lag_s", "lag", "duration"),
    Column("newest_sample_at", "newest sample", "time", wide_only=True),
    Column("failures", "failures", "count", wide_only=True),
    Column("next_attempt_at", "next attempt", "time", wide_only=True),
    Column("api_cost_usd", "API US$", "usd", wide_only=True),
)


@router.get("/", response_class=HTMLResponse)
def overview(request: Request) -> Response:
    """The database and every manager's state, capture progress and last error (``status``, as ``/api/v1/status``
    serves it); an admin also gets enable/disable and refresh buttons."""
    who = signed_in(request)
    if who is None:
        return to_login(request)

    def build() -> dict[str, Any]:
        report = jsonable(status_report(database(request), _settings(request)))
        assert isinstance(report, dict)
        facts = [(label, report.get(key)) for key, label in DATABASE_FACTS]
        return {
            "title": "Overview",
            "managers": report["managers"],
            "columns": MANAGER_COLUMNS,
            "facts": facts,
            "notes": report["notes"],
            "payload": {"charts": []},
            "api_url": _api("status", {}),
        }

    return _render(request, "overview.html", who, build, {})


#: What the overview says of the database (never where it is: no host, user or path).
DATABASE_FACTS: Final = (
    ("server_version", "PostgreSQL"),
    ("timescaledb", "TimescaleDB"),
    ("mode", "partitions"),
    ("schema_version", "schema version"),
)


# --- utilization -------------------------------------------------------------------------------------------------

UTILIZATION_COLUMNS: Final = (
    Column("coverage_pct", "coverage %", "pct"),
    Column("hours_with_data", "hours with data", "count", wide_only=True),
    Column("cpu_pct_avg", "CPU % avg", "pct"),
    Column("cpu_pct_p95", "CPU % p95", "pct", wide_only=True),
    Column("mem_pct_avg", "mem % avg", "pct"),
    Column("mem_pct_p95", "mem % p95", "pct", wide_only=True),
    Column("vcpus_capacity", "vCPUs", "int", wide_only=True),
    Column("cpu_overcommit", "overcommit", "num", wide_only=True),
    Column("mem_gb_capacity", "memory GB", "gb", wide_only=True),
    Column("vms", "VMs", "count", wide_only=True),
)


@router.get("/utilization", response_class=HTMLResponse)
def utilization(
    request: Request, level: str = "cluster", days: Days = 7, tz: Tz = "UTC", start: From = None, end: To = None
) -> Response:
    """Per cluster (or host, provider), CPU and memory hour by hour against allocation and capacity, with the
    utilization report's table (coverage, averages, p95)."""
    who = signed_in(request)
    if who is None:
        return to_login(request)
    params = views.Utilization(level, views.Period(start or None, end or None, days, tz))

    def build() -> dict[str, Any]:
        with database(request).connection() as conn:
            shown = views.utilization(conn, params)
            series = capacity.hourly_series(conn, shown.window, params.check())
        chosen = params.check()
        names = charts.names_in_order(series, "group_id", chosen) if series.height else {}
        specs = charts.utilization_charts(charts.rows(charts.utilization_series(series)), names, shown.window, tz)
        return {
            "title": "Utilization",
            "shown": shown,
            "level": chosen,
            "rows": charts.rows(shown.frame),
            "columns": UTILIZATION_COLUMNS,
            "charts": specs,
            "notes": _coverage_notes(shown),
            "payload": {"charts": specs, "tz": tz},
            "api_url": _api("capacity/utilization", {"level": chosen, **_period(params.period)}),
        }

    return _render(request, "utilization.html", who, build, {"level": level, **_form(params.period)})


def _coverage_notes(shown: views.Shown) -> list[str]:
    """What part of the window the data covers (as the CLI's notes say it)."""
    frame = shown.frame
    if not frame.height or "coverage_pct" not in frame.columns:
        return []
    if frame["coverage_pct"].null_count() == frame.height:
        return ["No samples in this window: every figure is unknown (shown as –), not zero."]
    if "data_from" in frame.columns and frame["data_from"].null_count() < frame.height:
        first, last = frame["data_from"].min(), frame["data_to"].max()
        assert isinstance(first, datetime) and isinstance(last, datetime)
        span, asked = last - first, shown.window.end - shown.window.start
        if span < asked:
            return [
                f"The data covers {span.total_seconds() / 86400:.1f} of the window's "
                f"{asked.total_seconds() / 86400:.1f} days ({first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC)."
            ]
    return []


# --- forecast ----------------------------------------------------------------------------------------------------

FORECAST_COLUMNS: Final = (
    Column("cluster", "cluster"),
    Column("resource", "resource"),
    Column("method", "method"),
    Column("status", "status", "words", wide_only=True),
    Column("outcome", "limit reached", "words"),
    Column("days_to_exhaustion", "days", "num1", wide_only=True),
    Column("days_lower", "days (lower)", "num1", wide_only=True),
    Column("days_upper", "days (upper)", "num1", wide_only=True),
    Column("last_peak", "last peak", "num", wide_only=True),
    Column("target", "limit", "num", wide_only=True),
    Column("days_of_data", "days of data", "count", wide_only=True),
    Column("note", "note", "wrap", wide_only=True),
)


@router.get("/forecast", response_class=HTMLResponse)
def forecast_page(
    request: Request,
    limit: Annotated[float, Query(gt=0, le=100)] = 90.0,
    days: Days = 28,
    tz: Tz = "UTC",
    start: From = None,
    end: To = None,
) -> Response:
    """Per cluster, CPU and memory daily peaks with the linear fit, its bounds and the day it reaches the limit."""
    who = signed_in(request)
    if who is None:
        return to_login(request)
    params = views.Forecast(limit, views.Period(start or None, end or None, days, tz))

    def build() -> dict[str, Any]:
        with database(request).connection() as conn:
            shown = views.forecast_report(conn, params)
            peaks = forecast.daily_peaks(conn, shown.window, tz)
        table = charts.rows(shown.frame)
        specs = charts.forecast_charts(table, charts.rows(peaks))
        for row in table:  # the day, or why there is none
            row["outcome"] = row["exhaustion_date"] or row["status"]
        return {
            "title": "Forecast",
            "shown": shown,
            "rows": table,
            "columns": FORECAST_COLUMNS,
            "charts": specs,
            "payload": {"charts": specs, "tz": tz},
            "api_url": _api("capacity/forecast", {"limit": f"{limit:g}", **_period(params.period)}),
        }

    return _render(request, "forecast.html", who, build, {"limit": f"{limit:g}", **_form(params.period)})


# --- right-sizing ------------------------------------------------------------------------------------------------

RIGHTSIZE_COLUMNS: Final = (
    Column("name", "VM"),
    Column("action", "action", wide_only=True),
    Column("monthly_savings", "savings", "money"),
    Column("vcpus_change", "vCPUs"),
    Column("memory_gb_change", "memory GB", wide_only=True),
    Column("coverage_pct", "coverage %", "pct", wide_only=True),
    Column("monthly_cost", "cost now", "money", wide_only=True),
    Column("project", "project", wide_only=True),
    Column("note", "note", "wrap", wide_only=True),
)


def _change(now: Any, then: Any) -> str | None:
    """``8 → 2``; the current size alone when nothing is recommended."""
    if now is None:
        return None
    return f"{now:g} → {then:g}" if then is not None else f"{now:g}"


@router.get("/rightsize", response_class=HTMLResponse)
def rightsize_page(
    request: Request,
    days: Days = 14,
    tz: Tz = "UTC",
    top: Annotated[int, Query(ge=1, le=500)] = TOP_CANDIDATES,
    start: From = None,
    end: To = None,
) -> Response:
    """The VMs whose right-sizing or idleness saves most per month (the report sorted by ``-monthly_savings``)."""
    who = signed_in(request)
    if who is None:
        return to_login(request)
    period = views.Period(start or None, end or None, days, tz)
    params = views.Rightsize(period=period)

    def build() -> dict[str, Any]:
        with database(request).connection() as conn:
            shown = views.rightsize_report(conn, params, _card(request))
        frame = shown.frame
        candidates = ordered(frame.filter(pl.col("action").is_in(SAVING_ACTIONS)), "-monthly_savings", top)
        table = charts.rows(candidates)
        for row in table:
            row["vcpus_change"] = _change(row["vcpus"], row["recommended_vcpus"])
            row["memory_gb_change"] = _change(row["memory_gb"], row["recommended_memory_gb"])
        currency = shown.currency or ""
        spec = charts.savings_chart(table, currency)
        counts = dict(frame.group_by("action").len().iter_rows())
        savings = frame["monthly_savings"].drop_nulls()
        return {
            "title": "Right-sizing",
            "shown": shown,
            "rows": table,
            "columns": RIGHTSIZE_COLUMNS,
            "charts": [spec],
            "counts": counts,
            "currency": currency,
            "top": top,
            "total_savings": charts.rows(pl.DataFrame({"s": [savings.sum()]}))[0]["s"] if len(savings) else None,
            "with_savings": len(savings),
            "payload": {"charts": [spec], "tz": tz},
            "api_url": _api("capacity/rightsize", {**_period(period), "sort": "-monthly_savings"}),
        }

    return _render(request, "rightsize.html", who, build, {"top": top, **_form(period)})


# --- chargeback --------------------------------------------------------------------------------------------------

CHARGEBACK_COLUMNS: Final = (
    Column("period_start", "from", "date"),
    Column("line", "rate line"),
    Column("component", "component", wide_only=True),
    Column("quantity", "quantity", "num", wide_only=True),
    Column("unit", "unit", wide_only=True),
    Column("unknown_hours", "hours without data", "num1", wide_only=True),
    Column("cost", "cost", "money"),
)
#: The columns that name a group in the chart (joined by " / ") and its heading in the table.
GROUP_LABELS: Final = {"vm": (("manager", "name"), "VM"), "provider": (("manager",), "provider")}


@router.get("/chargeback", response_class=HTMLResponse)
def chargeback_page(
    request: Request,
    days: Days = 30,
    interval: str = "monthly",
    group_by: str = "project",
    tz: Tz = "UTC",
    start: From = None,
    end: To = None,
) -> Response:
    """Costs per project (or cluster, provider, VM) as bars stacked by rate line, and the report's rows."""
    who = signed_in(request)
    if who is None:
        return to_login(request)
    period = views.Period(start or None, end or None, days, tz)
    params = views.Chargeback(group_by, interval, period=period)

    def build() -> dict[str, Any]:
        with database(request).connection() as conn:
            shown = views.chargeback_report(conn, params, _card(request))
        table = charts.rows(shown.frame)
        columns = params.check()
        keys, heading = GROUP_LABELS.get(group_by, (columns, group_by.replace("tag:", "tag ")))
        spec = charts.chargeback_chart(table, keys, shown.currency or "", interval)
        total = None
        if shown.total_nanos is not None:
            total = charts.rows(pl.DataFrame({"t": money(pl.Series([shown.total_nanos]))}))[0]["t"]
        return {
            "title": "Chargeback",
            "shown": shown,
            "rows": table,
            "group": heading,
            "columns": (*(Column(key, heading if key == keys[-1] else key) for key in keys), *CHARGEBACK_COLUMNS),
            "charts": [spec],
            "currency": shown.currency,
            "total": total,
            "payload": {"charts": [spec], "tz": tz},
            "api_url": _api("chargeback", {"interval": interval, "group_by": group_by, **_period(period)}),
        }

    form = {"interval": interval, "group_by": group_by, **_form(period)}
    return _render(request, "chargeback.html", who, build, form)
