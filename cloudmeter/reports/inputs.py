"""What every report reads: hourly rollups, resources, and hour-by-hour placements from ``resource_history``
(``reports.placement``)."""

from __future__ import annotations

import numpy as np
import polars as pl
import psycopg

from cloudmeter.errors import ConfigError
from cloudmeter.model import Window
from cloudmeter.reports import placement
from cloudmeter.storage.readers import read_resources, read_rollups

GIB = float(1 << 30)
#: The container name Kubernetes gives a pod's sandbox: it carries the pod's network; its CPU and memory are not
#: measured and it requests nothing (its use is the node's overhead, outside allocatable).
SANDBOX = "POD"


def check_hour_window(window: Window) -> None:
    """Reports work on whole UTC hours: refuse a window that does not start and end on one."""
    for name, moment in (("start", window.start), ("end", window.end)):
        if (moment.minute, moment.second, moment.microsecond) != (0, 0, 0):
            raise ConfigError(f"window {name} {moment.isoformat()} is not on a whole hour; give whole hours or dates")


def sample_coverage(vms: pl.DataFrame) -> pl.DataFrame:
    """VM placements (ts, resource_id, seconds, sample_count, interval_s) with ``samples`` and ``expected``.

    ``samples`` is the VM-hour's ``sample_count`` split among its placements in that hour by their seconds (a VM
    that migrated mid-hour counts under each host for its share); ``expected`` is what the VM's own sampling
    interval promises in the placement's seconds (its ``samples`` where it has none). ``samples`` never exceeds
    ``expected``: a source that sends more than its interval promises (or a sample on the edge of a lifetime)
    makes a placement complete, not more than complete, so any sum of ``samples`` over the same rows'
    ``expected`` is a coverage of at most 100 %.
    """
    share = pl.col("seconds") / pl.col("seconds").sum().over("resource_id", "ts")
    samples = pl.col("sample_count").fill_null(0) * share
    expected = (pl.col("seconds") / pl.col("interval_s")).fill_null(samples)  # no interval known: as sent
    return vms.with_columns(
        pl.min_horizontal(samples, expected).alias("samples"),
        expected.alias("expected"),
    )


def at_hourly_intervals(conn: psycopg.Connection, window: Window, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (ts, resource_id, interval_s: the resource's usual one) with ``interval_s`` the one
    ``resource_intervals`` records for each hour, where it records one (an AWS instance that gains detailed
    monitoring changes from 300 s to 60 s at an hour)."""
    check_hour_window(window)
    ids = np.unique(frame["resource_id"].to_numpy())
    recorded = placement.member_intervals(conn, window, ids, np.zeros(len(ids), np.int32))
    at = placement.recorded_interval(
        recorded, placement.dense(frame["resource_id"].to_numpy(), ids), frame["ts"].dt.epoch("us").to_numpy()
    )
    hour = pl.Series("hour_interval_s", at, dtype=pl.Int32)
    return frame.with_columns(pl.when(hour > 0).then(hour).otherwise(pl.col("interval_s")).alias("interval_s"))


def resources(conn: psycopg.Connection) -> pl.DataFrame:
    """Every resource with its manager's name and kind (``manager``, ``manager_kind``) and its sampling interval
    (``interval_s``: its newest in ``resource_intervals``, else its manager's most common)."""
    managers = conn.execute("SELECT id, name, kind, sample_interval_s FROM managers ORDER BY id").fetchall()
    schema = {"manager_id": pl.Int32, "manager": pl.String, "manager_kind": pl.String, "manager_interval_s": pl.Int32}
    frame = pl.DataFrame(managers, schema=schema, orient="row")
    newest = conn.execute(
        "SELECT DISTINCT ON (resource_id) resource_id, interval_s FROM resource_intervals "
        "ORDER BY resource_id, valid_from DESC"
    ).fetchall()
    own = pl.DataFrame(newest, schema={"id": pl.Int32, "own_interval_s": pl.Int32}, orient="row")
    return (
        read_resources(conn)
        .join(frame, on="manager_id", how="left")
        .join(own, on="id", how="left")
        .with_columns(pl.coalesce("own_interval_s", "manager_interval_s").alias("interval_s"))
        .drop("own_interval_s", "manager_interval_s")
    )


def hourly(
    conn: psycopg.Connection,
    window: Window,
    resource_ids: list[int] | None = None,
    columns: tuple[str, ...] | None = None,
) -> pl.DataFrame:
    """Hourly rollup rows in ``window`` (of some resources, or all; every column, or ts, resource_id and
    ``columns``)."""
    check_hour_window(window)
    return read_rollups(conn, "hourly", window, resource_ids, columns=columns)


def pods(info: pl.DataFrame) -> pl.DataFrame:
    """Each Kubernetes pod (``inputs.resources``) as its containers' parent: parent_id (the pod's id), pod (its
    name), pod_tags (its labels, which its containers are charged and sized under) and node (its parent)."""
    return info.filter(pl.col("kind") == "pod").select(
        pl.col("id").alias("parent_id"), pl.col("name").alias("pod"), pl.col("tags").alias("pod_tags"),
        pl.col("parent_id").alias("node"),
    )  # fmt: skip


def ancestor(info: pl.DataFrame, ids: pl.Series, kind: str) -> pl.Series:
    """For each resource id, itself or its nearest ancestor of ``kind`` by current ``parent_id`` (else null)."""
    parent = dict(zip(info["id"].to_list(), info["parent_id"].to_list(), strict=True))
    kinds = dict(zip(info["id"].to_list(), info["kind"].to_list(), strict=True))

    def up(rid: int | None) -> int | None:
        for _ in range(len(kinds) + 1):  # a parent loop in bad data ends here
            if rid is None or kinds.get(rid) == kind:
                return rid
            rid = parent.get(rid)
        return None

    found = {rid: up(rid) for rid in ids.drop_nulls().unique().to_list()}
    return ids.replace_strict(found, default=None, return_dtype=pl.Int32).alias(kind)


def regions(conn: psycopg.Connection) -> pl.DataFrame:
    """Every resource's region (the ``ems_ref`` of its nearest region ancestor) and kind: resource_id, region,
    kind."""
    info = resources(conn)
    region_id = ancestor(info, info["id"], "region")
    refs = dict(zip(info["id"].to_list(), info["ems_ref"].to_list(), strict=True))
    return pl.DataFrame(
        {
            "resource_id": info["id"],
            "region": region_id.replace_strict(refs, default=None, return_dtype=pl.String),
            "kind": info["kind"],
        }
    )
