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

import numpy as np
import numpy.typing as npt
import polars as pl
import psycopg

from cloudmeter.model import KINDS, Window
from cloudmeter.reports import placement
from cloudmeter.reports.inputs import GIB
from cloudmeter.reports.ratecard import MEASURES, RateLine
from cloudmeter.storage import packs

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
USAGE_READ: Final = ("cpu_used_cores_avg", "mem_used_bytes_avg", "net_rx_bps_avg", "net_tx_bps_avg")
#: Usage measures: summed over a segment's hours, weighted by the fraction of each hour (not ``network_gb``: the
#: GB transferred in the placement's seconds of the hour is already a volume).
USAGE_MEASURES: Final = ("cpu_cores_used", "memory_gb_used", "network_gb")
_CLUSTER: Final = KINDS.index("cluster")
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

    def cluster(self, parent: Ints, period: Ints, hour: Ints) -> Ints:
        """The cluster of each piece (a ``period`` index into ``parent``, at window hour ``hour``): the
        period's parent if it is a cluster, else the cluster its host was in for most of that hour (-1: none)."""
        kind = _kind(self.ids, self.kinds, parent)
        host = np.where(kind == _HOST, placement.dense(parent, self.hosts), -1)
        own = np.where(kind == _CLUSTER, parent, -1)
        if not len(self.hosts):
            return own[period]
        via_host = self.host_cluster[np.maximum(host[period], 0), hour]
        return np.where(host[period] >= 0, via_host, own[period])


def _kind(ids: Ints, kinds: npt.NDArray[np.int8], of: Ints) -> npt.NDArray[np.int8]:
    at = placement.dense(of, ids)
    return np.where(at >= 0, kinds[np.maximum(at, 0)], -1).astype(np.int8)


def vm_segments(
    calendar: Calendar,
    periods: pl.DataFrame,
    usage: dict[str, Floats],
    places: Places,
    usage_lines: dict[int, RateLine],
) -> pl.DataFrame:
    """Segments of the VMs' placement ``periods`` (``placement.read_periods``, VMs only; ``usage``: their
    ``usage_grids``, in the order of their sorted ids): resource_id,
    project_id, vcpus, memory_bytes, cluster_id (-1: none), day, epoch, first_hour, hours (summed fractions);
    per usage measure its quantity over the known hours and ``<measure>_unknown`` (hours without a value); and
    ``price_<k>``, the summed price of each of ``usage_lines`` by index (weighted by fraction unless a volume)."""
    start_us = placement.epoch_us(calendar.window.start)
    row, hour_us, seconds = placement.hour_pieces(periods["start_us"].to_numpy(), periods["end_us"].to_numpy())
    hour = (hour_us - start_us) // placement.HOUR_US
    fraction = seconds / 3600.0
    vm_ids = np.unique(periods["resource_id"].to_numpy()).astype(np.int64)
    vm = placement.dense(periods["resource_id"].to_numpy()[row], vm_ids)
    cpu, memory_bytes, rx, tx = (usage[column][vm, hour] for column in USAGE_READ)
    quantity = {
        "cpu_cores_used": cpu,
        "memory_gb_used": memory_bytes / GIB,
        "network_gb": (rx + tx) * seconds / GIB,
    }
    weighted = {m: q if MEASURES[m].volume else q * fraction for m, q in quantity.items()}
    cluster = places.cluster(periods["parent_id"].fill_null(-1).to_numpy().astype(np.int64), row, hour)
    day, epoch = calendar.day[hour], calendar.epoch[hour]
    cut = np.ones(len(row), np.bool_)
    cut[1:] = (row[1:] != row[:-1]) | (day[1:] != day[:-1]) | (epoch[1:] != epoch[:-1]) | (cluster[1:] != cluster[:-1])
    heads = np.flatnonzero(cut)

    def total(values: Floats) -> Floats:
        return np.add.reduceat(values, heads) if len(heads) else np.zeros(0)

    first = periods[row[heads]] if len(heads) else periods.clear()
    columns: dict[str, pl.Series | Floats | Ints] = {
        "resource_id": first["resource_id"],
        "project_id": first["project_id"].fill_null(-1),
        "vcpus": first["vcpus"],
        "memory_bytes": first["memory_bytes"],
        "cluster_id": cluster[heads],
        "day": day[heads],
        "epoch": epoch[heads],
        "first_hour": hour[heads],
        "hours": total(fraction),
    }
    for measure in USAGE_MEASURES:
        known = ~np.isnan(quantity[measure])
        columns[measure] = total(np.where(known, weighted[measure], 0.0))
        columns[f"{measure}_unknown"] = total(np.where(known, 0.0, fraction))
    for k, line in usage_lines.items():
        priced = line.price(quantity[line.measure])
        if not MEASURES[line.measure].volume:
            priced = priced * fraction
        columns[f"price_{k}"] = total(np.nan_to_num(priced, nan=0.0))
    return pl.DataFrame(columns)


def usage_grids(conn: psycopg.Connection, window: Window, chunks: list[pl.DataFrame]) -> Iterator[dict[str, Floats]]:
    """Per chunk of VM placement periods: (VMs by sorted id, hours) grids of ``USAGE_READ`` from the VMs' hourly
    rows (NaN where none), the next chunk read while the caller works on this one (``packs.read_grids``)."""
    ids = [np.unique(chunk["resource_id"].to_numpy()).astype(np.int64) for chunk in chunks]
    return packs.read_grids(conn, window, ids, USAGE_READ)
