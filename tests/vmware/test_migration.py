"""A VM live-migrated between two hosts of different clock speeds, on a vcsim of its own: refresh closes its
placement on the old host (held since the VM's createDate) and opens one on the new at the refresh that sees
the move (resource_history), and
capture turns cpu.usagemhz into cores with the MHz per core of the host it was on then, as far as the
collector has seen."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from pyVim.connect import Disconnect
from pyVim.task import WaitForTask
from pyVmomi import vim

from cloudmeter.model import METRICS, Window, from_epoch_s
from cloudmeter.scheduler import jobs
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database
from tests.vmware import world
from tests.vmware.conftest import World, by_name, connect
from tests.vmware.vcsim_server import running

FLAGS = ("-cluster-host", "2", "-host", "0", "-vms-per-host", "1", "-templates", "0", "-mhz", "2000,2500")


def test_a_migration_moves_the_placement_at_refresh_and_the_mhz_conversion_with_it(db: Database) -> None:
    with running(*FLAGS, username=world.USERNAME, password=world.PASSWORD) as server:
        admin = connect(server)
        try:
            content = admin.content
            vm, hosts = by_name(content, vim.VirtualMachine)["DC0_C0_H0-vm0"], by_name(content, vim.HostSystem)
            created = int(vm.config.createDate.timestamp())  # 30 days ago (main.go's -age)
            now = math.ceil((time.time() + 60) / 3600) * 3600
            points = [[now - 3600 + 20 * k, 1000] for k in range(1, 181)]
            server.push([{"entity": vm._moId, "counter": "cpu.usagemhz.average", "instance": "", "interval": 20,
                          "points": points}], now=now)  # fmt: skip
            clock = [now - 3000]
            vsphere = World(server, now, {}, "")
            collector = vsphere.collector(clock=lambda: datetime.fromtimestamp(clock[0], UTC))
            with db.connection() as conn:
                manager_id = managers.register_manager(conn, "vc", "vmware", {})
            jobs.refresh_inventory(db, manager_id, collector)
            WaitForTask(vm.RelocateVM_Task(vim.vm.RelocateSpec(host=hosts["DC0_C0_H1"])))
            clock[0] = now - 1800
            jobs.refresh_inventory(db, manager_id, collector)
            clock[0] = now
            batches = list(collector.capture(Window(from_epoch_s(now - 3600), from_epoch_s(now))))
        finally:
            Disconnect(admin)
    cores = {
        int(ts): float(v[METRICS.index("cpu_used_cores")])
        for b in batches
        for ts, v in zip(b.ts_s, b.values, strict=True)
    }
    assert cores == {ts: 1000 / 2000 if ts < now - 1800 else 1000 / 2500 for ts in range(now - 3600, now, 20)}
    with db.connection() as conn:
        history = conn.execute(
            """SELECT extract(epoch FROM h.valid_from)::bigint, extract(epoch FROM h.valid_to)::bigint, p.name
               FROM resource_history h JOIN resources r ON r.id = h.resource_id JOIN resources p ON p.id = h.parent_id
               WHERE r.name = 'DC0_C0_H0-vm0' ORDER BY h.valid_from"""
        ).fetchall()
    # on its first host since it was created (the first refresh knows no earlier move), then on the second from
    # the refresh that saw it there
    assert history == [(created, now - 1800, "DC0_C0_H0"), (now - 1800, None, "DC0_C0_H1")]
    assert now - created > 29 * 86400
