"""pytest plugin: real PostgreSQL servers, started once per session; a fresh database per test.

``pg_server`` is the embedded PostgreSQL 18 from the pip wheel (the default everywhere). ``any_pg_server``
runs a test on every supported major version that can run here: 18 and 16 from the wheel, and Debian's 15
(installed by .ci/run) started as the ``postgres`` user.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from cloudmeter.storage.database import Database
from cloudmeter.storage.embedded import EmbeddedPostgres
from tests.loopback import free_port

_counter = itertools.count()
DEBIAN_PG15 = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URI of the embedded PostgreSQL 18 started for this test session."""
    with tempfile.TemporaryDirectory(prefix="cloudmeter-pg18-") as tmp:
        server = EmbeddedPostgres(Path(tmp))
        uri = server.start()
        try:
            yield uri
        finally:
            server.stop()


@pytest.fixture(scope="session")
def pg16_server() -> Iterator[str]:
    """URI of the wheel's PostgreSQL 16."""
    with tempfile.TemporaryDirectory(prefix="cloudmeter-pg16-") as tmp:
        server = EmbeddedPostgres(Path(tmp), version=16)
        uri = server.start()
        try:
            yield uri
        finally:
            server.stop()


@pytest.fixture(scope="session")
def pg15_server() -> Iterator[str]:
    """DSN of Debian's PostgreSQL 15 (``apt-get install postgresql``), run as the postgres user."""
    if not (DEBIAN_PG15 / "initdb").exists():
        pytest.fail("Debian's PostgreSQL 15 is missing: apt-get install -y postgresql (.ci/run does)")
    tmp = Path(tempfile.mkdtemp(prefix="cloudmeter-pg15-"))
    shutil.chown(tmp, "postgres", "postgres")
    data = tmp / "data"
    port = free_port()

    def as_postgres(*args: str) -> None:
        subprocess.run(["su", "postgres", "-c", " ".join(args)], check=True, capture_output=True)

    as_postgres(str(DEBIAN_PG15 / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    options = f'"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off"'
    as_postgres(str(DEBIAN_PG15 / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(tmp / "log"), "start")
    try:
        yield f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    finally:
        as_postgres(str(DEBIAN_PG15 / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(params=["18", "16", "15"])
def any_pg_server(request: pytest.FixtureRequest) -> str:
    """Each supported PostgreSQL major version in turn."""
    name = {"18": "pg_server", "16": "pg16_server", "15": "pg15_server"}[request.param]
    uri: str = request.getfixturevalue(name)
    return uri


@pytest.fixture
def new_database() -> Iterator[object]:
    """A factory: ``new_database(server_uri)`` makes an empty database and returns its DSN (dropped after)."""
    made: list[tuple[str, str]] = []

    def make(server: str) -> str:
        name = f"t{os.getpid()}_{next(_counter)}"
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        made.append((server, name))
        return make_conninfo(server, dbname=name)

    yield make
    for server, name in made:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def dsn(pg_server: str, new_database: object) -> str:
    """A DSN to a new, empty database on the session's PostgreSQL 18."""
    return new_database(pg_server)  # type: ignore[operator,no-any-return]


@pytest.fixture
def db(dsn: str, tmp_path: Path) -> Iterator[Database]:
    """An open Database on a fresh, migrated (native mode) database."""
    with Database(dsn, tmp_path) as database:
        database.migrate()
        yield database
