"""``/api/v1/rollups``: the hourly and daily rollup rows of a resource or of a level, a page at a time."""

from __future__ import annotations

import json
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cloudmeter.api.auth import Viewer
from cloudmeter.api.v1.common import CSV, JSON, From, To, chosen_format, connection, days_query
from cloudmeter.reports import serialize, views

router = APIRouter(tags=["rollups"])


@router.get(
    "/rollups",
    summary="Hourly or daily rollup rows of a resource or a level, paged",
    responses={
        200: {
            "description": "JSON `{rows, next, cursor}` (`next`: the next page's URL, null on the last), or CSV with "
            'the next page in a `Link: <url>; rel="next"` header.',
            "content": {JSON: {}, "text/csv": {}},
        },
        422: {"description": "A parameter is invalid; `detail[].loc` names it."},
    },
)
def rollups(
    request: Request,
    _: Viewer,
    interval: Annotated[Literal["hourly", "daily"], Query(description="hourly or daily rows.")] = "hourly",
    resource_id: Annotated[int | None, Query(description="One resource, by its id in `resources`.")] = None,
    manager: Annotated[str | None, Query(description="A manager's name: with `ems_ref`, or to narrow `level`.")] = None,
    ems_ref: Annotated[
        str | None, Query(description="One resource, by its manager's id for it (needs `manager`).")
    ] = None,
    level: Annotated[
        Literal["vm", "host", "cluster", "provider", "region", "pod", "container"] | None,
        Query(description="Every resource of this kind (of `manager`, or all)."),
    ] = None,
    start: From = None,
    end: To = None,
    days: int = days_query(7),
    tz: Annotated[str, Query(description="Time zone of dates; daily rows of this zone (one of `time_zones`).")] = "UTC",
    limit: Annotated[int, Query(ge=1, le=views.MAX_PAGE, description="Rows per page.")] = 1000,
    cursor: Annotated[
        str | None, Query(description="Where the page starts: the `cursor` of the previous page.")
    ] = None,
    format: Annotated[Literal["json", "csv"] | None, Query(description="json (default) or csv.")] = None,
) -> Response:
    """Rows of `metric_hourly` or `metric_daily` (the data contract's columns, with each resource's `kind`,
    `ems_ref` and `name`) whose bucket starts in the window, sorted by resource and time. Every row is on
    exactly one page: follow `next` until it is null."""
    params = views.Rollups(
        interval, resource_id, manager, ems_ref, level, views.Period(start, end, days, tz), limit, cursor
    )
    with connection(request) as conn:
        page = views.rollups(conn, params)
    following = None
    if page.next_cursor is not None:
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        following = f"{request.url.path}?{urlencode([*query, ('cursor', page.next_cursor)])}"
    headers = {"Link": f'<{following}>; rel="next"'} if following else {}
    if chosen_format(request, format) == "csv":
        return Response(serialize.to_csv(page.frame), media_type=CSV, headers=headers)
    links = f'"next": {json.dumps(following)}, "cursor": {json.dumps(page.next_cursor)}'
    body = f'{{"rows": {serialize.to_json(page.frame)}, {links}}}'
    return Response(body, media_type=JSON, headers=headers)
