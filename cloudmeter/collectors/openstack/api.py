"""Gnocchi's REST API over httpx: the few calls cloudmeter needs, with errors translated at the boundary.

    httpx.ConnectError, ConnectTimeout       -> SourceUnavailable   "... is unreachable"
    httpx.TimeoutException, other transport  -> SourceUnavailable
    HTTP 401                                  -> CollectorAuthError  "invalid credentials"
    HTTP 403                                  -> CollectorAuthError  "permission denied"
    HTTP 429, 503 with Retry-After            -> Throttled
    HTTP 5xx                                  -> SourceUnavailable
    other HTTP 4xx, a body that is not JSON   -> BadPayload

What a body says is relayed in the message without the credentials the request carried (a server may quote the
request back), cut to one short line.

Searches use ``POST /v1/search/resource/TYPE`` (``GET ?filter=`` is silently ignored by Gnocchi) and page with
``limit`` and the ``marker`` of the ``Link: <...>; rel="next"`` header Gnocchi sends while pages are full.
Measures are read in bulk through ``POST /v1/aggregates`` by metric id; metrics are listed with ``GET /v1/metric``
(each with its archive policy, paged the same way).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.utils
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import httpx

from cloudmeter.collectors import http
from cloudmeter.errors import BadPayload, CollectorAuthError, SourceUnavailable, Throttled
from cloudmeter.redact import relay

#: Gnocchi's default ``[api] max_limit``: the largest page it serves.
PAGE_SIZE: Final = 1000
JsonObject = dict[str, Any]


class GnocchiAPI:
    """One manager's Gnocchi endpoint; ``client`` carries the base URL and authentication."""

    def __init__(self, manager: str, client: httpx.Client) -> None:
        self.manager = manager
        self.client = client

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call; the decoded JSON body, or one of cloudmeter's errors saying what to fix."""
        return self._decode(self._send(method, path, **kwargs), f"{method} {path}")

    def find(self, path: str) -> Any:
        """``GET path``: the decoded JSON body, or None if Gnocchi answers 404."""
        response = self._send("GET", path, missing_ok=True)
        return None if response.status_code == 404 else self._decode(response, f"GET {path}")

    def _send(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> httpx.Response:
        response = http.send(
            self.client, self.manager, "Gnocchi", method, path,
            check="gnocchi_url/auth_url", slow="retry later", **kwargs,
        )  # fmt: skip
        if not (missing_ok and response.status_code == 404):
            raise_for_status(self.manager, response, f"Gnocchi {method} {path}")
        return response

    def _decode(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except json.JSONDecodeError as exc:
            shown = relay(response.text, _sent_credentials(response.request), limit=200)
            raise BadPayload(self.manager, f"Gnocchi {what} answered non-JSON: {shown!r}") from exc

    def search(self, resource_type: str, query: Mapping[str, Any], *, history: bool = False) -> Iterator[JsonObject]:
        """Every resource of ``resource_type`` matching ``query`` (every revision with ``history``), paged."""
        params: dict[str, Any] = {"limit": PAGE_SIZE, **({"history": "true"} if history else {})}
        return self._pages("POST", f"/v1/search/resource/{resource_type}", params, json=dict(query))

    def metrics_named(self, name: str) -> Iterator[JsonObject]:
        """Every metric called ``name`` (each with its archive policy), paged."""
        return self._pages("GET", "/v1/metric", {"limit": PAGE_SIZE, "name": name})

    def _pages(self, method: str, path: str, params: dict[str, Any], **kwargs: Any) -> Iterator[JsonObject]:
        while True:
            response = self._send(method, path, params=params, **kwargs)
            page = self._decode(response, f"{method} {path}")
            if not isinstance(page, list):
                raise BadPayload(self.manager, f"{path} answered {type(page).__name__}, expected a list")
            yield from page
            following = response.links.get("next", {}).get("url")
            if not page or following is None:
                return
            params = dict(httpx.URL(following).params.multi_items())

    def measures(
        self, metric_ids: Sequence[str], start: datetime, stop: datetime, granularity_s: int
    ) -> dict[str, list[list[Any]]]:
        """Mean measures of ``metric_ids`` in ``[start, stop)`` at ``granularity_s``: metric id -> [[ts, g, v]]."""
        operations: list[Any] = ["metric", *([metric_id, "mean"] for metric_id in metric_ids)]
        body = self.request(
            "POST",
            "/v1/aggregates",
            params={"start": start.isoformat(), "stop": stop.isoformat(), "granularity": granularity_s},
            json={"operations": operations},
        )
        try:
            found: dict[str, dict[str, list[list[Any]]]] = body["measures"]
            return {metric_id: found[metric_id]["mean"] for metric_id in metric_ids}
        except (KeyError, TypeError) as exc:
            raise BadPayload(self.manager, f"/v1/aggregates answered without measures for {exc}") from exc


def raise_for_status(manager: str, response: httpx.Response, what: str, secrets: Iterable[str] = ()) -> None:
    """Translate an error status into cloudmeter's error tree: the body's description included, without
    ``secrets`` (what the request's body carried) and the credentials of its headers."""
    status = response.status_code
    if status < 400:
        return
    detail = relay(_description(response), [*secrets, *_sent_credentials(response.request)])
    if status == 401:
        raise CollectorAuthError(
            manager, f"invalid credentials: {what} was refused (401 {detail}); check username, password and auth_mode"
        )
    if status == 403:
        raise CollectorAuthError(manager, f"permission denied: {what} (403 {detail}); grant the user a role on it")
    if status in (429, 503) and "Retry-After" in response.headers:
        retry_after = _seconds(response.headers["Retry-After"])
        message = f"{what} asked to slow down ({status}); retrying after {retry_after:.0f} s"
        raise Throttled(manager, message, retry_after)
    if status >= 500:
        raise SourceUnavailable(manager, f"{what} failed on the server ({status} {detail}); retry later")
    raise BadPayload(manager, f"{what} was rejected ({status} {detail})")


def _description(response: httpx.Response) -> str:
    """What an error body says: Gnocchi's ``description``, Keystone's ``error``, or Nova's one fault
    (``{"badRequest": {"message": ...}}``); else the body itself."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.reason_phrase
    if isinstance(body, dict):
        inner = body.get("description") or body.get("error") or body
        if inner is body and len(body) == 1 and isinstance(fault := next(iter(body.values())), dict):
            inner = fault  # Nova names the fault: badRequest, itemNotFound, forbidden, ...
        if isinstance(inner, dict):
            inner = inner.get("message") or inner.get("cause") or inner
        return str(inner)
    return str(body)


def _sent_credentials(request: httpx.Request) -> list[str]:
    """The credentials in ``request``'s headers: a Keystone token, the Authorization value (and the password of
    basic auth in it)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    found = [request.headers.get("X-Auth-Token", ""), value]
    if scheme.lower() == "basic":
        with contextlib.suppress(binascii.Error, UnicodeDecodeError):
            found.append(base64.b64decode(value, validate=True).decode().partition(":")[2])
    return found


def _seconds(value: str) -> float:
    """A Retry-After: seconds, or an HTTP date (RFC 9110); 60 s when it is neither."""
    try:
        return max(float(value), 1.0)
    except ValueError:
        pass
    try:
        return max((email.utils.parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds(), 1.0)
    except (TypeError, ValueError, OverflowError):
        return 60.0
