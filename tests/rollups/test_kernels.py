"""The numba kernels of the rollups against plain Python and numpy, on random data.

Data hold gaps (empty buckets), NaN, ties, metrics without any value and single-sample segments. Counts,
min, max, max_ts and percentiles must be exact; sums and means agree to ``rtol`` 1e-9 (plus an absolute
term proportional to the sum of magnitudes, as values of both signs may cancel).
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudmeter.rollups import kernels
from tests.rollups.oracle import Stats, metric_stats

Int32s = npt.NDArray[np.int32]
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

values_ = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.just(math.nan),
    st.sampled_from([0.0, 1.0, 5.0, -2.5, 1e-300]),  # ties, and a tiny value
)
quantiles = st.one_of(st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.99, 1.0]), st.floats(0.0, 1.0))


@dataclass(frozen=True)
class Samples:
    """Rows sorted and unique on (rid, ts), every ts inside ``[edges[0], edges[-1])``."""

    rid: Int32s
    ts: Ints
    values: Floats
    edges: Ints

    def __len__(self) -> int:
        return len(self.ts)

    def bucket(self, i: int) -> int:
        return max(k for k in range(len(self.edges) - 1) if self.edges[k] <= self.ts[i])

    def groups(self) -> list[list[int]]:
        """Row indices of each (rid, bucket) run, in order: the segments as plain Python sees them."""
        keyed = itertools.groupby(range(len(self)), key=lambda i: (int(self.rid[i]), self.bucket(i)))
        return [list(rows) for _, rows in keyed]


@st.composite
def samples(draw: st.DrawFn, max_rows: int = 60, resources: int = 4) -> Samples:
    edges = sorted(draw(st.sets(st.integers(0, 5_000), min_size=2, max_size=8)))
    keys = draw(
        st.lists(
            st.tuples(st.integers(0, resources - 1), st.integers(edges[0], edges[-1] - 1)),
            unique=True,
            max_size=max_rows,
        )
    )
    keys.sort()
    metrics = draw(st.integers(1, 4))
    values = np.array(
        draw(st.lists(st.lists(values_, min_size=metrics, max_size=metrics), min_size=len(keys), max_size=len(keys))),
        dtype=np.float64,
    ).reshape(len(keys), metrics)
    for column in draw(st.sets(st.integers(0, metrics - 1), max_size=metrics)):
        values[:, column] = np.nan  # a metric without values
    return Samples(
        np.array([r for r, _ in keys], np.int32),
        np.array([t for _, t in keys], np.int64),
        values,
        np.array(edges, np.int64),
    )


def close(a: float, b: float, scale: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9 * scale)


def same(a: float, b: float) -> bool:
    """Exactly equal, NaN equal to NaN."""
    return a == b or (math.isnan(a) and math.isnan(b))


def column_stats(s: Samples, rows: list[int], j: int) -> Stats | None:
    return metric_stats([(int(s.ts[i]), float(s.values[i, j])) for i in rows if not math.isnan(s.values[i, j])])


def stats_of(s: Samples, starts: Ints) -> tuple[Floats, Int32s, Floats, Floats, Ints]:
    n, metrics = len(starts) - 1, s.values.shape[1]
    out = (
        np.empty((n, metrics)),
        np.empty((n, metrics), np.int32),
        np.empty((n, metrics)),
        np.empty((n, metrics)),
        np.empty((n, metrics), np.int64),
    )
    kernels.segment_stats(s.values, s.ts, starts, *out)
    return out


# --- is_sorted_unique, segments ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 6)), max_size=12), st.booleans())
def test_is_sorted_unique(keys: list[tuple[int, int]], sort: bool) -> None:
    if sort:
        keys = sorted(keys)
    rid, ts = np.array([k[0] for k in keys], np.int32), np.array([k[1] for k in keys], np.int64)
    assert kernels.is_sorted_unique(rid, ts) == all(a < b for a, b in itertools.pairwise(keys))


@settings(max_examples=200, deadline=None)
@given(samples())
def test_segments_are_the_runs_of_resource_and_bucket(s: Samples) -> None:
    starts, buckets = kernels.segments(s.rid, s.ts, s.edges)
    groups = s.groups()
    assert starts.tolist() == [g[0] for g in groups] + [len(s)]
    assert buckets.tolist() == [s.bucket(g[0]) for g in groups]


# --- segment_stats, segment_percentile -----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(samples())
def test_segment_stats(s: Samples) -> None:
    starts, _ = kernels.segments(s.rid, s.ts, s.edges)
    total, count, low, high, max_ts = stats_of(s, starts)
    for g, rows in enumerate(s.groups()):
        for j in range(s.values.shape[1]):
            want = column_stats(s, rows, j)
            if want is None:
                assert (total[g, j], count[g, j], max_ts[g, j]) == (0.0, 0, kernels.NO_TS)
                assert math.isnan(low[g, j]) and math.isnan(high[g, j])
                continue
            scale = float(np.nansum(np.abs(s.values[rows, j])))
            assert close(total[g, j], want.sum, scale)
            assert (count[g, j], low[g, j], high[g, j], max_ts[g, j]) == (want.count, want.min, want.max, want.max_ts)


@settings(max_examples=200, deadline=None)
@given(samples())
def test_segment_percentile_is_numpys_p95(s: Samples) -> None:
    starts, _ = kernels.segments(s.rid, s.ts, s.edges)
    _, count, _, _, _ = stats_of(s, starts)
    out = np.empty(count.shape)
    kernels.segment_percentile(s.values, starts, count, 0.95, out)
    for g, rows in enumerate(s.groups()):
        for j in range(s.values.shape[1]):
            present = s.values[rows, j][~np.isnan(s.values[rows, j])]
            want = float(np.percentile(present, 95)) if len(present) else math.nan
            assert same(out[g, j], want), (g, j, present.tolist())


@settings(max_examples=150, deadline=None)
@given(samples(), quantiles)
def test_segment_percentile_any_quantile(s: Samples, q: float) -> None:
    starts, _ = kernels.segments(s.rid, s.ts, s.edges)
    _, count, _, _, _ = stats_of(s, starts)
    out = np.empty(count.shape)
    kernels.segment_percentile(s.values, starts, count, q, out)
    for g, rows in enumerate(s.groups()):
        for j in range(s.values.shape[1]):
            present = s.values[rows, j][~np.isnan(s.values[rows, j])]
            want = float(np.quantile(present, q)) if len(present) else math.nan
            assert same(out[g, j], want), (g, j, q, present.tolist())


# --- percentile_from_top, push_tops + heap_percentiles -------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(st.floats(-1e6, 1e6), st.sampled_from([0.0, 1.0, 5.0])), min_size=1, max_size=80),
    quantiles,
    st.integers(-3, 5),
    st.randoms(use_true_random=False),
)
def test_percentile_from_top(xs: list[float], q: float, extra: int, rnd: random.Random) -> None:
    """Given at least ``top_needed`` of the largest values (any order) it is numpy's; with fewer, NaN."""
    n = len(xs)
    needed = kernels.top_needed(n, q)
    assert needed == n - math.floor(q * (n - 1))
    held = max(0, min(n, needed + extra))
    top = sorted(xs, reverse=True)[:held]
    rnd.shuffle(top)
    got = kernels.percentile_from_top(np.array(top, np.float64), n, q)
    want = float(np.quantile(np.array(xs), q)) if held >= needed else math.nan
    assert same(got, want), (held, needed)
    assert math.isnan(kernels.percentile_from_top(np.zeros(0), 0, q))


@dataclass(frozen=True)
class Targets:
    """Segments of ``s`` mapped to accumulator rows (-1 = skipped), and runs grouping equal targets."""

    s: Samples
    starts: Ints
    target: Int32s
    runs: Ints
    rows: int


@st.composite
def targets(draw: st.DrawFn, by_resource: bool) -> Targets:
    """Either each resource's segments to one row (as the engine does), or blocks of consecutive segments."""
    s = draw(samples(max_rows=80, resources=6))
    starts, _ = kernels.segments(s.rid, s.ts, s.edges)
    n = len(starts) - 1
    rows = draw(st.integers(1, 4))
    if by_resource:
        row_of = draw(st.permutations([*range(rows), *[-1] * 6]))
        target = np.array([row_of[int(s.rid[starts[g]])] for g in range(n)], np.int32)
    else:
        sizes = draw(st.lists(st.integers(1, 4), min_size=rows + 2, max_size=rows + 2))
        labels = draw(st.permutations([*range(rows), -1, -1]))
        blocks = [label for label, size in zip(labels, sizes, strict=True) for _ in range(size)][:n]
        target = np.array(blocks + [-1] * (n - len(blocks)), np.int32)
    # a run holds every segment of its targets; one run for all is fine too (its segments go in order)
    bounds = [0, *[g for g in range(1, n) if target[g] != target[g - 1]], n] if n else [0]
    if draw(st.booleans()):
        bounds = [0, n] if n else [0]
    return Targets(s, starts, target, np.array(bounds, np.int64), rows)


@settings(max_examples=200, deadline=None)
@given(st.booleans().flatmap(lambda by: targets(by_resource=by)), quantiles, st.integers(0, 3))
def test_push_tops_and_heap_percentiles(t: Targets, q: float, spare: int) -> None:
    s, metrics = t.s, t.s.values.shape[1]
    members = [
        [i for g in np.flatnonzero(t.target == r) for i in range(t.starts[g], t.starts[g + 1])] for r in range(t.rows)
    ]
    longest = max([len(m) for m in members] + [1])
    k = kernels.top_needed(longest, q) + spare
    heaps = np.empty((t.rows, metrics, k))
    fill = np.zeros((t.rows, metrics), np.int32)
    kernels.push_tops(s.values, t.starts, t.target, t.runs, heaps, fill)
    count = np.array([[int((~np.isnan(s.values[m, j])).sum()) for j in range(metrics)] for m in members], np.int32)
    out = np.empty((t.rows, metrics))
    kernels.heap_percentiles(heaps, fill, count.reshape(t.rows, metrics), q, out)
    for r, rows in enumerate(members):
        for j in range(metrics):
            present = s.values[rows, j][~np.isnan(s.values[rows, j])]
            assert fill[r, j] == min(len(present), k)
            assert sorted(heaps[r, j, : fill[r, j]].tolist()) == sorted(present.tolist())[len(present) - fill[r, j] :]
            want = float(np.quantile(present, q)) if len(present) else math.nan
            assert same(out[r, j], want), (r, j, q, present.tolist())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 100), min_size=3, max_size=60), st.sampled_from([0.5, 0.95]))
def test_a_short_heap_gives_nan_never_a_wrong_percentile(xs: list[float], q: float) -> None:
    n = len(xs)
    k = kernels.top_needed(n, q) - 1
    if k < 1:
        return
    heaps, fill = np.empty((1, 1, k)), np.zeros((1, 1), np.int32)
    values = np.array(xs, np.float64).reshape(n, 1)
    one = np.zeros(1, np.int32)
    kernels.push_tops(values, np.array([0, n], np.int64), one, np.array([0, 1], np.int64), heaps, fill)
    out = np.empty((1, 1))
    kernels.heap_percentiles(heaps, fill, np.full((1, 1), n, np.int32), q, out)
    assert math.isnan(out[0, 0])


# --- merge_partials ------------------------------------------------------------------------------------------


def accumulators(rows: int, metrics: int) -> tuple[Floats, Int32s, Floats, Floats, Ints]:
    return (
        np.zeros((rows, metrics)),
        np.zeros((rows, metrics), np.int32),
        np.full((rows, metrics), np.inf),
        np.full((rows, metrics), -np.inf),
        np.full((rows, metrics), kernels.NO_TS, np.int64),
    )


@settings(max_examples=200, deadline=None)
@given(targets(by_resource=True))
def test_merge_partials_folds_segments_into_their_targets(t: Targets) -> None:
    """A resource's partials (in time order) merged are the stats of all its rows together."""
    s, metrics = t.s, t.s.values.shape[1]
    parts = stats_of(s, t.starts)
    acc = accumulators(t.rows, metrics)
    kernels.merge_partials(t.target, *parts, *acc)
    total, count, low, high, max_ts = acc
    for r in range(t.rows):
        rows = [i for g in np.flatnonzero(t.target == r) for i in range(t.starts[g], t.starts[g + 1])]
        for j in range(metrics):
            want = column_stats(s, rows, j)
            if want is None:
                assert (total[r, j], count[r, j], low[r, j], high[r, j]) == (0.0, 0, np.inf, -np.inf)
                assert max_ts[r, j] == kernels.NO_TS
                continue
            scale = float(np.nansum(np.abs(s.values[rows, j])))
            assert close(total[r, j], want.sum, scale)
            assert (count[r, j], low[r, j], high[r, j], max_ts[r, j]) == (want.count, want.min, want.max, want.max_ts)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-1, 2), st.integers(0, 3), st.floats(-10, 10), st.sampled_from([1.0, 2.0, 3.0])),
        max_size=12,
    )
)
def test_merge_partials_in_partial_order(parts: list[tuple[int, int, float, float]]) -> None:
    """The fold itself: sums add in order, a count-0 partial is skipped, the first partial reaching the max wins."""
    n = len(parts)
    target = np.array([p[0] for p in parts], np.int32)
    count = np.array([[p[1]] for p in parts], np.int32).reshape(n, 1)
    total = np.array([[p[2]] for p in parts], np.float64).reshape(n, 1)
    peak = np.array([[p[3]] for p in parts], np.float64).reshape(n, 1)
    low = peak - 1.0
    when = np.arange(n, dtype=np.int64).reshape(n, 1) * 10
    acc = accumulators(3, 1)
    kernels.merge_partials(target, total, count, low, peak, when, *acc)
    for r in range(3):
        mine = [i for i in range(n) if target[i] == r and count[i, 0] > 0]
        running = 0.0
        for i in mine:
            running += float(total[i, 0])
        assert acc[0][r, 0] == running
        assert acc[1][r, 0] == sum(int(count[i, 0]) for i in mine)
        assert acc[2][r, 0] == min([float(low[i, 0]) for i in mine], default=np.inf)
        assert acc[3][r, 0] == max([float(peak[i, 0]) for i in mine], default=-np.inf)
        best = max([float(peak[i, 0]) for i in mine], default=None)
        assert acc[4][r, 0] == next((int(when[i, 0]) for i in mine if peak[i, 0] == best), kernels.NO_TS)


# --- the paths small data never take: several chunks of segments, a percentile's heap ------------------------


def test_segments_across_chunks() -> None:
    """Over several ``SEGMENT_CHUNK``s, the runs of (resource, bucket) as numpy finds them."""
    rng = np.random.default_rng(7)
    n = 2 * kernels.SEGMENT_CHUNK + 12_345
    rid = np.sort(rng.integers(0, 400, n)).astype(np.int32)
    ts = np.zeros(n, np.int64)
    heads = np.flatnonzero(np.diff(rid, prepend=-1))
    for first, end in itertools.pairwise([*heads, n]):
        ts[first:end] = np.sort(rng.choice(86_400, end - first, replace=False))
    edges = np.arange(0, 86_401, 3_600, dtype=np.int64)
    starts, buckets = kernels.segments(rid, ts, edges)
    bucket = np.searchsorted(edges, ts, side="right") - 1
    want = np.flatnonzero((np.diff(rid, prepend=-1) != 0) | (np.diff(bucket, prepend=-1) != 0))
    assert starts.tolist() == [*want.tolist(), n]
    assert buckets.tolist() == bucket[want].tolist()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(-1e6, 1e6), st.just(math.nan), st.sampled_from([0.0, 1.0])), min_size=150, max_size=400
    ),
    quantiles,
)
def test_segment_percentile_keeps_many_top_values(xs: list[float], q: float) -> None:
    """Beyond ``SORTED_TOP`` largest values (a long segment, a low quantile) it is still numpy's."""
    values = np.array(xs, np.float64).reshape(len(xs), 1)
    present = values[~np.isnan(values[:, 0]), 0]
    out = np.empty((1, 1))
    count = np.full((1, 1), len(present), np.int32)
    kernels.segment_percentile(values, np.array([0, len(xs)], np.int64), count, q, out)
    want = float(np.quantile(present, q)) if len(present) else math.nan
    assert same(out[0, 0], want), (q, len(present), kernels.top_needed(len(present), q) if len(present) else 0)
