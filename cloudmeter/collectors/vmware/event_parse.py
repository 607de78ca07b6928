"""vCenter's events as cloudmeter's ``Event`` (pure: the pyVmomi event objects an EventHistoryCollector gives).

    VmMigratedEvent, DrsVmMigratedEvent, VmRelocatedEvent   -> migrated     host = the new host (a move that keeps
                                                                            the host, storage only: other)
    VmReconfiguredEvent changing numCPUs or memoryMB        -> resized      vcpus, memory_bytes (None: unchanged)
    VmCreatedEvent, VmDeployedEvent, VmClonedEvent,
    VmRegisteredEvent                                       -> created      name, host
    VmRemovedEvent                                          -> deleted
    VmPoweredOnEvent (and DRS's), VmPoweredOffEvent         -> powered_on, powered_off
    anything else, and any event about a template           -> other

The message id is the event's ``key`` (vCenter numbers its events in the order it posts them), ``ts`` its
``createdTime``. The payload keeps the event's plain fields and its entity arguments (``{"name", "id"}``); of a
reconfiguration only the CPU and memory settings and no message: its extraConfig (guestinfo) may hold secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from cloudmeter.collectors.vmware.inventory import MIB
from cloudmeter.errors import PayloadError
from cloudmeter.model import Event, ResourceRef, as_utc

#: The kind each event class stands for (a subclass is listed itself: vCenter filters by exact class).
KINDS: Final[Mapping[str, str]] = {
    "VmMigratedEvent": "migrated",
    "DrsVmMigratedEvent": "migrated",
    "VmRelocatedEvent": "migrated",
    "VmReconfiguredEvent": "resized",
    "VmCreatedEvent": "created",
    "VmDeployedEvent": "created",
    "VmClonedEvent": "created",
    "VmRegisteredEvent": "created",
    "VmRemovedEvent": "deleted",
    "VmPoweredOnEvent": "powered_on",
    "DrsVmPoweredOnEvent": "powered_on",
    "VmPoweredOffEvent": "powered_off",
}
#: The event classes the catcher asks vCenter for: those above and VM changes the timeline shows as ``other``.
EVENT_TYPES: Final[tuple[str, ...]] = (
    *KINDS,
    "VmRenamedEvent",
    "VmSuspendedEvent",
    "VmGuestShutdownEvent",
    "VmResettingEvent",
)
#: Fields never copied into the payload: a reconfiguration's settings and changes may hold secrets, and so may
#: its message, which lists them.
_WITHHELD: Final = frozenset({"configSpec", "configChanges"})


def parse_event(event: Any) -> Event:
    """One vCenter event as an ``Event``; a PayloadError when it has no key or creation time."""
    source_type = str(getattr(event, "_wsdlName", type(event).__name__))
    key = getattr(event, "key", None)
    if isinstance(key, bool) or not isinstance(key, int) or key <= 0:  # pyVmomi gives 0 for a missing key
        raise PayloadError.unexpected(f"{source_type}.key", key, "the event's number (> 0)")
    where = f"{source_type}[{key}]"
    created = getattr(event, "createdTime", None)
    if not isinstance(created, datetime) or created.tzinfo is None:
        raise PayloadError.unexpected(f"{where}.createdTime", created, "a time with its zone")
    vm = _moid(getattr(event, "vm", None), "vm")
    host = _moid(getattr(event, "host", None), "host")
    kind = KINDS.get(source_type, "other")
    fields: dict[str, Any] = {}
    if vm is None or getattr(event, "template", False):
        kind = "other"
    elif kind == "migrated" and host in (None, _moid(getattr(event, "sourceHost", None), "host")):
        kind = "other"  # a storage-only move, or no destination named
    elif kind == "resized":
        fields = _resize(getattr(event, "configSpec", None), where)
        kind = "resized" if fields else "other"
    elif kind == "created":
        fields = {"name": _name(getattr(event, "vm", None))}
    return Event(
        message_id=str(key),
        ts=as_utc(created),
        kind=kind,
        source_type=source_type,
        resource=ResourceRef("vm", vm) if vm else None,
        payload=payload(event, source_type),
        host=ResourceRef("host", host) if host and kind in ("migrated", "created") else None,
        **fields,
    )


def payload(event: Any, source_type: str) -> dict[str, Any]:
    """The event's plain fields and entity arguments as JSON-ready values (a reconfiguration's CPU and memory)."""
    found: dict[str, Any] = {"type": source_type}
    withheld = _WITHHELD | ({"fullFormattedMessage"} if source_type == "VmReconfiguredEvent" else set())
    for name in _field_names(event):
        value = getattr(event, name, None)
        if name in withheld or value in (None, "") or name.startswith("dynamic"):
            continue
        if isinstance(value, str | bool):
            found[name] = value
        elif isinstance(value, int | float):
            found[name] = int(value) if isinstance(value, int) else float(value)  # pyVmomi's long is a subclass
        elif isinstance(value, datetime):
            found[name] = as_utc(value).isoformat() if value.tzinfo else value.isoformat()
        elif hasattr(value, "name"):  # an EntityEventArgument: vm, host, datacenter, sourceHost, ...
            ids = [inner._moId for field in _field_names(value) if hasattr(inner := getattr(value, field), "_moId")]
            found[name] = {"name": _name(value), "id": ids[0] if ids else None}
    spec = getattr(event, "configSpec", None)
    if spec is not None:
        found["configSpec"] = {key: int(getattr(spec, key)) for key in ("numCPUs", "memoryMB") if getattr(spec, key)}
    return found


def _field_names(data: Any) -> list[str]:
    return [prop.name for prop in data._GetPropertyList()]


def _moid(argument: Any, field: str) -> str | None:
    moid = getattr(getattr(argument, field, None), "_moId", None)
    return moid if isinstance(moid, str) and moid else None


def _name(argument: Any) -> str | None:
    name = getattr(argument, "name", None)
    return name if isinstance(name, str) and name else None


def _resize(spec: Any, where: str) -> dict[str, int]:
    """vcpus and memory_bytes a configSpec sets (0 or absent: unchanged)."""
    found = {}
    cpus, memory_mb = getattr(spec, "numCPUs", None), getattr(spec, "memoryMB", None)
    for value, path in ((cpus, "numCPUs"), (memory_mb, "memoryMB")):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise PayloadError.unexpected(f"{where}.configSpec.{path}", value, "a whole number >= 0")
    if cpus:
        found["vcpus"] = int(cpus)
    if memory_mb:
        found["memory_bytes"] = int(memory_mb) * MIB
    return found
