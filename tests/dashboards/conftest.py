"""One database for all dashboard tests, loaded once through the real refresh, capture and rollup jobs.

Two managers: ``lab``, the hand-computable cloud of tests/reports/cloud.py (a VM retired mid-window, four silent
hours, 30-minute samples), and ``sim``, a simulated cloud over the same two days with what real clouds do: VMs
created and deleted mid-hour, live migrations mid-hour, gaps, VMs without a memory meter, and VMs sampled at
5 and 15 minutes side by side.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from cloudmeter.collectors.simulator import SimulatorCollector, SimulatorConfig
from cloudmeter.model import Window
from cloudmeter.scheduler import jobs
from cloudmeter.scheduler.pipeline import StreamRollup
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database
from tests.reports.cloud import START, load

DAYS = 2
WINDOW = Window(START, START + timedelta(days=DAYS))
SIM = SimulatorConfig(
    kind="simulator",
    seed=5,
    clusters=2,
    hosts_per_cluster=3,
    vms=36,
    interval_s=300,
    coarse_interval_s=900,
    coarse_share=0.3,
    start=START,
    horizon_days=DAYS,
)


@dataclass(frozen=True)
class Loaded:
    """The loaded database, its managers' ids and the simulator (its world is the reference for placements)."""

    db: Database
    lab_id: int
    sim_id: int
    sim: SimulatorCollector


@pytest.fixture(scope="session")
def loaded(pg_server: str) -> Iterator[Loaded]:
    """``lab`` and ``sim`` captured and rolled up (hourly; daily in UTC and Europe/Berlin) over ``WINDOW``."""
    name = f"grafana_{os.getpid()}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with (
            tempfile.TemporaryDirectory(prefix="cloudmeter-grafana-") as tmp,
            Database(make_conninfo(pg_server, dbname=name), Path(tmp)) as db,
        ):
            db.migrate()
            lab_id = load(db, days=DAYS)
            with db.connection() as conn:  # h0 in c1, retired by a refresh a week before: it has no room now
                conn.execute(
                    """INSERT INTO resources (manager_id, kind, ems_ref, name, parent_id, vcpus, memory_bytes,
                                              first_seen, last_seen, retired_at)
                       SELECT manager_id, 'host', 'h0', 'h0', parent_id, 16, 64 * 2^30, %s, %s, %s
                       FROM resources WHERE ems_ref = 'h1'""",
                    (START - timedelta(days=14), START - timedelta(days=7), START - timedelta(days=7)),
                )
            sim = SimulatorCollector("sim", SIM, clock=lambda: WINDOW.end)
            with db.connection() as conn:
                sim_id = managers.add_manager(conn, "sim", "simulator", SIM.public_fields())
            jobs.refresh_inventory(db, sim_id, sim)
            stream = StreamRollup(db, sim_id, ("UTC", "Europe/Berlin"))
            for step in WINDOW.split(6 * 3600):
                jobs.capture(db, sim_id, sim, step, stream=stream)
            yield Loaded(db, lab_id, sim_id, sim)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
