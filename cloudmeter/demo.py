"""``cloudmeter demo``: a simulated cloud captured and rolled up on the embedded database, then summarised."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl
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
    """What the demo did, and the per-cluster summary it prints."""

    window: Window
    resources: int
    samples: int
    hourly_rows: int
    daily_rows: dict[str, int]
    summary: pl.DataFrame


def demo_window(days: int, now: datetime) -> Window:
    """From midnight UTC ``days`` days ago to the last whole hour before ``now``."""
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start = end.replace(hour=0) - timedelta(days=days)
    return Window(start, end)


def run_demo(db: Database, time_zones: tuple[str, ...], vms: int, days: int, now: datetime | None = None) -> DemoResult:
    """Register the simulated manager, refresh, capture ``days`` days, roll up, and summarise."""
    window = demo_window(days, now or datetime.now(UTC))
    hosts = max(4, vms // (2 * VMS_PER_HOST))  # two clusters, hosts not overcommitted beyond their cores
    config = SimulatorConfig(
        kind="simulator", vms=vms, hosts_per_cluster=hosts, start=window.start, horizon_days=days, seed=7
    )
    collector = SimulatorCollector(DEMO_MANAGER, config, clock=lambda: window.end)
    db.migrate()
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, DEMO_MANAGER, "simulator", config.public_fields())
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
    return DemoResult(window, len(refreshed.ids), samples, rolled.hourly, rolled.daily, summarise(db, manager_id))


def summarise(db: Database, manager_id: int) -> pl.DataFrame:
    """Per cluster: VMs, samples and coverage from the VMs' hourly rows; utilization from the cluster's own rows
    (its VMs' busy cores over its hosts' cores, hour by hour)."""
    with db.connection() as conn:
        cursor = conn.execute(
            """WITH vms AS (
                   SELECT host.parent_id AS cluster_id, count(DISTINCT vm.id) AS vms, sum(h.sample_count) AS samples,
                          round(100.0 * sum(h.sample_count) / sum(h.expected_count), 1) AS coverage
                   FROM metric_hourly h
                   JOIN resources vm ON vm.id = h.resource_id AND vm.kind = 'vm'
                   JOIN resources host ON host.id = vm.parent_id
                   WHERE vm.manager_id = %s GROUP BY host.parent_id)
               SELECT c.name AS cluster, vms.vms, vms.samples, vms.coverage AS "coverage %%",
                      round(avg(h.cpu_used_cores_avg)::numeric, 1) AS "busy cores avg",
                      round(avg(h.cpu_usage_pct_avg)::numeric, 1) AS "cpu avg %%",
                      round(max(h.cpu_usage_pct_p95)::numeric, 1) AS "cpu p95 peak %%",
                      round((avg(h.mem_used_bytes_avg) / 2^30)::numeric, 1) AS "mem GiB"
               FROM vms JOIN resources c ON c.id = vms.cluster_id
               JOIN metric_hourly h ON h.resource_id = c.id
               GROUP BY c.name, vms.vms, vms.samples, vms.coverage ORDER BY c.name""",
            (manager_id,),
        )
        names = [d.name for d in cursor.description or ()]
        return pl.DataFrame(cursor.fetchall(), schema=names, orient="row")
