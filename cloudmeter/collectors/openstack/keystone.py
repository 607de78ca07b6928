"""Keystone v3 password authentication for httpx: a project-scoped token, renewed before it expires.

``POST {auth_url}/v3/auth/tokens`` with the password method answers 201, the token in the
``X-Subject-Token`` header, and a body with ``expires_at`` and the service catalog, from which the
``metric`` service's endpoint (Gnocchi) is taken for the manager's region and interface.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx

from cloudmeter.collectors.openstack.api import raise_for_status
from cloudmeter.errors import BadPayload, SourceUnavailable
from cloudmeter.redact import mask_logs

#: Renew a token this long before Keystone says it expires.
RENEW_BEFORE: Final = timedelta(minutes=5)

mask_logs("httpcore.http11", "httpcore.http2")  # they log response headers at DEBUG, X-Subject-Token among them


@dataclass(frozen=True)
class Token:
    """A Keystone token and what came with it."""

    value: str
    expires_at: datetime
    catalog: tuple[dict[str, Any], ...]

    def endpoint(self, service_type: str, region: str | None, interface: str) -> str | None:
        """The URL of ``service_type`` in the catalog for ``region`` (any if None) and ``interface``."""
        for service in self.catalog:
            if service.get("type") != service_type:
                continue
            for endpoint in service.get("endpoints", ()):
                in_region = region is None or region in (endpoint.get("region_id"), endpoint.get("region"))
                if in_region and endpoint.get("interface") == interface:
                    return str(endpoint["url"])
        return None


@dataclass(frozen=True)
class PasswordCredentials:
    """What the password method needs; the password never leaves this object except in the token request."""

    auth_url: str
    username: str
    password: str = field(repr=False)
    project_name: str
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"

    def body(self) -> dict[str, Any]:
        return {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self.username,
                            "domain": {"name": self.user_domain_name},
                            "password": self.password,
                        }
                    },
                },
                "scope": {"project": {"name": self.project_name, "domain": {"name": self.project_domain_name}}},
            }
        }


class KeystoneAuth(httpx.Auth):
    """Sends ``X-Auth-Token``; gets a token when there is none or it is about to expire, and once more on a 401."""

    def __init__(
        self,
        manager: str,
        credentials: PasswordCredentials,
        *,
        verify_tls: bool = True,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.manager = manager
        self.credentials = credentials
        self._client_options: dict[str, Any] = {"verify": verify_tls, "timeout": timeout_s, "transport": transport}
        self._token: Token | None = None
        self._lock = threading.Lock()

    def token(self) -> Token:
        """A valid token, fetched if needed."""
        with self._lock:
            if self._token is None or self._token.expires_at - RENEW_BEFORE <= datetime.now(UTC):
                self._token = self._fetch()
            return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["X-Auth-Token"] = self.token().value
        response = yield request
        if response.status_code == 401:
            with self._lock:
                self._token = None
            request.headers["X-Auth-Token"] = self.token().value
            yield request

    def _fetch(self) -> Token:
        url = self.credentials.auth_url.rstrip("/")
        url = url if url.endswith("/v3") else f"{url}/v3"
        try:
            with httpx.Client(**self._client_options) as client:
                response = client.post(f"{url}/auth/tokens", json=self.credentials.body())
        except httpx.ConnectError as exc:
            raise SourceUnavailable(self.manager, f"Keystone at {url} is unreachable ({exc}); check auth_url") from exc
        except httpx.TransportError as exc:
            raise SourceUnavailable(self.manager, f"Keystone at {url} failed: {exc}") from exc
        what = f"Keystone token request for user {self.credentials.username!r}"
        raise_for_status(self.manager, response, what, [self.credentials.password])  # a 400 may quote the request
        try:
            token = response.json()["token"]
            return Token(
                response.headers["X-Subject-Token"],
                datetime.fromisoformat(token["expires_at"].replace("Z", "+00:00")).astimezone(UTC),
                tuple(token.get("catalog", ())),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise BadPayload(self.manager, f"Keystone's token response lacks {exc}; is {url} a Keystone v3?") from exc
