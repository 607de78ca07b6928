"""Partition upkeep: native range partitions created ahead and dropped for retention; TimescaleDB policies.

Native partitions are named ``<table>_p<YYYYMMDD|YYYYMM|YYYY>`` and bounded in UTC. A partition is dropped
only when its whole range is older than the retention cut-off, so no row younger than retention is lost.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from cloudmeter.model import from_epoch_s
from cloudmeter.storage import packs
from cloudmeter.storage.schema import HOURLY, TIME_SERIES_TABLES, Mode, TimeSeriesTable


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


PolicyKind = Literal["retention", "compression"]
PolicyState = Literal["ok", "missing", "differs", "paused", "unwanted"]


@dataclass(frozen=True)
class PolicyCheck:
    """One TimescaleDB policy of a hypertable: what the configuration wants, what the server has.

    ``configured`` and ``installed`` are intervals as TimescaleDB words them (``"14 days"``), None for none.
    ``state``: ``ok``; ``missing`` (wanted, no job); ``differs`` (another interval); ``paused`` (the job
    exists but is not scheduled); ``unwanted`` (a job cloudmeter does not configure, e.g. compressing
    ``metric_daily``).
    """

    table: str
    policy: PolicyKind
    configured: str | None
    installed: str | None
    state: PolicyState

    def describe(self) -> str:
        """The policy in words, e.g. ``no retention policy on metric_samples (configured: 14 days)``."""
        name = f"{self.policy} policy on {self.table}"
        if self.state == "missing":
            return f"no {name} (configured: {self.configured})"
        if self.state == "differs":
            return f"the {name} is {self.installed} (configured: {self.configured})"
        if self.state == "paused":
            return f"the {name} ({self.installed}) is paused"
        if self.state == "unwanted":
            return f"a {name} ({self.installed}) that cloudmeter does not configure"
        return f"the {name} is {self.installed}"


def wanted_policies(retention_days: Mapping[str, int]) -> list[tuple[str, PolicyKind, str | None]]:
    """(table, policy, interval or None) for every hypertable: retention from ``retention_days`` (the
    ``[retention]`` settings), compression from the schema (``TimeSeriesTable.compress_after``)."""
    wanted: list[tuple[str, PolicyKind, str | None]] = []
    for table in TIME_SERIES_TABLES:
        wanted.append((table.name, "retention", f"{int(retention_days[table.retention_field])} days"))
        wanted.append((table.name, "compression", table.compress_after))
    return wanted


def check_timescaledb_policies(conn: psycopg.Connection, retention_days: Mapping[str, int]) -> list[PolicyCheck]:
    """Every hypertable's retention and compression policy against the configuration (TimescaleDB mode).

    Intervals are compared as intervals (``336:00:00`` equals ``14 days``). A table with no compression
    policy wanted and none installed is left out.
    """
    wanted = wanted_policies(retention_days)
    rows = conn.execute(
        sql.SQL(
            """SELECT w.t, w.kind, w.want, j.have, j.scheduled, j.have::interval = w.want::interval
               FROM (VALUES {}) AS w(t, kind, want)
               LEFT JOIN (SELECT hypertable_name::text AS t,
                                 CASE proc_name WHEN 'policy_retention' THEN 'retention' ELSE 'compression' END AS kind,
                                 coalesce(config->>'drop_after', config->>'compress_after') AS have, scheduled
                          FROM timescaledb_information.jobs
                          WHERE proc_name IN ('policy_retention', 'policy_compression')
                            AND hypertable_schema = current_schema()) j USING (t, kind)"""
        ).format(sql.SQL(", ").join(sql.SQL("(%s::text, %s::text, %s::text)") for _ in wanted)),
        [value for row in wanted for value in row],
    ).fetchall()
    checks = []
    for table, kind, want, have, scheduled, same in rows:
        if want is None and have is None:
            continue
        checks.append(PolicyCheck(table, kind, want, have, _state(want, have, bool(scheduled), bool(same))))
    return checks


def _state(want: str | None, have: str | None, scheduled: bool, same: bool) -> PolicyState:
    if have is None:
        return "missing"
    if want is None:
        return "unwanted"
    if not same:
        return "differs"
    return "ok" if scheduled else "paused"


def apply_timescaledb_policies(conn: psycopg.Connection, retention_days: Mapping[str, int]) -> list[str]:
    """Make every hypertable's retention and compression policy what the configuration says; return the
    changes in words (none when all matched already).

    A policy that matches is left alone (its job keeps its id, schedule and history); one that is missing,
    differs or is paused is (re)created; one cloudmeter does not configure is removed. Idempotent.
    """
    changes = []
    for check in check_timescaledb_policies(conn, retention_days):
        if check.state == "ok":
            continue
        conn.execute(f"SELECT remove_{check.policy}_policy(%s, if_exists => true)", (check.table,))
        if check.configured is not None:
            argument = "drop_after" if check.policy == "retention" else "compress_after"
            conn.execute(
                f"SELECT add_{check.policy}_policy(%s, {argument} => %s::interval)", (check.table, check.configured)
            )
        changes.append(_change(check))
    return changes


def _change(check: PolicyCheck) -> str:
    name = f"{check.policy} policy on {check.table}"
    if check.state == "missing":
        return f"added the {name} ({check.configured})"
    if check.state == "unwanted":
        return f"removed the {name} ({check.installed}; none configured)"
    if check.state == "paused":
        return f"re-created the paused {name} ({check.configured})"
    return f"changed the {name} from {check.installed} to {check.configured}"


def maintain(
    conn: psycopg.Connection,
    mode: Mode,
    retention_days: Mapping[str, int],
    now: datetime,
    manager: PartitionManager | None,
    ahead: timedelta = timedelta(days=7),
) -> list[str]:
    """Create partitions ahead of ``now`` and drop those past retention (native), or refresh policies; then drop
    the hourly packs whose hours are gone."""
    hourly_cutoff = now - timedelta(days=retention_days[HOURLY.retention_field])
    if mode == "timescaledb":
        apply_timescaledb_policies(conn, retention_days)
        packs.prune(conn, hourly_cutoff)
        return []
    manager = manager or PartitionManager()
    dropped = []
    for table in TIME_SERIES_TABLES:
        manager.ensure(conn, table, now, now + ahead)
        cutoff = now - timedelta(days=retention_days[table.retention_field])
        dropped += drop_expired_partitions(conn, table, cutoff, manager)
    packs.prune(conn, hourly_cutoff)
    return dropped
