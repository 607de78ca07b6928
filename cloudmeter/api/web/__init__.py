"""The web page (``/``): server-rendered pages with charts on the same report functions as the API and the CLI.

``router`` holds the pages (``pages``) and the login (``session``); ``static`` serves the stylesheet, the script
and the vendored Chart.js from the package (no CDN), mounted at ``/static`` by ``cloudmeter.api.app``.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from cloudmeter.api.web import pages, session

router = APIRouter(include_in_schema=False)
router.include_router(session.router)
router.include_router(pages.router)
static: ASGIApp | None = StaticFiles(packages=[("cloudmeter.api.web", "static")])
