"""Placement periods spread over UTC hours: per (group, hour), time-weighted sums of what the periods carry.

A period is a resource's stay under one parent with constant allocations (``resource_history`` clipped to the
resource's lifetime and a window). Reports need, per host, cluster or provider and hour, the capacity of the
hosts and the allocation of the VMs placed beneath it, how many VMs that was and the samples their sampling
intervals promise. Expanding every VM period into its hours first would make rows by the tens of millions for
a fleet over a quarter; this walks each period's hours once and adds straight into the (group, hour) cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import numpy.typing as npt

HOUR_US = 3_600_000_000

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Int32s = npt.NDArray[np.int32]


@dataclass(frozen=True)
class Spread:
    """Per (group, hour) cells: ``sums`` of each value x the hour's fraction covered, how many placements had
    the value ``known`` and ``unknown``, distinct members ``present``, and the samples their intervals promise
    (``expected``; ``unpromised`` counts placements whose interval is not known)."""

    sums: Floats  # (groups, hours, values)
    known: Int32s  # (groups, hours, values)
    unknown: Int32s  # (groups, hours, values)
    present: Int32s  # (groups, hours)
    expected: Floats  # (groups, hours)
    unpromised: Int32s  # (groups, hours)


@dataclass(frozen=True)
class MemberIntervals:
    """Each member's sampling interval, hour by hour: its recorded rows (whole UTC hours, not overlapping;
    member ``m``'s are ``rows[m]:rows[m + 1]``), else ``usual_s[m]`` (0: unknown)."""

    usual_s: Int32s
    rows: Ints
    row_from_us: Ints
    row_to_us: Ints
    row_interval_s: Int32s

    @classmethod
    def none(cls) -> MemberIntervals:
        """No member promises anything."""
        i64 = np.zeros(0, np.int64)
        return cls(np.zeros(0, np.int32), np.zeros(1, np.int64), i64, i64, np.zeros(0, np.int32))


@nb.njit(cache=True)
def _interval_at(
    m: int, hour_us: int, usual_s: Int32s, rows: Ints, row_from_us: Ints, row_to_us: Ints, row_interval_s: Int32s
) -> int:
    """Member ``m``'s interval in the hour at ``hour_us``: its row covering the hour, else its usual one (0 where
    no member has intervals)."""
    if not len(usual_s):
        return 0
    for r in range(rows[m], rows[m + 1]):
        if row_from_us[r] <= hour_us < row_to_us[r]:
            return int(row_interval_s[r])
    return int(usual_s[m])


@nb.njit(cache=True)
def _interval_until(m: int, hour_us: int, rows: Ints, row_from_us: Ints, row_to_us: Ints) -> int:
    """The instant member ``m``'s interval may next change after ``hour_us`` (a row's start or end)."""
    if m + 1 >= len(rows):  # no member has rows
        return np.iinfo(np.int64).max
    for r in range(rows[m], rows[m + 1]):
        if hour_us < row_from_us[r]:
            return int(row_from_us[r])
        if hour_us < row_to_us[r]:
            return int(row_to_us[r])
    return np.iinfo(np.int64).max


@nb.njit(cache=True)
def _run_ends(via_group: Int32s) -> Int32s:
    """For each (parent, hour): the last hour of the run of hours in which its group stays the same."""
    ends = np.empty_like(via_group)
    hours = via_group.shape[1]
    for v in range(via_group.shape[0]):
        end = hours - 1
        for h in range(hours - 1, -1, -1):
            if h < hours - 1 and via_group[v, h] != via_group[v, h + 1]:
                end = h
            ends[v, h] = end
    return ends


@nb.njit(cache=True)
def _spread(
    member: Int32s,
    start_us: Ints,
    end_us: Ints,
    values: Floats,
    direct_group: Int32s,
    via: Int32s,
    via_group: Int32s,
    usual_s: Int32s,
    rows: Ints,
    row_from_us: Ints,
    row_to_us: Ints,
    row_interval_s: Int32s,
    base_us: int,
    groups: int,
) -> tuple[Floats, Int32s, Int32s, Int32s, Floats, Int32s]:
    hours = via_group.shape[1]
    k = values.shape[1]
    # cells of hours a period covers in part (added in place) and runs of whole hours (differences over hours,
    # summed at the end: whole-hour contributions are integers, so the order of the additions does not matter)
    sums = np.zeros((groups, hours + 1, k))
    known = np.zeros((groups, hours + 1, k), np.int32)
    unknown = np.zeros((groups, hours + 1, k), np.int32)
    present = np.zeros((groups, hours + 1), np.int32)
    expected = np.zeros((groups, hours + 1))
    unpromised = np.zeros((groups, hours + 1), np.int32)
    d_sums, d_known, d_unknown = np.zeros_like(sums), np.zeros_like(known), np.zeros_like(unknown)
    d_present, d_expected, d_unpromised = np.zeros_like(present), np.zeros_like(expected), np.zeros_like(unpromised)
    counted = np.full((groups, hours), -1, np.int32)  # the member that last counted itself present there
    run_end = _run_ends(via_group)
    for p in range(len(member)):
        m = member[p]
        first = max((start_us[p] - base_us) // HOUR_US, 0)
        last = min((end_us[p] - 1 - base_us) // HOUR_US, hours - 1)
        h = first
        while h <= last:
            hour_us = base_us + h * HOUR_US
            g = via_group[via[p], h] if via[p] >= 0 else -1
            if g < 0:
                g = direct_group[p]
            interval = _interval_at(m, hour_us, usual_s, rows, row_from_us, row_to_us, row_interval_s)
            whole = start_us[p] <= hour_us and end_us[p] >= hour_us + HOUR_US
            if whole and h not in (first, last):  # a run of whole hours, none shared with another period
                stop = last - 1
                if via[p] >= 0:
                    stop = min(stop, run_end[via[p], h])
                change_us = _interval_until(m, hour_us, rows, row_from_us, row_to_us)
                if change_us < np.iinfo(np.int64).max:
                    stop = max(min(stop, (change_us - base_us) // HOUR_US - 1), h)  # rows cover whole hours
                if g >= 0:
                    for j in range(k):
                        if np.isnan(values[p, j]):
                            d_unknown[g, h, j] += 1
                            d_unknown[g, stop + 1, j] -= 1
                        else:
                            d_known[g, h, j] += 1
                            d_known[g, stop + 1, j] -= 1
                            d_sums[g, h, j] += values[p, j]
                            d_sums[g, stop + 1, j] -= values[p, j]
                    d_present[g, h] += 1
                    d_present[g, stop + 1] -= 1
                    if interval > 0:
                        d_expected[g, h] += 3600.0 / interval
                        d_expected[g, stop + 1] -= 3600.0 / interval
                    else:
                        d_unpromised[g, h] += 1
                        d_unpromised[g, stop + 1] -= 1
                h = stop + 1
                continue
            covered_us = min(end_us[p], hour_us + HOUR_US) - max(start_us[p], hour_us)
            if g >= 0 and covered_us > 0:
                seconds = covered_us / 1e6
                for j in range(k):
                    if np.isnan(values[p, j]):
                        unknown[g, h, j] += 1
                    else:
                        known[g, h, j] += 1
                        sums[g, h, j] += values[p, j] * (seconds / 3600.0)
                if counted[g, h] != m:
                    counted[g, h] = m
                    present[g, h] += 1
                if interval > 0:
                    expected[g, h] += seconds / interval
                else:
                    unpromised[g, h] += 1
            h += 1
    for g in range(groups):
        for h in range(1, hours):
            for j in range(k):
                d_sums[g, h, j] += d_sums[g, h - 1, j]
                d_known[g, h, j] += d_known[g, h - 1, j]
                d_unknown[g, h, j] += d_unknown[g, h - 1, j]
            d_present[g, h] += d_present[g, h - 1]
            d_expected[g, h] += d_expected[g, h - 1]
            d_unpromised[g, h] += d_unpromised[g, h - 1]
    return (
        (sums + d_sums)[:, :hours],
        (known + d_known)[:, :hours],
        (unknown + d_unknown)[:, :hours],
        (present + d_present)[:, :hours],
        (expected + d_expected)[:, :hours],
        (unpromised + d_unpromised)[:, :hours],
    )


@nb.njit(cache=True)
def _majority(
    member: Int32s, start_us: Ints, end_us: Ints, group: Int32s, base_us: int, members: int, hours: int
) -> Int32s:
    grid = np.full((members, hours), -1, np.int32)
    best = np.zeros((members, hours), np.int64)
    for p in range(len(member)):
        first = max((start_us[p] - base_us) // HOUR_US, 0)
        last = min((end_us[p] - 1 - base_us) // HOUR_US, hours - 1)
        for h in range(first, last + 1):
            hour_us = base_us + h * HOUR_US
            covered_us = min(end_us[p], hour_us + HOUR_US) - max(start_us[p], hour_us)
            if covered_us > best[member[p], h]:
                best[member[p], h] = covered_us
                grid[member[p], h] = group[p]
    return grid


def majority_groups(
    member: Int32s, start_us: Ints, end_us: Ints, group: Int32s, base_us: int, members: int, hours: int
) -> Int32s:
    """(members, hours): each member's ``group`` hour by hour from its periods, the one covering most of the
    hour winning (the earlier on a tie; -1: not placed, or placed in no group)."""
    return _majority(member, start_us, end_us, group, base_us, members, hours)


def spread(
    member: Int32s,
    start_us: Ints,
    end_us: Ints,
    values: Floats,
    direct_group: Int32s,
    via: Int32s,
    via_group: Int32s,
    intervals: MemberIntervals | None,
    base_us: int,
    groups: int,
) -> Spread:
    """Spread periods over the hours of ``via_group`` (the window's hours from ``base_us``).

    Period ``p`` of member ``member[p]`` (a dense index; a member's periods consecutive) covers
    ``[start_us[p], end_us[p])`` (epoch microseconds) and carries ``values[p]`` (NaN: unknown). Its group in
    hour ``h`` is ``via_group[via[p], h]`` (a VM's host's group that hour) where ``via[p] >= 0`` and that is
    not -1, else ``direct_group[p]`` (-1: counted nowhere). ``intervals`` gives each member's sampling interval
    hour by hour (None for members that promise no samples, such as hosts).
    """
    i = intervals or MemberIntervals.none()
    sums = _spread(
        member, start_us, end_us, values, direct_group, via, via_group,
        i.usual_s, i.rows, i.row_from_us, i.row_to_us, i.row_interval_s, base_us, groups,
    )  # fmt: skip
    return Spread(*sums)
