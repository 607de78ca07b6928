"""PerformanceManager's answers as cloudmeter's samples, and the statistics levels a window is read at (pure).

Counters (all with instance ``''``, the entity's aggregate), per entity type:

    cpu.usage.average         hundredths of a percent  -> cpu_usage_pct (/ 100)
    cpu.usagemhz.average      MHz                      -> cpu_used_cores (/ MHz per core of the host it ran on)
    mem.consumed.average      KB                       -> mem_used_bytes (x 1024), mem_usage_pct (of the
                                                          VM's configured memory, of the host's memory)
    virtualDisk.read/write.average (VMs), disk.read/write.average (hosts)  KBps -> disk_*_bps (x 1024)
    net.received/transmitted.average                     KBps -> net_rx_bps, net_tx_bps (x 1024)

mem.consumed, not mem.active: consumed is the host memory backing the guest (what a host must have, what
ManageIQ's derived_memory_used reads, and kept at statistics level 1 in every historical interval); active is
a sampled estimate of recently touched pages, a working-set figure that is not capacity.

vSphere stamps a sample with the end of its interval; cloudmeter stores the start (``ts = end - interval``),
as for every source: a sample's ``ts`` is the start of the interval it covers. A 7200-s sample is a row per
hour it covers (``to_batch``). -1 is vSphere's "no value":
NaN (NULL). A sample time where every counter is -1 gives no row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from cloudmeter.errors import PayloadError
from cloudmeter.model import METRICS, ResourceRef, SampleBatch

#: vCenter's realtime interval and how long it keeps it (ESXi keeps an hour of 20-second samples).
REALTIME: Final = (20, 3600)
#: The coarsest historical interval read: vCenter's default "past month" level (7200 s, 30 days).
COARSEST_S: Final = 7200
KB: Final = 1024
HOUR_S: Final = 3600
_COLUMN: Final = {name: k for k, name in enumerate(METRICS)}

#: counter name -> (metric column, scale), per entity type; cpu.usagemhz is divided by MHz per core instead.
VM_COUNTERS: Final = {
    "cpu.usage.average": ("cpu_usage_pct", 0.01),
    "cpu.usagemhz.average": ("cpu_used_cores", 1.0),
    "mem.consumed.average": ("mem_used_bytes", KB),
    "virtualDisk.read.average": ("disk_read_bps", KB),
    "virtualDisk.write.average": ("disk_write_bps", KB),
    "net.received.average": ("net_rx_bps", KB),
    "net.transmitted.average": ("net_tx_bps", KB),
}
HOST_COUNTERS: Final = {
    **{name: spec for name, spec in VM_COUNTERS.items() if not name.startswith("virtualDisk.")},
    "disk.read.average": ("disk_read_bps", KB),
    "disk.write.average": ("disk_write_bps", KB),
}


def ceil_to(seconds: int, step: int) -> int:
    return -(-seconds // step) * step


def levels_kept(historical: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Realtime and the historical levels up to ``COARSEST_S``, finest first: (interval, seconds kept)."""
    return [REALTIME, *sorted(level for level in historical if REALTIME[0] < level[0] <= COARSEST_S)]


def plan(start_s: int, end_s: int, now_s: int, levels: Sequence[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """``[start_s, end_s)`` cut by the interval it is read at: ``(a, b, interval)``, oldest first.

    Level ``k`` keeps the samples starting from ``now - kept_k`` on. Each UTC hour of the window is read at one
    level only, the finest that still keeps the window's part of it, so that a resource's samples in an hour all
    have one interval (what ``resource_intervals`` records per hour, and what coverage expects): a cut between
    two levels is the window's start (the finer level keeps all of the window) or else the first whole hour
    from which the finer keeps everything (on the coarser level's grid when it is longer than an hour). The
    hour in which the finer level's samples begin is read at the coarser. The coarsest level reads what it
    still keeps, on its own grid; older is gone.
    """
    pieces, upper = [], end_s
    for k, (interval, kept) in enumerate(levels):
        oldest = now_s - kept
        if start_s >= oldest:
            lower = start_s
        elif k + 1 < len(levels):
            lower = ceil_to(oldest, max(HOUR_S, levels[k + 1][0]))
        else:
            lower = ceil_to(oldest, interval)
        lower = max(lower, start_s)
        if lower < upper:
            pieces.append((lower, upper, interval))
        upper = min(upper, lower)
    return pieces[::-1]


def query_range(a: int, b: int, interval: int) -> tuple[int, int]:
    """QueryPerf's (startTime, endTime), which select interval ends ``startTime < end <= endTime``, for the
    samples starting in ``[a, b)``; for a level longer than an hour, also the sample whose later hours begin at
    ``a`` (its hours are rows of their own, ``to_batch``)."""
    lead = interval - min(interval, HOUR_S)
    return a + interval - 1 - lead, b + interval - 1


@dataclass(frozen=True)
class Entity:
    """What converting an entity's samples needs: its reference, memory, and MHz per core from when on
    (``since_s`` ascending, the first applying before it too)."""

    ref: ResourceRef
    memory_bytes: float
    since_s: npt.NDArray[np.int64]
    mhz_per_core: npt.NDArray[np.float64]


def to_batch(
    answers: Sequence[Any],
    counters: Mapping[int, str],
    entities: Mapping[str, Entity],
    span: tuple[int, int],
    interval: int,
) -> SampleBatch:
    """QueryPerf's PerfEntityMetric answers as one batch of the samples starting in ``span``.

    ``counters`` names the counter ids asked for; ``entities`` the entities by managed object id. A sample of an
    interval longer than an hour (7200 s) is a row per hour it covers, each with its values, and the batch's
    interval is an hour: cloudmeter's intervals divide an hour (``resource_intervals``), and a row's hour then
    holds the average over the sample's whole interval, the best that is known of it.
    """
    refs: list[ResourceRef] = []
    parts_idx, parts_ts, parts_values, parts_mhz = [], [], [], []
    for k, answer in enumerate(answers):
        where = f"QueryPerf[{k}]"
        moid = getattr(getattr(answer, "entity", None), "_moId", None)
        if not isinstance(moid, str) or moid not in entities:
            raise PayloadError.unexpected(f"{where}.entity", moid, "an entity that was asked for")
        entity = entities[moid]
        ends = _ends(getattr(answer, "sampleInfo", None) or [], interval, where)
        values = np.full((len(ends), len(METRICS)), np.nan)
        for j, series in enumerate(getattr(answer, "value", None) or []):
            name = counters.get(getattr(getattr(series, "id", None), "counterId", None))  # type: ignore[arg-type]
            if name is None or getattr(series.id, "instance", "") != "":
                continue
            column, scale = _spec(name)
            raw = np.asarray(getattr(series, "value", None) or [], dtype=np.float64)
            if raw.shape != (len(ends),):
                raise PayloadError(f"{where}.value[{j}]", f"has {raw.size} values for {len(ends)} sample times")
            raw[raw < 0] = np.nan  # -1: no value
            values[:, column] = raw * scale
        starts = ends - interval
        if interval > HOUR_S:
            parts = interval // HOUR_S
            starts = (starts[:, None] + HOUR_S * np.arange(parts)).ravel()
            values = np.repeat(values, parts, axis=0)
        keep = (starts >= span[0]) & (starts < span[1]) & ~np.isnan(values).all(axis=1)
        if not keep.any():
            continue
        starts, values = starts[keep], values[keep]
        position = np.searchsorted(entity.since_s, starts, side="right") - 1
        parts_mhz.append(entity.mhz_per_core[np.maximum(position, 0)])
        values[:, _COLUMN["mem_usage_pct"]] = values[:, _COLUMN["mem_used_bytes"]] / entity.memory_bytes * 100
        parts_idx.append(np.full(len(starts), len(refs), np.int32))
        parts_ts.append(starts)
        parts_values.append(values)
        refs.append(entity.ref)
    stored = min(interval, HOUR_S)
    if not refs:
        empty = np.zeros(0, np.int64)
        return SampleBatch((), empty.astype(np.int32), empty, np.zeros((0, len(METRICS))), stored)
    values = np.concatenate(parts_values)
    values[:, _COLUMN["cpu_used_cores"]] /= np.concatenate(parts_mhz)
    return SampleBatch(tuple(refs), np.concatenate(parts_idx), np.concatenate(parts_ts), values, stored)


def _spec(name: str) -> tuple[int, float]:
    column, scale = VM_COUNTERS.get(name) or HOST_COUNTERS[name]
    return _COLUMN[column], scale


def _ends(info: Sequence[Any], interval: int, where: str) -> npt.NDArray[np.int64]:
    """The sample times (interval ends, epoch seconds), checked to be on ``interval``'s grid and increasing."""
    ends = np.empty(len(info), np.int64)
    for k, sample in enumerate(info):
        stamp = getattr(sample, "timestamp", None)
        if getattr(sample, "interval", None) != interval or stamp is None or stamp.tzinfo is None:
            raise PayloadError.unexpected(f"{where}.sampleInfo[{k}]", sample, f"an aware timestamp at {interval} s")
        ends[k] = math.floor(stamp.timestamp())
    if len(ends) and ((np.diff(ends) <= 0).any() or (ends % interval).any()):
        raise PayloadError(f"{where}.sampleInfo", f"is not increasing on the {interval}-second grid")
    return ends
