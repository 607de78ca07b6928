"""The one writer: columnar numpy batches -> a session staging table -> upsert.

Batches reach the server by binary COPY, or (``WriteTarget.method`` "insert", for servers that refuse COPY FROM
STDIN) by ``INSERT ... SELECT FROM unnest(...)`` of binary array parameters; everything after that is the same
SQL. Every call is one transaction: a batch lands whole or not at all, and writing the same batch twice leaves
the same rows (rows whose values did not change are not even rewritten).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql
from psycopg.adapt import Dumper, PyFormat
from psycopg.pq import Format

from cloudmeter.errors import StorageError
from cloudmeter.model import METRICS
from cloudmeter.rollups import intervals
from cloudmeter.rollups.kernels import is_sorted_unique
from cloudmeter.rollups.series import Rows, last_per_key
from cloudmeter.storage import pgbinary
from cloudmeter.storage.partitions import PartitionManager
from cloudmeter.storage.schema import DAILY, HOURLY, ROLLUP_KINDS, SAMPLES, STATS

#: Bytes handed to the server per COPY write, and about the size of one INSERT's array parameters.
COPY_CHUNK = 8 << 20

WriteMethod = Literal["copy", "insert"]


@dataclass(frozen=True)
class WriteTarget:
    """How writes reach this database: the load method and, in native mode, the partition manager."""

    method: WriteMethod = "copy"
    partitions: PartitionManager | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ColumnData:
    """One column to write: its name, its binary kind (``pgbinary``), its values and where they are valid."""

    name: str
    kind: int
    values: npt.NDArray[Any]
    valid: npt.NDArray[np.bool_] | None = None


def _stage_name(table: str, columns: Sequence[str]) -> str:
    return f"_stage_{table}_{zlib.crc32(','.join(columns).encode()):08x}"


@dataclass(frozen=True)
class DirtyMarks:
    """Where changed raw rows leave a mark: hours before ``before_s`` are already rolled up for the manager."""

    manager_id: int
    before_s: int


def load(conn: psycopg.Connection, table: str, columns: Sequence[ColumnData], method: WriteMethod) -> None:
    """Append ``columns`` to ``table`` (no conflict handling) by binary COPY or by INSERT of binary arrays."""
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    if method == "insert":
        _insert_arrays(conn, sql.Identifier(table), names, columns)
        return
    payload = pgbinary.encode([(c.kind, c.values, c.valid) for c in columns])
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(sql.Identifier(table), names)
    try:
        with conn.cursor().copy(statement) as copy:
            view = memoryview(payload)  # type: ignore[arg-type]
            for offset in range(0, len(view), COPY_CHUNK):
                copy.write(view[offset : offset + COPY_CHUNK])
    except psycopg.errors.FeatureNotSupported as exc:
        raise StorageError(
            f'the database refuses COPY FROM STDIN ({str(exc).strip()}); set write_method = "insert" in the '
            "config file or CLOUDMETER_WRITE_METHOD=insert"
        ) from None


@dataclass(frozen=True)
class BinaryArray:
    """A query parameter already in PostgreSQL's binary array format."""

    oid: int
    data: bytes


class BinaryArrayDumper(Dumper):
    """Sends a ``BinaryArray`` as is, typed by its own array oid (float8[], int4[], ...)."""

    format = Format.BINARY

    def get_key(self, obj: Any, format: PyFormat) -> Any:
        return (BinaryArray, obj.oid)

    def upgrade(self, obj: Any, format: PyFormat) -> Dumper:
        dumper = BinaryArrayDumper(BinaryArray)
        dumper.oid = obj.oid
        return dumper

    def dump(self, obj: Any) -> bytes:
        data: bytes = obj.data
        return data


psycopg.adapters.register_dumper(BinaryArray, BinaryArrayDumper)


def _insert_arrays(
    conn: psycopg.Connection, table: sql.Identifier, names: sql.Composable, columns: Sequence[ColumnData]
) -> None:
    """INSERT the columns as one unnest of array parameters per ``COPY_CHUNK`` bytes of rows."""
    statement = sql.SQL("INSERT INTO {} ({}) SELECT * FROM unnest({})").format(
        table, names, sql.SQL(", ").join(sql.Placeholder(format=PyFormat.BINARY) for _ in columns)
    )
    n = len(columns[0].values)
    step = max(1, COPY_CHUNK // (12 * len(columns)))
    for lo in range(0, n, step):
        part = slice(lo, min(n, lo + step))
        conn.execute(
            statement,
            [
                BinaryArray(
                    pgbinary.ARRAY_OID[c.kind],
                    pgbinary.encode_array(c.kind, c.values[part], None if c.valid is None else c.valid[part]),
                )
                for c in columns
            ],
        )


def upsert(
    conn: psycopg.Connection,
    table: str,
    key: Sequence[str],
    columns: Sequence[ColumnData],
    constants: Mapping[str, Any] | None = None,
    dirty: DirtyMarks | None = None,
    method: WriteMethod = "copy",
) -> int:
    """Insert or update rows of ``table`` identified by ``key``; return the rows written or changed.

    ``columns`` must be unique on ``key`` (see ``last_per_key``). ``constants`` adds columns with one value
    for every row (e.g. a daily rollup's ``tz``). With ``dirty``, the hours of changed rows older than
    ``dirty.before_s`` go into ``rollup_dirty``. ``method`` is how rows reach the staging table. Runs in one
    transaction.
    """
    names = [c.name for c in columns]
    constants = dict(constants or {})
    stage = _stage_name(table, names)
    target_cols = [*names, *constants]
    update_cols = [c for c in target_cols if c not in key]
    with conn.transaction():
        conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA"
            ).format(sql.Identifier(stage), sql.SQL(", ").join(map(sql.Identifier, names)), sql.Identifier(table))
        )
        load(conn, stage, columns, method)
        target = sql.Identifier(table)
        statement = sql.SQL(
            "INSERT INTO {target} ({cols}) SELECT {select} FROM {stage} "
            "ON CONFLICT ({key}) DO UPDATE SET ({upd}) = ROW({excluded}) "
            "WHERE ({current}) IS DISTINCT FROM ({excluded})"
        ).format(
            target=target,
            cols=sql.SQL(", ").join(map(sql.Identifier, target_cols)),
            select=sql.SQL(", ").join([*map(sql.Identifier, names), *(sql.Placeholder(c) for c in constants)]),
            stage=sql.Identifier(stage),
            key=sql.SQL(", ").join(map(sql.Identifier, key)),
            upd=sql.SQL(", ").join(map(sql.Identifier, update_cols)),
            excluded=sql.SQL(", ").join(sql.Identifier("excluded", c) for c in update_cols),
            current=sql.SQL(", ").join(sql.Identifier(table, c) for c in update_cols),
        )
        try:
            if dirty is None:
                return conn.execute(statement, constants).rowcount
            return _upsert_marking(conn, statement, constants, dirty)
        finally:  # ON COMMIT DELETE ROWS is not enough when one transaction upserts twice
            conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(stage)))


def _upsert_marking(
    conn: psycopg.Connection, statement: sql.Composable, constants: Mapping[str, Any], dirty: DirtyMarks
) -> int:
    marked = sql.SQL(
        "WITH changed AS ({} RETURNING ts), marked AS (INSERT INTO rollup_dirty (manager_id, ts) "
        "SELECT DISTINCT %(_manager)s, date_bin('1 hour', ts, timestamptz 'epoch') FROM changed "
        "WHERE ts < to_timestamp(%(_before)s) ON CONFLICT DO NOTHING) SELECT count(*) FROM changed"
    ).format(statement)
    row = conn.execute(marked, {**constants, "_manager": dirty.manager_id, "_before": dirty.before_s}).fetchone()
    return int(row[0]) if row else 0


def sample_columns(
    resource_id: npt.NDArray[np.int32], ts_s: npt.NDArray[np.int64], values: npt.NDArray[np.float64]
) -> list[ColumnData]:
    """The ``metric_samples`` columns of a batch, deduplicated on (resource_id, ts) keeping the last."""
    if not is_sorted_unique(resource_id, ts_s):
        keep = last_per_key(resource_id, ts_s)
        resource_id, ts_s, values = resource_id[keep], ts_s[keep], values[keep]
    return [
        ColumnData("ts", pgbinary.TIMESTAMPTZ, ts_s),
        ColumnData("resource_id", pgbinary.INT4, resource_id),
        *(ColumnData(metric, pgbinary.FLOAT8, np.ascontiguousarray(values[:, m])) for m, metric in enumerate(METRICS)),
    ]


def write_samples(
    conn: psycopg.Connection,
    resource_id: npt.NDArray[np.int32],
    ts_s: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    target: WriteTarget = WriteTarget(),
    *,
    append_from_s: int | None = None,
    dirty: DirtyMarks | None = None,
    interval_s: int | None = None,
    known: intervals.Recorded | None = None,
) -> int:
    """Write raw samples idempotently (one transaction); return rows inserted or changed.

    ``target`` says how rows are loaded and (native mode) creates any partition the batch needs first. Rows
    at or after ``append_from_s`` (past what the manager has captured, so normally not stored yet) are
    appended without the upsert; should any of them exist already, that part falls back to the upsert.
    ``dirty`` marks the hours of changed rows that are already rolled up. ``interval_s``, the batch's
    sampling interval, is recorded for its resources in the same transaction (``record_intervals``, with
    ``known``).
    """
    if len(ts_s) == 0:
        return 0
    if target.partitions is not None:
        target.partitions.ensure_span(conn, SAMPLES, ts_s)
    key = ("resource_id", "ts")
    method = target.method
    with conn.transaction():
        if interval_s is not None:
            record_intervals(conn, resource_id, ts_s, interval_s, dirty, known)
        if append_from_s is None:
            return upsert(
                conn, SAMPLES.name, key, sample_columns(resource_id, ts_s, values), dirty=dirty, method=method
            )
        new = ts_s >= append_from_s
        old = ~new
        written = 0
        if old.any():
            columns = sample_columns(resource_id[old], ts_s[old], values[old])
            written += upsert(conn, SAMPLES.name, key, columns, dirty=dirty, method=method)
        if new.any():
            columns = sample_columns(resource_id[new], ts_s[new], values[new])
            try:
                with conn.transaction():
                    load(conn, SAMPLES.name, columns, method)
                written += len(columns[0].values)
            except psycopg.errors.UniqueViolation:
                written += upsert(conn, SAMPLES.name, key, columns, dirty=dirty, method=method)
        return written


_EXTEND_INTERVALS = """
WITH batch(resource_id, first_s, end_s) AS (SELECT * FROM unnest(%(ids)s::int4[], %(first)s::int8[], %(end)s::int8[])),
newest AS (
    SELECT b.resource_id, b.first_s, b.end_s, l.valid_from, l.valid_to, l.interval_s
    FROM batch b LEFT JOIN LATERAL (
        SELECT valid_from, valid_to, interval_s FROM resource_intervals i
        WHERE i.resource_id = b.resource_id ORDER BY valid_from DESC LIMIT 1) l ON true),
extended AS (
    UPDATE resource_intervals i SET valid_to = to_timestamp(n.end_s) FROM newest n
    WHERE i.resource_id = n.resource_id AND i.valid_from = n.valid_from AND n.interval_s = %(interval)s
      AND to_timestamp(n.first_s) >= n.valid_from AND to_timestamp(n.end_s) > n.valid_to)
SELECT resource_id FROM newest
WHERE interval_s IS DISTINCT FROM %(interval)s OR to_timestamp(first_s) < valid_from"""


def _binary_array(kind: int, values: npt.NDArray[Any]) -> BinaryArray:
    return BinaryArray(pgbinary.ARRAY_OID[kind], pgbinary.encode_array(kind, values, None))


def record_intervals(
    conn: psycopg.Connection,
    resource_id: npt.NDArray[np.int32],
    ts_s: npt.NDArray[np.int64],
    interval_s: int,
    dirty: DirtyMarks | None = None,
    known: intervals.Recorded | None = None,
) -> None:
    """Record in ``resource_intervals`` that these resources' samples are at ``interval_s`` in the whole UTC
    hours from each one's first sample to its last (``rollups.intervals.assign``).

    Resources whose hours ``known`` covers are left out (nothing would change), the others noted in it: a
    caller passing ``known`` clears it if the transaction rolls back.

    The usual batch (the same interval as its resource's newest row, from that row's start on) only moves
    that row's end, in one statement; others are rewritten from their rows. With ``dirty``, hours before
    ``dirty.before_s`` whose interval changed are marked for a rebuild.
    """
    if len(ts_s) == 0:
        return
    ids, first, end = intervals.batch_hours(resource_id, ts_s)
    if known is not None:
        todo = ~known.covers(ids, first, end, interval_s)
        if not todo.all():
            ids, first, end = ids[todo], first[todo], end[todo]
        if not len(ids):
            return
        known.note(ids, first, end, interval_s)
    params = {
        "ids": _binary_array(pgbinary.INT4, ids),
        "first": _binary_array(pgbinary.INT8, first),
        "end": _binary_array(pgbinary.INT8, end),
        "interval": interval_s,
    }  # binary arrays: half the time of lists of Python ints for a batch of 1,000 resources
    others = [row[0] for row in conn.execute(_EXTEND_INTERVALS, params).fetchall()]
    if not others:
        return
    spans: dict[int, intervals.Spans] = {rid: [] for rid in others}
    for rid, lo, hi, step in conn.execute(
        "SELECT resource_id, extract(epoch FROM valid_from)::int8, extract(epoch FROM valid_to)::int8, interval_s "
        "FROM resource_intervals WHERE resource_id = ANY(%s) ORDER BY resource_id, valid_from",
        [others],
    ):
        spans[rid].append((lo, hi, step))
    where = {int(rid): k for k, rid in enumerate(ids.tolist())}
    rows: list[tuple[int, int, int, int]] = []
    changed: list[tuple[int, int]] = []
    for rid, old in spans.items():
        k = where[rid]
        new = intervals.assign(old, int(first[k]), int(end[k]), interval_s)
        rows += [(rid, lo, hi, step) for lo, hi, step in new]
        if dirty is not None:
            changed += intervals.changed_hours(old, new, dirty.before_s)
    conn.execute("DELETE FROM resource_intervals WHERE resource_id = ANY(%s)", [others])
    columns = list(zip(*rows, strict=True))
    conn.execute(
        "INSERT INTO resource_intervals (resource_id, valid_from, valid_to, interval_s) "
        "SELECT r, to_timestamp(a), to_timestamp(b), s FROM unnest(%s::int4[], %s::int8[], %s::int8[], %s::int4[]) "
        "AS u(r, a, b, s)",
        [list(column) for column in columns],
    )
    if dirty is not None and changed:
        lows, highs = zip(*changed, strict=True)
        conn.execute(
            "INSERT INTO rollup_dirty (manager_id, ts) SELECT DISTINCT %s, h FROM unnest(%s::int8[], %s::int8[]) "
            "AS u(a, b), generate_series(to_timestamp(a), to_timestamp(b) - interval '1 hour', interval '1 hour') h "
            "ON CONFLICT DO NOTHING",
            [dirty.manager_id, list(lows), list(highs)],
        )


def rollup_columns(rows: Rows) -> dict[str, npt.NDArray[Any]]:
    """The ``metric_hourly``/``metric_daily`` columns of ``rows`` (without ``tz``), as ``upsert_rollups`` takes."""
    stats = {"avg": rows.avg, "min": rows.min, "max": rows.max, "p95": rows.p95, "max_ts": rows.max_ts}
    columns: dict[str, npt.NDArray[Any]] = {"ts": rows.ts_s, "resource_id": rows.resource_id}
    for m, metric in enumerate(METRICS):
        for stat in STATS:
            columns[f"{metric}_{stat}"] = np.ascontiguousarray(stats[stat][:, m])
    columns.update(
        sample_count=rows.sample_count,
        expected_count=rows.expected_count,
        vcpus=rows.vcpus,
        memory_bytes=rows.memory_bytes,
        child_count=rows.child_count,
        children_with_data=rows.children_with_data,
    )
    return columns


def write_rows(conn: psycopg.Connection, rows: Rows, target: WriteTarget = WriteTarget()) -> int:
    """Write rollup rows of the engine (hourly, or daily of ``rows.tz``) idempotently."""
    return upsert_rollups(conn, rollup_columns(rows), rows.tz, target)


def upsert_rollups(
    conn: psycopg.Connection,
    columns: Mapping[str, npt.NDArray[Any]],
    tz: str | None = None,
    target: WriteTarget = WriteTarget(),
) -> int:
    """Write hourly rows (``tz`` None) or daily rows of time zone ``tz``, idempotently, in one transaction.

    ``columns`` holds every rollup column (``ROLLUP_KINDS``) by name; ``ts`` and ``*_max_ts`` in epoch
    seconds. NULL is NaN in a float column, and any negative value in an integer or ``*_max_ts`` column.
    Rows must be unique on (resource_id, ts).
    """
    if len(columns["ts"]) == 0:
        return 0
    table = HOURLY if tz is None else DAILY
    data = [
        ColumnData(name, kind, columns[name], None if kind == pgbinary.FLOAT8 else columns[name] >= 0)
        for name, kind in ROLLUP_KINDS
    ]
    if target.partitions is not None:
        target.partitions.ensure_span(conn, table, columns["ts"])
    if tz is None:
        return upsert(conn, table.name, ("resource_id", "ts"), data, method=target.method)
    return upsert(conn, table.name, ("resource_id", "tz", "ts"), data, {"tz": tz}, method=target.method)
