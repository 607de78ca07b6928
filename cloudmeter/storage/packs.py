"""Packed hours: each resource's UTC day of hourly rows in one row, so reports over long windows read few rows.

A report reads every hour of every host, cluster or VM in its window: 90 days of 1,250 hosts is 2.7 million
``metric_hourly`` rows, and they lie scattered among ten times as many VM rows (one hour's rows are written
together), on nearly every page of the table; a month of chargeback reads 720 rows per VM. ``metric_hourly_packs``
holds, per resource and UTC day, the ``PACKED`` columns of its 24 hourly rows, each as 24 big-endian values in
hour order (``sample_count`` int4, -1 where there is no row; the others float8, NaN for NULL).

A day is packed in the transaction that writes its UTC daily rows: its hours are final then, and a rebuild of any
of its hours (late samples) rewrites the daily rows, so the pack with them. A reader uses packs only for whole
UTC days that the resource's manager has rolled up to the end (``managers.rolled_until``); every other hour comes
from ``metric_hourly`` itself. ``read_hourly`` answers what ``readers.read_rollups`` would.

The table is internal (not in the data contract): query ``metric_hourly``.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import polars as pl
import psycopg
from psycopg import sql

from cloudmeter.model import Window
from cloudmeter.storage import readers
from cloudmeter.storage.schema import PACKED, ROLLUP_KINDS, pack_statement

HOURS: Final = 24
HOUR_US: Final = 3_600_000_000
DAY: Final = timedelta(days=1)
#: Connections reading the next chunks of ``read_grids`` at once.
READERS: Final = 2
_REFRESH: Final = pack_statement(
    "SELECT DISTINCT u.rid, to_timestamp(u.d) AS day FROM unnest(%s::int4[], %s::int8[]) AS u(rid, d)"
)


def refresh(conn: psycopg.Connection, resource_ids: npt.NDArray[np.int32], days_s: npt.NDArray[np.int64]) -> None:
    """(Re)pack the UTC days starting at ``days_s`` (epoch seconds) of ``resource_ids`` (pairwise)."""
    if len(resource_ids):
        conn.execute(_REFRESH, [resource_ids.tolist(), days_s.tolist()])


def prune(conn: psycopg.Connection, before: datetime) -> int:
    """Delete the packs of days before ``before`` whose hourly rows are gone (retention); how many went."""
    return conn.execute(
        "DELETE FROM metric_hourly_packs p WHERE p.day < %s AND NOT EXISTS (SELECT 1 FROM metric_hourly h "
        "WHERE h.resource_id = p.resource_id AND h.ts >= p.day AND h.ts < p.day + interval '1 day')",
        [before],
    ).rowcount


def _day_floor(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _day_ceil(instant: datetime) -> datetime:
    floor = _day_floor(instant)
    return floor if floor == instant else floor + DAY


def _spans(conn: psycopg.Connection, window: Window, ids: list[int]) -> list[tuple[Window, bool, list[int]]]:
    """``window`` cut for ``ids`` into spans read from the packs (whole UTC days their manager has rolled up to
    the end) or not: (span, packed, the resources it is for)."""
    first, last = _day_ceil(window.start), _day_floor(window.end)
    if first >= last or not ids:
        return [(window, False, ids)] if ids else []
    rolled = conn.execute(
        "SELECT r.id, m.rolled_until FROM resources r JOIN managers m ON m.id = r.manager_id WHERE r.id = ANY(%s)",
        [ids],
    ).fetchall()
    groups: dict[datetime, list[int]] = {}
    for rid, until in rolled:
        end = first if until is None else min(max(_day_floor(until), first), last)
        groups.setdefault(end, []).append(rid)
    return [
        (Window(start, stop), packed, members)
        for end, members in groups.items()
        for start, stop, packed in ((window.start, first, False), (first, end, True), (end, window.end, False))
        if start < stop
    ]


def _check(columns: Sequence[str]) -> None:
    unknown = set(columns) - set(PACKED)
    if unknown:
        raise ValueError(f"not packed: {sorted(unknown)}")


def read_hourly(
    conn: psycopg.Connection, window: Window, resource_ids: Sequence[int], columns: Sequence[str]
) -> pl.DataFrame:
    """``readers.read_rollups(conn, "hourly", window, resource_ids, columns=columns)``, from the packs where the
    whole UTC day is rolled up and packed (``columns`` must be among ``PACKED``). Without ``sample_count`` in
    ``columns``, a packed hour whose values asked for are all NULL is left out."""
    _check(columns)
    ids = list(resource_ids)
    parts = [
        _pack_frame(_fetch(conn, span, members, columns), columns)
        if packed
        else readers.read_rollups(conn, "hourly", span, members, columns=columns)
        for span, packed, members in _spans(conn, window, ids)
    ]
    if not parts:
        return readers.read_rollups(conn, "hourly", window, ids, columns=columns)
    return pl.concat(parts, how="vertical").sort("resource_id", "ts")


def read_by_resource(
    conn: psycopg.Connection, window: Window, resource_ids: Sequence[int], columns: Sequence[str]
) -> tuple[npt.NDArray[np.int32], dict[str, npt.NDArray[np.float64]]]:
    """The rows ``read_hourly`` gives as arrays, ordered by resource only (a resource's hours in no set order):
    each row's resource, and per column of ``columns`` its values as floats (NaN for NULL)."""
    _check(columns)
    resource = [np.zeros(0, np.int32)]
    values: dict[str, list[npt.NDArray[np.float64]]] = {column: [np.zeros(0)] for column in columns}
    for span, packed, members in _spans(conn, window, list(resource_ids)):
        if packed:
            got = _fetch(conn, span, members, columns)
            present = _present(got, columns)
            resource.append(np.repeat(got.resource_id, HOURS)[present])
            for column in columns:
                values[column].append(got.values[column].ravel()[present].astype(np.float64))
        else:
            rows = readers.read_rollups(conn, "hourly", span, members, columns=columns)
            resource.append(rows["resource_id"].to_numpy().astype(np.int32))
            for column in columns:
                values[column].append(rows[column].to_numpy().astype(np.float64))  # nulls become NaN
    ids = np.concatenate(resource)
    flat = {column: np.concatenate(parts) for column, parts in values.items()}
    if np.all(ids[1:] >= ids[:-1]):  # the usual case: one span, read in index order
        return ids, flat
    order = np.argsort(ids, kind="stable")
    return ids[order], {column: value[order] for column, value in flat.items()}


def read_grid(
    conn: psycopg.Connection, window: Window, resource_ids: npt.NDArray[np.int64], columns: Sequence[str]
) -> dict[str, npt.NDArray[np.float64]]:
    """Per float column of ``columns``: a (resources, hours of ``window``) grid of the hourly values of
    ``resource_ids`` (sorted, unique), NaN where there is no row or NULL; read as ``read_hourly`` reads."""
    _check(columns)
    start_us = int(window.start.timestamp()) * 1_000_000
    hours = int((window.end - window.start).total_seconds() // 3600)
    grids = {c: np.full((len(resource_ids), hours), np.nan) for c in columns}
    for span, packed, members in _spans(conn, window, resource_ids.tolist()):
        if packed:
            got = _fetch(conn, span, members, columns)
            row = np.searchsorted(resource_ids, got.resource_id)[:, None]
            hour = ((got.day_us - start_us) // HOUR_US)[:, None] + np.arange(HOURS)
            for column in columns:
                grids[column][row, hour] = got.values[column]
        else:
            rows = readers.read_rollups(conn, "hourly", span, members, columns=columns)
            row = np.searchsorted(resource_ids, rows["resource_id"].to_numpy())
            hour = (rows["ts"].dt.epoch("us").to_numpy() - start_us) // HOUR_US
            for column in columns:
                grids[column][row, hour] = rows[column].to_numpy().astype(np.float64)  # nulls become NaN
    return grids


def read_grids(
    conn: psycopg.Connection, window: Window, chunks: list[npt.NDArray[np.int64]], columns: Sequence[str]
) -> Iterator[dict[str, npt.NDArray[np.float64]]]:
    """``read_grid`` of each chunk of resource ids in turn; the next chunks are read on connections of their own
    (the same server, database and role: ``readers.companions``), one each, while the caller works on this one, so
    the server's part overlaps the caller's. Without them the chunks are read one after the other on ``conn``."""
    with readers.companions(conn, READERS) as others:
        if not others:
            yield from (read_grid(conn, window, chunk, columns) for chunk in chunks)
            return
        idle: queue.SimpleQueue[psycopg.Connection] = queue.SimpleQueue()
        for other in others:
            idle.put(other)

        def read(chunk: npt.NDArray[np.int64]) -> dict[str, npt.NDArray[np.float64]]:
            other = idle.get()
            try:
                return read_grid(other, window, chunk, columns)
            finally:
                idle.put(other)

        yield from readers.read_ahead(read, chunks, "packs", len(others))


@dataclass(frozen=True)
class _Packs:
    """Packs as arrays: each one's resource and day (epoch microseconds), and per column (packs, 24) values
    (NaN for NULL; ``sample_count``: -1 for no row)."""

    resource_id: npt.NDArray[np.int32]
    day_us: npt.NDArray[np.int64]
    values: dict[str, npt.NDArray[Any]]


def _fetch(conn: psycopg.Connection, days: Window, resource_ids: list[int], columns: Sequence[str]) -> _Packs:
    """The packs of ``resource_ids`` for the UTC days of ``days``: the server concatenates each column over all
    of them (one aggregation, so every column sees the rows in the same order) and one row of a few long values
    crosses."""
    query = sql.SQL(
        "SELECT string_agg(int4send(resource_id), ''::bytea), "
        "string_agg(int8send((extract(epoch FROM day) * 1000000)::int8), ''::bytea), {} FROM metric_hourly_packs "
        "WHERE resource_id = ANY(%s) AND day >= %s AND day < %s"
    ).format(sql.SQL(", ").join(sql.SQL("string_agg({}, ''::bytea)").format(sql.Identifier(c)) for c in columns))
    row = conn.cursor(binary=True).execute(query, [resource_ids, days.start, days.end]).fetchone()
    blobs = [b or b"" for b in row or ()]
    return _Packs(
        np.frombuffer(blobs[0], ">i4").astype(np.int32),
        np.frombuffer(blobs[1], ">i8").astype(np.int64),
        {
            column: np.frombuffer(blob, ">i4" if column == "sample_count" else ">f8")
            .astype(np.int32 if column == "sample_count" else np.float64)
            .reshape(-1, HOURS)
            for column, blob in zip(columns, blobs[2:], strict=True)
        },
    )


def _present(packs: _Packs, columns: Sequence[str]) -> npt.NDArray[np.bool_]:
    """Per packed hour (flat, in pack then hour order): whether ``read_rollups`` would give a row for it, as far as
    ``columns`` tell: ``sample_count`` is not -1, or, without it, any value asked for is known."""
    if "sample_count" in columns:
        return packs.values["sample_count"].ravel() >= 0
    known: npt.NDArray[np.bool_] = np.logical_or.reduce([~np.isnan(packs.values[c].ravel()) for c in columns])
    return known


def _pack_frame(packs: _Packs, columns: Sequence[str]) -> pl.DataFrame:
    """Packs as the hourly rows ``read_rollups`` would give (unsorted; which hours are rows: ``_present``)."""
    present = _present(packs, columns)
    hour_us = (packs.day_us[:, None] + np.arange(HOURS) * HOUR_US).ravel()
    data: dict[str, pl.Series] = {
        "ts": pl.Series("ts", hour_us[present]).cast(pl.Datetime("us", "UTC")),
        "resource_id": pl.Series("resource_id", np.repeat(packs.resource_id, HOURS)[present], dtype=pl.Int32),
    }
    for column in columns:
        values = packs.values[column].ravel()[present]
        data[column] = (
            pl.Series(column, values, dtype=pl.Int32)
            if column == "sample_count"
            else pl.Series(column, values, nan_to_null=True)
        )
    order = [name for name, _ in ROLLUP_KINDS if name in {"ts", "resource_id", *columns}]
    return pl.DataFrame(data).select(order)
