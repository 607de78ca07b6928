"""The web page's test data: a small simulated cloud captured through the real pipeline (inventory refresh,
capture with in-stream rollups), ending at a fixed hour so the pages and the API are asked for the same window."""

from __future__ import annotations

from datetime import datetime, timedelta

from cloudmeter.collectors.simulator import SimulatorCollector, SimulatorConfig
from cloudmeter.model import Window
from cloudmeter.scheduler import jobs
from cloudmeter.scheduler.pipeline import StreamRollup
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database

DAYS = 10
MANAGER = "sim"


def load(db: Database, end: datetime, days: int = DAYS) -> Window:
    """``days`` days of a 30-VM, two-cluster simulator (5-minute samples) up to ``end``, rolled up in UTC; also a
    disabled second manager ``spare`` that never captured (a page must show its missing data as missing)."""
    window = Window(end - timedelta(days=days), end)
    config = SimulatorConfig(
        kind="simulator", vms=30, hosts_per_cluster=2, interval_s=300, start=window.start, horizon_days=days, seed=11
    )
    collector = SimulatorCollector(MANAGER, config, clock=lambda: window.end)
    with db.connection() as conn:
        manager_id = managers.add_manager(conn, MANAGER, "simulator", config.public_fields())
        managers.add_manager(conn, "spare", "simulator", {"kind": "simulator", "vms": 2})
        managers.set_enabled(conn, "spare", False)
    jobs.refresh_inventory(db, manager_id, collector)
    stream = StreamRollup(db, manager_id, ("UTC",))
    for step in window.split(6 * 3600):
        jobs.capture(db, manager_id, collector, step, stream=stream)
    return window
