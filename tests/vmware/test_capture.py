"""What the vmware collector stores for the series vcsim's QueryPerf serves (world.py), against values computed
here by hand from vSphere's documented units:

- cpu.usage is hundredths of a percent; cpu.usagemhz / the MHz per core of the VM's host are busy cores;
- mem.consumed is KB (1024 bytes), its share of the VM's configured memory (the host's) is mem_usage_pct;
- virtualDisk.*, disk.*, net.* are KBps;
- -1 and a counter with no series are NULL; a sample time with no value at all (a powered-off VM) is no row;
- a sample's stored ts is the start of its interval: vSphere's timestamp (its end) minus the interval;
- the part of a window younger than an hour is read at 20 s, then 300 s to a day, 1800 s to a week, 7200 s to
  30 days (vCenter's default levels), each sample once, each UTC hour at one level; a 7200-s sample is stored as
  a row per hour it covers (at 3600 s: cloudmeter's intervals divide an hour).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from pyVim.connect import Disconnect
from pyVmomi import vim

from cloudmeter.collectors import usage
from cloudmeter.model import METRICS, ResourceRef, Window, from_epoch_s
from tests.vmware import world
from tests.vmware.conftest import World, by_name, connect

DAY = 86400


def level_of(start: int, now: int) -> int:
    """The interval vCenter still keeps for a sample starting at ``start``, written out by hand."""
    if start >= now - 3600:
        return 20
    if start >= now - DAY:
        return 300
    if start >= now - 7 * DAY:
        return 1800
    return 7200


def vm_row(vm: world.Vm, interval: int, end: int, now: int) -> list[float] | None:
    raw = {counter: points for counter in world.COUNTERS_VM for counter, points in [(counter, dict(
        (e, v) for e, v in world.vm_points(vm, counter, now).get(interval, [])))]}  # fmt: skip
    if not any(end in points for points in raw.values()):
        return None

    def value(counter: str) -> float:
        got = raw[counter].get(end, -1)
        return math.nan if got == -1 else float(got)

    memory = vm.memory_gib * world.GiB
    used = value("mem.consumed.average") * 1024
    return [
        value("cpu.usage.average") / 100,
        value("cpu.usagemhz.average") / world.HOSTS[vm.host][1],
        used,
        used / memory * 100,
        value("virtualDisk.read.average") * 1024,
        value("virtualDisk.write.average") * 1024,
        value("net.received.average") * 1024,
        value("net.transmitted.average") * 1024,
    ]


def host_row(host: str, interval: int, end: int) -> list[float]:
    mhz = world.HOSTS[host][1]
    used = world.host_value(host, "mem.consumed.average", interval, end) * 1024.0
    return [
        world.host_value(host, "cpu.usage.average", interval, end) / 100,
        world.host_value(host, "cpu.usagemhz.average", interval, end) / mhz,
        used,
        used / 4294430720 * 100,  # vcsim's host memory
        *(world.host_value(host, c, interval, end) * 1024.0 for c in world.COUNTERS_HOST[3:]),
    ]


def expected(vsphere: World, start: int, end: int) -> dict[tuple[ResourceRef, int], tuple[int, list[float]]]:
    now, rows = vsphere.now, {}
    for interval, sample_end in world.levels(now):
        if level_of(sample_end - interval, now) != interval:
            continue
        # a 7200-s sample is stored as a row per hour it covers, each with its values, at 3600 s
        for ts in range(sample_end - interval, sample_end, min(interval, 3600)):
            if not (start <= ts < end):
                continue
            stored = min(interval, 3600)
            for vm in world.VMS.values():
                row = vm_row(vm, interval, sample_end, now)
                if row is not None:
                    rows[ResourceRef("vm", vsphere.morefs[vm.name]), ts] = (stored, row)
            for host in world.HOSTS:
                rows[ResourceRef("host", vsphere.morefs[host]), ts] = (stored, host_row(host, interval, sample_end))
    return rows


def captured(vsphere: World, start: int, end: int) -> dict[tuple[ResourceRef, int], tuple[int, list[float]]]:
    rows = {}
    for batch in vsphere.collector().capture(Window(from_epoch_s(start), from_epoch_s(end))):
        for idx, ts, values in zip(
            batch.resource_idx.tolist(), batch.ts_s.tolist(), batch.values.tolist(), strict=True
        ):
            key = (batch.refs[idx], ts)
            assert key not in rows, f"{key} captured twice"
            rows[key] = (batch.interval_s, values)
    return rows


def assert_same(got: dict, want: dict) -> None:  # type: ignore[type-arg]
    assert got.keys() == want.keys(), (
        f"{len(got.keys() - want.keys())} rows too many (e.g. {sorted(got.keys() - want.keys())[:3]}), "
        f"{len(want.keys() - got.keys())} missing (e.g. {sorted(want.keys() - got.keys())[:3]})"
    )
    for key, (interval, values) in want.items():
        got_interval, got_values = got[key]
        assert got_interval == interval, key
        for name, a, b in zip(METRICS, got_values, values, strict=True):
            assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12), (key, name, a, b)


def test_ten_days_are_read_at_each_age_s_interval_with_units_converted(vsphere: World) -> None:
    start, end = vsphere.now - 10 * DAY, vsphere.now
    want = expected(vsphere, start, end)
    got = captured(vsphere, start, end)
    assert_same(got, want)
    by_interval = {i: sum(1 for (_, ts), (j, _) in got.items() if j == i) for i in (20, 300, 1800, 3600)}
    # 9 entities: realtime 180 samples each (the powered-off VM 60 fewer); 300 s: 24 of 36 (the rest is realtime's);
    # 1800 s: 48; 7200 s: 36 of 48 (the rest younger than 7 days, of 1800 s's), each as two hourly rows, and when
    # the window starts in the middle of a 7200 s sample (NOW on an odd hour), that sample's second hour too
    straddled = 1 if start % 7200 else 0
    assert by_interval == {20: 9 * 180 - 60, 300: 9 * 24, 1800: 9 * 48, 3600: 9 * (36 * 2 + straddled)}


def test_a_sample_is_stored_at_the_start_of_its_interval(vsphere: World) -> None:
    now = vsphere.now
    vm = world.VMS["DC0_C0_H0-vm0"]
    got = captured(vsphere, now - 3600, now - 3600 + 40)
    ref = ResourceRef("vm", vsphere.morefs[vm.name])
    # vSphere's first realtime sample ends at now - 3580: it covers [now - 3600, now - 3580)
    assert sorted(ts for r, ts in got if r == ref) == [now - 3600, now - 3580]
    interval, values = got[ref, now - 3600]
    assert interval == 20
    step = ((now - 3580) // 20) % 10
    mhz = 1 * 2000 * (10 + 0 + step) // 100
    assert values[METRICS.index("cpu_used_cores")] == mhz / 2000
    assert values[METRICS.index("mem_used_bytes")] == 1024 * 1024 * (30 + step) // 100 * 1024


def test_minus_one_and_a_missing_counter_are_null_and_a_powered_off_vm_has_no_rows(vsphere: World) -> None:
    now = vsphere.now
    got = captured(vsphere, now - 3600, now)
    missing = ResourceRef("vm", vsphere.morefs[world.MISSING_VM])
    cpu, tx = METRICS.index("cpu_usage_pct"), METRICS.index("net_tx_bps")
    assert math.isnan(got[missing, now - 600 - 20][1][cpu])  # the -1
    assert not math.isnan(got[missing, now - 600 - 40][1][cpu])
    assert all(math.isnan(values[tx]) for (ref, _), (_, values) in got.items() if ref == missing)
    off = ResourceRef("vm", vsphere.morefs[world.OFF_VM])
    times = sorted(ts for ref, ts in got if ref == off)
    gap = [ts for ts in range(now - 3600, now, 20) if ts not in times]
    # sample ends in (now - 40 min, now - 20 min] are missing: starts from now - 40 min to now - 20 min - 20 s
    assert gap == list(range(now - world.OFF_FROM_S, now - world.OFF_TO_S, 20))


def test_hosts_are_their_own_measurement_not_the_sum_of_their_vms(vsphere: World) -> None:
    now = vsphere.now
    got = captured(vsphere, now - 1200, now)
    cores = METRICS.index("cpu_used_cores")
    for host, (_, mhz) in world.HOSTS.items():
        host_ref = ResourceRef("host", vsphere.morefs[host])
        vms = [ResourceRef("vm", vsphere.morefs[vm.name]) for vm in world.VMS.values() if vm.host == host]
        ts = now - 1200
        overhead = got[host_ref, ts][1][cores] - sum(got[vm, ts][1][cores] for vm in vms if (vm, ts) in got)
        assert overhead == pytest.approx(world.OVERHEAD_MHZ / mhz, rel=1e-9)


def test_a_window_older_than_the_coarsest_level_kept_is_empty(vsphere: World) -> None:
    now = vsphere.now
    assert captured(vsphere, now - 40 * DAY, now - 31 * DAY) == {}
    collector = vsphere.collector()
    assert collector.retention_s == 30 * DAY


def test_inventory_topology_capacity_and_tags(vsphere: World) -> None:
    inventory = vsphere.collector().inventory()
    items = {item.ref: item for item in inventory.items}
    names = {item.name: item for item in inventory.items}
    assert "DC0_C0_H0-template0" not in names
    region, provider = ResourceRef("region", "DC0"), ResourceRef("provider", "datacenter-2")
    assert names["vc/DC0"].ref == provider and names["vc/DC0"].parent == region
    cluster = names["DC0_C0"].ref
    assert cluster.kind == "cluster" and items[cluster].parent == provider
    for host, (cores, mhz) in world.HOSTS.items():
        item = names[host]
        assert item.parent == (provider if host == "DC0_H0" else cluster)
        assert (item.vcpus, item.memory_bytes) == (cores, 4294430720)
        assert item.tags["cpu_mhz_per_core"] == str(mhz) and item.tags["cpu_capacity_mhz"] == str(cores * mhz)
        assert item.tags["maintenance"] == ("true" if host == world.MAINTENANCE_HOST else "false")
    for vm in world.VMS.values():
        item = names[vm.name]
        assert item.ref == ResourceRef("vm", vsphere.morefs[vm.name])
        assert item.parent == names[vm.host].ref
        assert (item.vcpus, item.memory_bytes) == (vm.vcpus, vm.memory_gib * world.GiB)
        assert item.disk_bytes == (10 + vm.vcpus - 1) * world.GiB
        assert item.tags["power_state"] == ("poweredOff" if vm.name == world.OFF_VM else "poweredOn")
        assert item.tags["folder"] == "vm" and item.tags["resource_pool"] == "Resources"
        assert len(item.tags["instance_uuid"]) == 36 and item.retired_at is None
    instance = connect(vsphere.server)
    try:
        made = by_name(instance.content, vim.VirtualMachine)["DC0_C0_H0-vm0"].config.createDate
    finally:
        Disconnect(instance)
    # every VM was made at once: each VM, host, cluster, provider and region dates from then
    assert {item.created_at for item in inventory.items if item.retired_at is None} == {made}
    gone = items[ResourceRef("vm", vsphere.retired)]
    assert gone.name == "doomed" and gone.parent == names["DC0_H0"].ref
    assert gone.retired_at is not None and gone.retired_at <= datetime.fromtimestamp(vsphere.now, UTC)
    kinds = sorted(item.ref.kind for item in inventory.items)
    assert kinds == sorted(["region", "provider", "cluster"] + ["host"] * 3 + ["vm"] * 7)


def test_datacenters_filter_and_an_unknown_one_is_a_config_error(vsphere: World) -> None:
    from cloudmeter.errors import ConfigError

    assert len(vsphere.collector(datacenters=["DC0"]).inventory().items) == 13
    with pytest.raises(ConfigError, match=r"no datacenter named 'DC9'.*has DC0: fix datacenters"):
        vsphere.collector(datacenters=["DC9"]).verify()


def test_batches_are_sorted_per_resource(vsphere: World) -> None:
    for batch in vsphere.collector().capture(Window(from_epoch_s(vsphere.now - DAY), from_epoch_s(vsphere.now))):
        for idx in np.unique(batch.resource_idx):
            ts = batch.ts_s[batch.resource_idx == idx]
            assert (np.diff(ts) > 0).all()


def test_historical_queries_stay_within_vcenter_s_max_query_metrics(vsphere: World) -> None:
    """vCenter refuses a historical QueryPerf of more entities x counters than config.vpxd.stats.maxQueryMetrics
    (64 while unset: 9 entities of 7 counters); set to 14, two entities per call, the same rows."""
    start, end = vsphere.now - 3 * DAY, vsphere.now - 2 * 3600  # 1800-s and 300-s samples only
    want = expected(vsphere, start, end)
    instance = connect(vsphere.server)
    setting = "config.vpxd.stats.maxQueryMetrics"
    try:
        instance.content.setting.UpdateOptions(changedValue=[vim.option.OptionValue(key=setting, value="14")])
        usage.METER.take("vc")
        assert_same(captured(vsphere, start, end), want)
        # per level, 6 VMs in 3 calls and 3 hosts in 2
        assert usage.METER.take("vc").requests["vsphere:QueryPerf"] == 2 * (3 + 2)
    finally:
        instance.content.setting.UpdateOptions(changedValue=[vim.option.OptionValue(key=setting, value="64")])
        Disconnect(instance)
