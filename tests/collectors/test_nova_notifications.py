"""Nova's notifications into events: the parser on Nova's documented versioned samples and on legacy payloads
with the keys Nova gives them, field by field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from cloudmeter.collectors.openstack.event_parse import CONTEXT_KEPT, parse_notification
from cloudmeter.errors import PayloadError
from cloudmeter.model import Event, ResourceRef
from tests.collectors.notifications import AUTH_TOKEN, INSTANCE, body, legacy_payload, message, versioned

MESSAGE_ID = "5b6f3a8e-0a4c-4b2b-9a57-8f3b1de0c0a1"
STAMP = "2026-12-07 01:36:06.242122"
AT = datetime(2026, 12, 7, 1, 36, 6, 242122, tzinfo=UTC)
#: The instance of Nova's samples (InstancePayload.json) and what its flavor (FlavorPayload.json) allocates.
SAMPLE_VM = ResourceRef("vm", "178b0921-8f85-4257-88b6-2e743b5a975c")
MIB = 1 << 20


def from_sample(name: str) -> Event:
    sample = versioned(name)
    return parse_notification(body(message(sample["event_type"], sample["payload"], MESSAGE_ID, STAMP)))


def from_legacy(event_type: str, **changes: Any) -> Event:
    return parse_notification(body(message(event_type, legacy_payload(**changes), MESSAGE_ID, STAMP)))


@pytest.mark.parametrize(
    ("sample", "kind", "host", "vcpus", "memory_mib", "name"),
    [
        ("instance-create-end", "created", "compute", 1, 512, "some-server"),
        ("instance-delete-end", "deleted", None, None, None, None),
        ("instance-live_migration_post_dest-end", "migrated", "host2", None, None, None),
        ("instance-live_migration_rollback-end", "migrated", "compute", None, None, None),
        ("instance-resize_finish-end", "resized", "compute", 1, 256, None),
        ("instance-resize_confirm-end", "resized", "compute", 1, 2048, None),
        ("instance-resize_revert-end", "resized", "compute", 1, 512, None),
        ("instance-power_off-end", "powered_off", None, None, None, None),
        ("instance-power_on-end", "powered_on", None, None, None, None),
    ],
)
def test_versioned_samples(
    sample: str, kind: str, host: str | None, vcpus: int | None, memory_mib: int | None, name: str | None
) -> None:
    event = from_sample(sample)
    assert (event.message_id, event.ts, event.kind, event.resource) == (MESSAGE_ID, AT, kind, SAMPLE_VM)
    assert event.source_type == versioned(sample)["event_type"]
    assert event.host == (ResourceRef("host", host) if host else None)
    assert (event.vcpus, event.memory_bytes, event.name) == (vcpus, memory_mib and memory_mib * MIB, name)


@pytest.mark.parametrize(
    ("event_type", "kind", "host", "allocation", "name"),
    [
        ("compute.instance.create.end", "created", "compute-1", (2, 4096), "web-1"),
        ("compute.instance.delete.end", "deleted", None, (None, None), None),
        ("compute.instance.live_migration.post.dest.end", "migrated", "compute-1", (None, None), None),
        ("compute.instance.live_migration._rollback.end", "migrated", "compute-1", (None, None), None),
        ("compute.instance.finish_resize.end", "resized", "compute-1", (2, 4096), None),
        ("compute.instance.resize.confirm.end", "resized", "compute-1", (2, 4096), None),
        ("compute.instance.resize.revert.end", "resized", "compute-1", (2, 4096), None),
        ("compute.instance.power_off.end", "powered_off", None, (None, None), None),
        ("compute.instance.power_on.end", "powered_on", None, (None, None), None),
        ("compute.instance.exists", "other", None, (None, None), None),
        ("compute.instance.update", "other", None, (None, None), None),
    ],
)
def test_legacy(
    event_type: str, kind: str, host: str | None, allocation: tuple[int | None, int | None], name: str | None
) -> None:
    event = from_legacy(event_type)
    assert (event.message_id, event.ts, event.kind, event.source_type) == (MESSAGE_ID, AT, kind, event_type)
    assert event.resource == ResourceRef("vm", INSTANCE)
    assert event.host == (ResourceRef("host", host) if host else None)
    vcpus, memory_mib = allocation
    assert (event.vcpus, event.memory_bytes, event.name) == (vcpus, memory_mib and memory_mib * MIB, name)


def test_the_host_is_the_compute_service_host_not_the_node() -> None:
    event = from_legacy("compute.instance.live_migration.post.dest.end", host="compute-2", node="compute-2.example")
    assert event.host == ResourceRef("host", "compute-2")


def test_a_resize_states_its_new_flavor() -> None:
    event = from_legacy("compute.instance.finish_resize.end", vcpus=8, memory_mb=16384, host="compute-3")
    assert (event.kind, event.vcpus, event.memory_bytes, event.host) == (
        "resized",
        8,
        16384 * MIB,
        ResourceRef("host", "compute-3"),
    )


def test_the_payload_is_stored_as_received_without_the_request_context() -> None:
    sample = versioned("instance-create-end")
    sent = message(sample["event_type"], sample["payload"], MESSAGE_ID, STAMP)
    event = parse_notification(body(sent))
    assert AUTH_TOKEN not in json.dumps(event.payload)
    assert set(event.payload) == {"message_id", "publisher_id", "event_type", "priority", "payload", "timestamp"} | {
        "_context_request_id",
        "_context_global_request_id",
        "_context_user_id",
        "_context_project_id",
    }
    assert {key for key in event.payload if key.startswith("_context_")} == CONTEXT_KEPT
    assert event.payload["payload"] == sample["payload"]
    assert event.payload["_context_request_id"] == "req-5b6c791d-5709-4f36-8fbe-c3e02869e35d"


def test_other_notifications() -> None:
    update = from_sample("instance-update")
    assert (update.kind, update.source_type, update.resource) == ("other", "instance.update", SAMPLE_VM)
    service = from_sample("service-update")
    assert (service.kind, service.source_type, service.resource, service.host) == (
        "other",
        "service.update",
        None,
        None,
    )


def test_a_bare_message_without_oslo_envelope() -> None:
    sent = message("compute.instance.power_off.end", legacy_payload(), MESSAGE_ID, STAMP)
    event = parse_notification(json.dumps(sent))
    assert (event.kind, event.resource, event.ts) == ("powered_off", ResourceRef("vm", INSTANCE), AT)


def test_a_timestamp_with_a_zone_is_converted() -> None:
    sent = message("compute.instance.power_on.end", legacy_payload(), MESSAGE_ID, "2026-12-07T02:36:06+01:00")
    assert parse_notification(body(sent)).ts == datetime(2026, 12, 7, 1, 36, 6, tzinfo=UTC)


def test_a_message_without_event_type_is_other() -> None:
    sent = message("x", {"anything": 1}, MESSAGE_ID, STAMP)
    del sent["event_type"]
    event = parse_notification(body(sent))
    assert (event.kind, event.source_type, event.resource, event.message_id) == ("other", "", None, MESSAGE_ID)
    assert event.payload["payload"] == {"anything": 1}


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b"not json at all", "message body is not JSON"),
        (b"\xff\xfe", "message body is not JSON"),
        (b"[1, 2]", "message is [1, 2], expected a JSON object"),
        (body({"event_type": "compute.instance.create.end", "timestamp": STAMP}), "message_id is missing"),
        (body({"message_id": MESSAGE_ID, "event_type": "x"}), "timestamp is missing"),
        (body({"message_id": MESSAGE_ID, "timestamp": "yesterday"}), "timestamp is 'yesterday'"),
        (
            body(message("compute.instance.create.end", legacy_payload(instance_id=None), MESSAGE_ID, STAMP)),
            "payload instance_id is missing or null, expected a non-empty string",
        ),
        (
            body(message("compute.instance.create.end", legacy_payload(vcpus="2"), MESSAGE_ID, STAMP)),
            "payload vcpus is '2', expected a whole number",
        ),
        (
            body(message("compute.instance.finish_resize.end", legacy_payload(memory_mb=0), MESSAGE_ID, STAMP)),
            "payload memory_mb is 0, expected a whole number",
        ),
        (
            body(message("instance.resize_finish.end", {"nova_object.data": {"uuid": INSTANCE}}, MESSAGE_ID, STAMP)),
            "payload host is missing or null",
        ),
        (
            body(message("instance.create.end", [], MESSAGE_ID, STAMP)),
            "payload is [], expected an object",
        ),
    ],
)
def test_malformed_messages_raise_payload_error(raw: bytes, where: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_notification(raw)
    assert str(caught.value).startswith(where)


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        ("compute.instance.exists", "not an object"),
        ("compute.instance.update", {"instance_id": 7}),
        ("instance.update", {"uuid": INSTANCE}),  # versioned payloads keep it in nova_object.data
        ("flavor.update", {"nova_object.data": {"uuid": INSTANCE}}),  # not an instance's
    ],
)
def test_an_other_event_names_an_instance_only_as_nova_does(event_type: str, payload: Any) -> None:
    event = parse_notification(body(message(event_type, payload, MESSAGE_ID, STAMP)))
    assert (event.kind, event.source_type, event.resource) == ("other", event_type, None)
