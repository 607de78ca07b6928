"""The web page (``/``): a placeholder until the web page is built; its module replaces this file.

``cloudmeter.api.app.create_app`` includes ``router`` and, when ``static`` is an ASGI app (e.g. Starlette's
``StaticFiles(packages=[("cloudmeter.api.web", "static")])``), mounts it at ``/static``.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.types import ASGIApp

router = APIRouter()
static: ASGIApp | None = None
