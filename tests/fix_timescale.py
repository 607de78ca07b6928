"""pytest plugin: a real TimescaleDB (PGlite + TimescaleDB in WASM) served over the PostgreSQL protocol.

`timescale_dsn` (session) starts ``node tests/pglite/server.mjs`` once. Per test, on a database emptied of what
earlier tests created: `timescale_conn` hands over a connection, `timescale_clean_dsn` just the DSN, and
`timescale_db` an open, migrated cloudmeter Database (one pooled connection, write method "insert"). Setup
once per checkout::

    npm ci --legacy-peer-deps --prefix tests/pglite

Limits of this server (see tests/pglite/server.mjs): one backend session shared by all connections, so a
second connection waits until the first is closed; ``COPY ... FROM STDIN`` is refused (SQLSTATE 0A000)
because it crashes the engine; no background workers (run policies with ``CALL run_job(id)``); the
timescaledb extension can't be dropped and re-created in the one session, so it is created once here and
`timescale_conn` drops the objects tests created instead of the whole schema.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cloudmeter.storage.database import Database
from tests import pglite_server
from tests.loopback import ServerFailed
from tests.pglite_server import PGliteServer

# Drops what earlier tests created and leaves the timescaledb extension (and other extensions) alone.
# Extension members are recognised by their pg_depend 'e' rows; chunks, compressed chunks and
# materialization tables go with their hypertable / continuous aggregate.
CLEANUP_SQL = r"""
DO $cleanup$
DECLARE
    r record;
    has_ts boolean := EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb');
BEGIN
    IF has_ts THEN
        FOR r IN SELECT job_id FROM timescaledb_information.jobs WHERE job_id >= 1000 LOOP
            EXECUTE format('SELECT delete_job(%s)', r.job_id);
        END LOOP;
        FOR r IN SELECT view_schema, view_name FROM timescaledb_information.continuous_aggregates LOOP
            EXECUTE format('DROP MATERIALIZED VIEW IF EXISTS %I.%I CASCADE', r.view_schema, r.view_name);
        END LOOP;
    END IF;
    FOR r IN
        SELECT n.nspname FROM pg_namespace n
        WHERE n.nspname NOT IN ('public', 'information_schema')
          AND n.nspname !~ '^pg_'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', r.nspname);
    END LOOP;
    -- objects are looked up by oid when their turn comes: an earlier CASCADE may have dropped them
    FOR r IN
        SELECT c.oid,
               CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                              WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS kind
        FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
        ORDER BY c.relkind IN ('v', 'm') DESC
    LOOP
        IF EXISTS (SELECT 1 FROM pg_class WHERE oid = r.oid) THEN
            EXECUTE format('DROP %s %s CASCADE', r.kind, r.oid::regclass);
        END IF;
    END LOOP;
    FOR r IN
        SELECT p.oid, CASE p.prokind WHEN 'a' THEN 'AGGREGATE' ELSE 'ROUTINE' END AS kind
        FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
    LOOP
        IF EXISTS (SELECT 1 FROM pg_proc WHERE oid = r.oid) THEN
            EXECUTE format('DROP %s %s CASCADE', r.kind, r.oid::regprocedure);
        END IF;
    END LOOP;
    FOR r IN
        SELECT t.oid
        FROM pg_type t LEFT JOIN pg_class c ON c.oid = t.typrelid
        WHERE t.typnamespace = 'public'::regnamespace
          AND (t.typtype IN ('e', 'd', 'r', 'm') OR (t.typtype = 'c' AND c.relkind = 'c'))
          AND NOT EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
    LOOP
        IF EXISTS (SELECT 1 FROM pg_type WHERE oid = r.oid) THEN
            EXECUTE format('DROP TYPE %s CASCADE', r.oid::regtype);
        END IF;
    END LOOP;
END
$cleanup$
"""


@pytest.fixture(scope="session")
def timescale_server() -> Iterator[PGliteServer]:
    """Start tests/pglite/server.mjs on a free loopback port with a fresh data directory."""
    with tempfile.TemporaryDirectory(prefix="cloudmeter-pglite-") as tmp:
        try:
            with pglite_server.running(Path(tmp)) as server:
                with psycopg.connect(server.dsn, autocommit=True, prepare_threshold=None) as conn:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                yield server
        except ServerFailed as exc:
            pytest.fail(str(exc))


def _check_alive(server: PGliteServer) -> None:
    try:
        server.check_alive()
    except ServerFailed as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def timescale_dsn(timescale_server: PGliteServer) -> str:
    """libpq DSN of the session's PGlite/TimescaleDB server (timescaledb extension already created)."""
    return timescale_server.dsn


@contextlib.contextmanager
def _clean_session(server: PGliteServer) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """The server's one session (autocommit off) after dropping what earlier tests created; closed after."""
    _check_alive(server)
    try:
        conn = psycopg.connect(server.dsn, prepare_threshold=None, autocommit=True)
    except psycopg.OperationalError as exc:
        _check_alive(server)
        pytest.fail(
            f"can't connect to the PGlite/TimescaleDB server ({exc}). It has one session: is a connection "
            "opened by an earlier test still open?"
        )
    try:
        conn.execute(CLEANUP_SQL)
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        except psycopg.Error as exc:
            pytest.fail(
                f"the timescaledb extension is gone and can't be re-created in PGlite's one session ({exc}); "
                "a test must not DROP EXTENSION timescaledb or DROP SCHEMA public CASCADE"
            )
        conn.autocommit = False
        yield conn
    finally:
        # The next connection gets this session: never leave a transaction open in it. (The server also
        # rolls back when a client disconnects; this keeps the fixture correct on its own.)
        with contextlib.suppress(psycopg.Error):
            if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.rollback()
        conn.close()


@pytest.fixture
def timescale_conn(timescale_server: PGliteServer) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A connection (autocommit off) to a database emptied of what earlier tests created.

    It is the server's only session: close it (the fixture does) before anything else connects.
    """
    with _clean_session(timescale_server) as conn:
        yield conn


@pytest.fixture
def timescale_clean_dsn(timescale_server: PGliteServer) -> str:
    """The DSN of the server, emptied of what earlier tests created, with no session held."""
    with _clean_session(timescale_server):
        pass
    return timescale_server.dsn


@pytest.fixture
def timescale_db(timescale_clean_dsn: str, tmp_path: Path) -> Iterator[Database]:
    """An open Database on the emptied server, migrated (TimescaleDB mode), writing by INSERT (no COPY FROM STDIN).

    Its pool holds the server's one session until the test ends.
    """
    with Database(timescale_clean_dsn, tmp_path, pool_size=1, write_method="insert") as database:
        database.migrate()
        yield database
