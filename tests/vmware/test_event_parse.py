"""event_parse on the event objects pyVmomi builds from vCenter's answers: kinds, refs, hosts, sizes and payloads
written out by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pyVmomi import vim

from cloudmeter.collectors.vmware.event_parse import parse_event
from cloudmeter.errors import PayloadError
from cloudmeter.model import Event, ResourceRef

AT = datetime(2026, 3, 1, 12, 30, 5, 250000, tzinfo=timezone(timedelta(hours=2)))  # 10:30:05.25 UTC
AT_UTC = datetime(2026, 3, 1, 10, 30, 5, 250000, tzinfo=UTC)
VM = vim.event.VmEventArgument(name="web-1", vm=vim.VirtualMachine("vm-44"))
H1 = vim.event.HostEventArgument(name="esx-1", host=vim.HostSystem("host-21"))
H2 = vim.event.HostEventArgument(name="esx-2", host=vim.HostSystem("host-22"))
DC = vim.event.DatacenterEventArgument(name="DC0", datacenter=vim.Datacenter("datacenter-2"))


def common(key: int, **fields: Any) -> dict[str, Any]:
    return {"key": key, "chainId": key, "createdTime": AT, "userName": "admin", "datacenter": DC, "vm": VM} | fields


def shown(key: int, kind: str, **fields: Any) -> dict[str, Any]:
    """The payload of ``common(key)``, plus ``fields``."""
    return {
        "type": kind, "key": key, "chainId": key, "createdTime": "2026-03-01T10:30:05.250000+00:00",
        "userName": "admin", "datacenter": {"name": "DC0", "id": "datacenter-2"},
        "vm": {"name": "web-1", "id": "vm-44"}, "template": False,
    } | fields  # fmt: skip


def test_a_vmotion_is_a_migration_to_the_new_host() -> None:
    event = vim.event.DrsVmMigratedEvent(
        **common(47, host=H2, sourceHost=H1, fullFormattedMessage="DRS migrated web-1 from esx-1 to esx-2"),
        template=False,
    )
    assert parse_event(event) == Event(
        message_id="47", ts=AT_UTC, kind="migrated", source_type="DrsVmMigratedEvent",
        resource=ResourceRef("vm", "vm-44"), host=ResourceRef("host", "host-22"),
        payload=shown(47, "DrsVmMigratedEvent", host={"name": "esx-2", "id": "host-22"},
                      sourceHost={"name": "esx-1", "id": "host-21"},
                      fullFormattedMessage="DRS migrated web-1 from esx-1 to esx-2"),
    )  # fmt: skip
    assert parse_event(vim.event.VmMigratedEvent(**common(48, host=H1, sourceHost=H2))).host == ResourceRef(
        "host", "host-21"
    )


def test_a_relocation_that_keeps_the_host_is_other() -> None:
    parsed = parse_event(vim.event.VmRelocatedEvent(**common(9, host=H1, sourceHost=H1)))
    assert (parsed.kind, parsed.resource, parsed.host) == ("other", ResourceRef("vm", "vm-44"), None)
    assert parse_event(vim.event.VmRelocatedEvent(**common(10, host=H2, sourceHost=H1))).kind == "migrated"


def test_a_reconfiguration_of_cpus_or_memory_is_a_resize_and_keeps_no_extra_config() -> None:
    secret = "guestinfo-password-Zq81"
    spec = vim.vm.ConfigSpec(
        numCPUs=4, memoryMB=8192,
        extraConfig=[vim.option.OptionValue(key="guestinfo.userdata", value=secret)],
    )  # fmt: skip
    event = vim.event.VmReconfiguredEvent(
        **common(12, host=H1, fullFormattedMessage=f"Reconfigured web-1: guestinfo.userdata {secret}"), configSpec=spec
    )
    parsed = parse_event(event)
    assert (parsed.kind, parsed.vcpus, parsed.memory_bytes, parsed.host) == ("resized", 4, 8 * 1024**3, None)
    assert parsed.payload == shown(
        12, "VmReconfiguredEvent", host={"name": "esx-1", "id": "host-21"}, configSpec={"numCPUs": 4, "memoryMB": 8192}
    )
    assert secret not in json.dumps(parsed.payload)
    memory_only = parse_event(vim.event.VmReconfiguredEvent(**common(13), configSpec=vim.vm.ConfigSpec(memoryMB=512)))
    assert (memory_only.kind, memory_only.vcpus, memory_only.memory_bytes) == ("resized", None, 512 * 1024**2)
    renamed = parse_event(vim.event.VmReconfiguredEvent(**common(14), configSpec=vim.vm.ConfigSpec(annotation="x")))
    assert (renamed.kind, renamed.vcpus, renamed.memory_bytes) == ("other", None, None)
    assert renamed.payload["configSpec"] == {}


@pytest.mark.parametrize(
    "kind", [vim.event.VmCreatedEvent, vim.event.VmClonedEvent, vim.event.VmDeployedEvent, vim.event.VmRegisteredEvent]
)
def test_a_creation_names_the_vm_and_its_host(kind: type) -> None:
    parsed = parse_event(kind(**common(20, host=H2, computeResource=None)))
    assert (parsed.kind, parsed.resource, parsed.host, parsed.name, parsed.source_type) == (
        "created", ResourceRef("vm", "vm-44"), ResourceRef("host", "host-22"), "web-1", kind.__name__.split(".")[-1]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (vim.event.VmRemovedEvent, "deleted"),
        (vim.event.VmPoweredOnEvent, "powered_on"),
        (vim.event.DrsVmPoweredOnEvent, "powered_on"),
        (vim.event.VmPoweredOffEvent, "powered_off"),
        (vim.event.VmRenamedEvent, "other"),
        (vim.event.VmSuspendedEvent, "other"),
    ],
)
def test_lifecycle_events_keep_the_vm_and_no_host(kind: type, expected: str) -> None:
    parsed = parse_event(kind(**common(30, host=H1)))
    assert (parsed.message_id, parsed.ts, parsed.kind, parsed.resource, parsed.host, parsed.name) == (
        "30", AT_UTC, expected, ResourceRef("vm", "vm-44"), None, None
    )  # fmt: skip


def test_events_about_templates_or_no_vm_are_other() -> None:
    template = parse_event(vim.event.VmCreatedEvent(**common(40, host=H1), template=True))
    assert (template.kind, template.resource, template.host, template.name) == (
        "other", ResourceRef("vm", "vm-44"), None, None
    )  # fmt: skip
    host_event = parse_event(vim.event.HostConnectedEvent(key=41, chainId=41, createdTime=AT, host=H1))
    assert (host_event.kind, host_event.resource, host_event.host) == ("other", None, None)
    assert host_event.payload == {
        "type": "HostConnectedEvent", "key": 41, "chainId": 41, "createdTime": "2026-03-01T10:30:05.250000+00:00",
        "host": {"name": "esx-1", "id": "host-21"},
    }  # fmt: skip


def test_an_event_without_key_or_creation_time_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match=r"VmPoweredOnEvent.key is 0, expected the event's number"):
        parse_event(vim.event.VmPoweredOnEvent(createdTime=AT, vm=VM))
    with pytest.raises(PayloadError, match=r"VmPoweredOnEvent\[5\].createdTime is missing or null"):
        parse_event(vim.event.VmPoweredOnEvent(key=5, vm=VM))
