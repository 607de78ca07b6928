"""Who was under whom, when: a manager's placement periods as arrays, and lookups over them.

Built from ``resources`` and ``resource_history`` (read by storage, handed over as plain arrays). A sample
is placed by its own time, so a VM that migrated mid-hour counts under each host for the samples it sent
from there. Projects are resources of kind ``project``; a leaf's (a VM's or a container's) project comes
from the same periods.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cloudmeter.model import KINDS

Int32s = npt.NDArray[np.int32]
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

#: ``valid_to`` of a period that has not ended.
OPEN_END = np.iinfo(np.int64).max
_KEY_SHIFT = 34  # epoch seconds < 2**34 (year 2514); resource ids < 2**29


@dataclass(frozen=True)
class Topology:
    """Resources (``resource_id`` with ``kind`` codes into ``KINDS``) and their placement periods.

    Period arrays are sorted by (``period_resource``, ``valid_from_s``); unknown values are -1 (ids) or NaN
    (allocations). ``capacity`` is a period's (vcpus, memory_bytes).
    """

    resource_id: Int32s
    kind: npt.NDArray[np.int8]
    period_resource: Int32s
    valid_from_s: Ints
    valid_to_s: Ints
    parent_id: Int32s
    project_id: Int32s
    capacity: Floats

    def __post_init__(self) -> None:
        order = np.lexsort((self.valid_from_s, self.period_resource))
        if not np.array_equal(order, np.arange(len(order))):
            raise ValueError("Topology periods must be sorted by (resource, valid_from)")
        size = int(self.resource_id.max()) + 1 if len(self.resource_id) else 1
        dense = np.full(size, -1, dtype=np.int32)
        dense[self.resource_id] = np.arange(len(self.resource_id), dtype=np.int32)
        object.__setattr__(self, "_dense", dense)
        within = np.full(len(self.resource_id), -1, dtype=np.int32)
        for code in range(len(KINDS)):
            members = self.kind == code
            within[members] = np.arange(int(members.sum()), dtype=np.int32)
        object.__setattr__(self, "_within_kind", within)

    @classmethod
    def empty(cls) -> Topology:
        """No resources at all."""
        i32, i64 = np.zeros(0, np.int32), np.zeros(0, np.int64)
        return cls(i32, np.zeros(0, np.int8), i32, i64, i64, i32, i32, np.zeros((0, 2)))

    def __len__(self) -> int:
        return len(self.resource_id)

    def dense(self, ids: Int32s) -> Int32s:
        """Positions of resource ``ids`` in ``resource_id`` (-1 for an id not known here)."""
        table: Int32s = self._dense  # type: ignore[attr-defined]
        inside = (ids >= 0) & (ids < len(table))
        out = np.full(len(ids), -1, dtype=np.int32)
        out[inside] = table[ids[inside]]
        return out

    def kind_of(self, ids: Int32s) -> npt.NDArray[np.int8]:
        """Kind codes of resource ``ids`` (-1 where unknown)."""
        pos = self.dense(ids)
        out = np.full(len(ids), -1, dtype=np.int8)
        out[pos >= 0] = self.kind[pos[pos >= 0]]
        return out

    def within_kind(self, ids: Int32s) -> Int32s:
        """Position of each id among the resources of its own kind (-1 where unknown)."""
        pos = self.dense(ids)
        out = np.full(len(ids), -1, dtype=np.int32)
        within: Int32s = self._within_kind  # type: ignore[attr-defined]
        out[pos >= 0] = within[pos[pos >= 0]]
        return out

    def ids_of_kind(self, code: int) -> Int32s:
        """Resource ids of one kind, in ``within_kind`` order."""
        ids: Int32s = self.resource_id[self.kind == code]
        return ids

    def place(self, rid: Int32s, ts_s: Ints) -> Ints:
        """For each (resource, time), the index of the period in effect then, or -1 if none."""
        if not len(self.period_resource):
            return np.full(len(ts_s), -1, np.int64)
        period_keys = (self.period_resource.astype(np.int64) << _KEY_SHIFT) + self.valid_from_s
        keys = (rid.astype(np.int64) << _KEY_SHIFT) + ts_s
        found = np.searchsorted(period_keys, keys, side="right") - 1
        safe = np.maximum(found, 0)
        ok = (found >= 0) & (self.period_resource[safe] == rid) & (ts_s < self.valid_to_s[safe])
        result: Ints = np.where(ok, found, -1)
        return result

    def period_ids(self, column: Int32s, period: Ints) -> Int32s:
        """``column`` (``parent_id`` or ``project_id``) of each period index, -1 where the index is -1."""
        out = np.full(len(period), -1, np.int32)
        found = period >= 0
        out[found] = column[period[found]]
        return out

    def capacity_at(self, period: Ints) -> Floats:
        """(vcpus, memory_bytes) of each period index (NaN where the index is -1 or the value unknown)."""
        out = np.full((len(period), 2), np.nan)
        found = period >= 0
        out[found] = self.capacity[period[found]]
        return out

    def placed_children(self, relation: str, edges_s: Ints) -> tuple[Ints, Ints, Int32s]:
        """Distinct (parent, bucket, child) triples: the child was placed under the parent within the bucket.

        ``relation`` is ``"parent"`` or ``"project"``. Buckets are ``[edges_s[b], edges_s[b+1])``.
        """
        parents = self.parent_id if relation == "parent" else self.project_id
        keep = parents >= 0
        start = np.searchsorted(edges_s, self.valid_from_s[keep], side="right") - 1
        stop = np.searchsorted(edges_s, self.valid_to_s[keep], side="left")  # first bucket not reached
        start = np.clip(start, 0, len(edges_s) - 1)
        stop = np.clip(stop, 0, len(edges_s) - 1)
        spans = np.maximum(stop - start, 0)
        parent = np.repeat(parents[keep], spans)
        child = np.repeat(self.period_resource[keep], spans)
        offsets = np.arange(int(spans.sum())) - np.repeat(np.cumsum(spans) - spans, spans)
        bucket = np.repeat(start, spans) + offsets
        triples = np.unique(np.stack([parent.astype(np.int64), bucket, child.astype(np.int64)]), axis=1)
        return triples[0], triples[1], triples[2].astype(np.int32)
