"""The numpy time rollup against a plain per-group Python reference, on random data and DST days."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudmeter.rollups.reference import rollup_buckets
from cloudmeter.rollups.zones import day_edges, hour_edges

T0 = int(datetime(2026, 3, 28, tzinfo=UTC).timestamp())  # Europe/Berlin springs forward on 2026-03-29


Stats = tuple[float, float, float, float, int] | None


def plain(
    rid: list[int], ts: list[int], values: list[list[float]], edges: list[int], interval: int
) -> dict[tuple[int, int], tuple[list[Stats], int, int]]:
    groups: dict[tuple[int, int], list[tuple[int, list[float]]]] = defaultdict(list)
    for r, t, v in zip(rid, ts, values, strict=True):
        for k in range(len(edges) - 1):
            if edges[k] <= t < edges[k + 1]:
                groups[(r, edges[k])].append((t, v))
    out = {}
    for (r, start), rows in groups.items():
        k = edges.index(start)
        stats: list[Stats] = []
        for m in range(len(values[0])):
            present = [(t, v[m]) for t, v in rows if not math.isnan(v[m])]
            if not present:
                stats.append(None)
                continue
            xs = [x for _, x in present]
            peak = max(xs)
            stats.append(
                (
                    sum(xs) / len(xs),
                    min(xs),
                    peak,
                    float(np.percentile(xs, 95)),
                    min(t for t, x in present if x == peak),
                )
            )
        out[(r, start)] = (stats, len(rows), (edges[k + 1] - edges[k]) // interval)
    return out


samples = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.integers(0, 3 * 86400 // 60 - 1),
        st.lists(
            st.one_of(st.floats(-1e6, 1e6), st.just(math.nan), st.sampled_from([0.0, 1.0, 5.0])), min_size=2, max_size=2
        ),
    ),
    max_size=120,
    unique_by=lambda s: (s[0], s[1]),
)


@settings(max_examples=150, deadline=None)
@given(samples, st.sampled_from(["hour", "UTC", "Europe/Berlin", "America/New_York"]))
def test_rollup_matches_plain_reference(rows: list[tuple[int, int, list[float]]], bucket: str) -> None:
    rid = [r for r, _, _ in rows]
    ts = [T0 + 60 * slot for _, slot, _ in rows]
    values = [v for _, _, v in rows]
    end = T0 + 3 * 86400
    edges = hour_edges(T0, end) if bucket == "hour" else day_edges(bucket, T0, end)
    got = rollup_buckets(
        np.array(rid, dtype=np.int32),
        np.array(ts, dtype=np.int64),
        np.array(values, dtype=np.float64).reshape(len(rows), 2),
        edges,
        60,
    )
    expected = plain(rid, ts, values, edges.tolist(), 60)
    assert len(got) == len(expected)
    for i in range(len(got)):
        stats, count, expected_count = expected[(int(got.resource_id[i]), int(got.bucket_start_s[i]))]
        assert got.sample_count[i] == count
        assert got.expected_count[i] == expected_count
        for m, stat in enumerate(stats):
            if stat is None:
                assert np.isnan([got.avg[i, m], got.min[i, m], got.max[i, m], got.p95[i, m]]).all()
                assert got.max_ts[i, m] == -1
                continue
            avg, lo, hi, p95, max_ts = stat
            assert math.isclose(got.avg[i, m], avg, rel_tol=1e-9, abs_tol=1e-9)
            assert (got.min[i, m], got.max[i, m], got.p95[i, m], got.max_ts[i, m]) == (lo, hi, p95, max_ts)


def test_dst_days_are_23_and_25_hours() -> None:
    spring = day_edges("Europe/Berlin", T0, T0 + 2 * 86400)
    assert np.diff(spring).tolist() == [86400, 23 * 3600, 86400]
    autumn_start = int(datetime(2026, 10, 24, tzinfo=UTC).timestamp())
    autumn = day_edges("Europe/Berlin", autumn_start, autumn_start + 2 * 86400)
    assert np.diff(autumn).tolist() == [86400, 25 * 3600, 86400]


def test_each_resource_expects_its_own_interval_never_below_its_samples() -> None:
    """Resource 1 at 60 s (30 samples an hour), 2 at 300 s (12), 3 with no interval (its 4 samples), 4 at 300 s
    but sending every minute (60 > 12: complete, not 500 %)."""
    rows = [(1, T0 + 120 * k) for k in range(30)] + [(2, T0 + 300 * k) for k in range(12)]
    rows += [(3, T0 + 900 * k) for k in range(4)] + [(4, T0 + 60 * k) for k in range(60)]
    got = rollup_buckets(
        np.array([r for r, _ in rows], np.int32),
        np.array([t for _, t in rows], np.int64),
        np.ones((len(rows), 2)),
        hour_edges(T0, T0 + 3600),
        {1: 60, 2: 300, 4: 300},
    )
    counts = zip(got.sample_count.tolist(), got.expected_count.tolist(), strict=True)
    assert dict(zip(got.resource_id.tolist(), counts, strict=True)) == {
        1: (30, 60),
        2: (12, 12),
        3: (4, 4),
        4: (60, 60),
    }
