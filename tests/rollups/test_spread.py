"""rollups.spread against a plain hour-by-hour reference over random periods, groups and intervals."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np
import pytest

from cloudmeter.rollups.spread import HOUR_US, Floats, Int32s, Ints, MemberIntervals, majority_groups, spread

HOURS = 30
BASE_US = 1_700_000_000 // 3600 * 3600 * 1_000_000


def _periods(rng: np.random.Generator, members: int) -> list[tuple[int, int, int]]:
    """(member, start_us, end_us): each member's periods back to back or with gaps, some off the hour."""
    out = []
    for m in range(members):
        at = (
            BASE_US + int(rng.integers(-3, 10)) * HOUR_US + (int(rng.integers(1, HOUR_US)) if rng.random() < 0.5 else 0)
        )
        for _ in range(int(rng.integers(1, 4))):
            length = int(rng.integers(1, HOUR_US)) if rng.random() < 0.5 else int(rng.integers(1, 12)) * HOUR_US
            out.append((m, at, at + length))
            at += length + (int(rng.integers(1, 3 * HOUR_US)) if rng.random() < 0.33 else 0)
    return out


def _reference(
    periods: list[tuple[int, int, int]],
    values: Floats,
    direct: Int32s,
    via: Int32s,
    via_group: Int32s,
    interval_of: Callable[[int, int], int],
    groups: int,
) -> tuple[Floats, Ints, Ints, Ints, Floats, Ints]:
    """Every period, every hour, plainly."""
    sums = np.zeros((groups, HOURS, values.shape[1]))
    known = np.zeros((groups, HOURS, values.shape[1]), np.int64)
    unknown = np.zeros_like(known)
    present: dict[tuple[int, int], set[int]] = defaultdict(set)
    expected = np.zeros((groups, HOURS))
    unpromised = np.zeros((groups, HOURS), np.int64)
    for p, (m, start, end) in enumerate(periods):
        for h in range(HOURS):
            lo, hi = BASE_US + h * HOUR_US, BASE_US + (h + 1) * HOUR_US
            covered = min(end, hi) - max(start, lo)
            if covered <= 0:
                continue
            g = via_group[via[p], h] if via[p] >= 0 else -1
            g = g if g >= 0 else direct[p]
            if g < 0:
                continue
            for j, value in enumerate(values[p]):
                if np.isnan(value):
                    unknown[g, h, j] += 1
                else:
                    known[g, h, j] += 1
                    sums[g, h, j] += value * covered / HOUR_US
            present[(g, h)].add(m)
            interval = interval_of(m, lo)
            if interval:
                expected[g, h] += covered / 1e6 / interval
            else:
                unpromised[g, h] += 1
    counts = np.zeros((groups, HOURS), np.int64)
    for (g, h), seen in present.items():
        counts[g, h] = len(seen)
    return sums, known, unknown, counts, expected, unpromised


@pytest.mark.parametrize("seed", range(12))
def test_spread_matches_the_hour_by_hour_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    members, groups, parents = 12, 4, 3
    periods = _periods(rng, members)
    n = len(periods)
    values = rng.integers(1, 64, (n, 2)).astype(np.float64)
    values[rng.random((n, 2)) < 0.15] = np.nan
    direct = rng.integers(-1, groups, n).astype(np.int32)
    via = rng.integers(-1, parents, n).astype(np.int32)
    via_group = np.repeat(rng.integers(-1, groups, (parents, 1)), HOURS, axis=1).astype(np.int32)
    for row in via_group:  # parents change group now and then, and are sometimes not placed
        for cut in rng.integers(0, HOURS, 3):
            row[cut:] = rng.integers(-1, groups)
    usual = rng.choice([0, 60, 300], members).astype(np.int32)
    rows_of: dict[int, list[tuple[int, int, int]]] = {m: [] for m in range(members)}
    for m in range(members):
        if rng.random() < 0.5:
            lo = BASE_US + int(rng.integers(0, HOURS)) * HOUR_US
            rows_of[m].append((lo, lo + int(rng.integers(1, 8)) * HOUR_US, int(rng.choice([20, 60, 600]))))
    flat = [row for m in range(members) for row in rows_of[m]]
    intervals = MemberIntervals(
        usual,
        np.cumsum([0] + [len(rows_of[m]) for m in range(members)]).astype(np.int64),
        np.array([r[0] for r in flat], np.int64),
        np.array([r[1] for r in flat], np.int64),
        np.array([r[2] for r in flat], np.int32),
    )

    def interval_of(m: int, hour_us: int) -> int:
        return next((iv for lo, hi, iv in rows_of[m] if lo <= hour_us < hi), int(usual[m]))

    got = spread(
        np.array([p[0] for p in periods], np.int32),
        np.array([p[1] for p in periods], np.int64),
        np.array([p[2] for p in periods], np.int64),
        values,
        direct,
        via,
        via_group,
        intervals,
        BASE_US,
        groups,
    )
    want = _reference(periods, values, direct, via, via_group, interval_of, groups)
    np.testing.assert_allclose(got.sums, want[0], rtol=1e-12, atol=1e-9)
    for name, value in zip(("known", "unknown", "present"), want[1:4], strict=True):
        np.testing.assert_array_equal(getattr(got, name), value, err_msg=name)
    np.testing.assert_allclose(got.expected, want[4], rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(got.unpromised, want[5])


def test_majority_groups_keep_the_placement_covering_most_of_each_hour() -> None:
    half = HOUR_US // 2
    member = np.array([0, 0, 1], np.int32)
    start = np.array([BASE_US, BASE_US + HOUR_US + half + 1, BASE_US + 2 * HOUR_US], np.int64)
    end = np.array([BASE_US + HOUR_US + half + 1, BASE_US + 3 * HOUR_US, BASE_US + 2 * HOUR_US + half], np.int64)
    grid = majority_groups(member, start, end, np.array([5, 7, 2], np.int32), BASE_US, 2, 4)
    # hour 1: group 5 covers half an hour and 1 us, group 7 the rest; hour 3: nobody
    assert grid.tolist() == [[5, 5, 7, -1], [-1, -1, 2, -1]]
