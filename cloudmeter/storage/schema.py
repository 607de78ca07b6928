"""The schema: the data-contract tables, in numbered migrations, for both partition modes.

Mode ``timescaledb`` (the extension is available) makes the time-series tables hypertables with
compression; mode ``native`` makes them PostgreSQL range-partitioned tables whose partitions the service
creates ahead and drops for retention (``storage.partitions``). Same tables, same columns, same queries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

import psycopg

from cloudmeter.errors import SchemaError
from cloudmeter.model import KINDS, METRICS
from cloudmeter.storage import pgbinary, preflight
from cloudmeter.storage.server import ServerInfo, probe

Mode = Literal["timescaledb", "native"]

#: Per-metric statistics of a rollup row, in column order.
STATS: Final[tuple[str, ...]] = ("avg", "min", "max", "p95", "max_ts")

#: Rollup columns after (ts, [tz,] resource_id), in order.
ROLLUP_VALUE_COLUMNS: Final[tuple[str, ...]] = (
    *(f"{metric}_{stat}" for metric in METRICS for stat in STATS),
    "sample_count",
    "expected_count",
    "vcpus",
    "memory_bytes",
    "child_count",
    "children_with_data",
)

_INT4_COLUMNS: Final = frozenset({"sample_count", "expected_count", "vcpus", "child_count", "children_with_data"})


def _rollup_kind(column: str) -> int:
    if column.endswith("_max_ts"):
        return pgbinary.TIMESTAMPTZ
    if column == "memory_bytes":
        return pgbinary.INT8
    return pgbinary.INT4 if column in _INT4_COLUMNS else pgbinary.FLOAT8


#: Binary kinds of a rollup row's columns (without ``tz``), in table order.
ROLLUP_KINDS: Final[tuple[tuple[str, int], ...]] = (
    ("ts", pgbinary.TIMESTAMPTZ),
    ("resource_id", pgbinary.INT4),
    *((column, _rollup_kind(column)) for column in ROLLUP_VALUE_COLUMNS),
)


@dataclass(frozen=True)
class TimeSeriesTable:
    """A time-partitioned table: native partition span, TimescaleDB chunk and compression age, retention.

    ``compress_after`` None: no compression policy (measured by benchmarks/timescaledb.py: a daily chunk
    holds about 30 rows per resource, too few for columnar compression to win; it grew the table 1.5-1.7x).
    """

    name: str
    partition: Literal["day", "month", "year"]
    chunk_interval: str
    compress_after: str | None
    retention_field: str


SAMPLES = TimeSeriesTable("metric_samples", "day", "1 day", "3 days", "raw_days")
HOURLY = TimeSeriesTable("metric_hourly", "month", "7 days", "21 days", "hourly_days")
DAILY = TimeSeriesTable("metric_daily", "year", "30 days", None, "daily_days")
TIME_SERIES_TABLES: Final = (SAMPLES, HOURLY, DAILY)


def _rollup_columns() -> str:
    types = {"max_ts": "timestamptz"}
    metric_cols = [f"{metric}_{stat} {types.get(stat, 'double precision')}" for metric in METRICS for stat in STATS]
    return ",\n    ".join(
        [
            *metric_cols,
            "sample_count integer NOT NULL",
            "expected_count integer NOT NULL",
            "vcpus integer",
            "memory_bytes bigint",
            "child_count integer",
            "children_with_data integer",
        ]
    )


def _partitioned(mode: Mode) -> str:
    return " PARTITION BY RANGE (ts)" if mode == "native" else ""


def _hypertable(mode: Mode, table: TimeSeriesTable) -> str:
    if mode == "native":
        return ""
    return f"""
SELECT create_hypertable('{table.name}', by_range('ts', INTERVAL '{table.chunk_interval}'), if_not_exists => true);
ALTER TABLE {table.name} SET (timescaledb.compress, timescaledb.compress_segmentby = 'resource_id',
    timescaledb.compress_orderby = 'ts');
"""


def _kind_list(kinds: tuple[str, ...]) -> str:
    return ", ".join(f"'{k}'" for k in kinds)


def _m001_core(mode: Mode) -> str:
    kinds = _kind_list(("vm", "host", "cluster", "provider", "region"))
    samples = ",\n    ".join(f"{metric} double precision" for metric in METRICS)
    rollup = _rollup_columns()
    return f"""
CREATE TABLE cloudmeter_meta (
    key text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO cloudmeter_meta VALUES ('mode', '{mode}');

CREATE TABLE managers (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    kind text NOT NULL,
    config jsonb NOT NULL DEFAULT '{{}}',
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_refresh_at timestamptz,
    last_capture_at timestamptz,
    captured_until timestamptz,
    sample_interval_s integer,
    last_error text,
    last_error_at timestamptz
);

CREATE TABLE resources (
    id serial PRIMARY KEY,
    manager_id integer NOT NULL REFERENCES managers(id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ({kinds})),
    ems_ref text NOT NULL,
    name text NOT NULL,
    parent_id integer REFERENCES resources(id) ON DELETE SET NULL,
    vcpus integer,
    memory_bytes bigint,
    disk_bytes bigint,
    project text,
    tags jsonb NOT NULL DEFAULT '{{}}',
    first_seen timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    retired_at timestamptz,
    UNIQUE (manager_id, kind, ems_ref)
);
CREATE INDEX resources_parent ON resources (parent_id);

CREATE TABLE resource_history (
    resource_id integer NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    valid_from timestamptz NOT NULL,
    valid_to timestamptz CHECK (valid_to > valid_from),
    parent_id integer REFERENCES resources(id) ON DELETE SET NULL,
    vcpus integer,
    memory_bytes bigint,
    project text,
    PRIMARY KEY (resource_id, valid_from)
);
CREATE INDEX resource_history_parent ON resource_history (parent_id, valid_from);

CREATE TABLE metric_samples (
    ts timestamptz NOT NULL,
    resource_id integer NOT NULL,
    {samples},
    PRIMARY KEY (resource_id, ts)
){_partitioned(mode)};
{_hypertable(mode, SAMPLES)}
CREATE TABLE metric_hourly (
    ts timestamptz NOT NULL,
    resource_id integer NOT NULL,
    {rollup},
    PRIMARY KEY (resource_id, ts)
){_partitioned(mode)};
{_hypertable(mode, HOURLY)}
CREATE TABLE metric_daily (
    ts timestamptz NOT NULL,
    tz text NOT NULL,
    resource_id integer NOT NULL,
    {rollup},
    PRIMARY KEY (resource_id, tz, ts)
){_partitioned(mode)};
{_hypertable(mode, DAILY)}
"""


def _m002_rollup_state(mode: Mode) -> str:
    del mode  # the same in both modes
    kinds = _kind_list(("vm", "host", "cluster", "provider", "region", "project"))  # as of this step
    return f"""
ALTER TABLE resources DROP CONSTRAINT resources_kind_check;
ALTER TABLE resources ADD CONSTRAINT resources_kind_check CHECK (kind IN ({kinds}));
ALTER TABLE managers ADD COLUMN rolled_until timestamptz;
CREATE TABLE rollup_dirty (
    manager_id integer NOT NULL REFERENCES managers(id) ON DELETE CASCADE,
    ts timestamptz NOT NULL,
    PRIMARY KEY (manager_id, ts)
);
"""


def _m003_daemon_state(mode: Mode) -> str:
    del mode  # the same in both modes
    return """
ALTER TABLE managers ADD COLUMN source text NOT NULL DEFAULT 'config' CHECK (source IN ('config', 'cli'));
ALTER TABLE managers ADD COLUMN failures integer NOT NULL DEFAULT 0;
ALTER TABLE managers ADD COLUMN next_attempt_at timestamptz;
"""


def _m004_capture_ranges(mode: Mode) -> str:
    del mode  # the same in both modes
    return """
ALTER TABLE managers ADD COLUMN captured tstzmultirange NOT NULL DEFAULT '{}';
ALTER TABLE managers ADD COLUMN skipped tstzmultirange NOT NULL DEFAULT '{}';
UPDATE managers SET captured = tstzmultirange(tstzrange(NULL, captured_until)) WHERE captured_until IS NOT NULL;
"""


def _m005_capture_outcomes(mode: Mode) -> str:
    del mode  # the same in both modes
    return """
ALTER TABLE managers ADD COLUMN cycle_samples integer[] NOT NULL DEFAULT '{}';
ALTER TABLE managers ADD COLUMN api_requests bigint NOT NULL DEFAULT 0;
ALTER TABLE managers ADD COLUMN cloudwatch_metrics bigint NOT NULL DEFAULT 0;
ALTER TABLE managers ADD COLUMN api_cost_usd numeric NOT NULL DEFAULT 0;
ALTER TABLE managers ADD COLUMN cycle_requests integer;
ALTER TABLE managers ADD COLUMN cycle_metrics integer;
ALTER TABLE managers ADD COLUMN cycle_cost_usd numeric;
"""


def _m006_resource_intervals(mode: Mode) -> str:
    del mode  # the same in both modes
    # Samples stored before: on the manager's interval, as the rollups took them, from the hour of the first.
    return """
CREATE TABLE resource_intervals (
    resource_id integer NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    valid_from timestamptz NOT NULL,
    valid_to timestamptz NOT NULL CHECK (valid_to > valid_from),
    interval_s integer NOT NULL CHECK (interval_s > 0 AND 3600 % interval_s = 0),
    PRIMARY KEY (resource_id, valid_from)
);
INSERT INTO resource_intervals (resource_id, valid_from, valid_to, interval_s)
SELECT r.id, date_bin('1 hour', s.first, timestamptz 'epoch'),
       date_bin('1 hour', s.last, timestamptz 'epoch') + interval '1 hour', m.sample_interval_s
FROM resources r
JOIN managers m ON m.id = r.manager_id
CROSS JOIN LATERAL (SELECT (SELECT min(ts) FROM metric_samples WHERE resource_id = r.id) AS first,
                           (SELECT max(ts) FROM metric_samples WHERE resource_id = r.id) AS last) s
WHERE m.sample_interval_s > 0 AND 3600 % m.sample_interval_s = 0 AND s.first IS NOT NULL;
"""


def _m007_api_tokens(mode: Mode) -> str:
    del mode  # the same in both modes
    # Only the token's SHA-256 is stored: a random 256-bit token needs no slow hash (nothing to guess).
    return """
CREATE TABLE api_tokens (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    role text NOT NULL CHECK (role IN ('viewer', 'admin')),
    token_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);
"""


#: The hourly columns packed per resource and UTC day (``storage.packs``), ``sample_count`` first.
PACKED: Final[tuple[str, ...]] = (
    "sample_count",
    "cpu_used_cores_avg",
    "cpu_used_cores_max",
    "mem_used_bytes_avg",
    "mem_used_bytes_max",
    "disk_read_bps_avg",
    "disk_write_bps_avg",
    "net_rx_bps_avg",
    "net_tx_bps_avg",
)


def pack_statement(pairs: str) -> str:
    """INSERT (or replace) the packs of the (rid, day) pairs that the query ``pairs`` yields: per column the 24
    hours of the UTC day in order, big-endian (``sample_count`` int4, -1 for no row; float8, NaN for NULL)."""
    aggs = ["string_agg(int4send(coalesce(h.sample_count, -1)), ''::bytea ORDER BY k.k)"] + [
        f"string_agg(float8send(coalesce(h.{column}, 'NaN')), ''::bytea ORDER BY k.k)" for column in PACKED[1:]
    ]
    return (
        f"INSERT INTO metric_hourly_packs (resource_id, day, {', '.join(PACKED)})\n"
        f"SELECT p.rid, p.day, {', '.join(aggs)}\n"
        "FROM (" + pairs + ") AS p CROSS JOIN generate_series(0, 23) AS k(k)\n"
        "LEFT JOIN metric_hourly h ON h.resource_id = p.rid AND h.ts = p.day + k.k * interval '1 hour'\n"
        "GROUP BY p.rid, p.day\n"
        "ON CONFLICT (resource_id, day) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in PACKED)
    )


def _m008_hourly_packs(mode: Mode) -> str:
    del mode  # the same in both modes (a plain table: a row per resource and day)
    columns = "".join(f"    {column} bytea NOT NULL,\n" for column in PACKED)
    backfill = pack_statement(
        "SELECT DISTINCT resource_id AS rid, date_trunc('day', ts, 'UTC') AS day FROM metric_hourly"
    )
    return f"""
CREATE TABLE metric_hourly_packs (
    resource_id integer NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    day timestamptz NOT NULL,
{columns}    PRIMARY KEY (resource_id, day)
);
{backfill};
"""


#: ``resource_history`` and ``resources`` columns of ``model.Requests`` (NULL = not set), with their types.
REQUEST_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("cpu_request_cores", "double precision"),
    ("cpu_limit_cores", "double precision"),
    ("memory_request_bytes", "bigint"),
    ("memory_limit_bytes", "bigint"),
)


def _m009_kubernetes(mode: Mode) -> str:
    del mode  # the same in both modes
    columns = ", ".join(f"ADD COLUMN {name} {kind}" for name, kind in REQUEST_COLUMNS)
    return f"""
ALTER TABLE resources DROP CONSTRAINT resources_kind_check;
ALTER TABLE resources ADD CONSTRAINT resources_kind_check CHECK (kind IN ({_kind_list(KINDS)}));
ALTER TABLE resources {columns};
ALTER TABLE resource_history {columns};
"""


def _m010_events(mode: Mode) -> str:
    del mode  # the same in both modes (a plain table: retention deletes rows, ``events.expire_events``)
    kinds = _kind_list(("created", "deleted", "migrated", "resized", "powered_on", "powered_off", "other"))  # frozen
    return f"""
CREATE TABLE events (
    id bigserial PRIMARY KEY,
    manager_id integer NOT NULL REFERENCES managers(id) ON DELETE CASCADE,
    ts timestamptz NOT NULL,
    kind text NOT NULL CHECK (kind IN ({kinds})),
    resource_id integer REFERENCES resources(id) ON DELETE SET NULL,
    ems_ref text,
    source_type text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{{}}',
    received_at timestamptz NOT NULL DEFAULT now(),
    message_id text NOT NULL,
    host_ems_ref text,
    vcpus integer,
    memory_bytes bigint,
    UNIQUE (manager_id, message_id)
);
CREATE INDEX events_manager_ts ON events (manager_id, ts);
CREATE INDEX events_resource_ts ON events (resource_id, ts);
ALTER TABLE managers ADD COLUMN events_connected boolean, ADD COLUMN events_state_at timestamptz,
    ADD COLUMN events_error text;
"""


@dataclass(frozen=True)
class Migration:
    """One numbered, forward-only schema step."""

    version: int
    description: str
    sql: Callable[[Mode], str]


MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(1, "data-contract tables: managers, resources, history, samples, hourly, daily", _m001_core),
    Migration(2, "project resources; rollup progress (managers.rolled_until) and dirty hours", _m002_rollup_state),
    Migration(3, "managers added from the CLI (managers.source); failures and back-off", _m003_daemon_state),
    Migration(
        4, "the time ranges captured (managers.captured) and skipped as gone at the source", _m004_capture_ranges
    ),
    Migration(
        5, "samples per capture cycle; API requests, CloudWatch metrics and US$ per manager", _m005_capture_outcomes
    ),
    Migration(6, "each resource's sampling interval by hour (resource_intervals)", _m006_resource_intervals),
    Migration(7, "bearer tokens of the HTTP API, stored as SHA-256 (api_tokens)", _m007_api_tokens),
    Migration(
        8, "each resource's hourly rows packed per UTC day, for reports (metric_hourly_packs)", _m008_hourly_packs
    ),
    Migration(9, "Kubernetes: kinds pod and container; CPU and memory requests and limits", _m009_kubernetes),
    Migration(10, "events per manager: what changed and when (events), and its catcher's state", _m010_events),
)
LATEST: Final = MIGRATIONS[-1].version


def applied_version(conn: psycopg.Connection) -> int:
    """The highest applied migration, 0 on an empty database."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


def stored_mode(conn: psycopg.Connection) -> Mode | None:
    """The partition mode the schema was created in, or None before ``db init``."""
    if applied_version(conn) == 0:
        return None
    row = conn.execute("SELECT value FROM cloudmeter_meta WHERE key = 'mode'").fetchone()
    return "timescaledb" if row and row[0] == "timescaledb" else "native"


def migrate(conn: psycopg.Connection, mode: Mode | None = None) -> list[int]:
    """Apply the pending migrations in one transaction; return the versions applied (none = no-op).

    ``mode`` defaults to ``timescaledb`` when the extension can be used (created in this database already, or
    offered and in ``shared_preload_libraries``), else ``native``; a database keeps the mode it was created in.
    A server that offers TimescaleDB without preloading it is refused rather than given native partitions that
    the database would keep for good (``preflight.timescaledb_refusal``: preload it, or ask for ``native``).
    A read-only server, a user who may not create tables, a full disk are refused naming the fix
    (``StorageMisconfigured``). Concurrent callers are serialised by an advisory lock.
    """
    with preflight.refusals_named("creating or upgrading the schema"), conn.transaction():
        preflight.check_writable(conn)
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('cloudmeter.migrate'))")
        current = applied_version(conn)
        if current > LATEST:
            raise SchemaError(
                f"the database schema is at version {current}, newer than this cloudmeter knows ({LATEST}); "
                "upgrade cloudmeter"
            )
        if current == LATEST:
            return []  # nothing to create: a user with only read/write privileges gets this far
        preflight.check_can_create(conn)
        conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                description text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        effective = stored_mode(conn) or _new_mode(probe(conn), mode)
        if effective == "timescaledb" and current == 0:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        applied = []
        for migration in MIGRATIONS:
            if migration.version <= current:
                continue
            conn.execute(migration.sql(effective).encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, description) VALUES (%s, %s)",
                (migration.version, migration.description),
            )
            applied.append(migration.version)
        return applied


def _new_mode(server: ServerInfo, asked: Mode | None) -> Mode:
    """The mode of a schema created now: ``asked``, else TimescaleDB where it can be used, else native."""
    if asked == "native":
        return "native"
    if server.timescaledb_usable:
        return "timescaledb"
    if asked == "timescaledb" or server.timescaledb_available is not None:
        raise preflight.timescaledb_refusal(server)
    return "native"
