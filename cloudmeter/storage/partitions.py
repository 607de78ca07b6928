"""Partition upkeep: native range partitions created ahead and dropped for retention; TimescaleDB policies.

Native partitions are named ``<table>_p<YYYYMMDD|YYYYMM|YYYY>`` and bounded in UTC. A partition is dropped
only when its whole range is older than the retention cut-off, so no row younger than retention is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from cloudmeter.model import from_epoch_s
from cloudmeter.storage.schema import TIME_SERIES_TABLES, Mode, TimeSeriesTable


def _floor(moment: datetime, span: str) -> datetime:
    moment = moment.astimezone(UTC)
    if span == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if span == "month":
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)


def _next(moment: datetime, span: str) -> datetime:
    if span == "day":
        return moment + timedelta(days=1)
    if span == "month":
        return moment.replace(year=moment.year + moment.month // 12, month=moment.month % 12 + 1)
    return moment.replace(year=moment.year + 1)


def _suffix(moment: datetime, span: str) -> str:
    return moment.strftime({"day": "%Y%m%d", "month": "%Y%m", "year": "%Y"}[span])


def partition_ranges(
    table: TimeSeriesTable, start: datetime, end: datetime
) -> Iterator[tuple[str, datetime, datetime]]:
    """(name, lower, upper) of every partition of ``table`` that overlaps ``[start, end]``."""
    lower = _floor(start, table.partition)
    while lower <= end:
        upper = _next(lower, table.partition)
        yield f"{table.name}_p{_suffix(lower, table.partition)}", lower, upper
        lower = upper


class PartitionManager:
    """Creates native partitions on demand, remembering which exist so a hot path pays nothing."""

    def __init__(self) -> None:
        self._known: set[str] = set()

    def ensure(self, conn: psycopg.Connection, table: TimeSeriesTable, start: datetime, end: datetime) -> None:
        """Make sure every partition of ``table`` covering ``[start, end]`` exists."""
        for name, lower, upper in partition_ranges(table, start, end):
            if name in self._known:
                continue
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(name), sql.Identifier(table.name), sql.Literal(lower), sql.Literal(upper)
                )
            )
            self._known.add(name)

    def ensure_span(self, conn: psycopg.Connection, table: TimeSeriesTable, ts_s: npt.NDArray[np.int64]) -> None:
        """In its own transaction, make sure partitions exist for every epoch second in ``ts_s`` (non-empty)."""
        with conn.transaction():
            self.ensure(conn, table, from_epoch_s(int(ts_s.min())), from_epoch_s(int(ts_s.max())))

    def forget(self, names: list[str]) -> None:
        """Drop ``names`` from the cache (after they were dropped from the database)."""
        self._known.difference_update(names)


def native_partitions(conn: psycopg.Connection, table: TimeSeriesTable) -> list[tuple[str, datetime, datetime]]:
    """(name, lower, upper) of the partitions ``table`` has, oldest first."""
    rows = conn.execute(
        """SELECT c.relname,
                  (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz,
                  (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = %s::regclass ORDER BY 2""",
        (table.name,),
    ).fetchall()
    return [(str(name), lower, upper) for name, lower, upper in rows]


def drop_expired_partitions(
    conn: psycopg.Connection,
    table: TimeSeriesTable,
    cutoff: datetime,
    manager: PartitionManager | None = None,
) -> list[str]:
    """Drop the native partitions of ``table`` that lie wholly before ``cutoff``; return their names."""
    dropped = [name for name, _, upper in native_partitions(conn, table) if upper <= cutoff]
    for name in dropped:
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
    if manager is not None:
        manager.forget(dropped)
    return dropped


def apply_timescaledb_policies(conn: psycopg.Connection, retention_days: dict[str, int]) -> None:
    """(Re)install retention policies for every hypertable and compression policies where the table has one.

    Idempotent: a policy is replaced, never duplicated.
    """
    for table in TIME_SERIES_TABLES:
        days = retention_days[table.retention_field]
        conn.execute("SELECT remove_retention_policy(%s, if_exists => true)", (table.name,))
        conn.execute("SELECT add_retention_policy(%s, drop_after => make_interval(days => %s))", (table.name, days))
        conn.execute("SELECT remove_compression_policy(%s, if_exists => true)", (table.name,))
        if table.compress_after is None:
            continue
        conn.execute(
            "SELECT add_compression_policy(%s, compress_after => %s::interval)",
            (table.name, table.compress_after),
        )


def maintain(
    conn: psycopg.Connection,
    mode: Mode,
    retention_days: dict[str, int],
    now: datetime,
    manager: PartitionManager | None,
    ahead: timedelta = timedelta(days=7),
) -> list[str]:
    """Create partitions ahead of ``now`` and drop those past retention (native), or refresh policies."""
    if mode == "timescaledb":
        apply_timescaledb_policies(conn, retention_days)
        return []
    manager = manager or PartitionManager()
    dropped = []
    for table in TIME_SERIES_TABLES:
        manager.ensure(conn, table, now, now + ahead)
        cutoff = now - timedelta(days=retention_days[table.retention_field])
        dropped += drop_expired_partitions(conn, table, cutoff, manager)
    return dropped
