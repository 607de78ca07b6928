"""``/api/v1/chargeback``: costs under the server's rate card, as ``cloudmeter chargeback show``, and
``/api/v1/chargeback/export``: the files ``cloudmeter chargeback export`` writes, streamed as downloads."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Final, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from cloudmeter.api.auth import Viewer
from cloudmeter.api.v1.common import (
    REPORT_RESPONSES,
    From,
    Sort,
    To,
    Top,
    Tz,
    card,
    chosen_format,
    connection,
    days_query,
    frame_response,
)
from cloudmeter.reports import export, views

router = APIRouter(prefix="/chargeback", tags=["chargeback"])

GroupBy = Annotated[str, Query(description="vm, project, cluster, provider or tag:KEY.")]
IntervalQuery = Annotated[str, Query(description="daily, weekly or monthly (in `tz`).")]
#: A download's file name ending and media type, by format.
DOWNLOADS: Final[dict[str, tuple[str, str]]] = {
    "csv": ("csv", "text/csv; charset=utf-8"),
    "parquet": ("parquet", "application/vnd.apache.parquet"),
    "xlsx": ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "focus": ("focus.csv", "text/csv; charset=utf-8"),
}


@router.get("", summary="Costs per group, period and rate line", responses=REPORT_RESPONSES)
def show(
    request: Request,
    _: Viewer,
    start: From = None,
    end: To = None,
    days: int = days_query(7),
    group_by: GroupBy = "project",
    interval: IntervalQuery = "monthly",
    tz: Tz = "UTC",
    sort: Sort = None,
    top: Top = None,
    format: Annotated[
        str | None,
        Query(description="`json` (default) or `csv`, as `chargeback show`; files: `/api/v1/chargeback/export`."),
    ] = None,
) -> Response:
    """`cloudmeter chargeback show --json` under the server's rate card (`[api] rates`, default the sample card);
    `cost` is exact (a decimal as text)."""
    if format not in (None, "json", "csv"):
        raise views.ParameterError(
            f"format {format!r} is not one of json, csv here; files (csv, parquet, xlsx, focus) come from "
            f"/api/v1/chargeback/export?format={format}",
            "format",
        )
    params = views.Chargeback(group_by, interval, None, views.Period(start, end, days, tz))
    with connection(request) as conn:
        shown = views.chargeback_report(conn, params, card(request))
    return frame_response(request, shown.frame, chosen_format(request, format), sort, top)


@router.get(
    "/export",
    summary="A chargeback file: CSV, Parquet, XLSX or FOCUS 1.2 (CSV)",
    responses={
        200: {
            "description": "The file `cloudmeter chargeback export` writes, as an attachment.",
            "content": {media: {} for _, media in DOWNLOADS.values()},
        },
        422: {"description": "A parameter is invalid; `detail[].loc` names it."},
    },
    response_class=FileResponse,
)
def export_file(
    request: Request,
    _: Viewer,
    start: Annotated[str, Query(alias="from", description="First day (ISO 8601 date, local midnight in `tz`).")],
    end: Annotated[str, Query(alias="to", description="End day, exclusive (ISO 8601).")],
    format: Annotated[
        Literal["csv", "parquet", "xlsx", "focus"], Query(description="csv, parquet, xlsx or focus (FOCUS 1.2, CSV).")
    ] = "csv",
    group_by: GroupBy = "vm",
    interval: IntervalQuery = "daily",
    tz: Tz = "UTC",
) -> FileResponse:
    """`cloudmeter chargeback export --format F --output FILE`: the same bytes (an XLSX's creation time aside),
    written to a temporary file and streamed, with a `Content-Disposition` file name."""
    params = views.Chargeback(group_by, interval, None, views.Period(start, end, 1, tz))
    with connection(request) as conn:
        shown = views.chargeback_export(conn, params, format, card(request))
    ending, media = DOWNLOADS[format]
    zone = ZoneInfo(tz)
    name = (
        f"chargeback-{shown.window.start.astimezone(zone):%Y%m%d}-{shown.window.end.astimezone(zone):%Y%m%d}.{ending}"
    )
    folder = Path(tempfile.mkdtemp(prefix="cloudmeter-export-"))
    try:
        export.write(shown.frame, folder / name, format)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        folder / name,
        media_type=media,
        filename=name,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )
