"""Shared vocabulary: windows, resource references, inventory items and sample batches.

Every layer speaks in these small frozen values. Times inside arrays are integer seconds since the Unix
epoch (UTC); times on objects are timezone-aware ``datetime`` in UTC.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

#: The raw metrics every collector delivers, in the column order of ``SampleBatch.values``.
METRICS: Final[tuple[str, ...]] = (
    "cpu_usage_pct",
    "cpu_used_cores",
    "mem_used_bytes",
    "mem_usage_pct",
    "disk_read_bps",
    "disk_write_bps",
    "net_rx_bps",
    "net_tx_bps",
)

#: Resource kinds: VMs up to regions, projects beside them, then Kubernetes' containers and pods (nodes are
#: hosts, namespaces are projects). The order gives each kind its code in memory; new kinds go at the end.
KINDS: Final[tuple[str, ...]] = ("vm", "host", "cluster", "provider", "region", "project", "pod", "container")
#: The kinds whose samples are their own (every other kind's rows come from its children): VMs and containers.
LEAVES: Final[tuple[str, ...]] = ("vm", "container")
#: How high each kind stands in the topology: a parent stands higher than its child. Projects stand apart (they
#: group leaves across hosts and are nobody's parent).
HEIGHTS: Final[dict[str, int]] = {
    "container": 0, "pod": 1, "vm": 1, "host": 2, "cluster": 3, "provider": 4, "region": 5,
}  # fmt: skip


def is_time_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone (``Europe/Berlin``; not ``America``, a directory of them)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # IsADirectoryError for a region's folder
        return False
    return True


def as_utc(moment: datetime) -> datetime:
    """Return ``moment`` in UTC; a naive datetime is refused rather than guessed."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()} has no time zone; give it one (e.g. UTC)")
    return moment.astimezone(UTC)


def epoch_s(moment: datetime) -> int:
    """Whole seconds since the Unix epoch of an aware datetime."""
    return int(as_utc(moment).timestamp())


def from_epoch_s(seconds: int) -> datetime:
    """The aware UTC datetime of whole seconds since the Unix epoch."""
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True)
class Window:
    """A half-open UTC interval ``[start, end)``. Sources read it as the whole seconds from ``start_s`` to
    ``end_s`` (both rounded down), so consecutive windows cover each second once."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", as_utc(self.start))
        object.__setattr__(self, "end", as_utc(self.end))
        if self.end <= self.start:
            raise ValueError(f"window end {self.end.isoformat()} is not after its start {self.start.isoformat()}")

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC"

    @property
    def start_s(self) -> int:
        return epoch_s(self.start)

    @property
    def end_s(self) -> int:
        return epoch_s(self.end)

    def split(self, step_s: int) -> list[Window]:
        """Consecutive sub-windows of at most ``step_s`` seconds covering this window."""
        edges = [*range(self.start_s, self.end_s, step_s), self.end_s]
        return [Window(from_epoch_s(a), from_epoch_s(b)) for a, b in itertools.pairwise(edges)]


class ResourceRef(NamedTuple):
    """A resource as its provider names it: kind plus the provider's unique id (``ems_ref``).

    A named tuple, not a dataclass: capture looks up every batch's references, and tuples hash in C.
    """

    kind: str
    ems_ref: str


@dataclass(frozen=True)
class Requests:
    """What a Kubernetes container asks for (requests) and may use at most (limits); None = not set.

    A pod's are its containers' sums where every container sets that value, else None.
    """

    cpu_request_cores: float | None = None
    cpu_limit_cores: float | None = None
    memory_request_bytes: int | None = None
    memory_limit_bytes: int | None = None


@dataclass(frozen=True)
class Placement:
    """A period from ``valid_from`` on in which a resource's parent and allocations were constant."""

    valid_from: datetime
    parent: ResourceRef | None
    vcpus: int | None = None
    memory_bytes: int | None = None
    project: str | None = None
    requests: Requests | None = None


@dataclass(frozen=True)
class InventoryItem:
    """One resource as inventory refresh sees it.

    ``history`` lists the placements the source knows, oldest first; when it is empty the persister records
    the current parent and allocations from the time of the refresh on.
    """

    ref: ResourceRef
    name: str
    parent: ResourceRef | None = None
    vcpus: int | None = None
    memory_bytes: int | None = None
    disk_bytes: int | None = None
    project: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    retired_at: datetime | None = None
    history: tuple[Placement, ...] = ()
    requests: Requests | None = None


@dataclass(frozen=True)
class Inventory:
    """Everything one refresh saw, as of ``observed_at``; resources not listed are retired."""

    observed_at: datetime
    items: tuple[InventoryItem, ...]


#: What an event says happened, normalised across sources (the ``events.kind`` column).
EVENT_KINDS: Final[tuple[str, ...]] = (
    "created", "deleted", "migrated", "resized", "powered_on", "powered_off", "other",
)  # fmt: skip


@dataclass(frozen=True)
class Event:
    """One change a source announced (Nova's notifications, vCenter's events), normalised.

    ``message_id`` is the source's unique id for the message (oslo's ``message_id``, vCenter's event key), so a
    re-delivered message is stored once. ``ts`` is when the change happened at the source. ``host`` (migrated,
    created), ``vcpus`` and ``memory_bytes`` (resized, created) and ``name`` are what the event proves; None = not
    stated.
    ``payload`` is the message as received (secrets never travel in it). ``resource`` is None when the message
    names no resource it can be tied to (kind ``other``).
    """

    message_id: str
    ts: datetime
    kind: str
    source_type: str
    resource: ResourceRef | None
    payload: Mapping[str, object]
    host: ResourceRef | None = None
    vcpus: int | None = None
    memory_bytes: int | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"event kind {self.kind!r} is not one of {', '.join(EVENT_KINDS)}")


@dataclass(frozen=True)
class SampleBatch:
    """Raw samples as parallel arrays.

    ``resource_idx[i]`` indexes ``refs``; ``ts_s[i]`` is the sample's time in epoch seconds; ``values[i, m]``
    is metric ``METRICS[m]`` (NaN = not measured). ``interval_s`` is the sampling interval of every series in
    the batch, from which coverage (expected sample counts) is derived: a source whose resources have different
    intervals (AWS instances with and without detailed monitoring) sends a batch per interval, and capture
    records each resource's interval from its batches (``resource_intervals``).
    """

    refs: tuple[ResourceRef, ...]
    resource_idx: npt.NDArray[np.int32]
    ts_s: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    interval_s: int

    def __post_init__(self) -> None:
        n = len(self.ts_s)
        if self.resource_idx.shape != (n,) or self.values.shape != (n, len(METRICS)):
            raise ValueError(
                f"SampleBatch arrays disagree: {self.resource_idx.shape} resource_idx, {self.ts_s.shape} ts_s, "
                f"{self.values.shape} values (want ({n},), ({n},), ({n}, {len(METRICS)}))"
            )
        if self.interval_s <= 0:
            raise ValueError(f"SampleBatch interval_s must be positive, got {self.interval_s}")

    def __len__(self) -> int:
        return len(self.ts_s)
