"""Each resource's interval hour by hour: lookups, and what a batch does to a resource's rows (``assign``)."""

from __future__ import annotations

import numpy as np
import pytest

from cloudmeter.rollups.intervals import Intervals, Recorded, assign, changed_hours, slots_in, value_at

H = 3600
T = 1_780_000_000 - 1_780_000_000 % H  # a whole hour


def test_lookup_covers_rows_carries_the_last_and_knows_nothing_before_or_between() -> None:
    spans = {7: [(T, T + 2 * H, 300), (T + 5 * H, T + 6 * H, 60)], 9: [(T + H, T + 2 * H, 60)]}
    intervals = Intervals.from_spans(spans)
    hours = np.arange(T - H, T + 9 * H, H)
    got = intervals.grid(np.array([7, 9, 8], np.int32), hours)
    assert got.tolist() == [
        [0, 300, 300, 0, 0, 0, 60, 60, 60, 60],  # before the first, two rows, the gap, the last carried on
        [0, 0, 60, 60, 60, 60, 60, 60, 60, 60],
        [0] * 10,  # no rows: nothing captured, no interval
    ]
    assert [value_at(spans[7], int(h)) for h in hours] == got[0].tolist()
    assert intervals.finest_s == 60
    assert Intervals.uniform(300).at(np.array([1, 2], np.int32), np.array([T, T], np.int64)).tolist() == [300, 300]


def test_an_interval_must_divide_an_hour() -> None:
    with pytest.raises(ValueError, match="divide an hour"):
        Intervals.from_spans({1: [(T, T + H, 7)]})


def test_a_new_resource_and_the_usual_next_batch() -> None:
    spans = assign([], T, T + H, 60)
    assert spans == [(T, T + H, 60)]
    assert assign(spans, T + 2 * H, T + 3 * H, 60) == [(T, T + 3 * H, 60)]  # the hour in between: carried


def test_old_data_at_a_coarser_period_keeps_the_newer_hours() -> None:
    """CloudWatch serves data older than 15 days at 300 s: a backfill before the 60-s rows leaves them be."""
    recent = [(T + 10 * H, T + 20 * H, 60)]
    older = assign(recent, T, T + 4 * H, 300)
    assert older == [(T, T + 4 * H, 300), (T + 10 * H, T + 20 * H, 60)]  # hours 4-9: nothing captured, none
    assert changed_hours(recent, older, T + 30 * H) == [(T, T + 4 * H)]
    assert assign(recent, T + 12 * H, T + 14 * H, 300) == recent  # the stored 60-s samples are still there


def test_monitoring_switched_to_basic_holds_from_the_next_hour() -> None:
    """Detailed until 10:30, basic after: hour 10 holds both, so it keeps 60; from 11:00 on, 300."""
    detailed = [(T, T + 11 * H, 60)]
    basic = assign(detailed, T + 10 * H, T + 12 * H, 300)
    assert basic == [(T, T + 11 * H, 60), (T + 11 * H, T + 12 * H, 300)]
    assert value_at(basic, T + 40 * H) == 300
    assert changed_hours(detailed, basic, T + 14 * H) == [(T + 11 * H, T + 14 * H)]  # carried on: 60 -> 300
    assert changed_hours(detailed, basic, T + 11 * H) == []


def test_late_first_data_changes_the_hours_after_it() -> None:
    assert changed_hours([], assign([], T, T + H, 60), T + 5 * H) == [(T, T + 5 * H)]


def test_slots_of_a_day_that_starts_inside_an_hour() -> None:
    """A Kolkata day starts at 18:30 UTC: a 3600-s series has one slot (18:00) in the day before, 24 in it."""
    hours = np.arange(T, T + 26 * H, H)
    interval = np.full((2, len(hours)), 3600, np.int32)
    interval[1] = 300
    lo, hi = T + H // 2, T + H // 2 + 24 * H
    assert slots_in(interval, hours, lo, hi).tolist() == [24, 288]
    assert slots_in(interval, hours, lo - 24 * H, lo).tolist() == [1, 6]


def test_recorded_knows_hours_joined_across_batches_at_their_coarser_bound() -> None:
    known = Recorded()
    ids = np.array([3, 40], np.int32)
    first, end = np.array([T, T], np.int64), np.array([T + H, T + H], np.int64)
    assert not known.covers(ids, first, end, 60).any()
    known.note(ids, first, end, 60)
    assert known.covers(ids, first, end, 60).all()
    assert known.covers(ids, first, end, 300).all()  # a coarser batch keeps the finer interval: nothing to do
    known.note(ids[:1], first[:1] + H, end[:1] + H, 300)  # touches: joined, bounded by the coarser
    assert known.covers(ids[:1], first[:1], end[:1] + H, 300).all()
    assert not known.covers(ids[:1], first[:1], end[:1] + H, 60).any()
    known.note(ids[1:], first[1:] + 3 * H, end[1:] + 3 * H, 60)  # a gap: only the new hours are known
    assert not known.covers(ids[1:], first[1:], end[1:], 60).any()
    three = np.array([40, 7, 900], np.int32)
    assert known.covers(three, np.full(3, T + 3 * H), np.full(3, T + 4 * H), 60).tolist() == [True, False, False]
    known.clear()
    assert not known.covers(ids, first, end, 300).any()
