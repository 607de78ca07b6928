"""``/api/v1/status`` and ``/api/v1/managers``: the database and the managers' progress, as ``cloudmeter status``
and ``managers list``; for admins, adding, enabling and disabling a manager and refreshing its inventory."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from cloudmeter.api.auth import Admin, Viewer, database
from cloudmeter.api.v1.common import JSON, REPORT_RESPONSES, Format, Sort, Top, frame_response, settings
from cloudmeter.collectors.base import ManagerConfig
from cloudmeter.collectors.registry import build_collector, collector_kinds
from cloudmeter.errors import CloudmeterError, CollectorError, ConfigError
from cloudmeter.redact import mask
from cloudmeter.reports.serialize import jsonable
from cloudmeter.scheduler import jobs, views
from cloudmeter.scheduler.fleet import checked_table, fleet
from cloudmeter.storage import managers

router = APIRouter(tags=["managers"])

ManagerName = Annotated[str, Path(description="A manager's name (config file or `managers add`).")]


@router.get(
    "/status",
    summary="The database and every manager's progress",
    responses={200: {"description": "As `cloudmeter status --json`."}},
)
def overall_status(request: Request, _: Viewer) -> Response:
    """The database (server, mode, storage per table, policies, notes) and each manager's state, lag, newest
    sample, failures and next attempt, skipped ranges and holes, API use: `cloudmeter status --json`."""
    report = views.status_report(database(request), settings(request))
    return Response(json.dumps(jsonable(report)), media_type=JSON)


@router.get("/managers", summary="The configured managers", responses=REPORT_RESPONSES)
def managers_list(request: Request, _: Viewer, sort: Sort = None, top: Top = None, format: Format = None) -> Response:
    """Name, kind, source (config file or cli), enabled, last refresh, captured until, last error:
    `cloudmeter managers list --json`. No config field, so nothing secret."""
    db = database(request)
    return frame_response(request, views.managers_listing(db, settings(request)), format, sort, top)


class NewManager(BaseModel):
    """A manager to add, as `cloudmeter managers add NAME --kind K --set key=value ...`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="A new manager's name.")
    kind: str = Field(
        min_length=1,
        description=f"The collector kind: {', '.join(sorted(collector_kinds()))} (those installed).",
    )
    config: dict[str, Any] = Field(
        default_factory=dict, description="The kind's fields; a secret only as `env:VARNAME` (never its value)."
    )
    verify: bool = Field(True, description="Check endpoint and credentials before saving.")


def _body_error(field: str, message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT, detail=[{"loc": ["body", field], "msg": message, "type": "value_error"}]
    )


def _secrets(manager: ManagerConfig) -> list[str]:
    return [value.get_secret_value() for value in dict(manager).values() if isinstance(value, SecretStr)]


@router.post(
    "/managers",
    status_code=status.HTTP_201_CREATED,
    summary="Add a manager (admin)",
    responses={403: {"description": "The token's role is viewer."}, 409: {"description": "The name is taken."}},
)
def managers_add(request: Request, _: Admin, new: NewManager) -> dict[str, Any]:
    """Store a manager (the daemon picks it up), verified first unless `verify` is false; secrets only as
    `env:VARNAME` references: `cloudmeter managers add`."""
    if new.name in settings(request).managers:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail=f"manager {new.name!r} is in the config file already; pick another name"
        )
    try:
        manager, table = checked_table(new.name, new.kind, new.config)
    except ConfigError as exc:
        raise _body_error("config", str(exc)) from None
    if new.verify:
        try:
            build_collector(new.name, manager).verify()
        except CloudmeterError as exc:
            why = mask(f"{type(exc).__name__}: {exc}", _secrets(manager))
            raise _body_error("verify", f"not saved: {why} (fix it, or send verify: false to save anyway)") from None
    db = database(request)
    db.migrate()
    with db.connection() as conn:
        try:
            managers.add_manager(conn, new.name, new.kind, table)
        except LookupError as exc:
            raise HTTPException(
                status.HTTP_409_CONFLICT, detail=f"{exc}; remove it first or pick another name"
            ) from None
    return {"name": new.name, "kind": new.kind, "source": "cli", "enabled": True}


def _known(request: Request, name: str) -> tuple[int, ManagerConfig]:
    """Manager ``name``'s id and config, or 404 (not configured) / 409 (its stored config does not load here)."""
    db = database(request)
    db.migrate()
    found = fleet(db, settings(request).managers)
    if name in found.broken:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=found.broken[name])
    if name not in found.configs:
        known = ", ".join(sorted(found.configs)) or "none"
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"manager {name!r} is not configured (configured: {known})"
        )
    return views.registered(db, settings(request), name)


def _set_enabled(request: Request, name: str, enabled: bool) -> dict[str, Any]:
    _known(request, name)
    with database(request).connection() as conn:
        managers.set_enabled(conn, name, enabled)
    return {"name": name, "enabled": enabled}


_ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"description": "The token's role is viewer."},
    404: {"description": "No such manager."},
}


@router.post("/managers/{name}/enable", summary="Let the daemon run a manager (admin)", responses=_ADMIN_RESPONSES)
def managers_enable(request: Request, _: Admin, name: ManagerName) -> dict[str, Any]:
    """`cloudmeter managers enable NAME`."""
    return _set_enabled(request, name, True)


@router.post(
    "/managers/{name}/disable", summary="Stop running a manager; its data stays (admin)", responses=_ADMIN_RESPONSES
)
def managers_disable(request: Request, _: Admin, name: ManagerName) -> dict[str, Any]:
    """`cloudmeter managers disable NAME`."""
    return _set_enabled(request, name, False)


@router.post(
    "/managers/{name}/refresh",
    summary="Refresh a manager's inventory now (admin)",
    responses={**_ADMIN_RESPONSES, 502: {"description": "The source failed or could not be reached."}},
)
def managers_refresh(request: Request, _: Admin, name: ManagerName) -> dict[str, Any]:
    """Read the manager's VMs, hosts, clusters and history now: `cloudmeter refresh --manager NAME`."""
    manager_id, config = _known(request, name)
    try:
        collector = build_collector(name, config)
        result = jobs.refresh_inventory(database(request), manager_id, collector)
    except CollectorError as exc:
        why = mask(f"{type(exc).__name__}: {exc}", _secrets(config))
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, detail=f"refresh failed: {why}") from None
    return {
        "name": name,
        "resources": len(result.ids),
        "retired": result.retired,
        "history_changed": result.history_changed,
    }
