"""world.py's cluster refreshed, captured into a real PostgreSQL and rolled up, each stored figure against the world.

Hour 0 (START to START + 1 h) is the checked hour: every container there has a constant rate, so any way of
averaging gives the same figures, and none is created, deleted, restarted or missing in it.
"""

from __future__ import annotations

import math
from typing import Any, Final

import pytest

from cloudmeter.model import Window, from_epoch_s
from cloudmeter.scheduler import jobs
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database
from tests.kubernetes import world
from tests.kubernetes.conftest import Prom
from tests.kubernetes.test_capture import expected

MIB: Final = world.MIB


@pytest.fixture
def stored(prometheus: Prom, db: Database) -> int:
    """The manager id, after one refresh and a capture of the whole world (rolled up as it goes)."""
    collector = prometheus.collector()
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, "k8s", "kubernetes", {})
    jobs.refresh_inventory(db, manager_id, collector)
    jobs.capture(db, manager_id, collector, Window(from_epoch_s(world.START), from_epoch_s(world.END)))
    return manager_id


def rows(db: Database, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with db.connection() as conn:
        return list(conn.execute(sql, args).fetchall())


def test_every_sample_is_stored_as_captured(stored: int, db: Database) -> None:
    got = {
        (ems_ref, int(ts.timestamp())): (cpu, mem, pct)
        for ems_ref, ts, cpu, mem, pct in rows(
            db,
            """SELECT r.ems_ref, s.ts, s.cpu_used_cores, s.mem_used_bytes, s.cpu_usage_pct
               FROM metric_samples s JOIN resources r ON r.id = s.resource_id""",
        )
    }
    want = expected()
    assert len(got) == len(want)
    for (ref, ts), row in want.items():
        cpu, mem, pct = got[ref.ems_ref, ts]
        for value, metric in ((cpu, "cpu_used_cores"), (mem, "mem_used_bytes"), (pct, "cpu_usage_pct")):
            if math.isnan(row[metric]):
                assert value is None, (ref.ems_ref, ts, metric)
            else:
                assert value == pytest.approx(row[metric], rel=1e-12), (ref.ems_ref, ts, metric)


def test_resources_parents_and_retirement(stored: int, db: Database) -> None:
    found = {
        (kind, ems_ref): (parent, project, retired)
        for kind, ems_ref, parent, project, retired in rows(
            db,
            """SELECT r.kind, r.ems_ref, p.ems_ref, r.project, r.retired_at
               FROM resources r LEFT JOIN resources p ON p.id = r.parent_id""",
        )
    }
    assert found["pod", world.U_DB_OLD] == (
        "node-b", "batch", from_epoch_s(world.DB_MOVED - world.SCRAPE + world.CADVISOR_OFFSET),
    )  # fmt: skip
    assert found["pod", world.U_DB_NEW] == ("node-c", "batch", None)
    assert found["container", f"{world.U_WEB1}/POD"] == (world.U_WEB1, "shop", None)
    assert found["host", "node-a"] == (world.CLUSTER, None, None)
    assert {ems_ref for kind, ems_ref in found if kind == "project"} == {"shop", "batch"}


def test_requests_are_stored_on_resources_and_history(stored: int, db: Database) -> None:
    [resource] = rows(
        db,
        """SELECT cpu_request_cores, cpu_limit_cores, memory_request_bytes, memory_limit_bytes
           FROM resources WHERE kind = 'container' AND ems_ref = %s""",
        f"{world.U_WEB1}/app",
    )
    assert resource == (0.5, 1.0, 256 * MIB, 512 * MIB)
    history = rows(
        db,
        """SELECT h.valid_from, h.cpu_request_cores, h.memory_request_bytes FROM resource_history h
           JOIN resources r ON r.id = h.resource_id WHERE r.kind = 'pod' AND r.ems_ref = %s""",
        world.U_WEB2,
    )
    assert history == [(from_epoch_s(world.pod(world.U_WEB2).started), 0.25, 128 * MIB)]


def hour_zero(db: Database, kind: str, ems_ref: str) -> tuple[Any, ...]:
    [row] = rows(
        db,
        """SELECT h.cpu_used_cores_avg, h.mem_used_bytes_avg, h.sample_count
           FROM metric_hourly h JOIN resources r ON r.id = h.resource_id
           WHERE r.kind = %s AND r.ems_ref = %s AND h.ts = %s""",
        kind,
        ems_ref,
        from_epoch_s(world.START),
    )
    return tuple(row)


def test_hour_zero_rolls_up_containers_to_pods_to_nodes(stored: int, db: Database) -> None:
    """web-1: app 0.25 + sidecar 0.05 cores, 200 + 30 MiB; node-a: web-1 + idle-1 (0 cores, 10 MiB); node-b:
    web-2 (0.1, 100 MiB) all hour + db-0's first uid (0.2, 700 MiB) until it is deleted at 45 min, so node-b's
    series is 0.3 cores / 800 MiB for 45 minutes and 0.1 / 100 MiB for 15: an hourly average of 0.25 cores and
    625 MiB (job-1 starts at 20 min on node-c, which is not checked here)."""
    app = hour_zero(db, "container", f"{world.U_WEB1}/app")
    assert app[:2] == (pytest.approx(0.25), pytest.approx(200 * MIB)) and app[2] == 60
    web = hour_zero(db, "pod", world.U_WEB1)
    assert web[:2] == (pytest.approx(0.30), pytest.approx(230 * MIB))
    assert hour_zero(db, "host", "node-a")[:2] == (pytest.approx(0.30), pytest.approx(240 * MIB))
    node_b = ((45 * 0.3 + 15 * 0.1) / 60, (45 * 800 + 15 * 100) / 60 * MIB)
    assert hour_zero(db, "host", "node-b")[:2] == (pytest.approx(node_b[0]), pytest.approx(node_b[1]))
