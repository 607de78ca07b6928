"""The one writer: columnar numpy batches -> binary COPY into a session staging table -> upsert.

Every call is one transaction: a batch lands whole or not at all, and writing the same batch twice leaves
the same rows (rows whose values did not change are not even rewritten).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from cloudmeter.model import METRICS
from cloudmeter.storage import pgbinary
from cloudmeter.storage.partitions import PartitionManager
from cloudmeter.storage.schema import DAILY, HOURLY, ROLLUP_KINDS, SAMPLES

#: Bytes handed to the server per COPY write.
COPY_CHUNK = 8 << 20


@dataclass(frozen=True)
class ColumnData:
    """One column to write: its name, its binary kind (``pgbinary``), its values and where they are valid."""

    name: str
    kind: int
    values: npt.NDArray[Any]
    valid: npt.NDArray[np.bool_] | None = None


def last_per_key(*keys: npt.NDArray[Any]) -> npt.NDArray[np.intp]:
    """Indices that sort rows by ``keys`` (first = most significant), keeping the last of equal keys."""
    order = np.lexsort(keys[::-1])
    if len(order) < 2:
        return order.astype(np.intp)
    sorted_keys = [key[order] for key in keys]
    differs = np.zeros(len(order) - 1, dtype=np.bool_)
    for key in sorted_keys:
        differs |= key[1:] != key[:-1]
    keep = np.append(differs, True)
    kept: npt.NDArray[np.intp] = order[keep]
    return kept


def _stage_name(table: str, columns: Sequence[str]) -> str:
    return f"_stage_{table}_{zlib.crc32(','.join(columns).encode()):08x}"


def upsert(
    conn: psycopg.Connection,
    table: str,
    key: Sequence[str],
    columns: Sequence[ColumnData],
    constants: Mapping[str, Any] | None = None,
) -> int:
    """Insert or update rows of ``table`` identified by ``key``; return the rows written or changed.

    ``columns`` must be unique on ``key`` (see ``last_per_key``). ``constants`` adds columns with one value
    for every row (e.g. a daily rollup's ``tz``). Runs in one transaction.
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
        payload = pgbinary.encode([(c.kind, c.values, c.valid) for c in columns])
        with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(sql.Identifier(stage))) as copy:
            view = memoryview(payload)  # type: ignore[arg-type]
            for offset in range(0, len(view), COPY_CHUNK):
                copy.write(view[offset : offset + COPY_CHUNK])
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
        cursor = conn.execute(statement, constants)
        return cursor.rowcount


def sample_columns(
    resource_id: npt.NDArray[np.int32], ts_s: npt.NDArray[np.int64], values: npt.NDArray[np.float64]
) -> list[ColumnData]:
    """The ``metric_samples`` columns of a batch, deduplicated on (resource_id, ts) keeping the last."""
    keep = last_per_key(resource_id, ts_s)
    return [
        ColumnData("ts", pgbinary.TIMESTAMPTZ, ts_s[keep]),
        ColumnData("resource_id", pgbinary.INT4, resource_id[keep]),
        *(ColumnData(metric, pgbinary.FLOAT8, values[keep, m]) for m, metric in enumerate(METRICS)),
    ]


def write_samples(
    conn: psycopg.Connection,
    resource_id: npt.NDArray[np.int32],
    ts_s: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    partitions: PartitionManager | None = None,
) -> int:
    """Write raw samples idempotently (one transaction); return rows inserted or changed.

    ``partitions`` (native mode) first creates any partition the batch needs.
    """
    if len(ts_s) == 0:
        return 0
    if partitions is not None:
        partitions.ensure_span(conn, SAMPLES, ts_s)
    return upsert(conn, SAMPLES.name, ("resource_id", "ts"), sample_columns(resource_id, ts_s, values))


def upsert_rollups(
    conn: psycopg.Connection,
    columns: Mapping[str, npt.NDArray[Any]],
    tz: str | None = None,
    partitions: PartitionManager | None = None,
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
    if partitions is not None:
        partitions.ensure_span(conn, table, columns["ts"])
    if tz is None:
        return upsert(conn, table.name, ("resource_id", "ts"), data)
    return upsert(conn, table.name, ("resource_id", "tz", "ts"), data, {"tz": tz})
