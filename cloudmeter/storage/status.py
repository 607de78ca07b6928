"""What the database holds and how it is kept: schema, partition mode, per-table storage, policies, managers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg

from cloudmeter.storage import managers, preflight, schema
from cloudmeter.storage.partitions import check_timescaledb_policies
from cloudmeter.storage.server import ServerInfo


@dataclass(frozen=True)
class TableStatus:
    """One time-series table: its partitions (native) or chunks (TimescaleDB), size and upkeep."""

    table: str
    parts: int
    total_bytes: int
    compressed_parts: int | None
    bytes_before_compression: int | None
    bytes_after_compression: int | None
    compress_after: str | None
    drop_after: str | None

    @property
    def compression_ratio(self) -> float | None:
        """Size before compression / after, over the compressed chunks; None when nothing is compressed."""
        if not self.bytes_before_compression or not self.bytes_after_compression:
            return None
        return self.bytes_before_compression / self.bytes_after_compression


@dataclass(frozen=True)
class ManagerStatus:
    """One manager's progress: how far it is captured and rolled up, what waits, what failed last, what its
    source sent lately and what asking it cost.

    ``state`` is ``disabled``, ``failing`` (``failures`` > 0), ``stale`` (nothing from the source for
    ``stale_after_s`` of captured time), ``new`` (never captured) or ``ok``. ``next_attempt_at`` is when a
    failing manager is tried again: never a past time (None while its retry runs). ``quiet_s`` is the captured
    time since the newest sample (since the first captured time when none is stored). ``skipped`` are the ranges
    left out as gone at the source, ``holes`` those between captured ranges not captured yet. ``events_stored``
    counts its stored events (``events``), ``newest_event_at`` is the time of the newest (None: none stored).
    ``events_connected`` is whether its event catcher is connected (None: no catcher runs), since
    ``events_state_at``; ``events_error`` why it is not.
    """

    name: str
    kind: str
    enabled: bool
    state: str
    last_refresh_at: datetime | None
    last_capture_at: datetime | None
    captured_until: datetime | None
    lag_s: float | None
    newest_sample_at: datetime | None
    quiet_s: float | None
    cycle_samples: list[int]
    rolled_until: datetime | None
    dirty_hours: int
    failures: int
    next_attempt_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    skipped: list[tuple[datetime, datetime]]
    holes: list[tuple[datetime, datetime]]
    api_requests: int
    cloudwatch_metrics: int
    api_cost_usd: Decimal
    cycle_requests: int | None
    cycle_metrics: int | None
    cycle_cost_usd: Decimal | None
    events_stored: int
    newest_event_at: datetime | None
    events_connected: bool | None
    events_state_at: datetime | None
    events_error: str | None


def _native_table(conn: psycopg.Connection, table: schema.TimeSeriesTable) -> TableStatus:
    row = conn.execute(
        """SELECT count(*) FILTER (WHERE isleaf AND level > 0),
                  coalesce(sum(pg_total_relation_size(relid)), 0)
           FROM pg_partition_tree(%s::regclass)""",
        (table.name,),
    ).fetchone()
    assert row is not None
    return TableStatus(table.name, int(row[0]), int(row[1]), None, None, None, None, None)


def _hypertable(conn: psycopg.Connection, table: schema.TimeSeriesTable) -> TableStatus:
    row = conn.execute(
        """SELECT (SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = %(t)s::text),
                  (SELECT count(*) FROM timescaledb_information.chunks
                   WHERE hypertable_name = %(t)s::text AND is_compressed),
                  (SELECT coalesce(sum(total_bytes), 0) FROM hypertable_detailed_size(%(t)s::text::regclass)),
                  s.before_compression_total_bytes, s.after_compression_total_bytes,
                  (SELECT config->>'compress_after' FROM timescaledb_information.jobs
                   WHERE hypertable_name = %(t)s::text AND proc_name = 'policy_compression'),
                  (SELECT config->>'drop_after' FROM timescaledb_information.jobs
                   WHERE hypertable_name = %(t)s::text AND proc_name = 'policy_retention')
           FROM (SELECT) one LEFT JOIN hypertable_compression_stats(%(t)s::text::regclass) s ON true""",
        {"t": table.name},
    ).fetchone()
    assert row is not None
    chunks, compressed, total, before, after, compress_after, drop_after = row
    return TableStatus(table.name, int(chunks), int(total), int(compressed), before, after, compress_after, drop_after)


def table_status(conn: psycopg.Connection, mode: schema.Mode) -> list[TableStatus]:
    """Storage of every time-series table, in the schema's mode."""
    one = _hypertable if mode == "timescaledb" else _native_table
    return [one(conn, table) for table in schema.TIME_SERIES_TABLES]


def manager_status(conn: psycopg.Connection, stale_after_s: float | None = None) -> list[ManagerStatus]:
    """Every stored manager's progress, by name; with ``stale_after_s``, a manager whose source has sent nothing
    for more than that much captured time is ``stale``."""
    rows = conn.execute(
        """SELECT m.id, m.name, m.kind, m.enabled, m.last_refresh_at, m.last_capture_at, m.captured_until,
                  extract(epoch FROM now() - m.captured_until)::float8, m.cycle_samples, m.rolled_until,
                  (SELECT count(*) FROM rollup_dirty d WHERE d.manager_id = m.id), m.failures,
                  CASE WHEN m.next_attempt_at > now() THEN m.next_attempt_at END, m.last_error, m.last_error_at,
                  m.api_requests, m.cloudwatch_metrics, m.api_cost_usd, m.cycle_requests, m.cycle_metrics,
                  m.cycle_cost_usd, e.stored, e.newest, m.events_connected, m.events_state_at, m.events_error
           FROM managers m, LATERAL (SELECT count(*) AS stored, max(ts) AS newest FROM events WHERE manager_id = m.id) e
           ORDER BY m.name"""
    ).fetchall()
    found = []
    for manager_id, name, kind, enabled, refreshed, captured, until, lag, cycles, *rest in rows:
        rolled, dirty, failures, next_attempt, error, error_at, requests, metrics, cost, *more = rest
        cycle, (stored, newest), catcher = more[:3], more[3:5], more[5:]
        recent = managers.recency(conn, manager_id)
        stale = stale_after_s is not None and recent.quiet_s is not None and recent.quiet_s > stale_after_s
        state = "ok" if until is not None else "new"
        state = "disabled" if not enabled else "failing" if failures else "stale" if stale else state
        found.append(
            ManagerStatus(
                name=name,
                kind=kind,
                enabled=enabled,
                state=state,
                last_refresh_at=refreshed,
                last_capture_at=captured,
                captured_until=until,
                lag_s=lag,
                newest_sample_at=recent.newest_sample_at,
                quiet_s=recent.quiet_s,
                cycle_samples=list(cycles),
                rolled_until=rolled,
                dirty_hours=dirty,
                failures=failures,
                next_attempt_at=next_attempt,
                last_error=error,
                last_error_at=error_at,
                skipped=managers.skipped_ranges(conn, manager_id),
                holes=managers.capture_holes(conn, manager_id),
                api_requests=requests,
                cloudwatch_metrics=metrics,
                api_cost_usd=cost,
                cycle_requests=cycle[0],
                cycle_metrics=cycle[1],
                cycle_cost_usd=cycle[2],
                events_stored=stored,
                newest_event_at=newest,
                events_connected=catcher[0],
                events_state_at=catcher[1],
                events_error=catcher[2],
            )
        )
    return found


def database_status(
    conn: psycopg.Connection, server: ServerInfo, where: str, retention_days: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """Where the data is, the server, the schema and its partition mode, and each table's storage (JSON-ready).

    Given ``retention_days`` (the ``[retention]`` settings), a TimescaleDB-mode database's compression and
    retention policies are checked against them: ``policies`` lists each, and a note names those missing,
    differing or paused, and the command that fixes them.
    """
    version = schema.applied_version(conn)
    mode = schema.stored_mode(conn)
    tables = table_status(conn, mode) if mode is not None else []
    notes = []
    if mode == "native" and (server.timescaledb_installed or server.timescaledb_available):
        notes.append(
            "TimescaleDB is on this server but this database was created with native partitions; it keeps them "
            "(a new database would get hypertables; existing rows are not converted)"
        )
    if mode is None and server.timescaledb_available and not server.timescaledb_usable:
        notes.append(preflight.timescaledb_refusal(server).args[0])
    policies = check_timescaledb_policies(conn, retention_days) if mode == "timescaledb" and retention_days else []
    wrong = [p.describe() for p in policies if p.state != "ok"]
    if wrong:
        notes.append(
            f"TimescaleDB policies differ from the configuration: {'; '.join(wrong)}; run `cloudmeter db migrate` "
            "to install them (the daemon's maintenance also does)"
        )
    return {
        "database": where,
        "server_version": server.version,
        "timescaledb": server.timescaledb,
        "schema_version": version,
        "latest_version": schema.LATEST,
        "mode": mode,
        "tables": [{**asdict(t), "compression_ratio": t.compression_ratio} for t in tables],
        "policies": [asdict(p) for p in policies],
        "notes": notes,
    }
