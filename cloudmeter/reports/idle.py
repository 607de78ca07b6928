"""Idle capacity of Kubernetes nodes, as OpenCost's ``__idle__``: per node and hour, what the node offers
(its allocatable cores and memory) minus what its containers were allocated (max(request, usage) each).

Chargeback prices it under the rate lines that price the containers' allocation (``cpu_allocated_cores``,
``memory_allocated_gb``), as the node's own rows named ``__idle__/<node>`` in project ``__idle__`` of the node's
cluster: shown, never spread over the namespaces. An hour in which the node's allocatable or any of its
containers' usage is unknown has no idle figure (it counts in ``unknown_hours``); an overcommitted hour (the
containers' usage beyond allocatable) is idle 0. Pod sandboxes (``inputs.SANDBOX``) hold nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from cloudmeter.model import Window
from cloudmeter.reports import placement
from cloudmeter.reports.inputs import SANDBOX

IDLE_PROJECT: Final = "__idle__"
#: The project id idle rows carry through chargeback (no resource has it): it stands for ``IDLE_PROJECT``.
IDLE_PROJECT_ID: Final = -2

Floats = npt.NDArray[np.float64]


def nodes(info: pl.DataFrame) -> pl.DataFrame:
    """The Kubernetes nodes among ``inputs.resources``: the hosts of managers that have pods (id, name, ems_ref)."""
    clusters = info.filter(pl.col("kind") == "pod")["manager"].unique()
    return info.filter((pl.col("kind") == "host") & pl.col("manager").is_in(clusters.implode())).select(
        "id", "name", "ems_ref"
    )


@dataclass(frozen=True)
class NodeLoad:
    """Per node (sorted ids) and window hour: the fraction of the hour it existed, the core-hours and byte-hours
    it offered and its containers were allocated, and whether any of those is unknown."""

    periods: pl.DataFrame  # the nodes' placement periods (``placement.read_periods``)
    ids: npt.NDArray[np.int64]
    sandboxes: pl.Series  # the ids of the pods' sandbox containers
    present: Floats  # (nodes, hours)
    offered: Floats  # (2, nodes, hours): cores, bytes
    allocated: Floats  # (2, nodes, hours)
    unknown: npt.NDArray[np.bool_]  # (nodes, hours)

    @classmethod
    def of(cls, info: pl.DataFrame, node_ids: pl.Series, periods: pl.DataFrame, window: Window) -> NodeLoad:
        """The offer of the nodes ``node_ids`` (``nodes``) among ``inputs.resources`` from their ``periods``
        (``placement.read_periods``); nothing allocated yet (``add`` each chunk of containers)."""
        node_periods = periods.filter(pl.col("resource_id").is_in(node_ids.implode()))
        sandbox = info.filter((pl.col("kind") == "container") & (pl.col("name") == SANDBOX))["id"]
        ids = np.unique(node_periods["resource_id"].to_numpy()).astype(np.int64)
        hours = int((window.end - window.start).total_seconds() // 3600)
        row, hour, fraction = _pieces(node_periods, window)
        node = placement.dense(node_periods["resource_id"].to_numpy(), ids)[row]
        present, offered = np.zeros((len(ids), hours)), np.zeros((2, len(ids), hours))
        unknown = np.zeros((len(ids), hours), np.bool_)
        np.add.at(present, (node, hour), fraction)
        for j, column in enumerate(("cores", "memory")):
            value = node_periods[column].fill_null(np.nan).to_numpy()[row]
            np.add.at(offered[j], (node, hour), value * fraction)
            unknown[node[np.isnan(value)], hour[np.isnan(value)]] = True
        return cls(node_periods, ids, sandbox, present, offered, np.zeros_like(offered), unknown)

    def add(self, leaves: pl.DataFrame, usage: dict[str, Floats], window: Window) -> None:
        """Add the allocation of the containers among ``leaves`` (``segments.leaf_periods``, placed under their
        node) with ``usage`` their chunk's grids (``segments.usage_grids``)."""
        containers = leaves.filter(
            (pl.col("kind") == "container")
            & pl.col("parent_id").is_in(self.ids)
            & ~pl.col("resource_id").is_in(self.sandboxes.implode())
        )
        if not self.ids.size or not containers.height:
            return
        row, hour, fraction = _pieces(containers, window)
        member = placement.dense(containers["resource_id"].to_numpy(), np.unique(leaves["resource_id"].to_numpy()))
        node = placement.dense(containers["parent_id"].to_numpy(), self.ids)[row]
        for j, (column, grid) in enumerate((("cores", "cpu_used_cores_avg"), ("memory", "mem_used_bytes_avg"))):
            requested = containers[column].fill_null(0.0).to_numpy()[row]
            used = usage[grid][member[row], hour]
            allocated = np.where(np.isnan(used) | (used > requested), used, requested)
            np.add.at(self.allocated[j], (node, hour), np.nan_to_num(allocated) * fraction)
            self.unknown[node[np.isnan(allocated)], hour[np.isnan(allocated)]] = True

    def idle_periods(self) -> pl.DataFrame:
        """The nodes' periods as ``segments.vm_segments`` prices leaves: each node its own parent (so its cluster
        is the one it was in that hour), in project ``IDLE_PROJECT_ID``, kind ``host``, requesting nothing."""
        return self.periods.select(
            "resource_id",
            pl.lit("host").alias("kind"),
            pl.col("resource_id").alias("parent_id"),
            pl.lit(IDLE_PROJECT_ID, pl.Int32).alias("project_id"),
            pl.lit(None, pl.Int32).alias("vcpus"),
            pl.lit(None, pl.Int64).alias("memory_bytes"),
            "start_us",
            "end_us",
            pl.lit(None, pl.Float64).alias("cpu_request_cores"),
            pl.lit(None, pl.Float64).alias("memory_request_gb"),
        )

    def idle_usage(self) -> dict[str, Floats]:
        """(nodes, hours) grids in ``segments.USAGE_READ``'s names: the idle cores and bytes as levels held while
        the node existed in the hour (NaN where unknown), no network."""
        with np.errstate(invalid="ignore", divide="ignore"):
            level = np.maximum(self.offered - self.allocated, 0.0) / self.present
        level[:, self.unknown | (self.present == 0)] = np.nan
        nothing = np.full_like(self.present, np.nan)
        return {
            "cpu_used_cores_avg": level[0],
            "mem_used_bytes_avg": level[1],
            "net_rx_bps_avg": nothing,
            "net_tx_bps_avg": nothing,
        }


def _pieces(periods: pl.DataFrame, window: Window) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], Floats]:
    """``placement.hour_pieces`` of ``periods``: each piece's row, window hour and fraction of the hour."""
    row, hour_us, seconds = placement.hour_pieces(periods["start_us"].to_numpy(), periods["end_us"].to_numpy())
    hour = (hour_us - placement.epoch_us(window.start)) // placement.HOUR_US
    return row, hour.astype(np.int64), seconds / 3600.0
