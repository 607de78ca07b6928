"""What the ``/api/v1`` routes share: the CLI's window and output parameters as query parameters, a connection,
and a report frame as the response (JSON as ``--json`` prints it, CSV as ``--output csv``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Final, Literal

import polars as pl
import psycopg
from fastapi import Query, Request
from fastapi.responses import Response

from cloudmeter.api.auth import database
from cloudmeter.config import Settings
from cloudmeter.reports import serialize, views
from cloudmeter.reports.ratecard import RateCard

JSON: Final = "application/json"
CSV: Final = "text/csv; charset=utf-8"

From = Annotated[
    str | None,
    Query(alias="from", description="Start (ISO 8601; a date is local midnight in `tz`). Default: `to` - `days`."),
]
To = Annotated[str | None, Query(alias="to", description="End, exclusive (ISO 8601). Default: the last whole hour.")]
Tz = Annotated[str, Query(description="Time zone of dates and days (IANA name).")]
Sort = Annotated[str | None, Query(description="Sort rows by this column (`-COLUMN`: descending), as `--sort`.")]
Top = Annotated[int | None, Query(ge=1, description="Only the first N rows (after `sort`), as `--top`.")]
Format = Annotated[
    Literal["json", "csv"] | None,
    Query(description="`json` (default; as `--json`) or `csv` (as `--output csv`); also `Accept: text/csv`."),
]


def days_query(default: int, minimum: int = 1) -> Any:
    """The ``days`` parameter with the CLI's default and bounds for one report."""
    return Query(default, ge=minimum, le=views.MAX_WINDOW_DAYS, description="Window length when `from` is not given.")


#: Every report's answer, for the OpenAPI schema.
REPORT_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "One object per row, as the CLI's `--json`; or CSV as its `--output csv`.",
        "content": {JSON: {"schema": {"type": "array", "items": {"type": "object"}}}, "text/csv": {}},
    },
    401: {"description": "No token, or an unknown or revoked one."},
    422: {"description": "A parameter is invalid; `detail[].loc` names it."},
    503: {"description": "The database cannot be reached."},
}


def settings(request: Request) -> Settings:
    """The app's settings."""
    found: Settings = request.app.state.settings
    return found


def card(request: Request) -> RateCard:
    """The rate card of the API's reports (``[api] rates``, else the sample card), loaded when the app was made."""
    found: RateCard = request.app.state.card
    return found


@contextmanager
def connection(request: Request) -> Iterator[psycopg.Connection]:
    """A pooled connection to the app's database."""
    with database(request).connection() as conn:
        yield conn


def chosen_format(request: Request, fmt: str | None) -> str:
    """``fmt`` if given, else CSV when the client's ``Accept`` asks for it before JSON, else JSON."""
    if fmt:
        return fmt
    accept = request.headers.get("accept", "").lower()
    csv_at, json_at = accept.find("text/csv"), accept.find("application/json")
    return "csv" if csv_at >= 0 and (json_at < 0 or csv_at < json_at) else "json"


def frame_response(
    request: Request, frame: pl.DataFrame, fmt: str | None, sort: str | None = None, top: int | None = None
) -> Response:
    """``frame`` sorted and cut as ``--sort``/``--top`` say, as JSON (the CLI's ``--json`` text) or CSV."""
    frame = serialize.ordered(frame, sort, top)
    if chosen_format(request, fmt) == "csv":
        return Response(serialize.to_csv(frame), media_type=CSV)
    return Response(serialize.to_json(frame), media_type=JSON)
