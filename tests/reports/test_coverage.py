"""Coverage is samples over what the interval promises while the resource existed: never above 100 %."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from cloudmeter.reports.inputs import sample_coverage

HOUR = 3600
EPOCH = datetime(2026, 3, 1, tzinfo=UTC)


def placement_hours(start: int, end: int, moved: int | None, grid: list[int], interval: int) -> pl.DataFrame:
    """What ``placements`` and the hourly rollup give for one VM alive in [start, end) seconds, on a second host
    from ``moved``, with samples at ``grid``: a row per hour and host with its seconds and the hour's count."""
    cuts = sorted(
        {start, end, *(h for h in range(0, end + HOUR, HOUR) if start < h < end), *([moved] if moved else [])}
    )
    rows = []
    for lo, hi in pairwise(cuts):
        hour = lo // HOUR * HOUR
        count = sum(1 for t in grid if hour <= t < hour + HOUR)
        rows.append((EPOCH + timedelta(seconds=hour), 1, float(hi - lo), count, interval))
    return pl.DataFrame(
        rows,
        schema={"ts": pl.Datetime("us", "UTC"), "resource_id": pl.Int32, "seconds": pl.Float64,
                "sample_count": pl.Int32, "interval_s": pl.Int32},
        orient="row",
    )  # fmt: skip


def coverage(frame: pl.DataFrame) -> float:
    covered = sample_coverage(frame)
    return float(covered["samples"].sum()) / float(covered["expected"].sum())


@st.composite
def lifetimes(draw: st.DrawFn, aligned: bool) -> tuple[int, int, int | None, int, set[int]]:
    interval = draw(st.sampled_from([60, 300, 600, 900, 3600]))
    if aligned:
        start = draw(st.integers(0, 3 * HOUR // interval)) * interval
        end = start + draw(st.integers(1, 5 * HOUR // interval)) * interval
    else:
        start = draw(st.integers(0, 3 * HOUR))
        end = start + draw(st.integers(1, 5 * HOUR))
    moved = draw(st.none() | st.integers(start + 1, end - 1)) if end - start > 1 else None
    slots = list(range(-(-start // interval) * interval, end, interval))
    gaps = draw(st.sets(st.sampled_from(slots))) if slots else set()
    return start, end, moved, interval, gaps


@given(lifetimes(aligned=False))
def test_coverage_never_exceeds_100_percent(case: tuple[int, int, int | None, int, set[int]]) -> None:
    start, end, moved, interval, gaps = case
    grid = [t for t in range(-(-start // interval) * interval, end, interval) if t not in gaps]
    assert 0.0 <= coverage(placement_hours(start, end, moved, grid, interval)) <= 1.0 + 1e-12


@given(lifetimes(aligned=True))
def test_coverage_of_a_lifetime_on_the_grid_is_the_share_of_slots_with_a_sample(
    case: tuple[int, int, int | None, int, set[int]],
) -> None:
    start, end, moved, interval, gaps = case
    slots = list(range(start, end, interval))
    grid = [t for t in slots if t not in gaps]
    assert abs(coverage(placement_hours(start, end, moved, grid, interval)) - len(grid) / len(slots)) < 1e-9


def test_a_migration_mid_hour_splits_the_samples_by_time() -> None:
    # alive the whole hour, 60 samples, moved at 00:15: a quarter of them under the first host
    frame = sample_coverage(placement_hours(0, HOUR, 900, list(range(0, HOUR, 60)), 60))
    assert frame["samples"].to_list() == [15.0, 45.0] and frame["expected"].to_list() == [15.0, 45.0]


def test_more_samples_than_the_interval_promises_count_as_complete_not_more() -> None:
    # a VM alive 30 s that still sent its sample at the slot's start: one sample against half a promise
    frame = sample_coverage(placement_hours(0, 30, None, [0], 60))
    assert frame["samples"].to_list() == [0.5] and coverage(placement_hours(0, 30, None, [0], 60)) == 1.0
