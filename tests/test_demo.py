"""The demo: a re-run starts clean, counts what it did, and its manager is an ordinary added one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from polars.testing import assert_frame_equal

from cloudmeter.demo import DEMO_MANAGER, run_demo
from cloudmeter.scheduler.fleet import fleet
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database

NOW = datetime(2026, 3, 5, 7, 30, tzinfo=UTC)


def stored(conn: psycopg.Connection) -> tuple[int, int, int]:
    """Samples, hourly rows and resources in the database."""
    counts = [conn.execute(f"SELECT count(*) FROM {t}").fetchone() for t in ("metric_samples", "metric_hourly")]
    resources = conn.execute("SELECT count(*) FROM resources").fetchone()
    assert counts[0] and counts[1] and resources
    return counts[0][0], counts[1][0], resources[0]


def test_a_rerun_replaces_the_first_and_equals_a_fresh_run(
    db: Database, pg_server: str, new_database: Callable[[str], str], tmp_path: Path
) -> None:
    first = run_demo(db, ("UTC",), 30, 2, now=NOW)
    again = run_demo(db, ("UTC",), 20, 1, now=NOW)
    with Database(new_database(pg_server), tmp_path / "fresh") as fresh_db:
        fresh = run_demo(fresh_db, ("UTC",), 20, 1, now=NOW)
        with fresh_db.connection() as conn:
            want = stored(conn)
    with db.connection() as conn:
        assert stored(conn) == want == (fresh.samples, fresh.hourly_rows, want[2])
    assert again.replaced == first.samples and fresh.replaced == 0
    assert (again.samples, again.hourly_rows, again.daily_rows) == (fresh.samples, fresh.hourly_rows, fresh.daily_rows)
    assert again.hourly_rows > 0 and again.daily_rows["UTC"] > 0
    # equal but for the last bits of float sums, whose order polars' threads may choose differently under load
    assert_frame_equal(again.summary, fresh.summary, check_exact=False, rel_tol=1e-12, abs_tol=0)
    assert again.hosts == 8  # max(4, 20 // 16) per cluster, two clusters


def test_the_demo_manager_is_an_added_manager_that_the_daemon_leaves_alone(db: Database) -> None:
    run_demo(db, ("UTC",), 10, 1, now=NOW)
    assert DEMO_MANAGER in fleet(db, {}).configs  # so managers list, rollup and remove find it
    with db.connection() as conn:
        row = managers.get_manager(conn, DEMO_MANAGER)
    assert row is not None and row.enabled is False
