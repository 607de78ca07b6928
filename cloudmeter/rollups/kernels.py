"""numba kernels of the rollups: segmented passes over samples sorted by (resource, time).

A *segment* is a run of rows of one resource inside one bucket ``[edges[b], edges[b+1])``. Every kernel here
is a pure function over contiguous arrays: no datetimes, I/O or allocation in the per-row loops, no integer
division or scatter in the hot ones. Preconditions, checked by the callers (``rollups.engine``):

- rows sorted by (resource, ts), unique on (resource, ts) (``is_sorted_unique``);
- every ts inside ``[edges[0], edges[-1])``;
- NaN marks a missing value.

Percentiles use numpy's default method (linear interpolation between the closest ranks, ``_lerp`` included).
They are exact: the largest values of each (segment, metric), kept sorted or in a bounded min-heap, are all
the interpolation needs when fewer than ``k`` values lie above the lower rank.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Int32s = npt.NDArray[np.int32]

NO_TS = -1
#: Rows one parallel task of ``segments`` scans.
SEGMENT_CHUNK = 1 << 20
#: Segments one parallel task of ``segment_percentile`` takes.
PERCENTILE_CHUNK = 1024
#: Up to this many largest values, ``segment_percentile`` keeps them sorted; more go in a heap.
SORTED_TOP = 64


@numba.njit(cache=True, inline="always")
def _unsigned(x: int) -> int:
    """``x`` as numba's uint64: an index numba need not wrap around (as it must a possibly negative one)."""
    return numba.uint64(x)  # type: ignore[return-value]


@numba.njit(cache=True)
def is_sorted_unique(rid: Int32s, ts: Ints) -> bool:
    """Whether rows are strictly increasing in (rid, ts)."""
    ok = True
    for i in range(1, ts.shape[0]):
        if rid[i] < rid[i - 1] or (rid[i] == rid[i - 1] and ts[i] <= ts[i - 1]):
            ok = False
            break
    return ok


@numba.njit(cache=True)
def _segment_heads(rid: Int32s, ts: Ints, edges: Ints, first: int, end: int, heads: Ints, buckets: Ints) -> int:
    """Segment starts among rows ``[first, end)`` (row ``first - 1`` seen before) into ``heads[first:]`` and
    their buckets into ``buckets[first:]``; returns how many."""
    k = first
    current = rid[first - 1] if first else -1
    bucket_end = edges[np.searchsorted(edges, ts[first - 1], side="right")] if first else np.iinfo(np.int64).min
    for i in range(first, end):
        if rid[i] != current or ts[i] >= bucket_end:
            b = np.searchsorted(edges, ts[i], side="right") - 1
            bucket_end = edges[b + 1]
            current = rid[i]
            heads[k] = i
            buckets[k] = b
            k += 1
    return k - first


@numba.njit(cache=True, parallel=True)
def segments(rid: Int32s, ts: Ints, edges: Ints) -> tuple[Ints, Ints]:
    """Segment boundaries: ``starts`` (n_segments + 1, the last = len(ts)) and each segment's bucket index.

    Chunks of ``SEGMENT_CHUNK`` rows are scanned in parallel, then joined.
    """
    n = ts.shape[0]
    chunks = max(1, -(-n // SEGMENT_CHUNK))
    heads = np.empty(n, dtype=np.int64)
    found_buckets = np.empty(n, dtype=np.int64)
    found = np.empty(chunks, dtype=np.int64)
    for c in numba.prange(chunks):
        found[c] = _segment_heads(rid, ts, edges, c * n // chunks, (c + 1) * n // chunks, heads, found_buckets)
    total = found.sum()
    starts = np.empty(total + 1, dtype=np.int64)
    buckets = np.empty(total, dtype=np.int64)
    k = 0
    for c in range(chunks):
        first = c * n // chunks
        starts[k : k + found[c]] = heads[first : first + found[c]]
        buckets[k : k + found[c]] = found_buckets[first : first + found[c]]
        k += found[c]
    starts[total] = n
    return starts, buckets


@numba.njit(cache=True, inline="always")
def _put_stats(
    s: int,
    j: int,
    total: float,
    count: int,
    low: float,
    high: float,
    peak_at: int,
    ts: Ints,
    out_sum: Floats,
    out_count: Int32s,
    out_min: Floats,
    out_max: Floats,
    out_max_ts: Ints,
) -> None:
    """Store one (segment, metric)'s stats into ``segment_stats``' outputs; ``peak_at`` is the max's row."""
    out_sum[s, j] = total
    out_count[s, j] = count
    out_min[s, j] = low if count else np.nan
    out_max[s, j] = high if count else np.nan
    out_max_ts[s, j] = ts[peak_at] if high > -np.inf else NO_TS


@numba.njit(cache=True, parallel=True)
def segment_stats(
    values: Floats,
    ts: Ints,
    starts: Ints,
    out_sum: Floats,
    out_count: Int32s,
    out_min: Floats,
    out_max: Floats,
    out_max_ts: Ints,
) -> None:
    """Per segment and metric: sum, count, min, max and the earliest ts of the max (``NO_TS`` if none).

    Outputs have shape (n_segments, metrics); a metric without values gets sum 0, count 0, NaN min and max.
    Sums add in row order. Four metrics at a time (the last four may overlap the ones before), in registers:
    a row whose four values add up to a number has no NaN and takes the short way; NaN compares false, so
    min and max need no test; ``ts`` is read once per max. Unsigned indices spare numba's wraparound code.
    """
    metrics = values.shape[1]
    groups = (metrics + 3) // 4 if metrics >= 4 else 0
    one, two, three = _unsigned(1), _unsigned(2), _unsigned(3)
    for s in numba.prange(starts.shape[0] - 1):
        lo, hi = _unsigned(starts[s]), _unsigned(starts[s + 1])
        for g in range(groups):
            j = _unsigned(min(4 * g, metrics - 4))
            s0 = s1 = s2 = s3 = 0.0
            nan0 = nan1 = nan2 = nan3 = 0
            n0 = n1 = n2 = n3 = np.inf
            x0 = x1 = x2 = x3 = -np.inf
            i0 = i1 = i2 = i3 = lo
            for i in range(lo, hi):
                v0, v1, v2, v3 = values[i, j], values[i, j + one], values[i, j + two], values[i, j + three]
                row = v0 + v1 + v2 + v3
                if not np.isnan(row):
                    s0 += v0
                    s1 += v1
                    s2 += v2
                    s3 += v3
                else:  # a NaN adds +0.0, which leaves a sum started at +0.0 as it is
                    s0 += 0.0 if np.isnan(v0) else v0
                    s1 += 0.0 if np.isnan(v1) else v1
                    s2 += 0.0 if np.isnan(v2) else v2
                    s3 += 0.0 if np.isnan(v3) else v3
                    nan0 += np.isnan(v0)
                    nan1 += np.isnan(v1)
                    nan2 += np.isnan(v2)
                    nan3 += np.isnan(v3)
                n0 = v0 if v0 < n0 else n0
                n1 = v1 if v1 < n1 else n1
                n2 = v2 if v2 < n2 else n2
                n3 = v3 if v3 < n3 else n3
                i0 = i if v0 > x0 else i0
                i1 = i if v1 > x1 else i1
                i2 = i if v2 > x2 else i2
                i3 = i if v3 > x3 else i3
                x0 = v0 if v0 > x0 else x0
                x1 = v1 if v1 > x1 else x1
                x2 = v2 if v2 > x2 else x2
                x3 = v3 if v3 > x3 else x3
            n = starts[s + 1] - starts[s]
            _put_stats(s, j, s0, n - nan0, n0, x0, i0, ts, out_sum, out_count, out_min, out_max, out_max_ts)
            _put_stats(s, j + one, s1, n - nan1, n1, x1, i1, ts, out_sum, out_count, out_min, out_max, out_max_ts)
            _put_stats(s, j + two, s2, n - nan2, n2, x2, i2, ts, out_sum, out_count, out_min, out_max, out_max_ts)
            _put_stats(s, j + three, s3, n - nan3, n3, x3, i3, ts, out_sum, out_count, out_min, out_max, out_max_ts)
        for j in range(4 * groups, metrics):
            total, count, low, high, peak_at = 0.0, 0, np.inf, -np.inf, lo
            for i in range(lo, hi):
                v = values[i, j]
                total += 0.0 if np.isnan(v) else v
                count += not np.isnan(v)
                low = v if v < low else low
                peak_at = i if v > high else peak_at
                high = v if v > high else high
            _put_stats(s, j, total, count, low, high, peak_at, ts, out_sum, out_count, out_min, out_max, out_max_ts)


@numba.njit(cache=True, inline="always")
def _heap_push(heap: Floats, fill: int, v: float) -> int:
    """Push ``v`` into the min-heap ``heap[:fill]`` of capacity ``len(heap)``, keeping the largest values."""
    k = heap.shape[0]
    if fill < k:
        i = fill
        heap[i] = v
        while i > 0:
            parent = (i - 1) >> 1
            if heap[parent] <= heap[i]:
                break
            heap[parent], heap[i] = heap[i], heap[parent]
            i = parent
        return fill + 1
    if v <= heap[0]:
        return fill
    heap[0] = v
    i = 0
    while True:
        left = 2 * i + 1
        if left >= k:
            break
        child = left
        if left + 1 < k and heap[left + 1] < heap[left]:
            child = left + 1
        if heap[i] <= heap[child]:
            break
        heap[i], heap[child] = heap[child], heap[i]
        i = child
    return fill


@numba.njit(cache=True, inline="always")
def _lerp(a: float, b: float, t: float) -> float:
    """numpy's ``_lerp``: from the nearer end for accuracy."""
    diff = b - a
    return b - diff * (1.0 - t) if t >= 0.5 else a + diff * t


@numba.njit(cache=True)
def top_needed(n: int, q: float) -> int:
    """How many of the largest of ``n`` values the linear percentile ``q`` reads: ``n - floor(q (n - 1))``."""
    return n - int(np.floor(q * (n - 1)))


@numba.njit(cache=True)
def percentile_from_top(top: Floats, n: int, q: float) -> float:
    """Linear percentile ``q`` of ``n`` values given their largest ``len(top)`` ones (any order); NaN if short."""
    f = top.shape[0]
    if n == 0 or f == 0:
        return np.nan
    h = q * (n - 1)
    lo = int(np.floor(h))
    first = n - f  # rank of the smallest value held
    if lo < first:
        return np.nan
    ordered = np.sort(top)
    a = ordered[lo - first]
    b = ordered[min(lo + 1, n - 1) - first]
    return _lerp(a, b, h - lo)


@numba.njit(cache=True, inline="always")
def _sorted_push(top: Floats, v: float) -> None:
    """Put ``v`` into the ascending ``top`` in place of its smallest value, without a branch (NaN is ignored)."""
    k = top.shape[0]
    for t in range(k - 1):
        top[t] = min(top[t + 1], max(top[t], v))
    top[k - 1] = max(top[k - 1], v)


@numba.njit(cache=True)
def _column_percentile(values: Floats, first: int, end: int, j: int, n: int, q: float, scratch: Floats) -> float:
    """Linear percentile ``q`` of the ``n`` non-NaN values of column ``j`` in rows ``[first, end)``.

    The interpolation reads the smallest two of the ``k = top_needed(n, q)`` largest values, kept in
    ``scratch[:k]``: up to ``SORTED_TOP`` of them as an ascending array (a value above the smallest shifts in
    without a branch), more as a min-heap. NaN if ``n`` is 0 or, with a heap, the column holds fewer values.
    """
    if n == 0:
        return np.nan
    k = top_needed(n, q)
    top = scratch[:k]
    lo, hi = _unsigned(first), _unsigned(end)
    if k <= SORTED_TOP:
        top[:] = -np.inf
        for i in range(lo, hi):
            v = values[i, j]
            if v > top[0]:  # NaN compares false
                _sorted_push(top, v)
        second = top[min(1, k - 1)]
    else:
        fill = 0
        while fill < k and lo < hi:
            v = values[lo, j]
            if not np.isnan(v):
                fill = _heap_push(top, fill, v)
            lo += _unsigned(1)
        if fill < k:
            return np.nan
        for i in range(lo, hi):
            v = values[i, j]
            if v > top[0]:
                _heap_push(top, k, v)
        second = min(top[1], top[2])
    h = q * (n - 1)
    return _lerp(top[0], second, h - np.floor(h))


@numba.njit(cache=True, parallel=True)
def segment_percentile(values: Floats, starts: Ints, count: Int32s, q: float, out: Floats) -> None:
    """Per segment and metric, the exact linear percentile ``q`` (NaN where ``count`` is 0).

    Segments go in parallel chunks of ``PERCENTILE_CHUNK``, each with one scratch as long as its longest segment.
    """
    n_segments = starts.shape[0] - 1
    chunks = -(-n_segments // PERCENTILE_CHUNK)
    for c in numba.prange(chunks):
        first, end = c * n_segments // chunks, (c + 1) * n_segments // chunks
        longest = 0
        for s in range(first, end):
            longest = max(longest, starts[s + 1] - starts[s])
        scratch = np.empty(longest, dtype=np.float64)
        for s in range(first, end):
            for j in range(values.shape[1]):
                out[s, j] = _column_percentile(values, starts[s], starts[s + 1], j, count[s, j], q, scratch)


@numba.njit(cache=True)
def merge_partials(
    target: Int32s,
    part_sum: Floats,
    part_count: Int32s,
    part_min: Floats,
    part_max: Floats,
    part_max_ts: Ints,
    acc_sum: Floats,
    acc_count: Int32s,
    acc_min: Floats,
    acc_max: Floats,
    acc_max_ts: Ints,
) -> None:
    """Fold partial rows (in time order) into accumulator rows ``target[p]``; ``target[p] < 0`` skips ``p``.

    Accumulators start as sum 0, count 0, min +inf, max -inf, max_ts ``NO_TS``. Sums add in partial order,
    so equal partials in equal order give equal bits. The max keeps its earliest time.
    """
    metrics = part_sum.shape[1]
    for p in range(target.shape[0]):
        r = target[p]
        if r < 0:
            continue
        for j in range(metrics):
            if part_count[p, j] == 0:
                continue
            acc_sum[r, j] += part_sum[p, j]
            acc_count[r, j] += part_count[p, j]
            acc_min[r, j] = min(acc_min[r, j], part_min[p, j])
            if part_max[p, j] > acc_max[r, j]:
                acc_max[r, j] = part_max[p, j]
                acc_max_ts[r, j] = part_max_ts[p, j]


@numba.njit(cache=True, parallel=True)
def push_tops(
    values: Floats, starts: Ints, target: Int32s, runs: Ints, heaps: npt.NDArray[np.float64], fill: Int32s
) -> None:
    """Push every value of segment ``s`` into the heaps of accumulator row ``target[s]`` (skipped if < 0).

    ``heaps`` has shape (rows, metrics, k). ``runs`` (n_runs + 1 bounds over segments) groups segments that
    may share a target, so runs go in parallel and each run's segments in order.
    """
    metrics = values.shape[1]
    for u in numba.prange(runs.shape[0] - 1):
        for s in range(runs[u], runs[u + 1]):
            r = target[s]
            if r < 0:
                continue
            for i in range(starts[s], starts[s + 1]):
                for j in range(metrics):
                    v = values[i, j]
                    if not np.isnan(v):
                        fill[r, j] = _heap_push(heaps[r, j], fill[r, j], v)


@numba.njit(cache=True, parallel=True)
def heap_percentiles(heaps: npt.NDArray[np.float64], fill: Int32s, count: Int32s, q: float, out: Floats) -> None:
    """Per accumulator row and metric, the percentile ``q`` from its heap of largest values."""
    for r in numba.prange(heaps.shape[0]):
        for j in range(heaps.shape[1]):
            out[r, j] = percentile_from_top(heaps[r, j, : fill[r, j]], count[r, j], q)


@numba.njit(cache=True)
def slot_sums(
    values: Floats,
    ts: Ints,
    samples: Int32s,
    parent: Int32s,
    capacity: Floats,
    capacity_of: Ints,
    base_s: int,
    interval_s: int,
    out_sum: npt.NDArray[np.float64],
    out_count: npt.NDArray[np.int32],
    out_capacity: npt.NDArray[np.float64],
    out_samples: npt.NDArray[np.int32],
) -> None:
    """Sum child rows into their parent's slot on one grid: ``slot = (ts - base_s) // interval_s``.

    The engine sums with ``grid_sums`` (a grid per parent and hour, rows held over their own intervals); this
    one-grid form is kept for callers of the kernel API (``benchmarks/rollups.py``'s warm start).

    ``out_sum``/``out_count`` are (parents, slots, metrics); a row adds only its non-NaN metrics, so a slot
    where no child has a value keeps count 0 (NULL, never 0). ``capacity`` (rows, c) adds into
    ``out_capacity`` (parents, slots, c) only where metric ``capacity_of[c]`` has a value: a percentage is
    then taken over the capacity of the children that reported. ``out_samples`` adds each row's ``samples``
    (the raw samples behind it).
    Rows with ``parent < 0`` are skipped.
    """
    metrics = values.shape[1]
    for i in range(ts.shape[0]):
        p = parent[i]
        if p < 0:
            continue
        slot = (ts[i] - base_s) // interval_s
        out_samples[p, slot] += samples[i]
        for j in range(metrics):
            v = values[i, j]
            if not np.isnan(v):
                out_sum[p, slot, j] += v
                out_count[p, slot, j] += 1
        for c in range(capacity.shape[1]):
            if not np.isnan(values[i, capacity_of[c]]):
                out_capacity[p, slot, c] += capacity[i, c]


@numba.njit(cache=True)
def grid_sums(
    values: Floats,
    ts: Ints,
    samples: Int32s,
    interval: Int32s,
    child: Int32s,
    parent: Int32s,
    capacity: Floats,
    capacity_of: Ints,
    base_s: int,
    grid: Int32s,
    offset: Ints,
    out_sum: Floats,
    out_count: Int32s,
    out_capacity: Floats,
    out_samples: Int32s,
    out_covered: Int32s,
) -> None:
    """Sum child rows into the slots of their parent's grid, each row held over its own interval.

    Hour ``h`` of parent ``p`` (``h`` counted from ``base_s``) is on a grid of ``grid[p, h]`` seconds whose
    slots are ``offset[p, h] + k``, ``k < 3600 // grid[p, h]``, in the flat outputs. A row at ``ts`` with
    ``interval[i]`` a multiple of the grid covers the slots ``[k0, k0 + interval // grid)`` from its own,
    ``k0 = (ts - hour start) // grid``, clipped to its hour (otherwise just its own slot); of the slots one
    child covers in one hour, each takes the child's first row covering it, so a child is never summed twice
    into one slot. A row adds only its non-NaN metrics (a slot where no child has a value keeps count 0:
    NULL, never 0); ``capacity`` (rows, c) adds into ``out_capacity`` only where metric ``capacity_of[c]`` has
    a value; ``out_samples`` adds the row's ``samples`` once, in slot ``k0``; ``out_covered`` counts the
    children covering each slot. Rows with ``parent < 0`` are skipped; rows are sorted by (child, ts).
    """
    metrics = values.shape[1]
    last_child = np.full(grid.shape[0], -1, dtype=np.int64)
    last_hour = np.full(grid.shape[0], -1, dtype=np.int64)
    last_end = np.zeros(grid.shape[0], dtype=np.int64)
    for i in range(ts.shape[0]):
        p = parent[i]
        if p < 0:
            continue
        h = (ts[i] - base_s) // 3600
        g = grid[p, h]
        if g <= 0:
            continue
        off = offset[p, h]
        k0 = (ts[i] - base_s - h * 3600) // g
        span = interval[i] // g if interval[i] > 0 and interval[i] % g == 0 else 1
        end = min(k0 + span, 3600 // g)
        start = k0
        if last_child[p] == child[i] and last_hour[p] == h:
            start = max(start, last_end[p])
            last_end[p] = max(last_end[p], end)
        else:
            last_child[p] = child[i]
            last_hour[p] = h
            last_end[p] = end
        out_samples[off + k0] += samples[i]
        for k in range(start, end):
            t = off + k
            out_covered[t] += 1
            for j in range(metrics):
                v = values[i, j]
                if not np.isnan(v):
                    out_sum[t, j] += v
                    out_count[t, j] += 1
            for c in range(capacity.shape[1]):
                if not np.isnan(values[i, capacity_of[c]]):
                    out_capacity[t, c] += capacity[i, c]
