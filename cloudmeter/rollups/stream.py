"""Raw samples of a manager's still-open hours, held in memory as capture batches arrive."""

from __future__ import annotations

import numpy as np

from cloudmeter.model import METRICS
from cloudmeter.rollups.kernels import is_sorted_unique
from cloudmeter.rollups.series import Floats, Int32s, Ints, last_per_key
from cloudmeter.rollups.zones import HOUR_S

Part = tuple[Int32s, Ints, Floats]


class OpenHours:
    """Samples from ``start_s`` (an hour boundary: everything before is rolled up) on, by hour."""

    def __init__(self, start_s: int) -> None:
        self.start_s = start_s
        self._parts: dict[int, list[Part]] = {}

    @property
    def hours(self) -> list[int]:
        """Starts of the hours holding samples, in order."""
        return sorted(self._parts)

    def add(self, resource_id: Int32s, ts_s: Ints, values: Floats) -> None:
        """Keep the rows at or after ``start_s`` (earlier ones are late: storage marks their hours dirty)."""
        keep = ts_s >= self.start_s
        if not keep.all():
            resource_id, ts_s, values = resource_id[keep], ts_s[keep], values[keep]
        if not len(ts_s):
            return
        first, last = int(ts_s.min()) // HOUR_S, int(ts_s.max()) // HOUR_S
        if first == last:
            self._parts.setdefault(first * HOUR_S, []).append((resource_id, ts_s, values))
            return
        hour = ts_s // HOUR_S
        for h in np.unique(hour).tolist():
            rows = hour == h
            self._parts.setdefault(h * HOUR_S, []).append((resource_id[rows], ts_s[rows], values[rows]))

    def pop(self, hour_s: int) -> list[Part]:
        """The parts of the hour starting at ``hour_s`` as they arrived (see ``merge``); the hour is closed."""
        self.start_s = max(self.start_s, hour_s + HOUR_S)
        return self._parts.pop(hour_s, [])


def merge(parts: list[Part]) -> Part:
    """One hour's parts as one, sorted by (resource, ts), later arrivals winning."""
    if not parts:
        return np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros((0, len(METRICS)))
    rid = np.concatenate([p[0] for p in parts])
    ts = np.concatenate([p[1] for p in parts])
    values = np.concatenate([p[2] for p in parts])
    if not is_sorted_unique(rid, ts):  # parts in time order: a stable sort by resource is enough, unless they overlap
        order = np.argsort(rid, kind="stable")
        rid, ts, values = rid[order], ts[order], values[order]
    if not is_sorted_unique(rid, ts):
        keep = last_per_key(rid, ts)
        rid, ts, values = rid[keep], ts[keep], values[keep]
    return rid, ts, values
