"""What a server must allow before cloudmeter changes it, checked first and named with its fix.

A server that is up but set up so that cloudmeter cannot work (wrong password, no such database, a read-only
standby, no CREATE privilege, a full disk, a version older than 15, TimescaleDB offered but not preloaded)
raises ``StorageMisconfigured``: one line saying what is wrong and how to fix it, exit 2 on the command line.
A server that cannot be reached stays ``StorageUnavailable`` (it may come back by itself).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import psycopg
from psycopg import sql

from cloudmeter.errors import StorageMisconfigured
from cloudmeter.storage.server import MIN_VERSION_NUM, ServerInfo

#: Where the connection settings come from, for messages.
DSN_SETTING: Final = "CLOUDMETER_DSN"

#: libpq's reasons for a refused login, as the server words them (lc_messages = C/English), and their fixes.
_LOGIN_REFUSALS: Final[tuple[tuple[str, re.Pattern[str], str], ...]] = (
    (
        "password",
        re.compile(r"password authentication failed for user \"[^\"]*\"|no password supplied"),
        f"fix the user name or password in {DSN_SETTING}",
    ),
    (
        "no-database",
        re.compile(r"database \"[^\"]*\" does not exist"),
        f"create it (createdb -O OWNER NAME) or fix the database name in {DSN_SETTING}",
    ),
    (
        "no-role",
        re.compile(r"role \"[^\"]*\" does not exist"),
        f"create the role (CREATE ROLE name LOGIN PASSWORD '...') or fix the user name in {DSN_SETTING}",
    ),
    (
        "pg_hba",
        re.compile(r"no pg_hba\.conf entry for host .*"),
        "add a line for this host, user and database to the server's pg_hba.conf and reload it, or connect "
        "as a user it admits",
    ),
    (
        "connect-privilege",
        re.compile(r"permission denied for database \"[^\"]*\""),
        "have the database owner GRANT CONNECT ON DATABASE to this user, or connect as another user",
    ),
)


def login_refusal(reason: str, where: str) -> StorageMisconfigured | None:
    """The error for a login the server refused (``reason``: libpq's first line, already scrubbed), or None
    when the server was not reached or gave another reason."""
    for problem, pattern, fix in _LOGIN_REFUSALS:
        found = pattern.search(reason)
        if found:
            return StorageMisconfigured(problem, f"PostgreSQL refused the connection ({where}): {found[0]}; {fix}")
    return None


def check_version(server: ServerInfo, where: str) -> None:
    """Refuse a server older than cloudmeter supports."""
    if server.version_num < MIN_VERSION_NUM:
        raise StorageMisconfigured(
            "version",
            f"PostgreSQL {server.version} is not supported ({where}): cloudmeter needs PostgreSQL 15 or newer "
            f"(tested on 15 to 18); upgrade the server, or unset {DSN_SETTING} to use the embedded PostgreSQL 18",
        )


def check_writable(conn: psycopg.Connection) -> None:
    """Refuse a hot standby or a connection whose transactions are read-only, naming where that is set."""
    row = conn.execute(
        """SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on',
                  (SELECT source FROM pg_settings WHERE name = 'default_transaction_read_only'),
                  current_user, current_database()"""
    ).fetchone()
    assert row is not None
    standby, read_only, source, user, database = row
    if standby:
        raise StorageMisconfigured(
            "read-only",
            "the server is a read-only standby (pg_is_in_recovery() is true): cloudmeter writes; point "
            f"{DSN_SETTING} at the primary server",
        )
    if read_only:
        raise StorageMisconfigured(
            "read-only",
            "transactions on this connection are read-only (default_transaction_read_only = on, set "
            f"{_read_only_source(conn, source, user, database)}",
        )


def _read_only_source(conn: psycopg.Connection, source: str | None, user: str, database: str) -> str:
    role, db = sql.Identifier(user).as_string(conn), sql.Identifier(database).as_string(conn)
    reset = "RESET default_transaction_read_only"
    fixes = {
        "user": f"for role {role}); have an administrator run ALTER ROLE {role} {reset}",
        "database": f"for database {db}); have an administrator run ALTER DATABASE {db} {reset}",
        "database user": f"for role {role} in database {db}); have an administrator run ALTER ROLE {role} IN "
        f"DATABASE {db} {reset}",
        "configuration file": "in the server's configuration); set it off in postgresql.conf and reload the server",
        "client": f"by the client); remove it from the options in {DSN_SETTING} or PGOPTIONS",
    }
    return fixes.get(source or "", f"as {source}); connect as a user that may write, or to a writable server")


def check_can_create(conn: psycopg.Connection) -> None:
    """Refuse to start a migration the current user could not finish: it must create tables in its schema."""
    row = conn.execute(
        """SELECT current_schema(), has_schema_privilege(current_schema(), 'CREATE'), current_user,
                  current_database(), current_setting('search_path')"""
    ).fetchone()
    assert row is not None
    schema, allowed, user, database, search_path = row
    if schema is None:
        raise StorageMisconfigured(
            "privilege",
            f"no schema to create cloudmeter's tables in: search_path ({search_path}) names none that exists in "
            f"database {sql.Identifier(database).as_string(conn)}; create one or fix search_path",
        )
    if not allowed:
        role, nsp = sql.Identifier(user).as_string(conn), sql.Identifier(schema).as_string(conn)
        raise StorageMisconfigured(
            "privilege",
            f"user {role} may not create tables in schema {nsp} of database "
            f"{sql.Identifier(database).as_string(conn)} (no CREATE privilege); as its owner or a superuser run "
            f"GRANT CREATE ON SCHEMA {nsp} TO {role}, or connect as the database owner",
        )


def timescaledb_refusal(server: ServerInfo) -> StorageMisconfigured:
    """Why a new schema cannot have hypertables on this server, and what to do instead."""
    if server.timescaledb_available is None:
        return StorageMisconfigured(
            "timescaledb",
            "TimescaleDB is not available on this server (pg_available_extensions has no timescaledb); install "
            "it, or run `cloudmeter db init --mode native` for native partitions",
        )
    setting = (server.shared_preload_libraries or "").strip()
    now = f"now {setting!r}" if setting else "now empty"
    if server.shared_preload_libraries is None:
        now = "this user may not read the setting, and the library is not loaded"
    return StorageMisconfigured(
        "timescaledb",
        f"TimescaleDB {server.timescaledb_available} is installed on this server but not in "
        f"shared_preload_libraries ({now}), so CREATE EXTENSION timescaledb would fail: add 'timescaledb' to "
        "shared_preload_libraries in postgresql.conf and restart PostgreSQL, then run `cloudmeter db init` again "
        "for hypertables; or run `cloudmeter db init --mode native` for native partitions (a database keeps the "
        "mode it is created in)",
    )


@contextmanager
def refusals_named(doing: str) -> Iterator[None]:
    """Turn the server's refusals of a schema or policy change (``doing``, e.g. "creating the schema") that
    only a change of setup can fix into StorageMisconfigured: disk full, missing privilege, read-only."""
    try:
        yield
    except psycopg.errors.DiskFull as exc:
        raise StorageMisconfigured(
            "disk-full",
            f"PostgreSQL ran out of disk space while {doing}: {_first_line(exc)} (SQLSTATE 53100); free space on "
            "the disk that holds the server's data (or the tablespace), then run the command again",
        ) from None
    except psycopg.errors.InsufficientPrivilege as exc:
        raise StorageMisconfigured(
            "privilege",
            f"PostgreSQL refused {doing}: {_first_line(exc)} (SQLSTATE 42501); connect as the database owner, "
            "or have the owner or a superuser grant the privilege",
        ) from None
    except psycopg.errors.ReadOnlySqlTransaction as exc:
        raise StorageMisconfigured(
            "read-only",
            f"PostgreSQL refused {doing}: {_first_line(exc)} (SQLSTATE 25006); point {DSN_SETTING} at a "
            "writable primary server",
        ) from None


def _first_line(exc: psycopg.Error) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
