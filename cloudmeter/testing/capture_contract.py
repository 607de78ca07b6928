"""The capture half of the collector contract (``contract.py`` has the whole list and what each check guards):
a mixin of ``CollectorContract``, using its ``collector``, ``window`` and ``missing_metric`` fixtures."""

from __future__ import annotations

import itertools
import math
from typing import Final

import numpy as np
import numpy.typing as npt

from cloudmeter.collectors.base import Collector
from cloudmeter.model import (
    METRICS,
    ResourceRef,
    Window,
    epoch_s,
    from_epoch_s,
)
from cloudmeter.testing.checks import (
    CORES,
    MEMORY,
    NON_NEGATIVE_COLUMNS,
    PCT_COLUMNS,
    SLACK,
    Bounds,
    Captured,
    at,
    bounds_at,
    items_by_ref,
    lifetime,
    name_of,
)

#: Most cuts where resources are created, move or are retired that the split check makes.
MAX_LIFECYCLE_CUTS: Final = 6


class CaptureContract:
    """What ``capture`` must do: the half-open window, any cut of it, order, units, NaN for what was not measured,
    lifetimes, known references."""

    # ---- capture ------------------------------------------------------------------------------------------

    @staticmethod
    def _captured(collector: Collector, window: Window) -> Captured:
        assert isinstance(window, Window), f"the window fixture is {type(window).__name__}, not a Window"
        found = Captured.of(collector, window)
        assert found.rows, f"capture of {window} gave no samples: the window fixture must be one with samples"
        return found

    def test_capture_stays_in_the_half_open_window(self, collector: Collector, window: Window) -> None:
        found = self._captured(collector, window)
        for ref, ts in found.rows:
            assert window.start_s <= ts < window.end_s, (
                f"{name_of(ref)} has a sample at {at(ts)}, outside [{at(window.start_s)}, {at(window.end_s)})"
            )

    def test_capture_of_a_split_window_equals_the_whole(self, collector: Collector, window: Window) -> None:
        """Cut at the middle, at a time off any grid, and where a resource in the window is created, moves or
        is retired (the first ``MAX_LIFECYCLE_CUTS`` such times): where a collector decides who is alive."""
        whole = self._captured(collector, window)
        span = window.end_s - window.start_s
        inside = range(window.start_s + 1, window.end_s)
        moments = {
            epoch_s(moment)
            for item in collector.inventory().items
            for moment in (item.created_at, item.retired_at, *(p.valid_from for p in item.history))
            if moment is not None
        }
        lifecycle = sorted(m for m in moments if m in inside)[:MAX_LIFECYCLE_CUTS]
        cuts = sorted({window.start_s + span // 2, window.start_s + span // 3 + 7, *lifecycle} & set(inside))
        edges = [window.start_s, *cuts, window.end_s]
        pieces = [
            Captured.of(collector, Window(from_epoch_s(a), from_epoch_s(b))) for a, b in itertools.pairwise(edges)
        ]
        cut_at = ", ".join(at(c) for c in edges[1:-1])
        joined: dict[tuple[ResourceRef, int], tuple[npt.NDArray[np.float64], int]] = {}
        for piece in pieces:
            assert not piece.duplicates, f"a piece cut at {cut_at} repeats {piece.duplicates[0]}"
            overlap = joined.keys() & piece.rows.keys()
            assert not overlap, f"{name_of(min(overlap)[0])} at {at(min(overlap)[1])} is in two pieces cut at {cut_at}"
            joined |= piece.rows
        missing, extra = sorted(whole.rows.keys() - joined.keys()), sorted(joined.keys() - whole.rows.keys())
        assert not missing, f"cut at {cut_at}, the pieces lack {name_of(missing[0][0])} at {at(missing[0][1])}"
        assert not extra, f"cut at {cut_at}, the pieces add {name_of(extra[0][0])} at {at(extra[0][1])}"
        for key, (values, interval) in whole.rows.items():
            got, got_interval = joined[key]
            where = f"{name_of(key[0])} at {at(key[1])}"
            assert interval == got_interval, f"{where}: interval {interval} s whole, {got_interval} s in pieces"
            for k, metric in enumerate(METRICS):
                a, b = float(values[k]), float(got[k])
                assert (math.isnan(a) and math.isnan(b)) or a == b, (
                    f"{where}: {metric} is {a!r} captured whole, {b!r} captured in pieces cut at {cut_at}"
                )

    def test_capture_timestamps_are_sorted_and_unique_per_resource(self, collector: Collector, window: Window) -> None:
        found = self._captured(collector, window)
        assert not found.duplicates, f"one capture delivers {found.duplicates[0]} twice"
        for ref, stamps in found.order.items():
            for before, after in itertools.pairwise(stamps):
                assert before < after, (
                    f"{name_of(ref)}: {at(after)} comes after {at(before)}; each resource's timestamps must rise "
                    "strictly, across the batches of a capture too"
                )

    def test_capture_units_are_in_range(self, collector: Collector, window: Window) -> None:
        found = self._captured(collector, window)
        items = items_by_ref(collector.inventory())
        for (ref, ts), (values, _) in sorted(found.rows.items()):
            where = f"{name_of(ref)} at {at(ts)}"
            for k, metric in enumerate(METRICS):
                value = float(values[k])
                assert not math.isinf(value), f"{where}: {metric} is {value}; only finite numbers or NaN"
            for k in NON_NEGATIVE_COLUMNS:
                assert not values[k] < 0, f"{where}: {METRICS[k]} is {float(values[k])!r}, below 0"
            item = items.get(ref)
            bounds = bounds_at(item, from_epoch_s(ts)) if item is not None else Bounds(None, None)
            limits = [(CORES, bounds.cores), (MEMORY, bounds.memory_bytes)]
            limits += zip(PCT_COLUMNS, (bounds.cpu_pct, bounds.mem_pct), strict=True)
            for k, limit in limits:
                assert limit is None or not values[k] > limit * (1 + SLACK), (
                    f"{where}: {METRICS[k]} is {float(values[k])!r}, above its bound {limit} (+{SLACK:.0%} slack: "
                    "vCPUs, memory and 100 %, or a container's limits)"
                )

    def test_missing_metric_is_null_not_zero(
        self, collector: Collector, window: Window, missing_metric: tuple[ResourceRef, str]
    ) -> None:
        ref, metric = missing_metric
        assert metric in METRICS, f"the missing_metric fixture names {metric!r}, which is not one of {METRICS}"
        found = self._captured(collector, window)
        stamps = found.order.get(ref, [])
        assert stamps, (
            f"{name_of(ref)} has no samples in {window}: the missing_metric fixture must name a resource with samples "
            f"there, so that its {metric} is seen to be NaN"
        )
        column = METRICS.index(metric)
        for ts in stamps:
            value = float(found.rows[ref, ts][0][column])
            assert math.isnan(value), (
                f"{name_of(ref)} at {at(ts)}: {metric} is {value!r}; the source has no data for it, so it must be "
                "NaN (NULL), never a made-up value such as 0"
            )

    def test_capture_stays_within_resource_lifetimes(self, collector: Collector, window: Window) -> None:
        """A sample stands for ``[ts, ts + interval_s)`` (sources report the start of a period); that period must
        overlap the resource's lifetime: from its creation (or first placement, if later) to its retirement."""
        found = self._captured(collector, window)
        items = items_by_ref(collector.inventory())
        for (ref, ts), (_, interval) in sorted(found.rows.items()):
            item = items.get(ref)
            if item is None:
                continue  # test_captured_refs_are_in_inventory says so
            born, retired = lifetime(item)
            where = f"{name_of(ref)} has a sample at {at(ts)} (interval {interval} s)"
            if born is not None:
                assert from_epoch_s(ts + interval) > born, f"{where}, wholly before it existed ({born})"
            if retired is not None:
                assert from_epoch_s(ts) < retired, f"{where}, after it was retired ({retired})"

    def test_captured_refs_are_in_inventory(self, collector: Collector, window: Window) -> None:
        found = self._captured(collector, window)
        items = items_by_ref(collector.inventory())
        unknown = sorted(found.named - items.keys())
        assert not unknown, (
            f"capture names {len(unknown)} resource(s) the inventory does not list, first {name_of(unknown[0])}"
        )
