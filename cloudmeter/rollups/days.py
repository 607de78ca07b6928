"""Open local days: mergeable partials of every resource, folded in as hours close, turned into daily rows.

A day keeps, per resource and metric, sum, count, min, max (with its earliest time) and a bounded heap of
the largest values; that heap holds every value the day's exact p95 reads (``kernels.top_needed`` of the
longest possible day on the source grid), so daily p95 is exact, not a sketch. Sums add hour by hour in
time order, which makes a day's row the same bits whichever path fed it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cloudmeter.rollups import kernels
from cloudmeter.rollups.series import Floats, Int32s, Ints, Rows, Series, int_or_null
from cloudmeter.rollups.topology import Topology

#: The longest local day (a 25-hour DST day).
MAX_DAY_S = 25 * 3600


def heap_size(interval_s: int, q: float) -> int:
    """Heap capacity that makes the percentile ``q`` of any day on an ``interval_s`` grid exact."""
    return int(kernels.top_needed(MAX_DAY_S // interval_s + 1, q))


@dataclass(frozen=True)
class BucketStats:
    """Per segment (a resource's rows within one bucket): its bucket and mergeable partials."""

    resource_id: Int32s
    bucket: Ints
    starts: Ints
    sum: Floats
    count: Int32s
    min: Floats
    max: Floats
    max_ts: Ints
    samples: Ints
    capacity: Floats

    def __len__(self) -> int:
        return len(self.bucket)


def bucket_stats(series: Series, edges_s: Ints) -> BucketStats:
    """Partials of ``series`` per (resource, bucket ``[edges_s[b], edges_s[b+1])``)."""
    starts, bucket = kernels.segments(series.resource_id, series.ts_s, edges_s)
    n, metrics = len(bucket), series.values.shape[1]
    total, low, high = np.empty((n, metrics)), np.empty((n, metrics)), np.empty((n, metrics))
    count, max_ts = np.empty((n, metrics), np.int32), np.empty((n, metrics), np.int64)
    kernels.segment_stats(series.values, series.ts_s, starts, total, count, low, high, max_ts)
    heads = starts[:-1]
    if n:
        samples = np.add.reduceat(series.samples.astype(np.int64), heads)
        capacity = np.fmax.reduceat(series.capacity, heads, axis=0)
    else:
        samples, capacity = np.zeros(0, np.int64), np.zeros((0, series.capacity.shape[1]))
    return BucketStats(series.resource_id[heads], bucket, starts, total, count, low, high, max_ts, samples, capacity)


def resource_runs(resource_id: Int32s) -> Ints:
    """Bounds of the runs of equal consecutive ids (n_runs + 1 values)."""
    change = np.flatnonzero(resource_id[1:] != resource_id[:-1]) + 1
    return np.concatenate(([0], change, [len(resource_id)])).astype(np.int64)


@dataclass
class DayAccumulator:
    """One local day of one time zone, for resources addressed by their dense position."""

    tz: str
    start_s: int
    end_s: int
    size: int
    heap: int
    metrics: int
    sum: Floats = field(init=False)
    count: Int32s = field(init=False)
    min: Floats = field(init=False)
    max: Floats = field(init=False)
    max_ts: Ints = field(init=False)
    tops: npt.NDArray[np.float64] = field(init=False)
    fill: Int32s = field(init=False)
    samples: Ints = field(init=False)
    capacity: Floats = field(init=False)
    pairs: list[Ints] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        shape = (self.size, self.metrics)
        self.sum = np.zeros(shape)
        self.count = np.zeros(shape, np.int32)
        self.min = np.full(shape, np.inf)
        self.max = np.full(shape, -np.inf)
        self.max_ts = np.full(shape, kernels.NO_TS, np.int64)
        self.tops = np.empty((*shape, self.heap))
        self.fill = np.zeros(shape, np.int32)
        self.samples = np.zeros(self.size, np.int64)
        self.capacity = np.full((self.size, 2), np.nan)

    def feed(self, series: Series, stats: BucketStats, piece_start_s: Ints, position: Int32s) -> None:
        """Fold the pieces of ``stats`` that start inside this day (``position``: dense index per segment)."""
        inside = (piece_start_s[stats.bucket] >= self.start_s) & (piece_start_s[stats.bucket] < self.end_s)
        target = np.where(inside & (position >= 0), position, -1).astype(np.int32)
        if not (target >= 0).any():
            return
        kernels.merge_partials(
            target, stats.sum, stats.count, stats.min, stats.max, stats.max_ts,
            self.sum, self.count, self.min, self.max, self.max_ts,
        )  # fmt: skip
        kernels.push_tops(series.values, stats.starts, target, resource_runs(stats.resource_id), self.tops, self.fill)
        hit = target >= 0
        np.add.at(self.samples, target[hit], stats.samples[hit])
        np.fmax.at(self.capacity, target[hit], stats.capacity[hit])

    def remap(self, old_ids: Int32s, topology: Topology) -> None:
        """Re-address the partials by ``topology``'s positions (ids gone from it are dropped)."""
        position = topology.dense(old_ids)
        kept = position >= 0
        fresh = DayAccumulator(self.tz, self.start_s, self.end_s, len(topology), self.heap, self.metrics)
        for name in ("sum", "count", "min", "max", "max_ts", "tops", "fill", "samples", "capacity"):
            getattr(fresh, name)[position[kept]] = getattr(self, name)[kept]
            setattr(self, name, getattr(fresh, name))
        self.size = len(topology)

    def add_pairs(self, parent_child: Ints) -> None:
        """Remember (parent << 32 | child) keys of children that sent data this day."""
        self.pairs.append(parent_child)

    def rows(
        self,
        resource_id: Int32s,
        expected: Ints,
        q: float,
        children: Ints,
        is_parent: npt.NDArray[np.bool_],
    ) -> Rows:
        """Daily rows of every resource with data (``resource_id`` maps dense positions to ids).

        Per dense position, ``expected`` is the day's expected count and ``children`` the children placed
        under it during the day; ``is_parent`` marks the positions rolled up from children.
        """
        have = np.flatnonzero(self.samples > 0)
        count = self.count[have]
        with np.errstate(invalid="ignore", divide="ignore"):
            avg = np.where(count > 0, self.sum[have] / count, np.nan)
        p95 = np.empty(count.shape)
        kernels.heap_percentiles(self.tops[have], self.fill[have], count, q, p95)
        ids = resource_id[have]
        with_data = _children_with_data(self.pairs)
        parent = is_parent[have]
        return Rows(
            tz=self.tz,
            resource_id=ids,
            ts_s=np.full(len(have), self.start_s, np.int64),
            avg=avg,
            min=np.where(count > 0, self.min[have], np.nan),
            max=np.where(count > 0, self.max[have], np.nan),
            p95=p95,
            max_ts=self.max_ts[have],
            sample_count=self.samples[have],
            expected_count=expected[have].astype(np.int64),
            vcpus=int_or_null(self.capacity[have, 0]),
            memory_bytes=int_or_null(self.capacity[have, 1]),
            child_count=np.where(parent, children[have], -1),
            children_with_data=np.where(parent, [with_data.get(int(r), 0) for r in ids], -1).astype(np.int64),
        )


def _children_with_data(pairs: list[Ints]) -> dict[int, int]:
    if not pairs:
        return {}
    unique = np.unique(np.concatenate(pairs))
    parents, counts = np.unique(unique >> 32, return_counts=True)
    return dict(zip(parents.tolist(), counts.tolist(), strict=True))
