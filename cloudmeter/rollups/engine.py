"""The rollup engine: raw samples -> hourly rows of every level -> daily rows per time zone.

``Roller.roll(start, end, leaves)`` takes complete hours: raw samples in chunks of resources (each chunk
holding all of its resources' samples in the range, chunks in resource order). For each chunk it yields the
hourly rows of those resources, folds them into the open local days, and sums them into their parents'
slots (placed by each sample's own time). Once every chunk is in, the parent levels follow (host, project,
cluster, provider, region), each a series of its own that goes through the same kernels. ``close(until)``
yields the daily rows of the days that have ended.

Every resource has its own sampling interval, hour by hour (``rollups.intervals``). A VM's expected count in
an hour is what its interval promises there (``3600 // interval``); a parent's is the sum of those of the VMs
placed beneath it during the bucket. A parent's series is, hour by hour, on the finest grid of the VMs placed
beneath it (the gcd of their intervals), each child's row held over its own interval: a 300-s VM adds its
value to five slots of a 60-s neighbour's grid, never five 60-s samples into one slot. An expected count is
never below the samples it covers (a source that sends more than its interval promises counts as complete),
so coverage never exceeds 100 %.

In-stream capture feeds one hour at a time from memory; rebuild feeds days of stored samples in chunks of
resources. The arithmetic happens in the same order either way, so both produce the same bits.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from cloudmeter.model import KINDS, METRICS
from cloudmeter.rollups import kernels
from cloudmeter.rollups.days import BucketStats, DayAccumulator, bucket_stats, heap_size
from cloudmeter.rollups.intervals import Intervals, slots_in
from cloudmeter.rollups.series import CAPACITY_OF, PERCENT_OF, Floats, Int32s, Ints, Rows, Series, int_or_null
from cloudmeter.rollups.topology import Topology
from cloudmeter.rollups.zones import HOUR_S, day_edges

#: Default percentile of the ``_p95`` columns.
Q = 0.95
#: Parent levels in roll-up order, after the leaves (VMs and containers, whose samples are their own): a level is
#: complete once every level before it has been summed into it. Pods sum their containers, hosts their VMs and
#: pods, projects the leaves that name them.
LEVELS = ("pod", "host", "project", "cluster", "provider", "region")
_CODE = {kind: KINDS.index(kind) for kind in LEVELS}
_PROJECT = _CODE["project"]


def _run_heads(*keys: npt.NDArray[np.integer]) -> npt.NDArray[np.intp]:
    """Rows where any key differs from the previous row (the first row included)."""
    n = len(keys[0])
    change = np.zeros(n, dtype=np.bool_)
    if n:
        change[0] = True
    for key in keys:
        change[1:] |= key[1:] != key[:-1]
    return np.flatnonzero(change)


def _count_table(keys: Ints) -> tuple[Ints, Ints]:
    unique, counts = np.unique(keys, return_counts=True)
    return unique, counts.astype(np.int64)


def _lookup(table: tuple[Ints, Ints], keys: Ints) -> Ints:
    """The value of each key in a (sorted keys, values) table, 0 where absent."""
    unique, counts = table
    at = np.clip(np.searchsorted(unique, keys), 0, max(len(unique) - 1, 0))
    hit = (unique[at] == keys) if len(unique) else np.zeros(len(keys), np.bool_)
    result: Ints = np.where(hit, counts[at] if len(unique) else 0, 0)
    return result


class _GridSums:
    """One parent kind's summed series over the range: per parent and hour, the slots of its own grid."""

    def __init__(self, ids: Int32s, base_s: int, grid: Int32s) -> None:
        self.ids, self.base_s, self.grid = ids, base_s, grid
        self.hours = grid.shape[1]
        slots = np.where(grid > 0, HOUR_S // np.maximum(grid, 1), 0).astype(np.int64)
        flat = slots.ravel()
        self.offset = (np.cumsum(flat) - flat).reshape(grid.shape)
        total = int(flat.sum())
        self.sum = np.zeros((total, len(METRICS)))
        self.count = np.zeros((total, len(METRICS)), np.int32)
        self.capacity = np.zeros((total, len(CAPACITY_OF)))
        self.samples = np.zeros(total, np.int32)
        self.covered = np.zeros(total, np.int32)
        #: (parent * hours + hour) << 32 | child, for every child that sent data in that hour
        self.hour_pairs: list[Ints] = []

    def add(self, series: Series, parent_pos: Int32s) -> None:
        assert series.interval_s is not None
        kernels.grid_sums(
            series.values, series.ts_s, series.samples, series.interval_s, series.resource_id, parent_pos,
            series.capacity, CAPACITY_OF, self.base_s, self.grid, self.offset,
            self.sum, self.count, self.capacity, self.samples, self.covered,
        )  # fmt: skip

    def series(self, topology: Topology) -> Series:
        """The parents' own series: one row per slot some child covers; percentages recomputed."""
        t = np.flatnonzero(self.covered)
        cell = np.searchsorted(self.offset.ravel(), t, side="right") - 1
        p, h = np.divmod(cell, self.hours)
        grid = self.grid[p, h]
        rid = self.ids[p]
        ts: Ints = self.base_s + h * HOUR_S + (t - self.offset.ravel()[cell]) * grid.astype(np.int64)
        values = np.where(self.count[t] > 0, self.sum[t], np.nan)
        own = topology.capacity_at(topology.place(rid, ts))
        reported = self.count[t][:, CAPACITY_OF] > 0
        derived = np.where(reported, self.capacity[t], np.nan)  # nobody reported: unknown, not 0
        capacity = np.where(np.isnan(own), derived, own)
        for pct, absolute, column in PERCENT_OF:
            cap = capacity[:, column]
            with np.errstate(invalid="ignore", divide="ignore"):
                values[:, pct] = np.where(cap > 0, 100.0 * values[:, absolute] / cap, np.nan)
        return Series(rid, ts, values, self.samples[t], capacity, grid.astype(np.int32))


def _parent_ids(topology: Topology) -> Int32s:
    """Ids that are someone's parent or project (their rows come from children), sorted."""
    ids = np.union1d(topology.parent_id[topology.parent_id >= 0], topology.project_id[topology.project_id >= 0])
    return ids.astype(np.int32)


def _parents(topology: Topology) -> npt.NDArray[np.bool_]:
    """Which positions of ``topology`` are someone's parent or project."""
    position = topology.dense(_parent_ids(topology))
    mask = np.zeros(len(topology), np.bool_)
    mask[position[position >= 0]] = True
    return mask


@dataclass(frozen=True)
class _Placed:
    """Per (parent, bucket) with children placed under it: its direct children, the expected count of the leaves
    beneath them, and the gcd of those leaves' intervals (0: none known)."""

    key: Ints  # parent * buckets + bucket, sorted
    children: Ints
    expected: Ints
    grid: Ints
    buckets: int

    def at(self, parent: Int32s, bucket: Ints | int) -> tuple[Ints, Ints]:
        """(children, expected) of each (``parent``, ``bucket``); 0 where nothing was placed."""
        keys = parent.astype(np.int64) * self.buckets + bucket
        return _lookup((self.key, self.children), keys), _lookup((self.key, self.expected), keys)

    def grids(self, ids: Int32s, fallback_s: int) -> Int32s:
        """(ids, buckets): each parent's grid per bucket, ``fallback_s`` where children but no interval are
        known, 0 where nothing was placed."""
        keys = ids.astype(np.int64)[:, None] * self.buckets + np.arange(self.buckets)
        grid = _lookup((self.key, self.grid), keys.ravel())
        placed = _lookup((self.key, self.children), keys.ravel()) > 0
        out: Int32s = np.where(placed, np.where(grid > 0, grid, fallback_s), 0).reshape(keys.shape).astype(np.int32)
        return out


def _placed(topology: Topology, edges_s: Ints, leaf_expected: Ints, leaf_interval: Int32s | None) -> _Placed:
    """Children, expected counts and grids of every parent in the buckets ``[edges_s[b], edges_s[b+1])``.

    ``leaf_expected`` and ``leaf_interval`` are (resources in topology order, buckets). A leaf (nobody's
    parent: a VM, whose samples are its own) counts once under each parent it was placed under in the
    bucket; a child that is a parent brings the leaves beneath it in that bucket, so the levels are summed
    bottom-up in ``LEVELS`` order.
    """
    buckets = len(edges_s) - 1
    nested = _parent_ids(topology)
    relations = {relation: topology.placed_children(relation, edges_s) for relation in ("parent", "project")}
    key, children, expected, grid = (np.zeros(0, np.int64) for _ in range(4))
    intervals = np.zeros(leaf_expected.shape, np.int64) if leaf_interval is None else leaf_interval.astype(np.int64)
    for kind in LEVELS:
        parent, bucket, child = relations["project" if kind == "project" else "parent"]
        mine = topology.kind_of(parent.astype(np.int32)) == _CODE[kind]
        parent, bucket, child = parent[mine], bucket[mine], child[mine]
        below = child.astype(np.int64) * buckets + bucket  # of the levels done
        position = topology.dense(child)
        known = position >= 0
        leaf = ~np.isin(child, nested)
        at = (np.maximum(position, 0), bucket)
        below_expected = np.where(leaf, np.where(known, leaf_expected[at], 0), _lookup((key, expected), below))
        below_grid = np.where(leaf, np.where(known, intervals[at], 0), _lookup((key, grid), below))
        level, inverse = np.unique(parent * buckets + bucket, return_inverse=True)
        counted = np.bincount(inverse, minlength=len(level))
        summed = np.bincount(inverse, weights=below_expected, minlength=len(level)).astype(np.int64)
        order = np.argsort(inverse, kind="stable")
        heads = np.searchsorted(inverse[order], np.arange(len(level)))
        gcds = np.gcd.reduceat(below_grid[order], heads) if len(level) else np.zeros(0, np.int64)
        parts = ((key, level), (children, counted), (expected, summed), (grid, gcds))
        key, children, expected, grid = (np.concatenate(pair) for pair in parts)
        order = np.argsort(key)
        key, children, expected, grid = key[order], children[order], expected[order], grid[order]
    return _Placed(key, children, expected, grid, buckets)


def leaf_series(topology: Topology, resource_id: Int32s, ts_s: Ints, values: Floats) -> Series:
    """Raw samples (sorted, unique) as a series: one sample each, capacity from the placement at that time."""
    capacity = topology.capacity_at(topology.place(resource_id, ts_s))
    return Series(resource_id, ts_s, values, np.ones(len(ts_s), np.int32), capacity)


class Roller:
    """Rolls one manager's samples up in time and topology; keeps the open local days between calls.

    ``intervals`` gives each resource's sampling interval hour by hour; a plain number puts every resource on
    that interval at all times.
    """

    def __init__(self, topology: Topology, intervals: Intervals | int, time_zones: Iterable[str], q: float = Q) -> None:
        self.topology, self.q = topology, q
        if isinstance(intervals, int):
            if intervals <= 0 or HOUR_S % intervals:
                raise ValueError(f"the sample interval must divide an hour, got {intervals} s")
            intervals = Intervals.uniform(intervals)
        self.intervals = intervals
        self.time_zones = tuple(dict.fromkeys(time_zones))
        self._heap = heap_size(intervals.finest_s, q)
        self._days: dict[tuple[str, int], DayAccumulator] = {}
        self._is_parent = _parents(topology)
        #: Raw rows left out so far of resources unknown to the topology, and those resources' ids
        self.dropped_rows = 0
        self.dropped_ids: set[int] = set()
        #: Raw rows of parents left out so far: kept raw (their rollups come from their children), e.g. the
        #: samples a vSphere host measures of itself
        self.parent_rows = 0

    @property
    def open_days(self) -> list[tuple[str, int, int]]:
        """(tz, start, end) of the days holding partials, oldest first."""
        return sorted((d.tz, d.start_s, d.end_s) for d in self._days.values())

    def use_intervals(self, intervals: Intervals) -> bool:
        """Switch to newer intervals (a capture recorded some); False if the open days' percentile heaps are too
        small for a finer one (the caller then starts over from storage)."""
        if heap_size(intervals.finest_s, self.q) > self._heap and self._days:
            return False
        self.intervals, self._heap = intervals, max(self._heap, heap_size(intervals.finest_s, self.q))
        return True

    def roll(self, start_s: int, end_s: int, leaves: Iterable[Series]) -> Iterator[Rows]:
        """Hourly rows of every level for the whole hours ``[start_s, end_s)``; daily partials kept."""
        if start_s % HOUR_S or end_s % HOUR_S or end_s <= start_s:
            raise ValueError(f"roll needs whole hours, got [{start_s}, {end_s})")
        hours = np.arange(start_s, end_s + 1, HOUR_S, dtype=np.int64)
        cuts = [day_edges(tz, start_s, end_s) for tz in self.time_zones]
        pieces = np.union1d(hours, np.concatenate(cuts)) if cuts else hours
        pieces = pieces[(pieces >= start_s) & (pieces <= end_s)]
        days = self._days_over(start_s, end_s)
        topology = self.topology
        interval = self.intervals.grid(topology.resource_id, hours[:-1])
        expected = np.where(interval > 0, HOUR_S // np.maximum(interval, 1), 0).astype(np.int64)
        placed = _placed(topology, hours, expected, interval)
        sinks = {
            code: _GridSums(ids, start_s, placed.grids(ids, self.intervals.fallback_s))
            for code in (_CODE[k] for k in LEVELS)
            for ids in [topology.ids_of_kind(code)]
        }
        samples = np.zeros(expected.shape, np.int64)  # raw samples per (leaf, hour)
        for chunk in leaves:
            position = topology.dense(chunk.resource_id)
            known = position >= 0
            leaf = known.copy()
            leaf[known] = ~self._is_parent[position[known]]
            if not known.all():
                self.dropped_rows += len(known) - int(known.sum())
                self.dropped_ids.update(np.unique(chunk.resource_id[~known]).tolist())
            self.parent_rows += int(known.sum()) - int(leaf.sum())
            mine = chunk if leaf.all() else chunk.take(leaf)
            at = (position[leaf], (mine.ts_s - start_s) // HOUR_S)
            mine = replace(mine, interval_s=interval[at])
            yield self._level(mine, hours, pieces, days, sinks, None, (expected, samples))
        if (samples > expected).any():  # a source sent more than its interval promises: complete, not more
            placed = _placed(topology, hours, np.maximum(expected, samples), interval)
        for kind in LEVELS:
            sink = sinks.pop(_CODE[kind])
            if sink.covered.any():
                yield self._level(sink.series(topology), hours, pieces, days, sinks, (sink, placed), None)

    def forget(self, until_s: int) -> None:
        """Drop the partials of days ending at or before ``until_s`` (their rows are stored already)."""
        for key in [k for k, day in self._days.items() if day.end_s <= until_s]:
            del self._days[key]

    def retopologize(self, topology: Topology) -> None:
        """Switch to a newer topology (inventory refreshed), carrying the open days' partials over."""
        for day in self._days.values():
            day.remap(self.topology.resource_id, topology)
        self.topology, self._is_parent = topology, _parents(topology)

    def close(self, until_s: int) -> Iterator[Rows]:
        """Daily rows of every open day that ends at or before ``until_s``, which are then forgotten."""
        for key in sorted(k for k, day in self._days.items() if day.end_s <= until_s):
            day = self._days.pop(key)
            ids = self.topology.resource_id
            hours = np.arange(day.start_s - day.start_s % HOUR_S, day.end_s, HOUR_S, dtype=np.int64)
            interval = self.intervals.grid(ids, hours)
            own = np.maximum(slots_in(interval, hours, day.start_s, day.end_s), day.samples)
            placed = _placed(self.topology, np.array([day.start_s, day.end_s], np.int64), own[:, None], None)
            children, beneath = placed.at(ids, 0)
            expected = np.where(self._is_parent, beneath, own)
            rows = day.rows(ids, expected, self.q, children, self._is_parent)
            if len(rows):
                yield rows

    def _days_over(self, start_s: int, end_s: int) -> list[DayAccumulator]:
        days = []
        for tz in self.time_zones:
            edges = day_edges(tz, start_s, end_s)
            for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
                if hi <= start_s or lo >= end_s:
                    continue
                if (tz, lo) not in self._days:
                    self._days[(tz, lo)] = DayAccumulator(tz, lo, hi, len(self.topology), self._heap, len(METRICS))
                days.append(self._days[(tz, lo)])
        return days

    def _level(
        self,
        series: Series,
        hours: Ints,
        pieces: Ints,
        days: list[DayAccumulator],
        sinks: dict[int, _GridSums],
        source: tuple[_GridSums, _Placed] | None,
        leaves: tuple[Ints, Ints] | None,
    ) -> Rows:
        """Rows of one level's ``series``: ``source`` is the parent level's sums and the placements, ``leaves``
        the (resource position, hour) expected counts and raw samples of leaves (filled in here)."""
        stats = bucket_stats(series, hours)
        rows = self._hourly(series, stats, hours, source, leaves)
        by_piece = stats if len(pieces) == len(hours) else bucket_stats(series, pieces)
        position = self.topology.dense(by_piece.resource_id)
        for day in days:
            day.feed(series, by_piece, pieces, position)
        self._scatter(series, days, sinks)
        return rows

    def _hourly(
        self,
        series: Series,
        stats: BucketStats,
        hours: Ints,
        source: tuple[_GridSums, _Placed] | None,
        leaves: tuple[Ints, Ints] | None,
    ) -> Rows:
        n = len(stats)
        p95 = np.empty(stats.sum.shape)
        kernels.segment_percentile(series.values, stats.starts, stats.count, self.q, p95)
        with np.errstate(invalid="ignore", divide="ignore"):
            avg = np.where(stats.count > 0, stats.sum / stats.count, np.nan)
        if source is None:
            assert leaves is not None
            own, samples = leaves
            position = self.topology.dense(stats.resource_id)
            samples[position, stats.bucket] = stats.samples
            expected = np.maximum(own[position, stats.bucket], stats.samples)
            children, with_data = np.full(n, -1), np.full(n, -1)
        else:
            sums, placed = source
            children, expected = placed.at(stats.resource_id, stats.bucket)
            pairs = np.concatenate(sums.hour_pairs) if sums.hour_pairs else np.zeros(0, np.int64)
            keys = stats.resource_id.astype(np.int64) * sums.hours + stats.bucket
            with_data = _lookup(_count_table(np.unique(pairs) >> 32), keys)
        return Rows(
            tz=None,
            resource_id=stats.resource_id,
            ts_s=hours[stats.bucket],
            avg=avg,
            min=stats.min,
            max=stats.max,
            p95=p95,
            max_ts=stats.max_ts,
            sample_count=stats.samples,
            expected_count=expected.astype(np.int64),
            vcpus=int_or_null(stats.capacity[:, 0]),
            memory_bytes=int_or_null(stats.capacity[:, 1]),
            child_count=children.astype(np.int64),
            children_with_data=with_data.astype(np.int64),
        )

    def _scatter(self, series: Series, days: list[DayAccumulator], sinks: dict[int, _GridSums]) -> None:
        """Sum ``series`` into each row's parent (and a VM's project) at that row's time."""
        if not sinks or not len(series):
            return
        topology = self.topology
        period = topology.place(series.resource_id, series.ts_s)
        kind = topology.kind_of(series.resource_id)
        parents = topology.period_ids(topology.parent_id, period)
        relations = [np.where(kind != _PROJECT, parents, -1)]  # projects add nowhere
        projects = topology.period_ids(topology.project_id, period)  # only leaves name one
        if (projects >= 0).any():
            relations.append(projects)
        hour = (series.ts_s - sinks[next(iter(sinks))].base_s) // HOUR_S
        for relation in relations:
            parent = relation.astype(np.int32)
            parent_kind = topology.kind_of(parent)
            for code, sink in sinks.items():
                mine = (parent >= 0) & (parent_kind == code)
                if not mine.any():
                    continue
                sink.add(series, np.where(mine, topology.within_kind(parent), -1).astype(np.int32))
                rows = np.flatnonzero(mine)
                sink.hour_pairs.append(_pair_keys(series.resource_id, parent, rows, hour, sink.hours))
                for day in days:
                    in_day = rows[(series.ts_s[rows] >= day.start_s) & (series.ts_s[rows] < day.end_s)]
                    day.add_pairs(_pair_keys(series.resource_id, parent, in_day))


def _pair_keys(
    child: Int32s, parent: Int32s, rows: npt.NDArray[np.intp], bucket: Ints | None = None, buckets: int = 1
) -> Ints:
    """``(parent * buckets + bucket) << 32 | child`` of ``rows`` (sorted by child, time), runs collapsed."""
    keys = [child[rows], parent[rows]] + ([bucket[rows]] if bucket is not None else [])
    heads = rows[_run_heads(*keys)]
    owner = parent[heads].astype(np.int64) * buckets + (bucket[heads] if bucket is not None else 0)
    pairs: Ints = (owner << 32) | child[heads].astype(np.int64)
    return pairs
