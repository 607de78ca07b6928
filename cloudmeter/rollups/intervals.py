"""Each resource's sampling interval, hour by hour: the rows of ``resource_intervals`` as arrays.

The interval is a property of a resource's series, not of its manager: an AWS manager reads detailed-monitoring
instances every 60 s and the others every 300 s, and CloudWatch serves old data at coarser periods. Capture
records, per resource, the interval of the batches that brought its samples, over the UTC hours they fall in
(``assign``); the rollups read it back (``Intervals``). A resource's interval in an hour is:

- that of its row covering the hour (``valid_from <= hour < valid_to``);
- after its last row, the last row's (the newest interval holds until a capture says otherwise);
- before its first row or between two rows, none (0): nothing was captured there, and the resource adds
  nothing to the expected counts of its parents.

Where batches of different intervals cover one hour, the hour keeps the finest: stored samples are never
deleted, so the finer samples are still there and the finer interval is what they promise.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

HOUR_S = 3600
_KEY_SHIFT = 34  # epoch seconds < 2**34 (year 2514); resource ids < 2**29

Int32s = npt.NDArray[np.int32]
Ints = npt.NDArray[np.int64]
#: One resource's rows: (valid_from_s, valid_to_s, interval_s), sorted, not overlapping.
Spans = list[tuple[int, int, int]]


@dataclass(frozen=True)
class Intervals:
    """Rows of every resource, sorted by (``resource_id``, ``valid_from_s``).

    ``default_s`` is the interval of hours no row gives one (0: unknown, adds nothing to expected counts;
    ``uniform`` sets it for a source whose every series has one interval). ``fallback_s`` is the grid a
    parent's series falls back to in an hour where no resource beneath it has a known interval (samples
    written without an interval).
    """

    resource_id: Int32s
    valid_from_s: Ints
    valid_to_s: Ints
    interval_s: Int32s
    default_s: int = 0
    fallback_s: int = 60

    def __post_init__(self) -> None:
        keys = (self.resource_id.astype(np.int64) << _KEY_SHIFT) + self.valid_from_s
        if len(keys) > 1 and not (np.diff(keys) > 0).all():
            raise ValueError("Intervals rows must be sorted by (resource, valid_from) and unique")
        for value in (*self.interval_s.tolist(), self.default_s or HOUR_S, self.fallback_s):
            if value <= 0 or HOUR_S % value:
                raise ValueError(f"a sampling interval must divide an hour, got {value} s")
        object.__setattr__(self, "_keys", keys)

    @classmethod
    def uniform(cls, interval_s: int) -> Intervals:
        """Every resource on ``interval_s`` at all times."""
        i32, i64 = np.zeros(0, np.int32), np.zeros(0, np.int64)
        return cls(i32, i64, i64, i32, interval_s, interval_s)

    @classmethod
    def from_spans(cls, spans: dict[int, Spans], default_s: int = 0, fallback_s: int = 60) -> Intervals:
        """From each resource's rows."""
        flat = [(rid, *span) for rid in sorted(spans) for span in spans[rid]]
        columns = list(zip(*flat, strict=True)) if flat else [(), (), (), ()]
        return cls(
            np.array(columns[0], np.int32),
            np.array(columns[1], np.int64),
            np.array(columns[2], np.int64),
            np.array(columns[3], np.int32),
            default_s,
            fallback_s,
        )

    def __len__(self) -> int:
        return len(self.resource_id)

    @property
    def finest_s(self) -> int:
        """The finest interval any series or parent grid can have (sizes the daily percentile heaps)."""
        known = [int(self.interval_s.min())] if len(self.interval_s) else []
        return min([*known, *([self.default_s] if self.default_s else []), self.fallback_s])

    def at(self, resource_id: Int32s, hour_s: Ints) -> Int32s:
        """The interval of each (resource, whole hour) pair, 0 where none is known (see the module docstring)."""
        if not len(self.resource_id):
            return np.full(len(hour_s), self.default_s, np.int32)
        rid = resource_id.astype(np.int64)
        keys: Ints = self._keys  # type: ignore[attr-defined]
        found = np.searchsorted(keys, (rid << _KEY_SHIFT) + hour_s, side="right") - 1
        safe = np.maximum(found, 0)
        mine = (found >= 0) & (self.resource_id[safe] == rid)
        after = np.minimum(safe + 1, len(keys) - 1)
        last = (safe == len(keys) - 1) | (self.resource_id[after] != self.resource_id[safe])
        ok = mine & ((hour_s < self.valid_to_s[safe]) | last)
        out: Int32s = np.where(ok, self.interval_s[safe], self.default_s).astype(np.int32)
        return out

    def grid(self, resource_id: Int32s, hours_s: Ints) -> Int32s:
        """``at`` for every resource and hour: shape (resources, hours)."""
        rid = np.repeat(resource_id, len(hours_s))
        hour = np.tile(hours_s, len(resource_id))
        out: Int32s = self.at(rid, hour).reshape(len(resource_id), len(hours_s))
        return out


def batch_hours(resource_id: Int32s, ts_s: Ints) -> tuple[Int32s, Ints, Ints]:
    """Per resource of a batch (sorted ids): the start of the hour of its first sample and the end of its last's."""
    ids, inverse = np.unique(resource_id, return_inverse=True)
    hours = ts_s - ts_s % HOUR_S
    first = np.full(len(ids), np.iinfo(np.int64).max)
    end = np.zeros(len(ids), np.int64)
    np.minimum.at(first, inverse, hours)
    np.maximum.at(end, inverse, hours + HOUR_S)
    return ids.astype(np.int32), first, end


class Recorded:
    """What one writer knows to be in ``resource_intervals`` already: per resource, whole hours ``[lo, hi)`` all
    at ``bound`` seconds or finer. A batch inside them at ``bound`` or coarser would change nothing (``assign``
    keeps the finer interval), so its resources need no round trip. The writer notes each batch it records;
    whoever owns the transaction ``clear``-s this when it rolls back."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget everything."""
        self._lo, self._hi, self._bound = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)

    def covers(self, ids: Int32s, first_s: Ints, end_s: Ints, interval_s: int) -> npt.NDArray[np.bool_]:
        """Which resources' hours ``[first_s, end_s)`` are recorded at ``interval_s`` or finer."""
        if not len(self._lo):
            return np.zeros(len(ids), np.bool_)
        inside = ids < len(self._lo)
        at = np.where(inside, ids, 0)
        bound = self._bound[at]
        return inside & (bound > 0) & (bound <= interval_s) & (self._lo[at] <= first_s) & (end_s <= self._hi[at])

    def note(self, ids: Int32s, first_s: Ints, end_s: Ints, interval_s: int) -> None:
        """Resources' hours ``[first_s, end_s)`` are now recorded at ``interval_s`` or finer (joined to what is
        known where the spans touch, under the coarser bound)."""
        if not len(ids):
            return
        size = int(ids.max()) + 1
        if size > len(self._lo):
            grow = size - len(self._lo)
            self._lo = np.concatenate([self._lo, np.zeros(grow, np.int64)])
            self._hi = np.concatenate([self._hi, np.zeros(grow, np.int64)])
            self._bound = np.concatenate([self._bound, np.zeros(grow, np.int64)])
        lo, hi, bound = self._lo[ids], self._hi[ids], self._bound[ids]
        touch = (bound > 0) & (first_s <= hi) & (end_s >= lo)
        self._lo[ids] = np.where(touch, np.minimum(lo, first_s), first_s)
        self._hi[ids] = np.where(touch, np.maximum(hi, end_s), end_s)
        self._bound[ids] = np.where(touch, np.maximum(bound, interval_s), interval_s)


def slots_in(interval_s: Int32s, hour_s: Ints, lo_s: int, hi_s: int) -> Ints:
    """Slots of each hour's grid (``hour + k * interval``) starting in ``[lo_s, hi_s)``; 0 where unknown.

    ``interval_s`` is (resources, hours) for the hours ``hour_s``; the result is summed over the hours, so a
    day whose local midnight falls inside an hour (half-hour zones) counts each slot once.
    """
    start = np.clip(lo_s - hour_s, 0, HOUR_S)
    stop = np.clip(hi_s - hour_s, 0, HOUR_S)
    step = np.maximum(interval_s, 1).astype(np.int64)
    count = -(-stop // step) - (-(-start // step))  # ceil(stop / step) - ceil(start / step)
    total: Ints = np.where(interval_s > 0, count, 0).sum(axis=1).astype(np.int64)
    return total


def value_at(spans: Spans, hour_s: int) -> int:
    """One resource's interval at ``hour_s`` from its rows (0: none)."""
    for k, (lo, hi, interval) in enumerate(spans):
        if lo <= hour_s < hi or (hour_s >= hi and k == len(spans) - 1):
            return interval
        if hour_s < lo:
            return 0
    return 0


def assign(spans: Spans, first_s: int, end_s: int, interval_s: int) -> Spans:
    """A resource's rows once a batch brought samples at ``interval_s`` in the whole hours ``[first_s, end_s)``.

    Those hours take ``interval_s``, or keep a finer interval they have a row for. Hours after them keep
    their interval, except when the batch reaches past the last row: the new interval then holds from there on
    (the hours between the old last row and the batch keep the old one). Adjacent equal rows merge.
    """
    if not spans:
        return [(first_s, end_s, interval_s)]
    rows = list(spans)
    last_from, last_to, last_interval = rows[-1]
    if first_s > last_to:  # the hours in between had the last row's interval: keep it written out
        rows[-1] = (last_from, first_s, last_interval)
    points = sorted({first_s, end_s, *(p for lo, hi, _ in rows for p in (lo, hi))})
    merged: Spans = []
    for lo, hi in itertools.pairwise(points):
        old = next((v for a, b, v in rows if a <= lo < b), 0)
        new = (min(old, interval_s) if old else interval_s) if first_s <= lo < end_s else old
        if not new:
            continue
        if merged and merged[-1][1] == lo and merged[-1][2] == new:
            merged[-1] = (merged[-1][0], hi, new)
        else:
            merged.append((lo, hi, new))
    return merged


def changed_hours(old: Spans, new: Spans, before_s: int) -> list[tuple[int, int]]:
    """The hour ranges ``[lo, hi)`` before ``before_s`` whose interval differs between two sets of rows."""
    points = sorted({p for lo, hi, _ in (*old, *new) for p in (lo, hi)})
    out: list[tuple[int, int]] = []
    for lo, upper in zip(points, [*points[1:], max(before_s, points[-1] if points else 0)], strict=True):
        hi = min(upper, before_s)
        if lo < hi and value_at(old, lo) != value_at(new, lo):
            if out and out[-1][1] == lo:
                out[-1] = (out[-1][0], hi)
            else:
                out.append((lo, hi))
    return out
