"""The database handle: embedded or external PostgreSQL, a psycopg pool, and the schema's partition mode."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg
from psycopg_pool import ConnectionPool

from cloudmeter.errors import ConfigError, StorageUnavailable
from cloudmeter.redact import mask_logs
from cloudmeter.storage import preflight, schema
from cloudmeter.storage.dsn import dsn_problem, mask_dsn, scrub
from cloudmeter.storage.embedded import EmbeddedPostgres
from cloudmeter.storage.partitions import PartitionManager, apply_timescaledb_policies
from cloudmeter.storage.server import ServerInfo, probe
from cloudmeter.storage.writer import WriteMethod, WriteTarget

CONNECT_TIMEOUT_S = 10


mask_logs("psycopg", "psycopg.pool")  # they log libpq's messages, which may quote the DSN


class Database:
    """Opened with ``with Database(dsn, data_dir) as db:``; no DSN means the embedded server."""

    def __init__(self, dsn: str | None, data_dir: Path, pool_size: int = 4, write_method: WriteMethod = "copy") -> None:
        self._dsn = dsn
        self._embedded = EmbeddedPostgres(data_dir) if dsn is None else None
        self._pool_size = pool_size
        self._write_method: WriteMethod = write_method
        self._pool: ConnectionPool | None = None
        self._partitions = PartitionManager()
        self._mode: schema.Mode | None = None
        self._server: ServerInfo | None = None
        self._conninfo = ""

    @property
    def embedded(self) -> bool:
        """Whether this is the embedded server."""
        return self._embedded is not None

    @property
    def display_dsn(self) -> str:
        """Where the data lives, safe to print."""
        if self._embedded is not None:
            return f"embedded PostgreSQL in {self._embedded.pgdata}"
        return mask_dsn(self._dsn or "")

    @property
    def server(self) -> ServerInfo:
        """What the server is and offers (version, TimescaleDB), as found when the database was opened."""
        if self._server is None:
            raise StorageUnavailable("the database is not open; use `with Database(...) as db:`")
        return self._server

    def open(self) -> Self:
        """Start the embedded server if needed, check the connection and the server, open the pool."""
        conninfo = self._embedded.start() if self._embedded is not None else self._dsn or ""
        self._check(conninfo)
        self._conninfo = conninfo
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=self._pool_size,
            kwargs={"connect_timeout": CONNECT_TIMEOUT_S},
            open=True,
            name="cloudmeter",
        )
        return self

    def _check(self, conninfo: str) -> None:
        problem = dsn_problem(conninfo)  # libpq's own parse errors may quote the password: never shown
        if problem:
            raise ConfigError(f"CLOUDMETER_DSN is not a valid PostgreSQL connection string: {problem}")
        try:
            with psycopg.connect(conninfo, connect_timeout=CONNECT_TIMEOUT_S) as conn:
                self._server = probe(conn)
                preflight.check_version(self._server, self.display_dsn)
                self._mode = schema.stored_mode(conn)
        except psycopg.OperationalError as exc:
            reason = _reason(exc, conninfo)
            raise preflight.login_refusal(reason, self.display_dsn) or StorageUnavailable(
                f"cannot connect to PostgreSQL ({self.display_dsn}): {reason}. Check CLOUDMETER_DSN, "
                "or unset it to use the embedded server"
            ) from None

    def close(self) -> None:
        """Close the pool and let go of the embedded server."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._embedded is not None:
            self._embedded.stop()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection; its transaction commits on success and rolls back on error."""
        if self._pool is None:
            raise StorageUnavailable("the database is not open; use `with Database(...) as db:`")
        with self._pool.connection() as conn:
            yield conn

    def dedicated_connection(self) -> psycopg.Connection:
        """A new autocommit connection outside the pool, for session state such as advisory locks."""
        if not self._conninfo:
            raise StorageUnavailable("the database is not open; use `with Database(...) as db:`")
        try:
            return psycopg.connect(self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.OperationalError as exc:  # same type, for callers that retry; libpq's text scrubbed
            raise psycopg.OperationalError(_reason(exc, self._conninfo)) from None

    def migrate(self, mode: schema.Mode | None = None) -> list[int]:
        """Create or upgrade the schema (idempotent); return the migrations applied."""
        with self.connection() as conn:
            applied = schema.migrate(conn, mode)
            self._mode = schema.stored_mode(conn)
        return applied

    def keep_policies(self, retention_days: Mapping[str, int]) -> list[str]:
        """In TimescaleDB mode, make the compression and retention policies what ``retention_days`` (the
        ``[retention]`` settings) and the schema say; return what was changed, in words (none in native mode,
        where the daemon drops partitions instead)."""
        if self.mode() != "timescaledb":
            return []
        with preflight.refusals_named("installing TimescaleDB policies"), self.connection() as conn:
            return apply_timescaledb_policies(conn, retention_days)

    def mode(self) -> schema.Mode | None:
        """The schema's partition mode, None before ``db init`` (known from opening or migrating, once set)."""
        if self._mode is None:
            with self.connection() as conn:
                self._mode = schema.stored_mode(conn)
        return self._mode

    def native_partitions(self) -> PartitionManager | None:
        """The partition manager writers must use, or None in TimescaleDB mode (chunks are automatic)."""
        return self._partitions if self.mode() == "native" else None

    def write_target(self) -> WriteTarget:
        """How the writer reaches this database (``storage.writer``)."""
        return WriteTarget(self._write_method, self.native_partitions())

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _reason(exc: psycopg.Error, conninfo: str) -> str:
    """The first line of libpq's message, with the password and anything DSN-shaped masked."""
    text = str(exc).strip()
    return scrub(text.splitlines()[0] if text else type(exc).__name__, conninfo)
