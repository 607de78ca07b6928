"""vCenter's VM events through the vmware EventSource, on a vcsim of this module's own (main.go posts the
DrsVmMigratedEvent vCenter would for a relocation): each change arrives as the exact Event, a restart resumes
after the last key stored without a duplicate, a batch ``deliver`` refused is read again, ``stop`` ends a catch
within about a second, a lost vCenter is SourceUnavailable; and ``inventory_of`` reads just the objects named
as the full inventory reads them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pyVim.connect import Disconnect
from pyVim.task import WaitForTask
from pyVmomi import vim

from cloudmeter.collectors.base import CatchesEvents, EventSource
from cloudmeter.collectors.vmware import VsphereCollector
from cloudmeter.collectors.vmware.events import VsphereEvents
from cloudmeter.errors import SourceUnavailable
from cloudmeter.model import Event, ResourceRef
from cloudmeter.scheduler.handler import Handler
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database
from cloudmeter.storage.inventory import save_inventory
from tests.vmware import world
from tests.vmware.conftest import World, by_name, connect
from tests.vmware.vcsim_server import VcsimServer, running

#: Two clustered hosts and a standalone one, a VM on each (DC0_C0_H0-vm0, DC0_C0_H1-vm0, DC0_H0-vm0), on.
FLAGS = ("-cluster-host", "2", "-host", "1", "-vms-per-host", "1", "-templates", "0")
GiB = 1024**3
MiB = 1024**2


@dataclass
class Site:
    server: VcsimServer
    admin: Any  # a pyVmomi ServiceInstance logged in as the test's administrator

    @property
    def content(self) -> Any:
        return self.admin.content

    def collector(self, **fields: Any) -> VsphereCollector:
        return World(self.server, 0, {}, "").collector(clock=lambda: datetime.now(UTC), **fields)

    def newest_key(self) -> int:
        newest = self.content.eventManager.QueryEvents(vim.event.EventFilterSpec(maxCount=1))
        return int(newest[0].key)  # (reading eventManager.latestEvent makes vcsim panic)

    def vm(self, name: str) -> Any:
        return by_name(self.content, vim.VirtualMachine)[name]

    def host(self, name: str) -> Any:
        return by_name(self.content, vim.HostSystem)[name]


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with running(*FLAGS, username=world.USERNAME, password=world.PASSWORD) as server:
        admin = connect(server)
        try:
            yield Site(server, admin)
        finally:
            Disconnect(admin)


@dataclass
class Catch:
    """One ``catch`` run in a thread, collecting what it delivers."""

    source: EventSource
    resume_after: str | None
    deliver: Callable[[list[Event]], None] | None = None
    batches: list[list[Event]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def events(self) -> list[Event]:
        return [event for batch in self.batches for event in batch]

    def _run(self) -> None:
        try:
            self.source.catch(self.deliver or self.batches.append, self.stop, self.resume_after)
        except BaseException as exc:  # handed to the test
            self.error = exc

    def until(self, count: int, timeout_s: float = 15.0) -> list[Event]:
        """The events delivered once there are ``count`` (then one more wait, for any duplicate), stopped."""
        deadline = time.monotonic() + timeout_s
        while len(self.events) < count and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.05)
        time.sleep(1.5)
        self.finish()
        return self.events

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error


def source(site: Site, **fields: Any) -> EventSource:
    found = site.collector(**fields).events()
    assert found is not None
    return found


def seen(event: Event) -> tuple[Any, ...]:
    return (event.source_type, event.kind, event.resource, event.host, event.vcpus, event.memory_bytes, event.name)


def toggle(site: Site, name: str, times: int) -> None:
    """Power ``name`` off and on again, ``times`` events in all (it starts powered on)."""
    vm = site.vm(name)
    for k in range(times):
        WaitForTask(vm.PowerOffVM_Task() if k % 2 == 0 else vm.PowerOnVM_Task())


def test_vm_changes_arrive_as_the_exact_events(site: Site) -> None:
    vm = site.vm("DC0_C0_H0-vm0")
    moved = vm._moId
    h0, h1, standalone = (site.host(name)._moId for name in ("DC0_C0_H0", "DC0_C0_H1", "DC0_H0"))
    catch = Catch(source(site), str(site.newest_key()))
    began = datetime.now(UTC)
    WaitForTask(vm.PowerOffVM_Task())
    WaitForTask(vm.PowerOnVM_Task())
    WaitForTask(vm.ReconfigVM_Task(vim.vm.ConfigSpec(numCPUs=3, memoryMB=3072)))
    datacenter = site.content.rootFolder.childEntity[0]
    task = vm.CloneVM_Task(
        folder=datacenter.vmFolder, name="copy", spec=vim.vm.CloneSpec(location=vim.vm.RelocateSpec())
    )
    WaitForTask(task)
    copy = task.info.result._moId
    spec = vim.vm.ConfigSpec(name="fresh", numCPUs=2, memoryMB=1024, guestId="otherGuest",
                             files=vim.vm.FileInfo(vmPathName="[LocalDS_0]"))  # fmt: skip
    standalone_host = site.host("DC0_H0")
    task = datacenter.vmFolder.CreateVM_Task(
        config=spec, pool=standalone_host.parent.resourcePool, host=standalone_host
    )
    WaitForTask(task)
    fresh = task.info.result
    WaitForTask(fresh.Destroy_Task())
    WaitForTask(vm.RelocateVM_Task(vim.vm.RelocateSpec(host=site.host("DC0_C0_H1"))))
    ended = datetime.now(UTC)
    events = catch.until(8)

    vm_ref, fresh_ref = ResourceRef("vm", moved), ResourceRef("vm", fresh._moId)
    assert [seen(e) for e in events] == [
        ("VmPoweredOffEvent", "powered_off", vm_ref, None, None, None, None),
        ("VmPoweredOnEvent", "powered_on", vm_ref, None, None, None, None),
        ("VmReconfiguredEvent", "resized", vm_ref, None, 3, 3 * GiB, None),
        # vcsim clones through CreateVM, which posts a VmCreatedEvent before the VmClonedEvent
        ("VmCreatedEvent", "created", ResourceRef("vm", copy), ResourceRef("host", h0), None, None, "copy"),
        ("VmClonedEvent", "created", ResourceRef("vm", copy), ResourceRef("host", h0), None, None, "copy"),
        ("VmCreatedEvent", "created", fresh_ref, ResourceRef("host", standalone), None, None, "fresh"),
        ("VmRemovedEvent", "deleted", fresh_ref, None, None, None, None),
        ("DrsVmMigratedEvent", "migrated", vm_ref, ResourceRef("host", h1), None, None, None),
    ]
    keys = [int(e.message_id) for e in events]
    assert keys == sorted(set(keys))
    assert all(began - timedelta(seconds=1) <= e.ts <= ended + timedelta(seconds=1) for e in events)
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    migration = events[-1].payload
    assert (migration["sourceHost"], migration["host"]) == (
        {"name": "DC0_C0_H0", "id": h0}, {"name": "DC0_C0_H1", "id": h1}
    )  # fmt: skip
    assert site.vm("DC0_C0_H0-vm0").runtime.host._moId == h1


def test_a_restart_resumes_after_the_last_key_stored(site: Site) -> None:
    before = site.newest_key()
    toggle(site, "DC0_H0-vm0", 4)
    first = Catch(source(site), str(before)).until(4)
    assert [e.kind for e in first] == ["powered_off", "powered_on"] * 2
    again = Catch(source(site), first[1].message_id).until(2)
    assert again == first[2:]


def test_after_a_long_outage_every_event_vcenter_still_keeps_arrives_once(site: Site) -> None:
    """vcsim keeps its last 1,000 events: 520 power changes post 1,040 (VmStoppingEvent before VmPoweredOffEvent,
    VmStartingEvent before VmPoweredOnEvent), so the first 20 of ours are gone when the catcher comes back."""
    before = site.newest_key()
    toggle(site, "DC0_C0_H1-vm0", 520)
    newest = before + 2 * 520
    kept = [key for key in range(before + 2, newest + 1, 2) if key > newest - 1000]
    assert len(kept) == 500
    events = Catch(source(site), str(before)).until(len(kept))
    assert [int(e.message_id) for e in events] == kept
    assert {e.kind for e in events[::2]} == {"powered_off"} and {e.kind for e in events[1::2]} == {"powered_on"}


def test_a_batch_deliver_refuses_is_delivered_again_by_the_next_catch(site: Site) -> None:
    before = site.newest_key()
    toggle(site, "DC0_C0_H1-vm0", 2)

    def refuse(events: list[Event]) -> None:
        if events:  # not the empty batch that says the source is connected
            raise RuntimeError("the database is down")

    refused = Catch(source(site), str(before), deliver=refuse)
    refused.thread.join(10)
    assert isinstance(refused.error, RuntimeError)
    again = Catch(source(site), str(before))
    delivered = again.until(2)
    assert again.batches[0] == []  # connected, said before anything is handed on
    assert [(e.kind, e.resource) for e in delivered] == [
        ("powered_off", ResourceRef("vm", site.vm("DC0_C0_H1-vm0")._moId)),
        ("powered_on", ResourceRef("vm", site.vm("DC0_C0_H1-vm0")._moId)),
    ]


def test_the_first_start_follows_from_now_and_stop_ends_it_within_a_second_or_so(site: Site) -> None:
    toggle(site, "DC0_H0-vm0", 2)  # before the catch: not delivered
    catch = Catch(source(site), None)
    time.sleep(1.5)
    toggle(site, "DC0_H0-vm0", 2)
    deadline = time.monotonic() + 10
    while len(catch.events) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stopped = time.monotonic()
    catch.finish()
    assert time.monotonic() - stopped < 2.0
    assert [e.kind for e in catch.events] == ["powered_off", "powered_on"]


def test_events_of_datacenters_not_read_are_skipped(site: Site) -> None:
    before = site.newest_key()
    toggle(site, "DC0_H0-vm0", 2)
    assert Catch(source(site, datacenters=["elsewhere"]), str(before)).until(1, timeout_s=2) == []
    assert [e.kind for e in Catch(source(site, datacenters=["DC0"]), str(before)).until(2)] == [
        "powered_off",
        "powered_on",
    ]


def test_a_lost_vcenter_is_source_unavailable_without_the_password() -> None:
    with running(*FLAGS, username=world.USERNAME, password=world.PASSWORD) as server:
        catch = Catch(Site(server, None).collector().events() or pytest.fail("no source"), None)
        time.sleep(1.5)
    catch.thread.join(30)
    assert isinstance(catch.error, SourceUnavailable)
    assert world.PASSWORD not in str(catch.error)
    assert str(catch.error).startswith("manager 'vc': ")


def test_the_collector_catches_events_unless_turned_off(site: Site) -> None:
    assert isinstance(site.collector(), CatchesEvents)
    assert isinstance(site.collector().events(), VsphereEvents)
    assert site.collector(events=False).events() is None


def test_inventory_of_reads_the_named_vms_and_hosts_as_the_full_inventory_does(site: Site) -> None:
    collector = site.collector()
    full = {item.ref: item for item in collector.inventory().items}
    vm, host = site.vm("DC0_C0_H1-vm0"), site.host("DC0_H0")
    gone = "vm-999999"
    targeted = {item.ref: item for item in collector.inventory_of(
        [ResourceRef("vm", vm._moId), ResourceRef("host", host._moId), ResourceRef("vm", gone)]
    ).items}  # fmt: skip
    cluster = site.host("DC0_C0_H1").parent._moId
    provider = site.content.rootFolder.childEntity[0]._moId
    assert set(targeted) == {
        ResourceRef("vm", vm._moId), ResourceRef("host", vm.runtime.host._moId), ResourceRef("host", host._moId),
        ResourceRef("cluster", cluster), ResourceRef("provider", provider), ResourceRef("region", "DC0"),
    }  # fmt: skip
    assert targeted[ResourceRef("vm", vm._moId)] == full[ResourceRef("vm", vm._moId)]
    for ref, item in targeted.items():
        if ref.kind != "vm":  # created_at comes from the VMs read: here only one
            assert (item.name, item.parent, item.vcpus, item.memory_bytes, item.tags) == (
                full[ref].name, full[ref].parent, full[ref].vcpus, full[ref].memory_bytes, full[ref].tags
            )  # fmt: skip
    assert full[ResourceRef("vm", vm._moId)].tags["folder"] == "vm"  # the path both read the same way


def test_a_cloned_vm_is_stored_from_its_event_and_sized_by_a_targeted_refresh(site: Site, db: Database) -> None:
    """vCenter's creation events carry no size: the handler stores the clone under its host from the event's
    time, then reads just that VM (``inventory_of``) for its vCPUs and memory, as pyVmomi reports them."""
    collector = site.collector()
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, "vc", "vmware", {})
        save_inventory(conn, manager_id, collector.inventory())
    handler = Handler(db, "vc", manager_id, collector)
    catch = Catch(source(site), str(site.newest_key()), deliver=handler.deliver)
    original = site.vm("DC0_C0_H1-vm0")
    datacenter = site.content.rootFolder.childEntity[0]
    task = original.CloneVM_Task(
        folder=datacenter.vmFolder, name="sized", spec=vim.vm.CloneSpec(location=vim.vm.RelocateSpec())
    )
    WaitForTask(task)
    clone = task.info.result
    wait = time.monotonic() + 15
    while time.monotonic() < wait and not handler.changed.is_set():
        time.sleep(0.05)
    catch.finish()
    with db.connection() as conn:
        created = conn.execute(
            "SELECT min(ts) FROM events WHERE ems_ref = %s AND kind = 'created'", (clone._moId,)
        ).fetchone()
        stored = conn.execute(
            """SELECT r.name, r.vcpus, r.memory_bytes, h.valid_from, h.valid_to, p.ems_ref, h.vcpus
               FROM resources r JOIN resource_history h ON h.resource_id = r.id JOIN resources p ON p.id = h.parent_id
               WHERE r.manager_id = %s AND r.ems_ref = %s ORDER BY h.valid_from""",
            (manager_id, clone._moId),
        ).fetchall()
    hardware = clone.config.hardware
    assert created is not None and created[0] is not None
    assert stored == [
        ("sized", hardware.numCPU, hardware.memoryMB * MiB, created[0], None, clone.runtime.host._moId, hardware.numCPU)
    ]
