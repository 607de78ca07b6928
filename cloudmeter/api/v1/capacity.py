"""``/api/v1/capacity/...``: utilization, headroom, forecast and right-sizing, as ``cloudmeter capacity ...``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cloudmeter.api.auth import Viewer
from cloudmeter.api.v1.common import (
    REPORT_RESPONSES,
    Format,
    From,
    Sort,
    To,
    Top,
    Tz,
    card,
    connection,
    days_query,
    frame_response,
    settings,
)
from cloudmeter.reports import views

router = APIRouter(prefix="/capacity", tags=["capacity"], responses=REPORT_RESPONSES)

Percent = Annotated[float, Query(gt=0, le=100)]


@router.get("/utilization", summary="Utilization per host, cluster or provider")
def utilization(
    request: Request,
    _: Viewer,
    level: Annotated[
        Literal["host", "cluster", "provider"], Query(description="host, cluster or provider.")
    ] = "cluster",
    view: Annotated[
        Literal["vms", "host_measured"],
        Query(
            description="vms: the sum of the VMs; host_measured: the hosts' own measurement beside it (host or "
            "cluster)."
        ),
    ] = "vms",
    start: From = None,
    end: To = None,
    days: int = days_query(7),
    tz: Tz = "UTC",
    sort: Sort = None,
    top: Top = None,
    format: Format = None,
) -> Response:
    """Avg, p95 and peak CPU/memory/disk/network, coverage, and allocation against capacity (overcommit):
    `cloudmeter capacity utilization --json`."""
    raw_days = settings(request).retention.raw_days
    params = views.Utilization(level, views.Period(start, end, days, tz), view, raw_days)
    with connection(request) as conn:
        shown = views.utilization(conn, params)
    return frame_response(request, shown.frame, format, sort, top)


@router.get("/headroom", summary="How many more VMs of a flavor fit per cluster")
def headroom(
    request: Request,
    _: Viewer,
    vcpus: Annotated[
        float, Query(gt=0, description="vCPUs of the flavor to place (Kubernetes: a pod's CPU request, cores).")
    ],
    memory_gb: Annotated[float, Query(gt=0, description="Memory (GB = 2^30 bytes) of the flavor.")],
    cpu_usage_pct: Annotated[float, Query(gt=0, le=100, description="Limit on p95 CPU use, % of capacity.")] = 90.0,
    mem_usage_pct: Annotated[float, Query(gt=0, le=100, description="Limit on p95 memory use, %.")] = 90.0,
    cpu_allocation_ratio: Annotated[float, Query(gt=0, description="Allowed vCPU overcommit.")] = 4.0,
    mem_allocation_ratio: Annotated[float, Query(gt=0, description="Allowed memory overcommit.")] = 1.0,
    start: From = None,
    end: To = None,
    days: int = days_query(14),
    tz: Tz = "UTC",
    sort: Sort = None,
    top: Top = None,
    format: Format = None,
) -> Response:
    """Host by host under usage and allocation limits, per cluster: `cloudmeter capacity headroom --json`."""
    period = views.Period(start, end, days, tz)
    params = views.Headroom(
        vcpus, memory_gb, cpu_usage_pct, mem_usage_pct, cpu_allocation_ratio, mem_allocation_ratio, period
    )
    with connection(request) as conn:
        shown = views.headroom_report(conn, params)
    return frame_response(request, shown.frame, format, sort, top)


@router.get("/forecast", summary="Days until each cluster's CPU and memory reach a limit")
def forecast(
    request: Request,
    _: Viewer,
    limit: Annotated[float, Query(gt=0, le=100, description="Exhaustion at this % of capacity.")] = 90.0,
    start: From = None,
    end: To = None,
    days: int = days_query(28, minimum=3),
    tz: Tz = "UTC",
    sort: Sort = None,
    top: Top = None,
    format: Format = None,
) -> Response:
    """Linear and weekly-seasonal fits on daily peaks, with bounds: `cloudmeter capacity forecast --json`."""
    params = views.Forecast(limit, views.Period(start, end, days, tz))
    with connection(request) as conn:
        shown = views.forecast_report(conn, params)
    return frame_response(request, shown.frame, format, sort, top)


@router.get("/rightsize", summary="Recommended sizes per VM (or requests per container), idle VMs, monthly savings")
def rightsize(
    request: Request,
    _: Viewer,
    percentile: Annotated[float, Query(gt=0, le=100, description="Usage percentile to size for.")] = 95.0,
    headroom: Annotated[float, Query(ge=0, description="Headroom over the percentile, %.")] = 20.0,
    idle_cpu_pct: Annotated[float, Query(ge=0, description="Idle below this % of vCPUs.")] = 5.0,
    start: From = None,
    end: To = None,
    days: int = days_query(14),
    tz: Tz = "UTC",
    sort: Sort = None,
    top: Top = None,
    format: Format = None,
    level: Annotated[
        Literal["vm", "container"],
        Query(description="vm: vCPUs and memory per VM; container: requests per Kubernetes container."),
    ] = "vm",
) -> Response:
    """Costs under the server's rate card (`[api] rates`, default the sample card):
    `cloudmeter capacity rightsize --json`."""
    params = views.Rightsize(percentile, headroom, idle_cpu_pct, None, views.Period(start, end, days, tz), level)
    with connection(request) as conn:
        shown = views.rightsize_report(conn, params, card(request))
    return frame_response(request, shown.frame, format, sort, top)
