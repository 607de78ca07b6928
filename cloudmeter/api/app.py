"""The ASGI app: ``create_app(settings, db)`` with ``/api/v1`` (OpenAPI at ``/api/v1/openapi.json``, docs at
``/api/v1/docs``), ``/metrics`` for Prometheus, and the web page.

Errors never carry a traceback or a secret: bad parameters are 422 naming the parameter (FastAPI's own
validation, and ``ConfigError`` from the report functions, whose ``--option`` becomes the query parameter), a
database that cannot be reached is 503 in one line, anything else 500 with one line (the server's log has the
rest). Every message goes through ``storage.dsn.scrub`` first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

import anyio
import psycopg
from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from cloudmeter.api import v1
from cloudmeter.api.web import router as web_router
from cloudmeter.api.web import static as web_static
from cloudmeter.config import Settings
from cloudmeter.errors import CloudmeterError, CollectorError, ConfigError, StorageError
from cloudmeter.reports import views
from cloudmeter.scheduler import metrics as daemon_metrics
from cloudmeter.storage.database import Database
from cloudmeter.storage.dsn import scrub

log = logging.getLogger(__name__)
PREFIX = "/api/v1"
_OPTION = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")


def create_app(settings: Settings, db: Database | None = None) -> FastAPI:
    """The app on ``db`` (open, migrated), or on the configured database, opened when the app starts and closed
    when it stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if db is not None:
            yield
            return
        opened = Database(settings.dsn_value, settings.data_dir, settings.pool_size, settings.write_method)
        await anyio.to_thread.run_sync(opened.open)
        try:
            await anyio.to_thread.run_sync(opened.migrate)
            app.state.db = opened
            yield
        finally:
            await anyio.to_thread.run_sync(opened.close)

    app = FastAPI(
        title="cloudmeter",
        version=version("cloudmeter"),
        summary="Cloud utilization, capacity planning and chargeback: the reports of the cloudmeter CLI over HTTP.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.card = views.rate_card(settings.api.rates)  # a bad [api] rates stops serve before it listens
    app.include_router(v1.router, prefix=PREFIX)
    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    app.include_router(web_router)
    if web_static is not None:
        app.mount("/static", web_static, name="static")
    app.add_exception_handler(ConfigError, _bad_parameter)
    app.add_exception_handler(CollectorError, _source_failed)
    app.add_exception_handler(StorageError, _unavailable)
    app.add_exception_handler(psycopg.Error, _unavailable)
    app.add_exception_handler(CloudmeterError, _failed)
    app.add_exception_handler(Exception, _failed)
    return app


def metrics() -> Response:
    """Prometheus's text exposition of cloudmeter's metrics (the daemon's, when ``run`` serves the API)."""
    assert daemon_metrics.JOBS is not None  # registered in REGISTRY when that module is imported
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def api_message(text: str) -> str:
    """A message of the report functions as the API says it: ``--memory-gb`` is the parameter ``memory_gb``,
    and nothing DSN-shaped or secret survives."""
    return _OPTION.sub(lambda m: m.group(1).replace("-", "_"), scrub(text.strip().splitlines()[0] if text else ""))


async def _bad_parameter(request: Request, exc: Exception) -> Response:
    """A value the report functions refuse: 422, shaped like FastAPI's own validation errors."""
    message = api_message(str(exc))
    named = _OPTION.search(str(exc))
    parameter = exc.parameter if isinstance(exc, views.ParameterError) else None
    parameter = parameter or (named.group(1).replace("-", "_") if named else None)
    loc = ["query", parameter] if parameter else ["query"]
    return JSONResponse(
        {"detail": [{"loc": loc, "msg": message, "type": "value_error"}]}, status.HTTP_422_UNPROCESSABLE_CONTENT
    )


async def _source_failed(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": api_message(f"{type(exc).__name__}: {exc}")}, status.HTTP_502_BAD_GATEWAY)


async def _unavailable(request: Request, exc: Exception) -> Response:
    if isinstance(exc, psycopg.Error):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        message = f"PostgreSQL: {first} (SQLSTATE {exc.sqlstate or 'none'})"
    else:
        message = str(exc)
    log.warning("%s %s: %s", request.method, request.url.path, scrub(message))
    return JSONResponse({"detail": f"the database is unavailable: {api_message(message)}"}, 503)


async def _failed(request: Request, exc: Exception) -> Response:
    if isinstance(exc, CloudmeterError):
        log.warning("%s %s: %s", request.method, request.url.path, scrub(str(exc)))
        return JSONResponse({"detail": api_message(str(exc))}, status.HTTP_500_INTERNAL_SERVER_ERROR)
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        {"detail": f"internal error ({type(exc).__name__}); the server's log has the details"},
        status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
