"""``cloudmeter demo``: a simulated cloud captured and rolled up on the embedded database, then summarised."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl
import psycopg
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cloudmeter.collectors.simulator import SimulatorCollector, SimulatorConfig
from cloudmeter.model import Window
from cloudmeter.scheduler import jobs
from cloudmeter.scheduler.pipeline import StreamRollup
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database

VMS_PER_HOST = 8
DEMO_MANAGER = "demo"
CAPTURE_STEP_S = 3 * 3600


@dataclass(frozen=True)
class DemoResult:
    """What the demo did (``replaced``: samples of an earlier demo run it deleted first), and the per-cluster
    summary it prints."""

    window: Window
    resources: int
    samples: int
    hourly_rows: int
    daily_rows: dict[str, int]
    summary: pl.DataFrame
    replaced: int
    hosts: int


def demo_window(days: int, now: datetime) -> Window:
    """From midnight UTC ``days`` days ago to the last whole hour before ``now``."""
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start = end.replace(hour=0) - timedelta(days=days)
    return Window(start, end)


def run_demo(db: Database, time_zones: tuple[str, ...], vms: int, days: int, now: datetime | None = None) -> DemoResult:
    """Replace any earlier demo, store the simulated manager ``demo`` (disabled: the daemon leaves it alone),
    refresh, capture ``days`` days, roll up, and summarise.

    The demo manager is an ordinary added manager: ``managers list`` shows it, ``rollup --manager demo`` and
    ``managers remove demo --yes`` work on it. Other managers' data is never touched.
    """
    window = demo_window(days, now or datetime.now(UTC))
    hosts = max(4, vms // (2 * VMS_PER_HOST))  # two clusters, hosts not overcommitted beyond their cores
    config = SimulatorConfig(
        kind="simulator", vms=vms, hosts_per_cluster=hosts, start=window.start, horizon_days=days, seed=7
    )
    collector = SimulatorCollector(DEMO_MANAGER, config, clock=lambda: window.end)
    db.migrate()
    with db.connection() as conn:
        replaced = _stored_samples(conn, DEMO_MANAGER)
        managers.remove_manager(conn, DEMO_MANAGER)
        manager_id = managers.add_manager(conn, DEMO_MANAGER, "simulator", config.public_fields())
        managers.set_enabled(conn, DEMO_MANAGER, False)
    refreshed = jobs.refresh_inventory(db, manager_id, collector)
    steps = window.split(CAPTURE_STEP_S)
    stream = StreamRollup(db, manager_id, time_zones)
    samples = 0
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
    ) as progress:
        task = progress.add_task("capturing", total=len(steps))
        for step in steps:
            samples += jobs.capture(db, manager_id, collector, step, stream=stream).rows
            progress.advance(task)
    rolled = stream.counts
    summary = summarise(db, manager_id)
    return DemoResult(window, len(refreshed.ids), samples, rolled.hourly, rolled.daily, summary, replaced, 2 * hosts)


def _stored_samples(conn: psycopg.Connection, name: str) -> int:
    """Raw samples stored for manager ``name`` (0 when there is none)."""
    row = conn.execute(
        """SELECT count(*) FROM metric_samples s JOIN resources r ON r.id = s.resource_id
           JOIN managers m ON m.id = r.manager_id WHERE m.name = %s""",
        (name,),
    ).fetchone()
    return int(row[0]) if row else 0


def summarise(db: Database, manager_id: int) -> pl.DataFrame:
    """Per cluster: VMs, samples and coverage from the VMs' hourly rows; utilization from the cluster's own rows
    (its VMs' busy cores over its hosts' cores, hour by hour)."""
    with db.connection() as conn:
        cursor = conn.execute(
            """WITH vms AS (
                   SELECT host.parent_id AS cluster_id, count(DISTINCT vm.id) AS vms, sum(h.sample_count) AS samples,
                          (100.0 * sum(h.sample_count) / sum(h.expected_count))::float8 AS coverage
                   FROM metric_hourly h
                   JOIN resources vm ON vm.id = h.resource_id AND vm.kind = 'vm'
                   JOIN resources host ON host.id = vm.parent_id
                   WHERE vm.manager_id = %s GROUP BY host.parent_id)
               SELECT c.name AS cluster, vms.vms, vms.samples, vms.coverage AS coverage_pct,
                      avg(h.cpu_used_cores_avg) AS busy_cores_avg,
                      avg(h.cpu_usage_pct_avg) AS cpu_pct_avg,
                      max(h.cpu_usage_pct_p95) AS cpu_p95_pct_peak,
                      avg(h.mem_used_bytes_avg)::float8 AS mem_used_bytes_avg
               FROM vms JOIN resources c ON c.id = vms.cluster_id
               JOIN metric_hourly h ON h.resource_id = c.id
               GROUP BY c.name, vms.vms, vms.samples, vms.coverage ORDER BY c.name""",
            (manager_id,),
        )
        names = [d.name for d in cursor.description or ()]
        return pl.DataFrame(cursor.fetchall(), schema=names, orient="row")
