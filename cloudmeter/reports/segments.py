"""VM segments: a VM's placement hours summed over runs with the same placement period, local day, rate-card
epoch and cluster, so chargeback prices a few segments per VM and day instead of every VM-hour.

Within a segment the project, vCPUs, memory and cluster are constant: an allocation charge is its price times
the segment's hours. A usage charge prices each hour's quantity (graduated tiers make the price of a sum differ
from the sum of prices), so every usage rate line's price is applied hour by hour here and summed. Hours are
pieces of UTC hours (``seconds`` of a placement within its hour, as ``fraction`` = seconds / 3600); usage is the
VM's hourly rollup row of that hour (``storage.packs``), unknown (NaN) in an hour without one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numba
import numpy as np
import numpy.typing as npt
import polars as pl
import psycopg

from cloudmeter.model import KINDS, LEAVES, Window
from cloudmeter.reports import placement
from cloudmeter.reports.inputs import GIB, pods
from cloudmeter.reports.placement import HOUR_US
from cloudmeter.reports.ratecard import MEASURES, RateLine
from cloudmeter.storage import packs

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
USAGE_READ: Final = ("cpu_used_cores_avg", "mem_used_bytes_avg", "net_rx_bps_avg", "net_tx_bps_avg")
#: Usage measures: summed over a segment's hours, weighted by the fraction of each hour (not ``network_gb``: the
#: GB transferred in the placement's seconds of the hour is already a volume).
USAGE_MEASURES: Final = ("cpu_cores_used", "memory_gb_used", "network_gb", "cpu_allocated_cores", "memory_allocated_gb")
#: Rows of a piece before its lines' prices: the fraction, then per usage measure its quantity and unknown hours.
_FIRST_PRICE: Final = 1 + 2 * len(USAGE_MEASURES)
#: The request columns of a container's periods (``leaf_periods``), NULL for a VM.
REQUESTED: Final = ("cpu_request_cores", "memory_request_gb")
_CLUSTER: Final = KINDS.index("cluster")
_MAX: Final = float(np.finfo(np.float64).max)  # np.nan_to_num's stand-in for an infinite price
_HOST: Final = KINDS.index("host")


@dataclass(frozen=True)
class Calendar:
    """The window's hours as a report sees them: each hour's local day and rate-card epoch (positions)."""

    window: Window
    day: npt.NDArray[np.int32]
    epoch: npt.NDArray[np.int32]


@dataclass(frozen=True)
class Places:
    """Where a VM's parent puts it: the resources' kinds, and each host's cluster hour by hour."""

    ids: Ints  # every resource id, sorted
    kinds: npt.NDArray[np.int8]  # their KINDS positions
    hosts: Ints  # host ids, sorted
    host_cluster: npt.NDArray[np.int64]  # (hosts, hours): the cluster a host was in for most of the hour, or -1

    @classmethod
    def read(cls, info: pl.DataFrame, host_periods: pl.DataFrame, window: Window) -> Places:
        """From ``inputs.resources`` and the hosts' placement periods (``placement.read_periods``)."""
        ordered = info.select("id", "kind").sort("id")
        ids = ordered["id"].to_numpy().astype(np.int64)
        kinds = np.array([KINDS.index(k) for k in ordered["kind"].to_list()], np.int8)
        parents = np.unique(host_periods["parent_id"].drop_nulls().to_numpy()).astype(np.int64)
        clusters = np.append(np.where(_kind(ids, kinds, parents) == _CLUSTER, parents, -1), -1)  # [-1]: none
        grid = placement.group_grid(host_periods, window, host_periods["parent_id"], parents)
        hosts = np.unique(host_periods["resource_id"].to_numpy()).astype(np.int64)
        return cls(ids, kinds, hosts, clusters[grid])

    def parents(self, parent: Ints) -> tuple[npt.NDArray[np.int32], Ints]:
        """For each period's ``parent``: its position among ``hosts`` (-1: not a host) and itself if it is a
        cluster (-1: not one). A piece of the period lies in the cluster its host was in for most of the piece's
        hour (``host_cluster``), else in that cluster (-1: none)."""
        kind = _kind(self.ids, self.kinds, parent)
        host = np.where(kind == _HOST, placement.dense(parent, self.hosts), -1).astype(np.int32)
        return host, np.where(kind == _CLUSTER, parent, -1)


def _kind(ids: Ints, kinds: npt.NDArray[np.int8], of: Ints) -> npt.NDArray[np.int8]:
    at = placement.dense(of, ids)
    return np.where(at >= 0, kinds[np.maximum(at, 0)], -1).astype(np.int8)


@numba.njit(cache=True)
def _run_sum(values: Floats, n: int) -> float:
    """``values[:n]`` summed to the bit as ``np.add.reduceat`` sums a run: its first value plus numpy's pairwise sum
    of the rest (``pairwise_sum`` in its loops: eight partial sums from 8 values on; it splits more than 128 in
    two, which a run within one local day, at most 25 hours, never has)."""
    if n > 129:
        raise ValueError("a run of more than 129 hours")
    first = float(values[0])
    if n == 1:
        return first
    rest = n - 1
    if rest < 8:
        total = 0.0
        for i in range(1, n):
            total += values[i]
        return first + total
    r = values[1:9].copy()
    i = 8
    while i < rest - rest % 8:
        for j in range(8):
            r[j] += values[1 + i + j]
        i += 8
    paired: float = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for k in range(1 + i, n):
        paired += values[k]
    return first + paired


@numba.njit(cache=True)
def _graduated(quantity: float, lower: Floats, width: Floats, rate: Floats, tiers: int) -> float:
    """``RateLine.price`` of one quantity, its tiers given by ``RateLine.tier_floats``."""
    total = 0.0
    for t in range(tiers):
        units = quantity - lower[t]
        units = units if units <= width[t] or np.isnan(units) else width[t]
        total = total + (units if units >= 0.0 or np.isnan(units) else 0.0) * rate[t]
    return total


@numba.njit(cache=True)
def _segments(
    start_us: Ints,
    end_us: Ints,
    vm: npt.NDArray[np.int32],
    host: npt.NDArray[np.int32],
    own: Ints,
    window_us: int,
    day: npt.NDArray[np.int32],
    epoch: npt.NDArray[np.int32],
    host_cluster: Ints,
    usage: Floats,
    requested: Floats,
    volume: npt.NDArray[np.bool_],
    line_measure: npt.NDArray[np.int64],
    lower: Floats,
    width: Floats,
    rate: Floats,
    tiers: npt.NDArray[np.int64],
    head: Ints,
    cluster: Ints,
    first_hour: Ints,
    sums: Floats,
) -> int:
    """The segments of periods ``[start_us, end_us)`` (sorted by VM, then time; inside the window starting at
    ``window_us``): how many; with room for them (``head`` as long), each one's first period, cluster and window
    hour, and its ``sums`` (``vm_segments``' float columns by row: hours, per measure its weighted known quantity
    and unknown hours, per line its price), summed as ``np.add.reduceat`` would sum the pieces. ``requested``:
    each period's CPU cores and memory GB requests (0 where none), for the max(request, usage) measures."""
    fill = len(head) > 0
    piece = np.empty((sums.shape[0], 1 + int(((end_us - 1) // HOUR_US - start_us // HOUR_US).max())))
    measures = len(volume)
    quantity = np.empty(measures)
    count, length, last_p, last_hour, last_at = 0, 0, -1, 0, -1
    for p in range(len(start_us)):
        for hour_us in range(start_us[p] // HOUR_US * HOUR_US, end_us[p], HOUR_US):
            seconds = (min(end_us[p], hour_us + HOUR_US) - max(start_us[p], hour_us)) / 1e6
            hour = (hour_us - window_us) // HOUR_US
            at = host_cluster[host[p], hour] if host[p] >= 0 else own[p]
            if (
                count == 0
                or p != last_p
                or day[hour] != day[last_hour]
                or epoch[hour] != epoch[last_hour]
                or at != last_at
            ):
                if fill and count > 0:
                    for k in range(sums.shape[0]):
                        sums[k, count - 1] = _run_sum(piece[k], length)
                if fill:
                    head[count], cluster[count], first_hour[count] = p, at, hour
                count, length = count + 1, 0
            last_p, last_hour, last_at = p, hour, at
            if fill:
                fraction = seconds / 3600.0
                quantity[0] = usage[0, vm[p], hour]
                quantity[1] = usage[1, vm[p], hour] / GIB
                quantity[2] = (usage[2, vm[p], hour] + usage[3, vm[p], hour]) * seconds / GIB
                for m in range(2):  # max(request, usage); an unknown (NaN) usage stays unknown
                    used = quantity[m]
                    quantity[3 + m] = used if np.isnan(used) or used > requested[m, p] else requested[m, p]
                piece[0, length] = fraction
                for m in range(measures):
                    known = not np.isnan(quantity[m])
                    weighted = quantity[m] if volume[m] else quantity[m] * fraction
                    piece[1 + 2 * m, length] = weighted if known else 0.0
                    piece[2 + 2 * m, length] = 0.0 if known else fraction
                for k in range(len(line_measure)):
                    m = line_measure[k]
                    priced = _graduated(quantity[m], lower[k], width[k], rate[k], tiers[k])
                    priced = priced if volume[m] else priced * fraction
                    piece[1 + 2 * measures + k, length] = 0.0 if np.isnan(priced) else max(min(priced, _MAX), -_MAX)
            length += 1
    if fill and count > 0:
        for k in range(sums.shape[0]):
            sums[k, count - 1] = _run_sum(piece[k], length)
    return count


def vm_segments(
    calendar: Calendar,
    periods: pl.DataFrame,
    usage: dict[str, Floats],
    places: Places,
    usage_lines: dict[int, RateLine],
) -> pl.DataFrame:
    """Segments of the VMs' and containers' placement ``periods`` (``leaf_periods``; ``usage``: their
    ``usage_grids``, in the order of their sorted ids): resource_id, project_id, kind, vcpus, memory_bytes, the
    ``REQUESTED`` columns, cluster_id (-1: none), day, epoch, first_hour, hours (summed fractions);
    per usage measure its quantity over the known hours and ``<measure>_unknown`` (hours without a value); and
    ``price_<k>``, the summed price of each of ``usage_lines`` by index (weighted by fraction unless a volume)."""
    start_us, end_us = periods["start_us"].to_numpy(), periods["end_us"].to_numpy()
    resource = periods["resource_id"].to_numpy()
    vm = placement.dense(resource, np.unique(resource))
    host, own = places.parents(periods["parent_id"].fill_null(-1).to_numpy().astype(np.int64))
    tiers = [line.tier_floats() for line in usage_lines.values()]
    most = max((len(rates) for *_, rates in tiers), default=0)

    def padded(i: int) -> Floats:
        return np.array([np.pad(t[i], (0, most - len(t[i]))) for t in tiers]).reshape(len(tiers), most)

    grids = np.stack([usage[column] for column in USAGE_READ]) if len(start_us) else np.zeros((4, 0, 0))
    arguments = (
        start_us,
        end_us,
        vm,
        host,
        own,
        placement.epoch_us(calendar.window.start),
        calendar.day,
        calendar.epoch,
        places.host_cluster,
        grids,
        np.stack([periods[column].fill_null(0.0).to_numpy().astype(np.float64) for column in REQUESTED]),
        np.array([MEASURES[m].volume for m in USAGE_MEASURES]),
        np.array([USAGE_MEASURES.index(line.measure) for line in usage_lines.values()], np.int64),
        padded(0),
        padded(1),
        padded(2),
        np.array([len(rates) for *_, rates in tiers], np.int64),
    )
    sums = np.empty((_FIRST_PRICE + len(usage_lines), 0))
    count = _segments(*arguments, *(np.empty(0, np.int64),) * 3, sums) if len(start_us) else 0
    head, cluster, first_hour = (np.empty(count, np.int64) for _ in range(3))
    sums = np.empty((_FIRST_PRICE + len(usage_lines), count))
    if count:
        _segments(*arguments, head, cluster, first_hour, sums)
    first = periods[head]
    columns: dict[str, pl.Series | Floats | Ints | npt.NDArray[np.int32]] = {
        "resource_id": first["resource_id"],
        "project_id": first["project_id"].fill_null(-1),
        "kind": first["kind"],
        "vcpus": first["vcpus"],
        "memory_bytes": first["memory_bytes"],
        **{column: first[column] for column in REQUESTED},
        "cluster_id": cluster,
        "day": calendar.day[first_hour],
        "epoch": calendar.epoch[first_hour],
        "first_hour": first_hour,
        "hours": sums[0],
    }
    for m, measure in enumerate(USAGE_MEASURES):
        columns[measure] = sums[1 + 2 * m]
        columns[f"{measure}_unknown"] = sums[2 + 2 * m]
    for k, index in enumerate(usage_lines):
        columns[f"price_{index}"] = sums[_FIRST_PRICE + k]
    return pl.DataFrame(columns)


def leaf_periods(periods: pl.DataFrame, info: pl.DataFrame) -> pl.DataFrame:
    """The VMs' and Kubernetes containers' placement periods (``placement.read_periods``) as segments price them:
    a container under its pod's node (a pod never moves: a rescheduled pod is another pod), its requests in
    ``REQUESTED`` (cores and GB; NULL for a VM) and no ``memory_bytes`` (a memory request is not a VM's memory)."""
    container = pl.col("kind") == "container"
    return (
        periods.filter(pl.col("kind").is_in(LEAVES))
        .join(pods(info).select("parent_id", "node"), on="parent_id", how="left", maintain_order="left")
        .with_columns(
            pl.when(container).then(pl.col("node")).otherwise(pl.col("parent_id")).alias("parent_id"),
            pl.when(container).then(pl.col("cores")).alias("cpu_request_cores"),
            pl.when(container).then(pl.col("memory") / GIB).alias("memory_request_gb"),
            pl.when(~container).then(pl.col("memory_bytes")).alias("memory_bytes"),
        )
        .drop("node")
    )


def usage_grids(conn: psycopg.Connection, window: Window, chunks: list[pl.DataFrame]) -> Iterator[dict[str, Floats]]:
    """Per chunk of VM placement periods: (VMs by sorted id, hours) grids of ``USAGE_READ`` from the VMs' hourly
    rows (NaN where none), the next chunk read while the caller works on this one (``packs.read_grids``)."""
    ids = [np.unique(chunk["resource_id"].to_numpy()).astype(np.int64) for chunk in chunks]
    return packs.read_grids(conn, window, ids, USAGE_READ)
