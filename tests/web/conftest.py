"""Fixtures of the web page's tests: one real uvicorn serving ``create_app`` on a database loaded with simulator data
through the real pipeline, and one headless Chromium (Debian's, driven by Playwright) for the whole session.

The data ends at a fixed hour (``END``), so the simulated world and every report on it are the same on every
run; pages and API calls name that window with ``to=END``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Error, Page, sync_playwright
from psycopg.conninfo import make_conninfo

from cloudmeter.api.app import create_app
from cloudmeter.api.server import Background, listen, url
from cloudmeter.config import Settings
from cloudmeter.storage import tokens
from cloudmeter.storage.database import Database
from tests.web.cloud import load

CHROMIUM = Path("/usr/bin/chromium")
END = datetime(2026, 11, 30, 6, tzinfo=UTC)
END_PARAM = "2026-11-30T06:00Z"
SHOTS = Path(os.environ.get("CLOUDMETER_WEB_SHOTS", "/tmp/web-shots"))


@dataclass(frozen=True)
class Site:
    """The running server: its base URL, a token of each role, and what its app was made of."""

    url: str
    viewer: str
    admin: str
    settings: Settings
    db: Database


@pytest.fixture(scope="session")
def site(pg_server: str) -> Iterator[Site]:
    """The app on a fresh database of the session's PostgreSQL 18, with the test cloud and two tokens."""
    name = f"web{os.getpid()}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    work = Path(tempfile.mkdtemp(prefix="cloudmeter-web-"))
    dsn = make_conninfo(pg_server, dbname=name)
    try:
        with Database(dsn, work) as db:
            db.migrate()
            load(db, END)
            with db.connection() as conn:
                viewer = tokens.create_token(conn, "web-viewer", "viewer")
                admin_token = tokens.create_token(conn, "web-admin", "admin")
            settings = Settings(dsn=dsn, data_dir=work)
            sock = listen("127.0.0.1", 0)
            server = Background(create_app(settings, db), sock)
            server.start()
            try:
                yield Site(url(sock), viewer, admin_token, settings, db)
            finally:
                server.stop()
    finally:
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless (Playwright cannot download its own here)."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium (scripts/test.sh does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@dataclass
class Tab:
    """A page in a browser context of its own, with every console error and uncaught exception it saw."""

    context: BrowserContext
    page: Page
    problems: list[str]

    def go(self, path: str) -> int:
        """Load ``path`` and wait until nothing more loads; the HTTP status of the last response."""
        response = self.page.goto(path)
        self.page.wait_for_load_state("load")
        assert response is not None
        return response.status


def _tab(browser: Browser, site: Site, width: int, token: str | None) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": width, "height": 900}, base_url=site.url)
    if token is not None:
        cookie = {"name": "cloudmeter_token", "value": token, "url": site.url, "httpOnly": True, "sameSite": "Strict"}
        context.add_cookies([cookie])  # type: ignore[list-item]
    page = context.new_page()
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"console {message.type}: {message.text} at {message.location}")

    def crashed(error: Error) -> None:
        problems.append(f"page error: {error.message}")

    page.on("console", console)
    page.on("pageerror", crashed)
    try:
        yield Tab(context, page, problems)
    finally:
        context.close()


@pytest.fixture
def anonymous(browser: Browser, site: Site) -> Iterator[Tab]:
    """A browser without a cookie."""
    yield from _tab(browser, site, 1280, None)


@pytest.fixture
def viewer(browser: Browser, site: Site) -> Iterator[Tab]:
    """A browser signed in as a viewer (its cookie set as the login form sets it)."""
    yield from _tab(browser, site, 1280, site.viewer)


@pytest.fixture
def admin(browser: Browser, site: Site) -> Iterator[Tab]:
    """A browser signed in as an admin."""
    yield from _tab(browser, site, 1280, site.admin)


@pytest.fixture(params=[1280, 390], ids=["1280px", "390px"])
def admin_at_width(request: pytest.FixtureRequest, browser: Browser, site: Site) -> Iterator[Tab]:
    """An admin's browser at a desktop's and a phone's width."""
    yield from _tab(browser, site, request.param, site.admin)
