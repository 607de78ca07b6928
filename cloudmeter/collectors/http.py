"""One HTTP request to a source over httpx, counted, with transport failures as ``SourceUnavailable``."""

from __future__ import annotations

from typing import Any

import httpx

from cloudmeter.collectors import usage
from cloudmeter.errors import SourceUnavailable


def send(
    client: httpx.Client, manager: str, service: str, method: str, path: str, *, check: str, slow: str, **kwargs: Any
) -> httpx.Response:
    """``client.request(method, path)``, counted as a request to ``service`` (``Gnocchi``, ``Prometheus``);
    nothing listening says to ``check`` the URL fields, a timeout what to do (``slow``)."""
    usage.request(manager, service.lower())
    try:
        return client.request(method, path, **kwargs)
    except httpx.ConnectError as exc:
        raise SourceUnavailable(
            manager, f"{service} at {client.base_url} is unreachable ({exc}); check {check}"
        ) from exc
    except httpx.TimeoutException as exc:
        raise SourceUnavailable(manager, f"{service} timed out on {method} {path}; {slow}") from exc
    except httpx.TransportError as exc:
        raise SourceUnavailable(manager, f"{service} {method} {path} failed: {exc}") from exc
