"""Coverage of captured vSphere data: each UTC hour is read at one statistics level, so the samples an hour's
interval promises are the ones vCenter keeps, and coverage is 100 % where all of them arrived.

A vcsim of its own whose clock (and the collector's) is 20 minutes past a whole hour ``H``: realtime keeps from
``H - 40 min``, the 300-s level from ``H - 24 h + 20 min``, so two hours hold the samples of two levels where the
window is cut at the older level's grid (H - 1 h and H - 24 h). Each is read whole at the coarser level. The
report's window is the 26 whole hours before ``H``: 3 hours at 1800 s (2 samples an hour, the hour of the cut
included) and 23 at 300 s (12 an hour): 282 samples per VM.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime

import pytest
from pyVim.connect import Disconnect
from pyVmomi import vim

from cloudmeter.model import Window, from_epoch_s
from cloudmeter.reports import capacity
from cloudmeter.scheduler import jobs
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database
from tests.vmware import world
from tests.vmware.conftest import World, by_name, connect
from tests.vmware.vcsim_server import running

FLAGS = ("-cluster-host", "2", "-host", "1", "-vms-per-host", "2", "-templates", "0", "-mhz", "2000,2500,3000")
#: Off (no samples at any level) for sample ends in (NOW - 50 min, NOW - 30 min]: 4 samples of 300 s.
OFF_VM, OFF = "DC0_H0-vm1", (50 * 60, 30 * 60)
#: -1 in every counter at the 300-s sample ending NOW - 5 h: no row.
EMPTY_VM, EMPTY_AGO = "DC0_H0-vm0", 5 * 3600


def points(name: str, interval: int, now: int, span: int) -> list[list[int]]:
    out = []
    for end in range((now - span) // interval * interval + interval, now + 1, interval):
        if name == OFF_VM and now - OFF[0] < end <= now - OFF[1]:
            continue
        out.append([end, -1 if name == EMPTY_VM and end == now - EMPTY_AGO else 1000])
    return out


def test_coverage_is_that_of_the_samples_vcenter_keeps_hour_by_hour(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    hour = math.ceil(time.time() / 3600) * 3600
    now = hour + 1200
    with running(*FLAGS, username=world.USERNAME, password=world.PASSWORD) as server:
        admin = connect(server)
        try:
            entities = by_name(admin.content, vim.VirtualMachine) | by_name(admin.content, vim.HostSystem)
        finally:
            Disconnect(admin)
        series = [
            {"entity": obj._moId, "counter": "cpu.usagemhz.average", "instance": "", "interval": interval,
             "points": points(name, interval, now, span)}
            for name, obj in entities.items()
            for interval, span in ((20, 2 * 3600), (300, 2 * 86400), (1800, 3 * 86400))
        ]  # fmt: skip
        server.push(series, now=now)
        collector = World(server, now, {}, "").collector(clock=lambda: datetime.fromtimestamp(now, UTC))
        with db.connection() as conn:
            manager_id = managers.register_manager(conn, "vc", "vmware", {})
        jobs.refresh_inventory(db, manager_id, collector)
        with caplog.at_level(logging.WARNING):
            jobs.capture(db, manager_id, collector, Window(from_epoch_s(hour - 26 * 3600), from_epoch_s(now)))
    # the hosts' own samples are stored and kept raw, by design: no warning about them
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    window = Window(from_epoch_s(hour - 26 * 3600), from_epoch_s(hour))
    with db.connection() as conn:
        clusters = capacity.utilization(conn, window, "cluster")
        hosts = capacity.utilization(conn, window, "host")
    coverage = dict(zip(hosts["host"], hosts["coverage_pct"], strict=True))
    coverage |= dict(zip(clusters["cluster"], clusters["coverage_pct"], strict=True))
    # every VM 282 samples, all of them there: 4 VMs in the cluster, 2 on each host
    assert coverage["DC0_C0"] == 100 * (4 * 282) / (4 * 282) == 100.0
    assert coverage["DC0_C0_H0"] == coverage["DC0_C0_H1"] == 100.0
    # DC0_H0: its vm1 off for four 300-s samples, its vm0 without a value (-1) in one: 564 promised, 559 sent
    assert coverage["DC0_H0"] == pytest.approx(100 * (2 * 282 - 4 - 1) / (2 * 282), rel=1e-12)
    with db.connection() as conn:
        hours = conn.execute(
            """SELECT (extract(epoch FROM h.ts)::int8 - %s) / 3600, h.sample_count, h.expected_count
               FROM metric_hourly h JOIN resources r ON r.id = h.resource_id
               WHERE r.name = 'DC0_C0_H0-vm0' AND h.ts IN (to_timestamp(%s), to_timestamp(%s))
               ORDER BY h.ts""",
            (hour, hour - 24 * 3600, hour - 3600),
        ).fetchall()
    # the two hours where a level's samples begin are read whole at the older level (1800 s, 300 s)
    assert hours == [(-24, 2, 2), (-1, 12, 12)]


def test_two_hour_samples_are_stored_as_their_hours_and_cover_them(vsphere: World, db: Database) -> None:
    """The 7200-s level (6 to 10 days back in world.py): each sample is a row in each of its two hours, at
    3600 s (resource_intervals takes only intervals that divide an hour), so its hours are covered."""
    now, day = vsphere.now, 86400
    collector = vsphere.collector()
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, "vc", "vmware", {})
    jobs.refresh_inventory(db, manager_id, collector)
    window = Window(from_epoch_s(now - 10 * day), from_epoch_s(now - 7 * day))
    result = jobs.capture(db, manager_id, collector, window)
    # 9 entities (6 VMs, 3 hosts) x 72 hours, one row each
    assert (result.rows, result.interval_s) == (9 * 72, 3600)
    with db.connection() as conn:
        clusters = capacity.utilization(conn, window, "cluster")
        intervals = conn.execute("SELECT DISTINCT interval_s FROM resource_intervals").fetchall()
    assert intervals == [(3600,)]
    assert clusters["coverage_pct"].to_list() == [100.0]
