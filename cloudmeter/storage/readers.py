"""Readers: binary ``COPY (query) TO STDOUT`` straight into numpy arrays, returned as polars DataFrames.

NULL stays null (never 0); timestamps are ``Datetime("us", "UTC")``.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import polars as pl
import psycopg
from psycopg import sql

from cloudmeter.model import KINDS, LEAVES, METRICS, Window
from cloudmeter.rollups.intervals import Intervals
from cloudmeter.rollups.topology import OPEN_END, Topology
from cloudmeter.storage import pgbinary
from cloudmeter.storage.schema import ROLLUP_KINDS

Level = Literal["hourly", "daily"]
T = TypeVar("T")
R = TypeVar("R")
SAMPLE_KINDS: list[tuple[str, int]] = [
    ("ts", pgbinary.TIMESTAMPTZ),
    ("resource_id", pgbinary.INT4),
    *((metric, pgbinary.FLOAT8) for metric in METRICS),
]


def copy_out(conn: psycopg.Connection, query: sql.Composable, params: Sequence[Any] = ()) -> bytearray:
    """The binary COPY output of ``query``, in one buffer."""
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(query)
    buffer = bytearray()
    with conn.cursor().copy(statement, params) as copy:
        while data := copy.read():
            buffer += data
    return buffer


@dataclass(frozen=True)
class Arrays:
    """Decoded columns by name: values and validity masks (timestamps in epoch microseconds)."""

    columns: dict[str, pgbinary.Column]

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self.columns[name].values


#: Rows per packed row of ``read_arrays``: each COPY row costs the client microseconds of Python, so rows travel
#: as arrays of this many values (the server's array_agg costs far less per row).
PACK_ROWS = 65_536


def read_arrays(
    conn: psycopg.Connection, query: sql.Composable, params: Sequence[Any], kinds: Sequence[tuple[str, int]]
) -> Arrays:
    """Run ``query`` (whose columns match ``kinds``) and decode its rows, in their order, into numpy arrays."""
    columns = [sql.Identifier(f"c{i}") for i in range(len(kinds))]
    packed = sql.SQL(
        "SELECT {aggs} FROM (SELECT q.*, row_number() OVER () AS n FROM ({query}) AS q({columns})) s "
        "GROUP BY (n - 1) / {pack} ORDER BY (n - 1) / {pack}"
    ).format(
        aggs=sql.SQL(", ").join(sql.SQL("array_agg({} ORDER BY n)").format(c) for c in columns),
        query=query,
        columns=sql.SQL(", ").join(columns),
        pack=sql.Literal(PACK_ROWS),
    )
    decoded = pgbinary.decode(copy_out(conn, packed, params), [kind for _, kind in kinds], packed=True)
    return Arrays({name: column for (name, _), column in zip(kinds, decoded, strict=True)})


def to_frame(arrays: Arrays, kinds: Sequence[tuple[str, int]]) -> pl.DataFrame:
    """A polars DataFrame of decoded columns, NULLs as nulls."""
    series = []
    for name, kind in kinds:
        column = arrays.columns[name]
        if kind == pgbinary.FLOAT8:
            s = pl.Series(name, column.values, nan_to_null=True)
        else:
            s = pl.Series(name, column.values)
            if kind == pgbinary.TIMESTAMPTZ:
                s = s.cast(pl.Datetime("us", "UTC"))
            elif kind == pgbinary.INT4:
                s = s.cast(pl.Int32)
            if not column.valid.all():
                s = pl.select(pl.when(pl.Series(column.valid)).then(s).alias(name)).to_series()
        series.append(s)
    return pl.DataFrame(series)


def _resource_filter(resource_ids: Sequence[int] | None) -> tuple[sql.Composable, list[Any]]:
    if resource_ids is None:
        return sql.SQL(""), []
    return sql.SQL(" AND resource_id = ANY(%s)"), [list(resource_ids)]


def sample_arrays(conn: psycopg.Connection, window: Window, resource_ids: Sequence[int] | None = None) -> Arrays:
    """Raw samples in ``window`` as arrays, sorted by (resource_id, ts)."""
    where, extra = _resource_filter(resource_ids)
    query = sql.SQL("SELECT {} FROM metric_samples WHERE ts >= %s AND ts < %s{} ORDER BY resource_id, ts").format(
        sql.SQL(", ").join(sql.Identifier(name) for name, _ in SAMPLE_KINDS), where
    )
    return read_arrays(conn, query, [window.start, window.end, *extra], SAMPLE_KINDS)


def sample_span(
    conn: psycopg.Connection, resource_ids: Sequence[int], since: datetime | None = None
) -> tuple[datetime, datetime] | None:
    """The first and last ``ts`` of the stored samples of ``resource_ids`` (at or after ``since``), or None."""
    after = sql.SQL(" AND ts >= %s") if since is not None else sql.SQL("")
    query = sql.SQL("SELECT min(ts), max(ts) FROM metric_samples WHERE resource_id = ANY(%s){}").format(after)
    row = conn.execute(query, [list(resource_ids), *([since] if since is not None else [])]).fetchone()
    return (row[0], row[1]) if row is not None and row[0] is not None else None


def read_samples(conn: psycopg.Connection, window: Window, resource_ids: Sequence[int] | None = None) -> pl.DataFrame:
    """Raw samples in ``window`` (optionally of some resources), sorted by (resource_id, ts)."""
    return to_frame(sample_arrays(conn, window, resource_ids), SAMPLE_KINDS)


def read_rollups(
    conn: psycopg.Connection,
    level: Level,
    window: Window,
    resource_ids: Sequence[int] | None = None,
    tz: str = "UTC",
    after: tuple[int, datetime] | None = None,
    limit: int | None = None,
    columns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Hourly or daily rollup rows whose bucket starts in ``window``; daily rows of time zone ``tz``; sorted by
    (resource_id, ts), only those after ``after`` (a resource_id and ts) and at most ``limit`` (a page); every
    column, or ts, resource_id and ``columns``."""
    kinds = (
        ROLLUP_KINDS if columns is None else tuple(k for k in ROLLUP_KINDS if k[0] in {"ts", "resource_id", *columns})
    )
    where, extra = _resource_filter(resource_ids)
    table = "metric_hourly" if level == "hourly" else "metric_daily"
    tz_filter = sql.SQL(" AND tz = %s") if level == "daily" else sql.SQL("")
    tz_param = [tz] if level == "daily" else []
    page = sql.SQL(" AND (resource_id, ts) > (%s, %s)" if after is not None else "")
    cut = sql.SQL(" LIMIT {}").format(sql.Literal(limit)) if limit is not None else sql.SQL("")
    query = sql.SQL("SELECT {} FROM {} WHERE ts >= %s AND ts < %s{}{}{} ORDER BY resource_id, ts{}").format(
        sql.SQL(", ").join(sql.Identifier(name) for name, _ in kinds),
        sql.Identifier(table),
        tz_filter,
        where,
        page,
        cut,
    )
    params = [window.start, window.end, *tz_param, *extra, *(after or ())]
    frame = to_frame(read_arrays(conn, query, params, kinds), kinds)
    return frame.insert_column(1, pl.lit(tz).alias("tz")) if level == "daily" else frame


@contextlib.contextmanager
def companions(conn: psycopg.Connection, count: int) -> Iterator[list[psycopg.Connection]]:
    """Up to ``count`` more connections to ``conn``'s server, database and role, for reads beside it (closed on
    exit). None on a server that runs a single session (PGlite's backend has no process of its own: pid 0, and
    a second client waits there until the first leaves), and no more once the server refuses one."""
    with contextlib.ExitStack() as stack:
        opened: list[psycopg.Connection] = []
        if count > 0 and conn.execute("SELECT pg_backend_pid()").fetchone() != (0,):
            for _ in range(count):
                try:
                    opened.append(
                        stack.enter_context(psycopg.connect(conn.info.dsn, password=conn.info.password or None))
                    )
                except psycopg.OperationalError:
                    break
        yield opened


def read_ahead(read: Callable[[T], R], chunks: Sequence[T], name: str, depth: int = 1) -> Iterator[R]:
    """``read(chunk)`` of each of ``chunks`` in turn, the next ``depth`` ones read in as many threads (named
    ``name``) while the caller works on this one."""
    with ThreadPoolExecutor(depth, thread_name_prefix=name) as ahead:
        reads = deque(ahead.submit(read, chunk) for chunk in chunks[:depth])
        for k in range(len(chunks)):
            if k + depth < len(chunks):
                reads.append(ahead.submit(read, chunks[k + depth]))
            yield reads.popleft().result()


def read_topology(conn: psycopg.Connection, manager_id: int) -> Topology:
    """A manager's resources and placement periods, for the rollup engine."""
    resources = conn.execute(
        "SELECT id, kind FROM resources WHERE manager_id = %s ORDER BY id", (manager_id,)
    ).fetchall()
    periods = conn.execute(
        """SELECT h.resource_id, extract(epoch FROM h.valid_from)::bigint, extract(epoch FROM h.valid_to)::bigint,
                  h.parent_id, p.id, h.vcpus, h.memory_bytes
           FROM resource_history h JOIN resources r ON r.id = h.resource_id
           LEFT JOIN resources p ON p.manager_id = r.manager_id AND p.kind = 'project' AND p.ems_ref = h.project
                AND r.kind = ANY(%s)  -- a project sums leaves (containers, not pods)
           WHERE r.manager_id = %s ORDER BY h.resource_id, h.valid_from""",
        (list(LEAVES), manager_id),
    ).fetchall()
    if not resources:
        return Topology.empty()
    columns = list(zip(*periods, strict=True)) if periods else [()] * 7

    def ints(values: Sequence[Any], dtype: type, null: int) -> npt.NDArray[Any]:
        return np.array([null if v is None else v for v in values], dtype=dtype)

    return Topology(
        resource_id=np.array([r[0] for r in resources], np.int32),
        kind=np.array([KINDS.index(r[1]) for r in resources], np.int8),
        period_resource=ints(columns[0], np.int32, -1),
        valid_from_s=ints(columns[1], np.int64, 0),
        valid_to_s=ints(columns[2], np.int64, OPEN_END),
        parent_id=ints(columns[3], np.int32, -1),
        project_id=ints(columns[4], np.int32, -1),
        capacity=np.array([[np.nan if v is None else v for v in row[5:7]] for row in periods], np.float64).reshape(
            len(periods), 2
        ),
    )


def read_intervals(conn: psycopg.Connection, manager_id: int, fallback_s: int = 60) -> Intervals:
    """A manager's ``resource_intervals`` rows, for the rollup engine (hours without a row: unknown).

    ``fallback_s`` is the grid of a parent in an hour where no resource beneath it has a known interval.
    """
    rows = conn.execute(
        """SELECT i.resource_id, extract(epoch FROM i.valid_from)::bigint, extract(epoch FROM i.valid_to)::bigint,
                  i.interval_s
           FROM resource_intervals i JOIN resources r ON r.id = i.resource_id
           WHERE r.manager_id = %s ORDER BY i.resource_id, i.valid_from""",
        (manager_id,),
    ).fetchall()
    columns = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
    return Intervals(
        np.array(columns[0], np.int32),
        np.array(columns[1], np.int64),
        np.array(columns[2], np.int64),
        np.array(columns[3], np.int32),
        0,
        fallback_s,
    )


def read_resources(conn: psycopg.Connection, manager_id: int | None = None) -> pl.DataFrame:
    """The ``resources`` table (of one manager, or all), tags as JSON text."""
    where = sql.SQL(" WHERE manager_id = %s") if manager_id is not None else sql.SQL("")
    cursor = conn.execute(
        sql.SQL(
            "SELECT id, manager_id, kind, ems_ref, name, parent_id, vcpus, memory_bytes, disk_bytes, project, "
            "tags::text AS tags, (extract(epoch FROM first_seen) * 1000000)::int8 AS first_seen, "
            "(extract(epoch FROM last_seen) * 1000000)::int8 AS last_seen, "
            "(extract(epoch FROM retired_at) * 1000000)::int8 AS retired_at FROM resources{} ORDER BY id"
        ).format(where),
        [manager_id] if manager_id is not None else [],
    )
    names = [d.name for d in cursor.description or ()]
    schema: dict[str, Any] = {
        "id": pl.Int32,
        "manager_id": pl.Int32,
        "kind": pl.Utf8,
        "ems_ref": pl.Utf8,
        "name": pl.Utf8,
        "parent_id": pl.Int32,
        "vcpus": pl.Int32,
        "memory_bytes": pl.Int64,
        "disk_bytes": pl.Int64,
        "project": pl.Utf8,
        "tags": pl.Utf8,
        "first_seen": pl.Int64,  # epoch microseconds: far cheaper to fetch than datetimes with a zone
        "last_seen": pl.Int64,
        "retired_at": pl.Int64,
    }
    frame = pl.DataFrame(cursor.fetchall(), schema={n: schema[n] for n in names}, orient="row")
    instants = [pl.col(n).cast(pl.Datetime("us", "UTC")) for n in ("first_seen", "last_seen", "retired_at")]
    return frame.with_columns(instants)
