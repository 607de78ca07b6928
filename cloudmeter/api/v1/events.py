"""``/api/v1/events``: the timeline of what the managers' sources announced, as ``cloudmeter events --json``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cloudmeter.api.auth import Viewer
from cloudmeter.api.v1.common import REPORT_RESPONSES, Format, connection, frame_response
from cloudmeter.model import EVENT_KINDS
from cloudmeter.reports import views
from cloudmeter.storage import events

router = APIRouter(tags=["events"])


@router.get("/events", summary="The events stored, oldest first", responses=REPORT_RESPONSES)
def timeline(
    request: Request,
    _: Viewer,
    manager: Annotated[str | None, Query(description="Only this manager's events (its name).")] = None,
    resource: Annotated[str | None, Query(description="Only this resource's events (its ems_ref or name).")] = None,
    since: Annotated[str | None, Query(description="From this time (ISO 8601; UTC without a zone).")] = None,
    until: Annotated[str | None, Query(description="Before this time (ISO 8601; UTC without a zone).")] = None,
    kind: Annotated[str | None, Query(description=f"Only this kind: {', '.join(EVENT_KINDS)}.")] = None,
    format: Format = None,
) -> Response:
    """The rows of `cloudmeter events --json` with the same parameters: `ts`, `kind`, `manager`, `resource`,
    `host`, `vcpus`, `memory_bytes`, `ems_ref`, `resource_id`, `source_type`, `message_id`, `received_at` and
    `payload` (the message as JSON text)."""
    start, end = views.parse_time(since, "--since"), views.parse_time(until, "--until")
    if start is not None and end is not None:
        views.window_between(start, end, "--since", "--until")
    with connection(request) as conn:
        frame = events.timeline(conn, manager=manager, resource=resource, since=start, until=end, kind=kind)
    return frame_response(request, frame, format)
