"""The ``host_measured`` view of capacity utilization on vSphere data captured through the collector: each host
measures its VMs' MHz plus ``world.OVERHEAD_MHZ`` (world.py), so every figure is computed here by hand from the
pushed series (MHz / the host's MHz per core -> cores, KB * 1024 -> bytes) and compared with the report's.

The window is the day from 2 days to 1 day before NOW: vCenter keeps it at 1800 s, two samples an hour per VM and
host, all of them present (the powered-off VM and the -1 are in the last hour, outside it).
"""

from __future__ import annotations

import numpy as np
import pytest

from cloudmeter.model import Window, from_epoch_s
from cloudmeter.reports import capacity, measured
from cloudmeter.scheduler import jobs
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database
from tests.vmware import world
from tests.vmware.conftest import World

DAY, INTERVAL = 86400, 1800


def per_hour(now: int) -> dict[str, dict[str, list[float]]]:
    """Per host, hour by hour over the window: measured and VMs' cores (hourly means, and each sample's VM sum
    for the peak) and memory GiB, from world.py's series."""
    out: dict[str, dict[str, list[float]]] = {}
    for host, (_, mhz) in world.HOSTS.items():
        vms = [vm for vm in world.VMS.values() if vm.host == host]
        got: dict[str, list[float]] = {"cpu": [], "mem": [], "vms_cpu": [], "vms_mem": [], "vms_cpu_samples": [],
                                       "vms_mem_samples": []}  # fmt: skip
        for hour in range(now - 2 * DAY, now - DAY, 3600):
            ends = (hour + INTERVAL, hour + 2 * INTERVAL)  # vSphere stamps a sample with its interval's end
            cpu = [world.host_value(host, "cpu.usagemhz.average", INTERVAL, e) / mhz for e in ends]
            mem = [world.host_value(host, "mem.consumed.average", INTERVAL, e) * 1024 / world.GiB for e in ends]
            vcpu = [sum(world.vm_value(v, "cpu.usagemhz.average", INTERVAL, e) / mhz for v in vms) for e in ends]
            vmem = [sum(world.vm_value(v, "mem.consumed.average", INTERVAL, e) * 1024 / world.GiB for v in vms)
                    for e in ends]  # fmt: skip
            got["cpu"].append(float(np.mean(cpu)))
            got["mem"].append(float(np.mean(mem)))
            got["vms_cpu"].append(float(np.mean(vcpu)))
            got["vms_mem"].append(float(np.mean(vmem)))
            got["vms_cpu_samples"] += vcpu
            got["vms_mem_samples"] += vmem
        out[host] = got
    return out


def assert_figures(row: dict[str, object], want: dict[str, list[float]], overhead_cores: float) -> None:
    def check(column: str, value: float) -> None:
        assert row[column] == pytest.approx(value, rel=1e-9, abs=1e-12), column

    assert (row["measured_hours"], row["measured_coverage_pct"], row["hours"]) == (24, 100.0, 24)
    for kind, unit in (("cpu", "cpu_cores"), ("mem", "mem_gb")):
        measured_hours, vms_hours = np.array(want[kind]), np.array(want[f"vms_{kind}"])
        check(f"measured_{unit}_avg", measured_hours.mean())
        check(f"measured_{unit}_p95", np.percentile(measured_hours, 95))
        check(f"measured_{unit}_peak", measured_hours.max())  # the highest hourly mean
        check(f"vms_{unit}_avg", vms_hours.mean())
        check(f"vms_{unit}_p95", np.percentile(vms_hours, 95))
        check(f"vms_{unit}_peak", max(want[f"vms_{kind}_samples"]))  # the highest sample of the VMs' sum
        check(f"overhead_{unit}_avg", (measured_hours - vms_hours).mean())
        check(f"overhead_{unit}_p95", np.percentile(measured_hours - vms_hours, 95))
    check("overhead_cpu_cores_avg", overhead_cores)
    check("overhead_cpu_cores_p95", overhead_cores)


def test_host_and_cluster_measured_beside_the_vms_sum_with_the_overhead(vsphere: World, db: Database) -> None:
    now = vsphere.now
    collector = vsphere.collector()
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, "vc", "vmware", {})
    jobs.refresh_inventory(db, manager_id, collector)
    window = Window(from_epoch_s(now - 2 * DAY), from_epoch_s(now - DAY))
    jobs.capture(db, manager_id, collector, window)
    with db.connection() as conn:
        hosts = measured.host_measured(conn, window, "host")
        clusters = measured.host_measured(conn, window, "cluster")
        vms_hosts = capacity.utilization(conn, window, "host")
    want = per_hour(now)
    rows = {row["host"]: row for row in hosts.iter_rows(named=True)}
    assert sorted(rows) == sorted(world.HOSTS)
    for host, (_, mhz) in world.HOSTS.items():
        assert_figures(rows[host], want[host], world.OVERHEAD_MHZ / mhz)
    # the VMs' sum is the vms view's figures, exactly
    assert hosts["vms_cpu_cores_avg"].to_list() == vms_hosts.sort("host")["cpu_cores_avg"].to_list()
    # cluster DC0_C0 = DC0_C0_H0 + DC0_C0_H1, hour by hour (H1 in maintenance, still in the cluster and measured)
    pair = [want["DC0_C0_H0"], want["DC0_C0_H1"]]
    summed = {key: [a + b for a, b in zip(pair[0][key], pair[1][key], strict=True)] for key in pair[0]}
    summed["vms_cpu_samples"] = [a + b for a, b in zip(*(w["vms_cpu_samples"] for w in pair), strict=True)]
    summed["vms_mem_samples"] = [a + b for a, b in zip(*(w["vms_mem_samples"] for w in pair), strict=True)]
    [cluster] = clusters.iter_rows(named=True)
    assert cluster["cluster"] == "DC0_C0"
    assert_figures(cluster, summed, world.OVERHEAD_MHZ / 2000 + world.OVERHEAD_MHZ / 2500)  # 0.15 + 0.12 cores
