"""Pure parsing of Nova's notifications, as oslo.messaging delivers them, into ``Event``. No I/O here.

A message body is oslo's envelope ``{"oslo.version": "2.0", "oslo.message": "<JSON text>"}`` (a bare message,
oslo's 1.0 format, is taken too) whose message holds ``message_id``, ``event_type``, ``timestamp`` (UTC without a
zone, ``2026-12-07 01:36:06.242122``), ``payload`` and the request context as ``_context_*`` keys. Both of Nova's
formats are read:

    legacy (``compute.instance.*``)        payload: instance_id, host, node, vcpus, memory_mb, display_name, ...
    versioned (``instance.*``)             payload["nova_object.data"]: uuid, host, node, display_name,
                                           flavor["nova_object.data"]: vcpus, memory_mb, ...

    created      compute.instance.create.end                  instance.create.end
    deleted      compute.instance.delete.end                  instance.delete.end
    migrated     compute.instance.live_migration.post.dest.end instance.live_migration_post_dest.end
                 compute.instance.live_migration._rollback.end instance.live_migration_rollback.end
    resized      compute.instance.finish_resize.end           instance.resize_finish.end
                 compute.instance.resize.confirm.end          instance.resize_confirm.end
                 compute.instance.resize.revert.end           instance.resize_revert.end
    powered_off  compute.instance.power_off.end               instance.power_off.end
    powered_on   compute.instance.power_on.end                instance.power_on.end

Anything else is ``other`` (tied to the instance it names, if any). A migration's rollback is ``migrated`` to the
host the instance is back on (the payload's ``host``, its source): it proves where the instance is from then on.
A resize may move the instance too, so a resize states its host with its new flavor.

``host`` is the payload's ``host``, the compute *service* host, which is what the inventory names hosts by
(Ceilometer's ``host`` attribute in Gnocchi; not ``node``, the hypervisor's name). The payload is stored as
received minus the request context (tokens, roles, catalogs), of which only ``CONTEXT_KEPT`` stays. A body that is
not an oslo message (not JSON, no ``message_id`` or ``timestamp``), or an instance event whose payload does not
follow Nova's format, raises ``PayloadError``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

from cloudmeter.collectors.openstack.parse import MAX_MEMORY_MIB, MAX_VCPUS, MIB
from cloudmeter.errors import PayloadError
from cloudmeter.model import Event, ResourceRef, as_utc

#: Event types by kind; a versioned type is its legacy one's counterpart.
KINDS: Final[dict[str, str]] = {
    "compute.instance.create.end": "created",
    "instance.create.end": "created",
    "compute.instance.delete.end": "deleted",
    "instance.delete.end": "deleted",
    "compute.instance.live_migration.post.dest.end": "migrated",
    "instance.live_migration_post_dest.end": "migrated",
    "compute.instance.live_migration._rollback.end": "migrated",
    "instance.live_migration_rollback.end": "migrated",
    "compute.instance.finish_resize.end": "resized",
    "instance.resize_finish.end": "resized",
    "compute.instance.resize.confirm.end": "resized",
    "instance.resize_confirm.end": "resized",
    "compute.instance.resize.revert.end": "resized",
    "instance.resize_revert.end": "resized",
    "compute.instance.power_off.end": "powered_off",
    "instance.power_off.end": "powered_off",
    "compute.instance.power_on.end": "powered_on",
    "instance.power_on.end": "powered_on",
}
#: The request context's keys kept in the stored payload: ids only (the others carry tokens and catalogs).
CONTEXT_KEPT: Final = frozenset(
    {"_context_request_id", "_context_global_request_id", "_context_user_id", "_context_project_id"}
)


def parse_notification(body: bytes | str) -> Event:
    """The event a message body (oslo's envelope, or a bare message) announces."""
    message = _message(body)
    message_id = message.get("message_id")
    if not isinstance(message_id, str) or not message_id:
        raise PayloadError.unexpected("message_id", message_id, "a message id")
    ts = _timestamp(message.get("timestamp"))
    kept = {key: value for key, value in message.items() if not key.startswith("_context_") or key in CONTEXT_KEPT}
    event_type = message.get("event_type")
    source_type = event_type if isinstance(event_type, str) else ""
    kind = KINDS.get(source_type, "other")
    legacy = source_type.startswith("compute.instance.")
    if kind == "other":
        return Event(message_id, ts, kind, source_type, _instance_named(message.get("payload"), source_type), kept)
    data = _object_data(message.get("payload"), "payload", legacy)
    instance = _text(data, "instance_id" if legacy else "uuid", "payload")
    event = Event(message_id, ts, kind, source_type, ResourceRef("vm", instance), kept)
    if kind in ("created", "migrated", "resized"):
        event = replace(event, host=ResourceRef("host", _text(data, "host", "payload")))
    if kind in ("created", "resized"):
        flavor = data if legacy else _object_data(data.get("flavor"), "payload flavor", legacy=False)
        where = "payload" if legacy else "payload flavor"
        memory_mib = _count(flavor, "memory_mb", where, MAX_MEMORY_MIB)
        event = replace(event, vcpus=_count(flavor, "vcpus", where, MAX_VCPUS), memory_bytes=memory_mib * MIB)
    if kind == "created":
        name = data.get("display_name")
        event = replace(event, name=name if isinstance(name, str) and name else None)
    return event


def _instance_named(payload: Any, event_type: str) -> ResourceRef | None:
    """The instance an instance event of kind ``other`` names, if its payload names one the way Nova's do (other
    versioned objects have a ``uuid`` too: a service's, a flavor's)."""
    if event_type.startswith("compute.instance."):
        found = payload.get("instance_id") if isinstance(payload, dict) else None
    elif event_type.startswith("instance.") and isinstance(payload, dict):
        data = payload.get("nova_object.data")
        found = data.get("uuid") if isinstance(data, dict) else None
    else:
        return None
    return ResourceRef("vm", found) if isinstance(found, str) and found else None


def _message(body: bytes | str) -> Mapping[str, Any]:
    try:
        outer = json.loads(body)
        inner = outer.get("oslo.message") if isinstance(outer, dict) else None
        message = json.loads(inner) if isinstance(inner, str) else outer
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError("message body", f"is not JSON ({exc})") from exc
    return PayloadError.expect(message, dict, "message", "a JSON object")


def _timestamp(value: Any) -> datetime:
    text = PayloadError.expect(value, str, "timestamp", "a time like 2026-12-07 01:36:06.242122")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PayloadError.unexpected("timestamp", text, "a time like 2026-12-07 01:36:06.242122") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else as_utc(moment)


def _object_data(value: Any, where: str, legacy: bool) -> Mapping[str, Any]:
    """A legacy payload itself, or a versioned object's ``nova_object.data``."""
    found = PayloadError.expect(value, dict, where, "an object")
    if legacy:
        return found
    return PayloadError.expect(found.get("nova_object.data"), dict, f"{where} nova_object.data", "an object")


def _text(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise PayloadError.unexpected(f"{where} {key}", value, "a non-empty string")
    return value


def _count(data: Mapping[str, Any], key: str, where: str, most: int) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
        raise PayloadError.unexpected(f"{where} {key}", value, f"a whole number from 1 to {most}")
    return value
