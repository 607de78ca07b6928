"""A small cloud as Ceilometer would have written it to Gnocchi, with known readings.

Two hours of 5-minute readings (``K`` = 0..23) from ``T0`` (three whole hours ago, so the readings are
recent enough for the inventory's one-day look at the ``vcpus``/``memory`` meters):

- ``web-1`` (m1.small, its ``vcpus``/``memory`` meters say 1 vCPU, 2048 MiB) on compute-1: CPU cores over the
  interval ending at reading k are ``0.1 * (k % 5 + 1)``; the cpu counter restarts at k = 12; memory.usage
  ``512 + 8k`` MiB; disk vda, and vdb attached at k = 12 (and never written); one NIC.
- ``db-1`` (m1.large, no vcpus/memory meters: the manager's ``flavors`` table says 4 and 8192 MiB) on
  compute-1, live-migrated to compute-2 at T0 + 1 h; no readings from 30 to 50 minutes (k = 6..10); one disk,
  no NIC.
- ``batch-1`` (m1.small with meters) on compute-2, deleted at T0 + 90 min (readings k = 0..17); no memory.usage
  meter at all; one NIC, no disk.

Counter values are cumulative sums of per-interval increments from an arbitrary start, so the rates a test
expects come straight from the increments defined here, never from the code under test.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import psycopg

STEP_S = 300
K = range(24)
NOW = datetime.now(UTC)
T0 = NOW.replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
MIGRATED_AT = T0 + timedelta(hours=1)
DELETED_AT = T0 + timedelta(minutes=90)
RATE = "ceilometer-low-rate"
GAUGE = "ceilometer-low"
FLAVORS = {"m1.large": {"vcpus": 4, "memory_mib": 8192}}
HOST_CLUSTERS = {"compute-1": "agg-a"}


def at(k: int) -> datetime:
    """The time of reading ``k``."""
    return T0 + timedelta(seconds=STEP_S * k)


@dataclass(frozen=True)
class Device:
    """A disk (two counters: read, write bytes) or NIC (incoming, outgoing bytes) and its per-interval growth."""

    kind: str  # "instance_disk" | "instance_network_interface"
    name: str
    first_k: int
    growth: tuple[float, float]  # bytes per interval of its two counters

    @property
    def meters(self) -> tuple[str, str]:
        if self.kind == "instance_disk":
            return ("disk.device.read.bytes", "disk.device.write.bytes")
        return ("network.incoming.bytes", "network.outgoing.bytes")


@dataclass(frozen=True)
class VM:
    """One instance and the rules its readings follow."""

    name: str
    flavor: str
    host: str
    readings: tuple[int, ...]
    cores: Callable[[int], float]  # busy cores over the interval ending at reading k
    memory_mib: Callable[[int], float] | None
    allocation_meters: tuple[int, int] | None  # what the vcpus and memory (MiB) meters say
    devices: tuple[Device, ...]
    reset_at: int | None = None
    availability_zone: str | None = None
    moved_to: str | None = None
    ended_at: datetime | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    project: str = field(default_factory=lambda: str(uuid.uuid4()))


WEB = VM(
    "web-1",
    "m1.small",
    "compute-1",
    tuple(K),
    cores=lambda k: 0.1 * (k % 5 + 1),
    memory_mib=lambda k: 512 + 8 * k,
    allocation_meters=(1, 2048),
    devices=(
        Device("instance_disk", "vda", 0, (3000, 1500)),
        Device("instance_disk", "vdb", 12, (6000, 0)),
        Device("instance_network_interface", "tap-web", 0, (1.2e6, 6e5)),
    ),
    reset_at=12,
)
DB = VM(
    "db-1",
    "m1.large",
    "compute-1",
    tuple(k for k in K if not 6 <= k <= 10),
    cores=lambda k: 2.5,
    memory_mib=lambda k: 4096,
    allocation_meters=None,
    devices=(Device("instance_disk", "vda", 0, (30000, 60000)),),
    availability_zone="az-2",
    moved_to="compute-2",
)
BATCH = VM(
    "batch-1",
    "m1.small",
    "compute-2",
    tuple(k for k in K if k <= 17),
    cores=lambda k: 1.0,
    memory_mib=None,
    allocation_meters=(1, 2048),
    devices=(Device("instance_network_interface", "tap-batch", 0, (3e5, 3e5)),),
    ended_at=DELETED_AT,
)
VMS = (WEB, DB, BATCH)


def cpu_counter(vm: VM) -> list[float]:
    """The cumulative cpu time (ns) Ceilometer reads at each of ``vm.readings``."""
    values, total = [], 7.0e12
    for k in vm.readings:
        growth = vm.cores(k) * STEP_S * 1e9
        total = growth / 2 if k == vm.reset_at else total + growth  # a restart: the counter began again mid-interval
        values.append(total)
    return values


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _measures(times: list[int], values: list[float]) -> list[dict[str, object]]:
    return [{"timestamp": _iso(at(k)), "value": v} for k, v in zip(times, values, strict=True)]


def load(client: httpx.Client, indexer_dsn: str) -> None:
    """Create the resources, post their measures, have Gnocchi process them, then date the revisions."""
    batch: dict[str, dict[str, list[dict[str, object]]]] = {}
    for vm in VMS:
        metrics = {"cpu": RATE, **({"memory.usage": GAUGE} if vm.memory_mib else {})}
        metrics |= {"vcpus": GAUGE, "memory": GAUGE} if vm.allocation_meters else {}
        instance = {
            "id": vm.id,
            "display_name": vm.name,
            "flavor_id": f"id-{vm.flavor}",
            "flavor_name": vm.flavor,
            "host": vm.host,
            "project_id": vm.project,
            "started_at": _iso(T0),
            "metrics": {name: {"archive_policy_name": policy} for name, policy in metrics.items()},
            **({"availability_zone": vm.availability_zone} if vm.availability_zone else {}),
        }
        client.post("/v1/resource/instance", json=instance).raise_for_status()
        readings = list(vm.readings)
        series = {"cpu": _measures(readings, cpu_counter(vm))}
        if vm.memory_mib:
            series["memory.usage"] = _measures(readings, [vm.memory_mib(k) for k in readings])
        if vm.allocation_meters:
            series["vcpus"] = _measures(readings, [vm.allocation_meters[0]] * len(readings))
            series["memory"] = _measures(readings, [vm.allocation_meters[1]] * len(readings))
        batch[vm.id] = series
        for device in vm.devices:
            device_id = f"{vm.id}-{device.name}"
            client.post(
                f"/v1/resource/{device.kind}",
                json={
                    "id": device_id,
                    "name": device.name,
                    "instance_id": vm.id,
                    "started_at": _iso(at(device.first_k)),
                    "metrics": {meter: {"archive_policy_name": RATE} for meter in device.meters},
                },
            ).raise_for_status()
            times = [k for k in readings if k >= device.first_k]
            batch[device_id] = {
                meter: _measures(times, [1.0e9 + growth * (k - device.first_k) for k in times])
                for meter, growth in zip(device.meters, device.growth, strict=True)
            }
    client.post("/v1/batch/resources/metrics/measures", json=batch).raise_for_status()
    for resource in client.post("/v1/search/resource/generic", json={}).json():
        for metric_id in resource["metrics"].values():
            client.get(f"/v1/metric/{metric_id}/measures", params={"refresh": "true"}).raise_for_status()
    client.patch(f"/v1/resource/instance/{DB.id}", json={"host": DB.moved_to}).raise_for_status()
    client.patch(f"/v1/resource/instance/{BATCH.id}", json={"ended_at": _iso(DELETED_AT)}).raise_for_status()
    _date_revisions(indexer_dsn)


def _date_revisions(indexer_dsn: str) -> None:
    """Gnocchi stamps revisions with its own clock and its API cannot set them: move them to when things
    happened (every first revision to the resource's start, the migration and the deletion to theirs)."""
    naive = {"t0": T0.replace(tzinfo=None), "moved": MIGRATED_AT.replace(tzinfo=None)}
    naive["deleted"] = DELETED_AT.replace(tzinfo=None)
    with psycopg.connect(indexer_dsn) as conn:
        conn.execute("UPDATE resource SET revision_start = started_at")
        conn.execute("UPDATE resource_history SET revision_start = started_at")
        for vm_id, when in ((DB.id, "moved"), (BATCH.id, "deleted")):
            conn.execute(f"UPDATE resource SET revision_start = %({when})s WHERE id = %(id)s", {**naive, "id": vm_id})
            conn.execute(
                f"UPDATE resource_history SET revision_end = %({when})s WHERE id = %(id)s", {**naive, "id": vm_id}
            )
