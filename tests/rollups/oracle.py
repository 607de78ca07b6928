"""A plain reference for the rollup engine: Python loops over dicts and lists, numpy only for the percentile.

Nothing here comes from ``cloudmeter.rollups`` (no kernels, no ``reference.py``, no ``zones``); only the
vocabulary of ``cloudmeter.model`` (metric and kind names). Semantics, as the README and the engine's
docstrings state them:

- Raw samples are unique on (resource, ts); a later duplicate replaces an earlier one (``dedupe``).
- A time rollup row per (resource, bucket ``[lo, hi)``) with samples (a parent's points that only hold a
  child's row over from before a local midnight inside an hour make no row of their own): per metric avg,
  min, max, p95 (``np.percentile(values, 95)``), max_ts (the earliest ts reaching the max) over the non-NaN
  values (NaN and -1 when there are none); ``sample_count`` = rows (for a parent, the children's raw
  samples); ``vcpus`` and ``memory_bytes`` = the largest allocation seen in the bucket (-1 if none).
- A sample is placed by its own ts: the period of its resource with ``valid_from <= ts < valid_to``.
- A parent (a resource that is some period's ``parent_id`` or ``project_id``) gets its rows from its children
  only. Its series has one point per slot of its grid (below) that at least one child row placed under it
  covers. Absolute metrics are the sums of the covering children's non-NaN values, summed in (child id, ts)
  order (NaN if none); ``cpu_usage_pct`` / ``mem_usage_pct`` are
  ``100 * sum / capacity``, capacity being the parent's own allocation from its period at the slot's ts if
  known, else the sum of the allocations of the children that reported the absolute metric in that slot
  (unknown if one of them is unknown, and unknown -- NULL, not 0 -- if none reported). That capacity is
  what the parent passes up and what its ``vcpus`` / ``memory_bytes`` columns show.
- Every resource has an interval per UTC hour (``spans``, else ``interval_s`` for all): that of its span
  ``[lo, hi)`` holding the hour, after its last span the last one's, else none (0).
- A parent's grid in hour ``h`` is the gcd of the (non-zero) intervals in ``h`` of the leaves beneath it then
  (``fallback_s`` if it has children but none has one); its points are ``h + k * grid``. A child row (a raw
  sample, or a child parent's point, whose interval is that parent's grid) at ``ts`` covers the slots
  ``k0 = (ts - h) // grid`` to ``k0 + interval // grid`` (only ``k0`` if its interval is unknown or no
  multiple of the grid), clipped to the hour; a slot the same child covered already in that hour is skipped.
  The row's samples count in slot ``k0``; a point exists where any child covers the slot.
- ``child_count`` = distinct children with a period under the parent overlapping the bucket,
  ``children_with_data`` = distinct children with at least one row placed under the parent in the bucket
  (by the child row's own ts). A leaf's own expectation in a bucket is the number of points ``h + k * interval``
  of its hours that fall in the bucket, or its samples in the bucket if more; its ``expected_count`` is that,
  and a parent's is the sum of its children's in the bucket, a parent child bringing its own (so a VM under
  two hosts of a cluster in one bucket counts twice for the cluster); for leaves ``child_count`` =
  ``children_with_data`` = -1.
- Projects collect their leaves, VMs and containers (``project_id`` of the leaf's period), but never add into
  any other level; the ``parent_id`` relation takes children of any kind but ``project`` (containers -> pod ->
  host: a pod is a parent like any other).
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import reduce
from zoneinfo import ZoneInfo

import numpy as np

from cloudmeter.model import KINDS, METRICS

NAN = math.nan
HOUR = 3600
CPU_PCT, CPU_CORES = METRICS.index("cpu_usage_pct"), METRICS.index("cpu_used_cores")
MEM_BYTES, MEM_PCT = METRICS.index("mem_used_bytes"), METRICS.index("mem_usage_pct")
#: (percentage metric, absolute metric, capacity column 0 = vcpus / 1 = memory_bytes)
PERCENTAGES = ((CPU_PCT, CPU_CORES, 0), (MEM_PCT, MEM_BYTES, 1))
assert set(KINDS) == {"vm", "host", "cluster", "provider", "region", "project", "pod", "container"}
#: Kinds whose samples are their own and who add into their project as well as their parent.
LEAVES = ("vm", "container")

Values = tuple[float, ...]


@dataclass(frozen=True)
class Period:
    """A placement period ``[valid_from, valid_to)`` of ``resource``; NaN = unknown allocation, -1 = none."""

    resource: int
    valid_from: int
    valid_to: int
    parent: int = -1
    project: int = -1
    vcpus: float = NAN
    memory_bytes: float = NAN


@dataclass(frozen=True)
class Point:
    """One row of a resource's series: a raw sample (``samples`` 1) or a parent's slot (``interval``: its grid)."""

    ts: int
    values: Values
    samples: int
    capacity: tuple[float, float]
    interval: int = 0


@dataclass(frozen=True)
class Row:
    """One rollup row, NaN / -1 for NULL."""

    resource_id: int
    ts: int
    avg: Values
    min: Values
    max: Values
    p95: Values
    max_ts: tuple[int, ...]
    sample_count: int
    expected_count: int
    vcpus: int
    memory_bytes: int
    child_count: int
    children_with_data: int


def dedupe(raw: Iterable[tuple[int, int, Sequence[float]]]) -> dict[int, list[tuple[int, Values]]]:
    """Raw rows per resource, sorted by ts, the last of equal (resource, ts) kept."""
    last: dict[tuple[int, int], Values] = {}
    for rid, ts, values in raw:
        last[(rid, ts)] = tuple(float(v) for v in values)
    out: dict[int, list[tuple[int, Values]]] = defaultdict(list)
    for (rid, ts), values in sorted(last.items()):
        out[rid].append((ts, values))
    return dict(out)


def hour_edges(start_s: int, end_s: int) -> list[int]:
    """UTC hour boundaries from ``start_s`` to ``end_s`` (both whole hours)."""
    return list(range(start_s, end_s + 1, HOUR))


def day_edges(tz: str, start_s: int, end_s: int) -> list[int]:
    """Local midnights of ``tz`` bounding every local day that overlaps ``[start_s, end_s)``.

    Found by scanning quarter hours (every offset of these zones is a multiple of 15 minutes) for the instants
    where the local date changes, so it does not lean on how the library builds its edges.
    """
    zone = ZoneInfo(tz)
    step = 900
    t = start_s - start_s % step - 2 * 86400
    edges: list[int] = []
    previous = datetime.fromtimestamp(t, UTC).astimezone(zone).date()
    while not edges or edges[-1] < end_s:
        t += step
        today = datetime.fromtimestamp(t, UTC).astimezone(zone).date()
        if today != previous:
            edges.append(t)
        previous = today
    first = max(i for i, e in enumerate(edges) if e <= start_s)
    return edges[first:]


@dataclass(frozen=True)
class Stats:
    """Statistics of one metric's values in one bucket (``max_ts``: the earliest ts reaching the max)."""

    count: int
    sum: float
    avg: float
    min: float
    max: float
    p95: float
    max_ts: int


def metric_stats(present: Sequence[tuple[int, float]]) -> Stats | None:
    """Stats of (ts, value) pairs without NaN; None if there are none. The sum is exact (``math.fsum``)."""
    if not present:
        return None
    xs = [v for _, v in present]
    total, high = math.fsum(xs), max(xs)
    p95 = float(np.percentile(np.array(xs, dtype=np.float64), 95))
    return Stats(len(xs), total, total / len(xs), min(xs), high, p95, min(t for t, v in present if v == high))


def _as_int(value: float) -> int:
    return -1 if math.isnan(value) else round(value)


class Oracle:
    """Series of every resource from ``base_s`` on, each on its intervals, and their rollup rows."""

    def __init__(
        self,
        kinds: dict[int, str],
        periods: Sequence[Period],
        raw: Iterable[tuple[int, int, Sequence[float]]],
        interval_s: int,
        base_s: int,
        spans: dict[int, list[tuple[int, int, int]]] | None = None,
    ) -> None:
        self.kinds, self.interval_s, self.base_s, self.spans = kinds, interval_s, base_s, spans
        self.periods: dict[int, list[Period]] = defaultdict(list)
        for period in periods:
            self.periods[period.resource].append(period)
        self.children: dict[int, set[int]] = defaultdict(set)  # parent -> children by either relation
        for period in periods:
            if period.parent >= 0 and kinds[period.resource] != "project":
                self.children[period.parent].add(period.resource)
            if period.project >= 0 and kinds[period.resource] in LEAVES:
                self.children[period.project].add(period.resource)
        self.raw = dedupe(raw)
        self._series: dict[int, list[Point]] = {}
        #: parent -> [(child, child point)] of the child rows placed under it
        self.placed: dict[int, list[tuple[int, Point]]] = defaultdict(list)

    # --- placement -----------------------------------------------------------------------------------------

    def period_at(self, rid: int, ts: int) -> Period | None:
        found = [p for p in self.periods.get(rid, []) if p.valid_from <= ts < p.valid_to]
        assert len(found) <= 1, f"overlapping periods of {rid} at {ts}"
        return found[0] if found else None

    def owner(self, child: int, ts: int, parent: int) -> bool:
        """Whether ``child``'s row at ``ts`` goes to ``parent`` (through the parent or project relation)."""
        period = self.period_at(child, ts)
        return period is not None and self.owner_period(period, child, parent)

    def is_parent(self, rid: int) -> bool:
        return rid in self.children

    # --- series --------------------------------------------------------------------------------------------

    def series(self, rid: int) -> list[Point]:
        """The resource's own series: raw samples of a leaf, summed slots of a parent."""
        if rid not in self._series:
            self._series[rid] = self._summed(rid) if self.is_parent(rid) else self._leaf(rid)
        return self._series[rid]

    # --- intervals ----------------------------------------------------------------------------------------

    def interval(self, rid: int, hour: int) -> int:
        """The resource's interval in the UTC hour starting at ``hour`` (0: none)."""
        if self.spans is None:
            return self.interval_s
        spans = sorted(self.spans.get(rid, []))
        for lo, hi, interval in spans:
            if lo <= hour < hi:
                return interval
        return spans[-1][2] if spans and hour >= spans[-1][1] else 0

    def grid(self, parent: int, hour: int) -> int:
        """The parent's grid in ``hour``: gcd of the intervals of the leaves beneath it then."""
        leaves = self.leaves_beneath(parent, hour, hour + HOUR)
        found = reduce(math.gcd, (self.interval(leaf, hour) for leaf in leaves), 0)
        return found or self.interval_s

    def leaves_beneath(self, parent: int, lo: int, hi: int) -> list[int]:
        """Leaves beneath ``parent`` in ``[lo, hi)`` (a leaf once per child path)."""
        out: list[int] = []
        for child in self.children_in(parent, lo, hi):
            out += self.leaves_beneath(child, lo, hi) if self.is_parent(child) else [child]
        return out

    def own_expected(self, rid: int, lo: int, hi: int) -> int:
        """Points of the leaf's hourly grids in ``[lo, hi)``, or its samples there if more."""
        slots = 0
        for hour in range(lo - lo % HOUR, hi, HOUR):
            interval = self.interval(rid, hour)
            if interval:
                slots += sum(1 for t in range(hour, hour + HOUR, interval) if lo <= t < hi)
        samples = sum(1 for ts, _ in self.raw.get(rid, []) if lo <= ts < hi)
        return max(slots, samples)

    def expected_in(self, rid: int, lo: int, hi: int) -> int:
        """A leaf's own expectation; a parent's children's, summed."""
        if not self.is_parent(rid):
            return self.own_expected(rid, lo, hi)
        return sum(self.expected_in(child, lo, hi) for child in self.children_in(rid, lo, hi))

    # --- series --------------------------------------------------------------------------------------------

    def _leaf(self, rid: int) -> list[Point]:
        points = []
        for ts, values in self.raw.get(rid, []):
            period = self.period_at(rid, ts)
            capacity = (period.vcpus, period.memory_bytes) if period is not None else (NAN, NAN)
            points.append(Point(ts, values, 1, capacity, self.interval(rid, ts - ts % HOUR)))
        return points

    def _summed(self, parent: int) -> list[Point]:
        slots: dict[tuple[int, int], list[tuple[int, Point]]] = defaultdict(list)  # (hour, k) -> contributions
        samples: dict[tuple[int, int], int] = defaultdict(int)
        for child in sorted(self.children[parent]):
            covered: set[tuple[int, int]] = set()
            for point in self.series(child):
                if not self.owner(child, point.ts, parent):
                    continue
                self.placed[parent].append((child, point))
                hour = point.ts - point.ts % HOUR
                grid = self.grid(parent, hour)
                first = (point.ts - hour) // grid
                span = point.interval // grid if point.interval and point.interval % grid == 0 else 1
                samples[(hour, first)] += point.samples
                for k in range(first, min(first + span, HOUR // grid)):
                    if (hour, k) not in covered:
                        covered.add((hour, k))
                        slots[(hour, k)].append((child, point))
        out = []
        for hour, k in sorted(slots):
            rows = slots[(hour, k)]  # in (child, ts) order
            grid = self.grid(parent, hour)
            ts = hour + k * grid
            values = [NAN] * len(METRICS)
            for j in range(len(METRICS)):
                present = [point.values[j] for _, point in rows if not math.isnan(point.values[j])]
                if present:
                    total = 0.0
                    for v in present:
                        total += v
                    values[j] = total
            own = self.period_at(parent, ts)
            capacity = [NAN, NAN]
            for pct, absolute, column in PERCENTAGES:
                reporting = [point.capacity[column] for _, point in rows if not math.isnan(point.values[absolute])]
                derived = NAN
                if reporting:
                    derived = 0.0
                    for c in reporting:
                        derived += c  # NaN (unknown) as soon as one reporting child's allocation is unknown
                mine = NAN if own is None else (own.vcpus, own.memory_bytes)[column]
                capacity[column] = derived if math.isnan(mine) else mine
                cap = capacity[column]
                ok = not math.isnan(values[absolute]) and not math.isnan(cap) and cap > 0
                values[pct] = 100.0 * values[absolute] / cap if ok else NAN
            out.append(Point(ts, tuple(values), samples[(hour, k)], (capacity[0], capacity[1]), grid))
        return out

    # --- rollup rows ---------------------------------------------------------------------------------------

    def rows(self, rids: Iterable[int], edges: Sequence[int]) -> dict[tuple[int, int], Row]:
        """Rollup rows of ``rids`` in the buckets ``[edges[k], edges[k+1])``, keyed by (resource, bucket start)."""
        out: dict[tuple[int, int], Row] = {}
        for rid in rids:
            series = self.series(rid)
            times = [p.ts for p in series]
            for lo, hi in itertools.pairwise(edges):
                points = series[bisect_left(times, lo) : bisect_left(times, hi)]
                if sum(p.samples for p in points):  # a parent's points in a bucket may only hold values over
                    out[(rid, lo)] = self._row(rid, lo, hi, points)
        return out

    def _row(self, rid: int, lo: int, hi: int, points: list[Point]) -> Row:
        metrics = len(METRICS)
        avg, low, high, p95 = [NAN] * metrics, [NAN] * metrics, [NAN] * metrics, [NAN] * metrics
        max_ts = [-1] * metrics
        for j in range(metrics):
            stats = metric_stats([(p.ts, p.values[j]) for p in points if not math.isnan(p.values[j])])
            if stats is not None:
                avg[j], low[j], high[j], p95[j], max_ts[j] = stats.avg, stats.min, stats.max, stats.p95, stats.max_ts
        expected = self.expected_in(rid, lo, hi)
        if self.is_parent(rid):
            with_data = {child for child, point in self.placed[rid] if lo <= point.ts < hi}
            child_count, children_with_data = len(self.children_in(rid, lo, hi)), len(with_data)
        else:
            child_count, children_with_data = -1, -1
        vcpus = [p.capacity[0] for p in points if not math.isnan(p.capacity[0])]
        memory = [p.capacity[1] for p in points if not math.isnan(p.capacity[1])]
        return Row(
            resource_id=rid,
            ts=lo,
            avg=tuple(avg),
            min=tuple(low),
            max=tuple(high),
            p95=tuple(p95),
            max_ts=tuple(max_ts),
            sample_count=sum(p.samples for p in points),
            expected_count=expected,
            vcpus=_as_int(max(vcpus)) if vcpus else -1,
            memory_bytes=_as_int(max(memory)) if memory else -1,
            child_count=child_count,
            children_with_data=children_with_data,
        )

    def children_in(self, parent: int, lo: int, hi: int) -> set[int]:
        """Distinct children with a (non-empty) period under ``parent`` overlapping ``[lo, hi)``."""
        return {
            p.resource
            for p in self._child_periods(parent)
            if p.valid_from < hi and p.valid_to > lo and p.valid_from < p.valid_to
        }

    def _child_periods(self, parent: int) -> list[Period]:
        return [
            p for child in self.children[parent] for p in self.periods[child] if self.owner_period(p, child, parent)
        ]

    def owner_period(self, period: Period, child: int, parent: int) -> bool:
        if self.kinds[parent] == "project":
            return self.kinds[child] in LEAVES and period.project == parent
        return self.kinds[child] != "project" and period.parent == parent
