"""Nova's notifications for the event tests: the documented versioned samples (tests/collectors/nova_notifications),
legacy payloads with the keys Nova gives them, and message bodies in oslo.messaging's envelope."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kombu

SAMPLES = Path(__file__).resolve().parent / "nova_notifications"
#: The instance of the legacy payloads.
INSTANCE = "178b0921-8f85-4257-88b6-2e743b5a975c"
#: A Keystone token as oslo serializes the request context with it: it must never be stored or logged.
AUTH_TOKEN = "gAAAAABnSecretKeystoneToken0123456789abcdefABCDEF"


def _resolve(value: Any, base: Path) -> Any:
    """``value`` with every ``{"$ref": FILE, ...}`` replaced by FILE's object with the rest laid over it."""
    if isinstance(value, list):
        return [_resolve(item, base) for item in value]
    if not isinstance(value, dict):
        return value
    if "$ref" not in value:
        return {key: _resolve(item, base) for key, item in value.items()}
    path = base / value["$ref"].partition("#")[0]
    resolved = _resolve(json.loads(path.read_text()), path.parent)
    _overlay(resolved, _resolve({k: v for k, v in value.items() if k != "$ref"}, base))
    return resolved


def _overlay(target: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(target.get(key), dict) and isinstance(value, dict):
            _overlay(target[key], value)
        else:
            target[key] = value


def versioned(name: str) -> dict[str, Any]:
    """The sample ``name`` (``instance-create-end``): event_type, payload, priority, publisher_id."""
    return _resolve(json.loads((SAMPLES / f"{name}.json").read_text()), SAMPLES)  # type: ignore[no-any-return]


def legacy_payload(**changes: Any) -> dict[str, Any]:
    """A legacy instance payload (``info_from_instance``'s keys) of a 2-vCPU 4 GiB instance on ``compute-1``."""
    return {
        "tenant_id": "6f70656e737461636b20342065766572",
        "user_id": "fake",
        "instance_id": INSTANCE,
        "display_name": "web-1",
        "reservation_id": "r-npxv0e40",
        "hostname": "web-1",
        "instance_type": "m1.medium",
        "instance_type_id": 3,
        "instance_flavor_id": "3",
        "architecture": "x86_64",
        "memory_mb": 4096,
        "disk_gb": 40,
        "vcpus": 2,
        "root_gb": 40,
        "ephemeral_gb": 0,
        "host": "compute-1",
        "node": "compute-1.example.org",
        "availability_zone": "nova",
        "cell_name": "",
        "created_at": "2026-12-07 09:58:02+00:00",
        "terminated_at": "",
        "deleted_at": "",
        "launched_at": "2026-12-07T09:58:40.000000",
        "image_ref_url": "http://glance.example:9292/images/155d900f-4e14-4e4c-a73d-069cbf4541e6",
        "os_type": None,
        "kernel_id": "",
        "ramdisk_id": "",
        "state": "active",
        "state_description": "",
        "progress": "",
        "access_ip_v4": None,
        "access_ip_v6": None,
        "fixed_ips": [],
        "image_meta": {"base_image_ref": "155d900f-4e14-4e4c-a73d-069cbf4541e6"},
        "metadata": {},
        **changes,
    }


def context() -> dict[str, Any]:
    """The request context as oslo serializes it into a message (``_context_`` + each key)."""
    return {
        "_context_auth_token": AUTH_TOKEN,
        "_context_request_id": "req-5b6c791d-5709-4f36-8fbe-c3e02869e35d",
        "_context_global_request_id": None,
        "_context_user_id": "fake",
        "_context_project_id": "6f70656e737461636b20342065766572",
        "_context_roles": ["admin", "member", "reader"],
        "_context_service_catalog": [{"type": "image", "endpoints": [{"url": "http://glance.example:9292"}]}],
        "_context_is_admin": True,
    }


def body(message: dict[str, Any]) -> bytes:
    """``message`` in oslo.messaging's 2.0 envelope, as RabbitMQ delivers it."""
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(message)}).encode()


def message(event_type: str, payload: Any, message_id: str, timestamp: str, **extra: Any) -> dict[str, Any]:
    """An oslo message as Nova's notifier sends it (legacy publisher ``compute.HOST``)."""
    return {
        "message_id": message_id,
        "publisher_id": "compute.compute-1",
        "event_type": event_type,
        "priority": "INFO",
        "payload": payload,
        "timestamp": timestamp,
        **context(),
        **extra,
    }


def publish_raw(url: str, raw: bytes, routing_key: str = "notifications.info") -> None:
    """``raw`` on Nova's exchange, as Nova's notifier (or a misbehaving publisher) sends it."""
    with kombu.Connection(url) as connection:
        exchange = kombu.Exchange("nova", type="topic", durable=False, auto_delete=False)
        connection.Producer().publish(raw, exchange=exchange, routing_key=routing_key, content_type="application/json")
