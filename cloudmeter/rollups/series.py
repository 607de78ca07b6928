"""The values the rollup engine moves around: a level's series in, rollup rows out, and their ordering."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cloudmeter.model import METRICS

Int32s = npt.NDArray[np.int32]
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

#: Columns of ``Series.capacity`` and the metric each one is the capacity of.
CAPACITY_COLUMNS = ("vcpus", "memory_bytes")
CAPACITY_OF = np.array([METRICS.index("cpu_used_cores"), METRICS.index("mem_used_bytes")], dtype=np.int64)
#: (percentage metric, absolute metric, capacity column): a parent's percentage is 100 * sum / capacity.
PERCENT_OF = (
    (METRICS.index("cpu_usage_pct"), METRICS.index("cpu_used_cores"), 0),
    (METRICS.index("mem_usage_pct"), METRICS.index("mem_used_bytes"), 1),
)


def last_per_key(*keys: npt.NDArray[np.generic]) -> npt.NDArray[np.intp]:
    """Indices that sort rows by ``keys`` (first = most significant), keeping the last of equal keys."""
    order = np.lexsort(keys[::-1])
    if len(order) < 2:
        return order.astype(np.intp)
    differs = np.zeros(len(order) - 1, dtype=np.bool_)
    for key in keys:
        ordered = key[order]
        differs |= ordered[1:] != ordered[:-1]
    kept: npt.NDArray[np.intp] = order[np.append(differs, True)]
    return kept


def int_or_null(values: Floats) -> Ints:
    """Float values rounded to integers, NaN -> -1 (NULL)."""
    out: Ints = np.where(np.isnan(values), -1, np.round(np.nan_to_num(values))).astype(np.int64)
    return out


@dataclass(frozen=True)
class Series:
    """Rows of one level sorted by (resource_id, ts) and unique on both.

    ``values`` is (rows, metrics), NaN = missing; ``samples`` counts the raw samples behind each row (1 for a
    raw sample, 0 for a parent's slot that only holds a child's earlier row over its interval); ``capacity``
    is each row's (vcpus, memory_bytes) at that time, NaN where unknown; ``interval_s`` is how long each row
    stands for (a sample's interval, a parent's grid; 0 unknown), set by the engine.
    """

    resource_id: Int32s
    ts_s: Ints
    values: Floats
    samples: Int32s
    capacity: Floats
    interval_s: Int32s | None = None

    def __len__(self) -> int:
        return len(self.ts_s)

    def take(self, rows: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> Series:
        """The rows selected by an index or mask (order kept)."""
        return Series(
            self.resource_id[rows],
            self.ts_s[rows],
            self.values[rows],
            self.samples[rows],
            self.capacity[rows],
            None if self.interval_s is None else self.interval_s[rows],
        )


@dataclass(frozen=True)
class Rows:
    """Rollup rows of one table: hourly (``tz`` None) or daily in time zone ``tz``, sorted by resource, ts.

    Stat arrays are (rows, metrics) with NaN for NULL; ``max_ts`` and the integer columns use -1 for NULL.
    """

    tz: str | None
    resource_id: Int32s
    ts_s: Ints
    avg: Floats
    min: Floats
    max: Floats
    p95: Floats
    max_ts: Ints
    sample_count: Ints
    expected_count: Ints
    vcpus: Ints
    memory_bytes: Ints
    child_count: Ints
    children_with_data: Ints

    def __len__(self) -> int:
        return len(self.ts_s)

    @classmethod
    def concat(cls, parts: list[Rows]) -> Rows:
        """Rows of one table from several parts (each part's resources distinct from the others')."""
        names = [name for name in cls.__dataclass_fields__ if name != "tz"]
        return cls(tz=parts[0].tz, **{name: np.concatenate([getattr(p, name) for p in parts]) for name in names})

    def take(self, rows: npt.NDArray[np.bool_]) -> Rows:
        """The rows selected by a mask (order kept)."""
        fields = {name: getattr(self, name)[rows] for name in self.__dataclass_fields__ if name != "tz"}
        return Rows(tz=self.tz, **fields)
