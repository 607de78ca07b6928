"""What ``status`` reads of a manager (issue 20): skipped ranges, holes, the newest sample and how long the source
has been quiet, samples per capture cycle, API usage, its state, and a next attempt that is never in the past."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cloudmeter.collectors.simulator import SimulatorCollector, SimulatorConfig
from cloudmeter.model import Window
from cloudmeter.scheduler import jobs
from cloudmeter.storage import managers, status
from cloudmeter.storage.database import Database

START = datetime(2026, 11, 1, tzinfo=UTC)


def t(hours: float) -> datetime:
    return START + timedelta(hours=hours)


def test_a_capture_cycle_keeps_its_samples_and_usage_and_adds_to_the_totals(db: Database) -> None:
    with db.connection() as conn:
        mid = managers.register_manager(conn, "m", "aws", {})
        for n in range(8):  # eight capture cycles: 1..8 requests, 7 metrics and US$0.00008 each, 0..70 samples
            managers.record_job(conn, mid, n + 1, 7, Decimal("0.00008"), samples=10 * n)
        managers.record_job(conn, mid, 2, 0, Decimal(0))  # a refresh: the totals only
        (row,) = status.manager_status(conn)
    assert row.cycle_samples == [20, 30, 40, 50, 60, 70]  # the last six, newest last
    assert (row.api_requests, row.cloudwatch_metrics, row.api_cost_usd) == (36 + 2, 56, Decimal("0.00064"))
    assert (row.cycle_requests, row.cycle_metrics, row.cycle_cost_usd) == (8, 7, Decimal("0.00008"))


def test_a_skipped_range_counts_as_covered_and_shows_apart_from_holes(db: Database) -> None:
    now = datetime.now(UTC)
    with db.connection() as conn:
        mid = managers.register_manager(conn, "m", "openstack", {})
        managers.mark_captured(conn, mid, t(0), t(1), now)
        managers.mark_skipped(conn, mid, t(1), t(5))
        assert managers.manager_by_id(conn, mid).captured_until == t(5)
        assert managers.capture_holes(conn, mid) == []
        managers.mark_captured(conn, mid, t(7), t(8), now)  # beyond the mark: a hole before it
        assert managers.manager_by_id(conn, mid).captured_until == t(5)
        assert managers.capture_holes(conn, mid) == [(t(5), t(7))]
        managers.mark_skipped(conn, mid, t(5), t(7))  # gone at the source meanwhile
        assert managers.manager_by_id(conn, mid).captured_until == t(8)
        managers.mark_captured(conn, mid, t(10), t(11), now)
        managers.mark_skipped(conn, mid, t(8), t(12))  # what was captured of it is not skipped
        assert managers.manager_by_id(conn, mid).captured_until == t(12)
        (row,) = status.manager_status(conn)
    assert row.skipped == [(t(1), t(7)), (t(8), t(10)), (t(11), t(12))]
    assert row.holes == []


def test_newest_sample_quiet_time_and_state(db: Database) -> None:
    config = SimulatorConfig(kind="simulator", vms=2, clusters=1, hosts_per_cluster=1, interval_s=60, start=START)
    lab = SimulatorCollector("lab", config, clock=lambda: t(2))
    window = Window(t(1), t(2))
    newest = datetime.fromtimestamp(max(int(b.ts_s.max()) for b in lab.capture(window)), UTC)
    with db.connection() as conn:
        mid = managers.register_manager(conn, "lab", "simulator", {})
        managers.register_manager(conn, "new", "simulator", {})
    jobs.refresh_inventory(db, mid, lab)
    jobs.capture(db, mid, lab, window)

    def shown() -> dict[str, status.ManagerStatus]:
        with db.connection() as conn:
            return {row.name: row for row in status.manager_status(conn, stale_after_s=600)}

    lab_row = shown()["lab"]
    assert (lab_row.state, lab_row.newest_sample_at, lab_row.quiet_s) == ("ok", newest, (t(2) - newest).seconds)
    assert (shown()["new"].state, shown()["new"].newest_sample_at, shown()["new"].quiet_s) == ("new", None, None)

    with db.connection() as conn:  # an hour captured in which the source sent nothing
        managers.mark_captured(conn, mid, t(2), t(3), datetime.now(UTC))
    lab_row = shown()["lab"]
    assert (lab_row.state, lab_row.newest_sample_at, lab_row.quiet_s) == ("stale", newest, (t(3) - newest).seconds)

    now = datetime.now(UTC)
    with db.connection() as conn:  # failed 10 s ago, retry due 1 s after: past, so not shown
        managers.mark_failed(conn, mid, "capture: it broke", now - timedelta(seconds=10), (1.0, 1.0))
    lab_row = shown()["lab"]
    assert (lab_row.state, lab_row.failures, lab_row.next_attempt_at) == ("failing", 1, None)
    with db.connection() as conn:
        retry = managers.mark_failed(conn, mid, "capture: it broke again", now, (3600.0, 3600.0))
    assert retry == now + timedelta(hours=1)
    assert shown()["lab"].next_attempt_at == retry
    with db.connection() as conn:
        managers.set_enabled(conn, "lab", False)
    assert shown()["lab"].state == "disabled"
