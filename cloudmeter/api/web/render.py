"""Rendering the pages: the Jinja2 environment (templates and static files from the package), cell formatting for
tables, and the JSON island a page's script reads.

Tables format a value by the kind its column names (``pct``, ``money``, ``gb``...), like the CLI's tables; NULL
is a dash, never 0. The JSON island (``<script type="application/json" id="data">``) carries the chart specs
built from the API's JSON; ``<``, ``>`` and ``&`` are escaped so no value can end the script element.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from importlib.metadata import version
from typing import Any, Final
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

#: The pages in the navigation bar: path, label.
NAV: Final = (
    ("/", "Overview"),
    ("/utilization", "Utilization"),
    ("/forecast", "Forecast"),
    ("/rightsize", "Right-size"),
    ("/chargeback", "Chargeback"),
)
DASH: Final = "–"
#: A strict policy: scripts and styles only from this server (the data island is JSON, not script), no framing.
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_env = Environment(
    loader=PackageLoader("cloudmeter.api.web", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates = Jinja2Templates(env=_env)


def island(value: object) -> Markup:
    """``value`` as JSON that is safe inside ``<script type="application/json">``."""
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    return Markup(text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"))


def _static(path: str) -> str:
    return f"/static/{path}?v={_VERSION}"


_VERSION: Final = version("cloudmeter")
_env.globals.update(static=_static, nav=NAV, version=_VERSION)


def cell(value: Any, kind: str, tz: str = "UTC") -> tuple[str, str]:
    """A table cell's text and CSS class for ``value`` in a column of ``kind``."""
    number = kind in {"int", "num", "num1", "pct", "money", "gb", "usd", "count", "duration"}
    if value is None or value == "":
        return DASH, "null num" if number else "null"
    if number and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value, ""
    formats = {
        "int": "{:,.0f}",
        "count": "{:,.0f}",
        "num": "{:,.2f}",
        "num1": "{:,.1f}",
        "pct": "{:.1f}",
        "money": "{:,.2f}",
        "gb": "{:,.1f}",
        "usd": "{:,.4f}",
    }
    if kind in formats:
        return formats[kind].format(value), "num"
    if kind in ("time", "date"):
        return _time(value, tz, kind == "date"), ""
    if kind == "duration":
        return _duration(float(value)), "num"
    if kind == "bool":
        return ("yes" if value else "no"), ""
    return str(value), ""


def _time(value: Any, tz: str, day: bool = False) -> str:
    """An ISO 8601 instant (or a date) as ``YYYY-MM-DD HH:MM`` in ``tz`` (``day``: its date only)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) and len(value) > 10 else value
    if isinstance(moment, str):
        return moment
    if isinstance(moment, datetime):
        if moment.tzinfo is not None:
            moment = moment.astimezone(ZoneInfo(tz))
        return f"{moment:%Y-%m-%d}" if day else f"{moment:%Y-%m-%d %H:%M}"
    if isinstance(moment, date):
        return moment.isoformat()
    return str(value)


def _duration(seconds: float) -> str:
    """``3 d 4 h``, ``5 h 12 min``, ``42 s``."""
    seconds = max(seconds, 0.0)
    if seconds >= 86400:
        return f"{int(seconds // 86400)} d {int(seconds % 86400 // 3600)} h"
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min"
    return f"{seconds:.0f} s"


_env.globals["cell"] = cell


def plural(count: int, noun: str) -> str:
    """``1 VM``, ``2 VMs``."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


_env.globals["plural"] = plural


def page(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    """``template`` rendered with ``context`` (plus the request's path as ``current``), with the security headers."""
    context = {"current": request.url.path, "tz": "UTC", "who": None, "page": template.removesuffix(".html")} | context
    if "payload" in context and context["payload"] is not None:
        context["payload"] = island(context["payload"])
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response
