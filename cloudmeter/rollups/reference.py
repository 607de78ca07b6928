"""Plain numpy time rollup: samples -> per (resource, bucket) avg, min, max, p95, time of max, counts.

Buckets are given by their edges in epoch seconds (hours, or local days from ``rollups.zones``), so 23- and
25-hour days need no special case. The percentile is numpy's default (linear interpolation between closest
ranks); the time of the max is the earliest sample reaching it. Input needs no order but must be unique on
(resource, ts). Vectorised: no per-row Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class TimeRollup:
    """Rows of a time rollup, one per (resource, bucket) that has samples, sorted by both.

    ``avg``, ``min``, ``max``, ``p95`` have shape (rows, metrics) and are NaN where a metric has no sample;
    ``max_ts`` is -1 there.
    """

    resource_id: npt.NDArray[np.int32]
    bucket_start_s: Ints
    avg: Floats
    min: Floats
    max: Floats
    p95: Floats
    max_ts: Ints
    sample_count: npt.NDArray[np.int32]
    expected_count: npt.NDArray[np.int32]

    def __len__(self) -> int:
        return len(self.resource_id)


def linear_percentile(ordered: Floats, starts: Ints, counts: Ints, q: float) -> Floats:
    """Per group, numpy's 'linear' percentile ``q`` (0-1) of ``ordered[start:start+count]`` (sorted)."""
    h = q * (counts - 1).astype(np.float64)
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, counts - 1)
    a = ordered[starts + lo]
    b = ordered[starts + hi]
    t = h - lo
    diff = b - a
    # numpy's _lerp: a + diff*t, computed from the upper end when t >= 0.5 for accuracy
    result: Floats = np.where(t >= 0.5, b - diff * (1.0 - t), a + diff * t)
    return result


def _group_bounds(keys: list[npt.NDArray[np.int64]]) -> tuple[Ints, Ints]:
    n = len(keys[0])
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    change = np.zeros(n, dtype=np.bool_)
    change[0] = True
    for key in keys:
        change[1:] |= key[1:] != key[:-1]
    starts = np.flatnonzero(change).astype(np.int64)
    counts = np.diff(np.append(starts, n)).astype(np.int64)
    return starts, counts


def rollup_buckets(
    resource_id: npt.NDArray[np.int32],
    ts_s: Ints,
    values: Floats,
    edges_s: Ints,
    interval_s: int | Mapping[int, int],
    q: float = 0.95,
) -> TimeRollup:
    """Roll samples up into the buckets ``[edges_s[k], edges_s[k+1])``; samples outside them are ignored.

    ``interval_s`` is every resource's interval, or each one's (a resource missing from the mapping has none).
    ``expected_count`` is the bucket's slots on the resource's grid, or its samples there if more (coverage never
    exceeds 100 %).
    """
    bucket = np.searchsorted(edges_s, ts_s, side="right") - 1
    inside = (bucket >= 0) & (bucket < len(edges_s) - 1)
    rid = resource_id[inside].astype(np.int64)
    bucket = bucket[inside].astype(np.int64)
    ts = ts_s[inside]
    vals = values[inside]
    order = np.lexsort((ts, bucket, rid))
    rid, bucket, ts, vals = rid[order], bucket[order], ts[order], vals[order]
    starts, counts = _group_bounds([rid, bucket])
    rows, metrics = len(starts), vals.shape[1]
    group = np.repeat(np.arange(rows), counts)
    out = {name: np.full((rows, metrics), np.nan) for name in ("avg", "min", "max", "p95")}
    max_ts = np.full((rows, metrics), -1, dtype=np.int64)
    for m in range(metrics):
        column = vals[:, m]
        valid = ~np.isnan(column)
        n_valid = np.bincount(group[valid], minlength=rows)
        has = n_valid > 0
        sums = np.bincount(group[valid], weights=column[valid], minlength=rows)
        out["avg"][has, m] = sums[has] / n_valid[has]
        # sort valid samples by (group, value, ts) so each group's run is ordered by value
        by_value = np.lexsort((ts[valid], column[valid], group[valid]))
        ordered = column[valid][by_value]
        v_starts = np.concatenate(([0], np.cumsum(n_valid)[:-1])).astype(np.int64)
        g = np.flatnonzero(has)
        out["min"][g, m] = ordered[v_starts[g]]
        last = v_starts[g] + n_valid[g] - 1
        out["max"][g, m] = ordered[last]
        # earliest time of the max: first position in the run holding the max value
        first_max = _first_in_run(ordered, v_starts[g], last)
        max_ts[g, m] = ts[valid][by_value][first_max]
        out["p95"][g, m] = linear_percentile(ordered, v_starts[g], n_valid[g].astype(np.int64), q)
    widths = np.diff(edges_s)
    own = rid[starts]
    if isinstance(interval_s, Mapping):
        intervals = np.array([interval_s.get(int(r), 0) for r in own.tolist()], np.int64)
    else:
        intervals = np.full(len(own), interval_s, np.int64)
    slots = np.where(intervals > 0, widths[bucket[starts]] // np.maximum(intervals, 1), 0)
    return TimeRollup(
        resource_id=rid[starts].astype(np.int32),
        bucket_start_s=edges_s[bucket[starts]],
        avg=out["avg"],
        min=out["min"],
        max=out["max"],
        p95=out["p95"],
        max_ts=max_ts,
        sample_count=counts.astype(np.int32),
        expected_count=np.maximum(slots, counts).astype(np.int32),
    )


def _first_in_run(ordered: Floats, starts: Ints, last: Ints) -> Ints:
    """For each run ``ordered[start:last+1]`` (ascending), the first index holding the run's last value."""
    first = last.copy()
    # walk back over equal values; runs of ties are short, so iterate only while any run still has a tie
    while True:
        step = (first > starts) & (ordered[np.maximum(first - 1, 0)] == ordered[last])
        if not step.any():
            return first
        first[step] -= 1
