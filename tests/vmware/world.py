"""The small vSphere the vmware tests run on, and the series its QueryPerf serves, with what cloudmeter must
store for them computed by hand (in plain Python, apart from the collector's code).

vcsim (main.go) with one datacenter DC0: cluster DC0_C0 of hosts DC0_C0_H0 (8 cores at 2000 MHz) and DC0_C0_H1
(16 cores at 2500 MHz), standalone host DC0_H0 (8 cores at 3000 MHz); two VMs per host, ``HOST-vm0`` (1 vCPU,
1 GiB, 10 GiB disk) and ``HOST-vm1`` (2 vCPU, 2 GiB, 11 GiB disk), and a template on DC0_C0_H0 (left out).
Then, through the API: DC0_H0-vm1 is powered off, DC0_C0_H1 enters maintenance mode, and a third VM on DC0_H0,
``doomed``, is created and destroyed (vCenter posts a VmRemovedEvent: the retired VM).

``NOW`` (vCenter's clock for QueryPerf, the collectors' clock) is the next whole hour at least a minute ahead of
the real clock, so the events vcsim stamps with the real clock are in the past. Series, per VM and host:

- realtime (20 s) for the last hour, historical 300 s for the last 3 hours (the last hour of it overlaps
  realtime: capture must read it at 20 s there), 1800 s from 2 days to 1 day ago, 7200 s from 10 to 6 days ago;
- ``value(entity, counter, end)``: a different number for every entity, counter and sample;
- DC0_H0-vm1 has no samples while it was off, from 40 to 20 minutes before ``NOW``;
- DC0_C0_H1-vm0 has no net.transmitted counter at all (the missing metric) and a -1 in cpu.usage at one time;
- hosts measure their VMs' MHz plus an overhead (the host_measured figures), not the sum.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

#: Host name -> (cores, MHz per core), as the vcsim flags below set them.
HOSTS: Final = {"DC0_C0_H0": (8, 2000), "DC0_C0_H1": (16, 2500), "DC0_H0": (8, 3000)}
FLAGS: Final = ("-dc", "1", "-cluster", "1", "-cluster-host", "2", "-host", "1", "-vms-per-host", "2",
                "-templates", "1", "-mhz", "2000,2500,3000", "-cores", "8,16")  # fmt: skip
USERNAME: Final = "cloudmeter@vsphere.local"
PASSWORD: Final = "vcsim-contract-pw-8Rt3"
WRONG_PASSWORD: Final = "vcsim-wrong-pw-5Kd9"
GiB: Final = 1024**3

COUNTERS_VM: Final = (
    "cpu.usage.average", "cpu.usagemhz.average", "mem.consumed.average", "virtualDisk.read.average",
    "virtualDisk.write.average", "net.received.average", "net.transmitted.average",
)  # fmt: skip
COUNTERS_HOST: Final = (
    "cpu.usage.average", "cpu.usagemhz.average", "mem.consumed.average", "disk.read.average",
    "disk.write.average", "net.received.average", "net.transmitted.average",
)  # fmt: skip
#: Off from 40 to 20 minutes before NOW (sample ends in that span have no data).
OFF_VM: Final = "DC0_H0-vm1"
OFF_FROM_S, OFF_TO_S = 40 * 60, 20 * 60
MISSING_VM: Final = "DC0_C0_H1-vm0"
MAINTENANCE_HOST: Final = "DC0_C0_H1"
OVERHEAD_MHZ: Final = 300


@dataclass(frozen=True)
class Vm:
    name: str
    host: str
    vcpus: int
    memory_gib: int

    @property
    def index(self) -> int:
        return sorted(VMS).index(self.name)


VMS: Final = {
    f"{host}-vm{k}": Vm(f"{host}-vm{k}", host, 1 + k, 1 + k) for host in HOSTS for k in range(2)
}  # fmt: skip


def levels(now: int) -> Iterator[tuple[int, int]]:
    """(interval, end) of every sample pushed, per the module docstring."""
    yield from ((20, now - 3600 + 20 * k) for k in range(1, 181))
    yield from ((300, now - 3 * 3600 + 300 * k) for k in range(1, 37))
    yield from ((1800, now - 2 * 86400 + 1800 * k) for k in range(1, 49))
    base = (now - 10 * 86400) // 7200 * 7200  # NOW is a whole hour, not always on the 7200-second grid
    yield from ((7200, base + 7200 * k) for k in range(1, 49))


def vm_value(vm: Vm, counter: str, interval: int, end: int) -> int:
    """The raw value of ``counter`` for ``vm`` at sample ``end``, in vSphere's units; within the VM's size."""
    step = (end // interval) % 10  # 0-9
    i = vm.index
    mhz = HOSTS[vm.host][1]
    return {
        "cpu.usage.average": 1000 + 500 * i + 37 * step,  # hundredths of a percent: 10.00 % ...
        "cpu.usagemhz.average": (vm.vcpus * mhz) * (10 + i + step) // 100,  # 10-24 % of the VM's MHz
        "mem.consumed.average": vm.memory_gib * 1024 * 1024 * (30 + 3 * i + step) // 100,  # KB
        "virtualDisk.read.average": 100 + 10 * i + step,  # KBps
        "virtualDisk.write.average": 50 + 7 * i + step,
        "net.received.average": 20 + i + 2 * step,
        "net.transmitted.average": 5 + i + step,
    }[counter]


def host_value(host: str, counter: str, interval: int, end: int) -> int:
    """A host's own measurement: its VMs' MHz (those powered on then) plus ``OVERHEAD_MHZ``, the rest made up."""
    step = (end // interval) % 10
    cores, mhz = HOSTS[host]
    vms = [vm for vm in VMS.values() if vm.host == host]
    used = sum(vm_value(vm, "cpu.usagemhz.average", interval, end) for vm in vms) + OVERHEAD_MHZ
    return {
        "cpu.usage.average": used * 10000 // (cores * mhz),
        "cpu.usagemhz.average": used,
        "mem.consumed.average": (1024 + 100 * step) * 1024,  # 1-1.9 GiB of vcsim's 4 GiB
        "disk.read.average": 1000 + step,
        "disk.write.average": 700 + step,
        "net.received.average": 400 + step,
        "net.transmitted.average": 200 + step,
    }[counter]


def vm_points(vm: Vm, counter: str, now: int) -> dict[int, list[list[int]]]:
    """interval -> [[end, value]] pushed for ``vm``'s ``counter``."""
    points: dict[int, list[list[int]]] = {}
    for interval, end in levels(now):
        if vm.name == OFF_VM and now - OFF_FROM_S < end <= now - OFF_TO_S:
            continue
        if vm.name == MISSING_VM and counter == "net.transmitted.average":
            continue
        value = vm_value(vm, counter, interval, end)
        if vm.name == MISSING_VM and counter == "cpu.usage.average" and end == now - 600:
            value = -1
        points.setdefault(interval, []).append([end, value])
    return points


def series(morefs: dict[str, str], now: int) -> list[dict[str, Any]]:
    """Everything pushed to QueryPerf; ``morefs`` maps VM and host names to their managed object ids."""
    pushed = []
    for vm in VMS.values():
        for counter in COUNTERS_VM:
            for interval, points in vm_points(vm, counter, now).items():
                pushed.append({"entity": morefs[vm.name], "counter": counter, "instance": "", "interval": interval,
                               "points": points})  # fmt: skip
    for host in HOSTS:
        for counter in COUNTERS_HOST:
            by_interval: dict[int, list[list[int]]] = {}
            for interval, end in levels(now):
                by_interval.setdefault(interval, []).append([end, host_value(host, counter, interval, end)])
            for interval, points in by_interval.items():
                pushed.append({"entity": morefs[host], "counter": counter, "instance": "", "interval": interval,
                               "points": points})  # fmt: skip
    # an instance other than the aggregate, which capture must not mix in
    first = morefs[sorted(VMS)[0]]
    pushed.append({"entity": first, "counter": "net.received.average", "instance": "4000", "interval": 20,
                   "points": [[now - 20, 999999]]})  # fmt: skip
    return pushed
