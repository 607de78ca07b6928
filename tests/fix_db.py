"""pytest plugin: one real embedded PostgreSQL per session, a fresh database per test."""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from cloudmeter.storage.database import Database
from cloudmeter.storage.embedded import EmbeddedPostgres

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URI of a real PostgreSQL started from the pip wheel for this test session."""
    version = os.environ.get("PGSERVER_POSTGRES_VERSION", "18")
    with tempfile.TemporaryDirectory(prefix=f"cloudmeter-pg{version}-") as tmp:
        server = EmbeddedPostgres(Path(tmp))
        uri = server.start()
        try:
            yield uri
        finally:
            server.stop()


@pytest.fixture
def dsn(pg_server: str) -> Iterator[str]:
    """A DSN to a new, empty database on the session's server, dropped afterwards."""
    name = f"t{os.getpid()}_{next(_counter)}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(pg_server, dbname=name)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(dsn: str, tmp_path: Path) -> Iterator[Database]:
    """An open Database on a fresh, migrated (native mode) database."""
    with Database(dsn, tmp_path) as database:
        database.migrate()
        yield database
