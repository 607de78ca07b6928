"""Who was placed where, when: ``resource_history`` periods as arrays, per hour or spread over groups' hours.

A period is read clipped to the window and to its resource's lifetime (``retired_at``). ``hourly`` expands
periods into one row per UTC hour they overlap (what chargeback prices, VM by VM); ``level_hours`` never
expands VMs: it spreads their periods straight into per (host, cluster or provider) and hour cells
(``rollups.spread``), so its cost grows with the periods and the groups' hours, not with VM-hours.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import numpy as np
import polars as pl
import psycopg
from psycopg import sql

from cloudmeter.model import KINDS, Window
from cloudmeter.rollups.spread import MemberIntervals, Spread, majority_groups, spread
from cloudmeter.storage import pgbinary
from cloudmeter.storage.readers import read_arrays, to_frame

HOUR_US: Final = 3_600_000_000

_PERIOD_KINDS = (
    ("resource_id", pgbinary.INT4),
    ("kind_code", pgbinary.INT4),
    ("parent_id", pgbinary.INT4),
    ("project_id", pgbinary.INT4),
    ("vcpus", pgbinary.INT4),
    ("memory_bytes", pgbinary.INT8),
    ("start_us", pgbinary.INT8),
    ("end_us", pgbinary.INT8),
    ("cores", pgbinary.FLOAT8),
    ("memory", pgbinary.FLOAT8),
)
#: What a period offers (a host: a Kubernetes node's allocatable where known, else its size) or holds (a
#: container: its requests; a VM: its size), in cores and bytes: what capacity and allocation sum.
_HELD = """CASE r.kind WHEN 'host' THEN coalesce(
                    CASE WHEN r.tags->>'allocatable_cpu_cores' ~ '^[0-9]+(\\.[0-9]+)?$'
                         THEN (r.tags->>'allocatable_cpu_cores')::float8 END, h.vcpus)
                  WHEN 'container' THEN h.cpu_request_cores ELSE h.vcpus END,
              CASE WHEN r.kind = 'host' AND r.tags->>'allocatable_memory_bytes' ~ '^[0-9]+$'
                   THEN (r.tags->>'allocatable_memory_bytes')::float8 ELSE h.memory_bytes END"""
_PERIODS = sql.SQL(
    """SELECT h.resource_id, array_position(%s::text[], r.kind)::int4 - 1, h.parent_id, p.id, h.vcpus, h.memory_bytes,
              (extract(epoch FROM greatest(h.valid_from, %s::timestamptz)) * 1000000)::int8,
              (extract(epoch FROM e.until) * 1000000)::int8, """
    + _HELD
    + """
       FROM resource_history h
       JOIN resources r ON r.id = h.resource_id
       LEFT JOIN resources p ON p.manager_id = r.manager_id AND p.kind = 'project' AND p.ems_ref = h.project
       CROSS JOIN LATERAL (SELECT least(coalesce(h.valid_to, 'infinity'), coalesce(r.retired_at, 'infinity'),
                                        %s::timestamptz) AS until) e
       WHERE h.valid_from < %s AND (h.valid_to IS NULL OR h.valid_to > %s) AND r.kind = ANY(%s)
         AND e.until > greatest(h.valid_from, %s::timestamptz)
       ORDER BY h.resource_id, h.valid_from"""
)
_INTERVAL_KINDS = (
    ("resource_id", pgbinary.INT4),
    ("from_us", pgbinary.INT8),
    ("to_us", pgbinary.INT8),
    ("interval_s", pgbinary.INT4),
)
_INTERVALS = sql.SQL(
    """SELECT resource_id, (extract(epoch FROM valid_from) * 1000000)::int8,
              (extract(epoch FROM valid_to) * 1000000)::int8, interval_s
       FROM resource_intervals WHERE resource_id = ANY(%s) AND valid_from < %s AND valid_to > %s
       ORDER BY resource_id, valid_from"""
)


def read_periods(conn: psycopg.Connection, window: Window, kinds: tuple[str, ...]) -> pl.DataFrame:
    """Placement periods of resources of ``kinds`` overlapping ``window``, clipped to it and to each resource's
    lifetime, sorted by (resource_id, start): resource_id, kind, parent_id, project_id, vcpus, memory_bytes,
    start_us, end_us (epoch microseconds), and the ``cores`` and ``memory`` bytes it offers or holds (a host's
    size, or a Kubernetes node's allocatable; a VM's size; a container's requests)."""
    params = [list(KINDS), window.start, window.end, window.end, window.start, list(kinds), window.start]
    frame = to_frame(read_arrays(conn, _PERIODS, params, _PERIOD_KINDS), _PERIOD_KINDS)
    kind = pl.col("kind_code").replace_strict(dict(enumerate(KINDS)), return_dtype=pl.String).alias("kind")
    return frame.with_columns(kind).drop("kind_code").select("resource_id", "kind", *frame.columns[2:])


def hour_pieces(start_us: np.ndarray, end_us: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Periods ``[start_us, end_us)`` cut at UTC hours, in period then time order: each piece's period, its
    hour (epoch microseconds) and the seconds of that hour it covers."""
    first = start_us // HOUR_US
    count = (end_us - 1) // HOUR_US - first + 1
    row = np.repeat(np.arange(len(start_us)), count)
    hour_us = (first[row] + np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)) * HOUR_US
    seconds = (np.minimum(end_us[row], hour_us + HOUR_US) - np.maximum(start_us[row], hour_us)) / 1e6
    return row, hour_us, seconds


def hourly(periods: pl.DataFrame) -> pl.DataFrame:
    """``periods`` (``read_periods``) as one row per UTC hour each overlaps, with the ``seconds`` of the hour it
    covers: ts, resource_id, kind, parent_id, project_id, vcpus, memory_bytes, seconds."""
    row, hour_us, seconds = hour_pieces(periods["start_us"].to_numpy(), periods["end_us"].to_numpy())
    expanded = periods.drop("start_us", "end_us")[row]
    return expanded.select(
        pl.Series("ts", hour_us).cast(pl.Datetime("us", "UTC")),
        *expanded.columns,
        pl.Series("seconds", seconds),
    )


def dense(ids: np.ndarray, universe: np.ndarray) -> np.ndarray:
    """The position of each of ``ids`` in the sorted unique ``universe`` (-1 where absent or null)."""
    ids = np.nan_to_num(ids.astype(np.float64), nan=-1).astype(np.int64)
    at = np.clip(np.searchsorted(universe, ids), 0, max(len(universe) - 1, 0))
    hit = (universe[at] == ids) if len(universe) else np.zeros(len(ids), np.bool_)
    return np.where(hit, at, -1).astype(np.int32)


def spread_periods(
    periods: pl.DataFrame,
    window: Window,
    group: pl.Series,
    groups: np.ndarray,
    via: tuple[np.ndarray, np.ndarray] | None = None,
    intervals: MemberIntervals | None = None,
) -> Spread:
    """``rollups.spread`` of ``periods`` (one kind) over the window's hours, into the cells of ``groups``
    (sorted ids): each period's own ``group`` id, or its parent's group that hour where ``via`` (the parents'
    sorted ids, their (parents, hours) group positions) has one. Values: cores and memory bytes offered or held."""
    members = np.unique(periods["resource_id"].to_numpy())
    hours = _hours(window)
    parents, parent_group = via if via is not None else (np.zeros(0, np.int64), np.zeros((0, hours), np.int32))
    values = periods.select("cores", "memory").to_numpy()
    return spread(
        dense(periods["resource_id"].to_numpy(), members),
        periods["start_us"].to_numpy(),
        periods["end_us"].to_numpy(),
        np.ascontiguousarray(values, np.float64),
        dense(group.to_numpy(), groups),
        dense(periods["parent_id"].to_numpy(), parents),
        parent_group,
        intervals,
        epoch_us(window.start),
        len(groups),
    )


def group_grid(periods: pl.DataFrame, window: Window, group: pl.Series, groups: np.ndarray) -> np.ndarray:
    """(members, hours): the position in ``groups`` of each member's ``group`` hour by hour, the placement that
    covers most of the hour winning (-1: not placed)."""
    members = np.unique(periods["resource_id"].to_numpy())
    return majority_groups(
        dense(periods["resource_id"].to_numpy(), members),
        periods["start_us"].to_numpy(),
        periods["end_us"].to_numpy(),
        dense(group.to_numpy(), groups),
        epoch_us(window.start),
        len(members),
        _hours(window),
    )


def epoch_us(moment: datetime) -> int:
    """``moment`` in epoch microseconds, exactly."""
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def majority_parents(periods: pl.DataFrame, window: Window) -> pl.DataFrame:
    """Each member's parent hour by hour, the placement covering most of the hour winning (``group_grid``):
    ts, resource_id, parent_id (hours in which a member was placed under no parent are left out)."""
    members = np.unique(periods["resource_id"].to_numpy())
    parents = np.unique(periods["parent_id"].drop_nulls().to_numpy())
    grid = group_grid(periods, window, periods["parent_id"], parents)
    member, hour = np.nonzero(grid >= 0)
    return pl.DataFrame(
        {
            "ts": pl.Series(epoch_us(window.start) + hour.astype(np.int64) * HOUR_US).cast(pl.Datetime("us", "UTC")),
            "resource_id": pl.Series(members[member], dtype=pl.Int32),
            "parent_id": pl.Series(parents[grid[member, hour]], dtype=pl.Int32),
        }
    )


def _hours(window: Window) -> int:
    return int((window.end - window.start).total_seconds() // 3600)


def member_intervals(conn: psycopg.Connection, window: Window, ids: np.ndarray, usual_s: np.ndarray) -> MemberIntervals:
    """The sampling intervals of resources ``ids`` (sorted unique) in ``window``: ``resource_intervals`` rows,
    else ``usual_s`` (0 where unknown)."""
    arrays = read_arrays(conn, _INTERVALS, [ids.tolist(), window.end, window.start], _INTERVAL_KINDS)
    owner = dense(arrays["resource_id"], ids)
    rows = np.searchsorted(owner, np.arange(len(ids) + 1)).astype(np.int64)
    return MemberIntervals(
        usual_s.astype(np.int32),
        rows,
        arrays["from_us"].astype(np.int64),
        arrays["to_us"].astype(np.int64),
        arrays["interval_s"].astype(np.int32),
    )


def recorded_interval(intervals: MemberIntervals, member: np.ndarray, ts_us: np.ndarray) -> np.ndarray:
    """The interval of the recorded row covering each (member, instant), 0 where none does."""
    owner = np.repeat(np.arange(len(intervals.rows) - 1, dtype=np.int64), np.diff(intervals.rows))
    if not len(owner):
        return np.zeros(len(member), np.int32)
    keys = (owner << 33) + intervals.row_from_us // 1_000_000  # epoch seconds < 2**33
    found = np.searchsorted(keys, (member.astype(np.int64) << 33) + ts_us // 1_000_000, side="right") - 1
    safe = np.maximum(found, 0)
    covered = (found >= 0) & (member >= 0) & (owner[safe] == member) & (ts_us < intervals.row_to_us[safe])
    interval: np.ndarray = np.where(covered, intervals.row_interval_s[safe], 0).astype(np.int32)
    return interval
