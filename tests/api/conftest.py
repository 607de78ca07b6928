"""Fixtures of the HTTP API's tests: one real uvicorn (``create_app`` in a thread, on a free loopback port) per
session, on a fresh database of the session's PostgreSQL 18 holding the hand-computable cloud of tests/reports and
a small demo (the simulator, captured and rolled up through the real pipeline); tokens of each role; the CLI on
the same database, to compare with."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from typer.testing import CliRunner

from cloudmeter.api.app import create_app
from cloudmeter.api.server import Background, listen, url
from cloudmeter.cli import app as cli_app
from cloudmeter.config import load_settings
from cloudmeter.demo import run_demo
from cloudmeter.storage import tokens
from cloudmeter.storage.database import Database
from tests.reports.cloud import load

#: The demo's last whole hour: its three days end here, after the test cloud's two (2026-03-02 to 03-04).
DEMO_NOW = datetime(2026, 3, 5, 6, 30, tzinfo=UTC)
ZONES = ("UTC", "Europe/Berlin")


@dataclass(frozen=True)
class Api:
    """The running server and what the tests need around it."""

    url: str
    db: Database
    dsn: str
    data_dir: Path
    viewer: str
    admin: str

    def client(self, token: str | None = None, **headers: str) -> httpx.Client:
        """A client of the API, with ``token`` as its bearer token."""
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers={**auth, **headers}, timeout=120)

    @property
    def env(self) -> dict[str, str]:
        """The environment of a CLI run on the same database."""
        return {
            "CLOUDMETER_DSN": self.dsn,
            "CLOUDMETER_DATA_DIR": str(self.data_dir),
            "CLOUDMETER_TIME_ZONES": '["UTC", "Europe/Berlin"]',
            "COLUMNS": "250",
        }

    def cli(self, *args: str) -> tuple[int, str, str]:
        """Run ``cloudmeter ARGS`` in this process (typer's runner); exit code, stdout, stderr."""
        result = CliRunner().invoke(cli_app, list(args), env=self.env)
        return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="session")
def api(pg_server: str) -> Iterator[Api]:
    """The app on a fresh database with the test cloud, a 20-VM demo and a token of each role."""
    name = f"api{os.getpid()}_{os.urandom(3).hex()}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    work = Path(tempfile.mkdtemp(prefix="cloudmeter-api-"))
    dsn = make_conninfo(pg_server, dbname=name)
    try:
        with Database(dsn, work) as db:
            db.migrate()
            load(db, days=2, growth=0.5)
            run_demo(db, ZONES, vms=20, days=3, now=DEMO_NOW)
            with db.connection() as conn:
                viewer = tokens.create_token(conn, "api-viewer", "viewer")
                admin_token = tokens.create_token(conn, "api-admin", "admin")
            settings = load_settings(None, dsn=dsn, data_dir=work, time_zones=ZONES)
            sock = listen("127.0.0.1", 0)
            server = Background(create_app(settings, db), sock)
            server.start()
            try:
                yield Api(url(sock), db, dsn, work, viewer, admin_token)
            finally:
                server.stop()
    finally:
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def viewer(api: Api) -> Iterator[httpx.Client]:
    """A client with the viewer's token."""
    with api.client(api.viewer) as client:
        yield client


@pytest.fixture
def admin(api: Api) -> Iterator[httpx.Client]:
    """A client with the admin's token."""
    with api.client(api.admin) as client:
        yield client
