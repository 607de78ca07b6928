"""Prometheus' HTTP API over httpx: the three calls cloudmeter needs, with errors translated at the boundary.

    httpx.ConnectError, ConnectTimeout       -> SourceUnavailable   "... is unreachable"
    httpx.TimeoutException, other transport  -> SourceUnavailable
    HTTP 401, 403                             -> CollectorAuthError  (check bearer_token)
    HTTP 429, 503 with Retry-After            -> Throttled
    HTTP 5xx                                  -> SourceUnavailable
    other HTTP 4xx, a body that is not JSON,
    ``"status": "error"``                     -> BadPayload

Queries are POSTed as forms (``/api/v1/query``, ``/api/v1/query_range``), so long PromQL never meets a URL
length limit. The bearer token never appears in messages: what a body says is relayed without it.
"""

from __future__ import annotations

import json
from typing import Any, Final

import httpx

from cloudmeter.collectors import http
from cloudmeter.collectors.kubernetes.config import KubernetesConfig
from cloudmeter.errors import BadPayload, CollectorAuthError, SourceUnavailable, Throttled
from cloudmeter.redact import relay

#: Prometheus refuses a query_range of more points than this per series.
MAX_POINTS: Final = 11_000
JsonObject = dict[str, Any]


class PrometheusAPI:
    """One manager's Prometheus; ``transport`` is a seam for tests."""

    def __init__(self, manager: str, config: KubernetesConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.manager = manager
        self.base_url = config.prometheus_url
        self._token = config.bearer_token.get_secret_value() if config.bearer_token else None
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        self.client = httpx.Client(
            base_url=self.base_url, headers=headers, verify=config.verify_tls, timeout=config.timeout_s,
            transport=transport,
        )  # fmt: skip

    def close(self) -> None:
        self.client.close()

    def buildinfo(self) -> JsonObject:
        """``GET /api/v1/status/buildinfo``: version, revision, ..."""
        data = self._call("GET", "/api/v1/status/buildinfo")
        return data if isinstance(data, dict) else {}

    def query(self, promql: str, at_s: float) -> list[JsonObject]:
        """An instant query at ``at_s`` (epoch seconds): the vector's elements ``{"metric", "value"}``."""
        data = self._call("POST", "/api/v1/query", data={"query": promql, "time": f"{at_s:.3f}"})
        return _result(self.manager, data, "vector", "query")

    def query_range(self, promql: str, start_s: int, end_s: int, step_s: int) -> list[JsonObject]:
        """A range query from ``start_s`` to ``end_s`` (both evaluated) every ``step_s``: ``{"metric", "values"}``."""
        form = {"query": promql, "start": str(start_s), "end": str(end_s), "step": str(step_s)}
        data = self._call("POST", "/api/v1/query_range", data=form)
        return _result(self.manager, data, "matrix", "query_range")

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = http.send(
            self.client, self.manager, "Prometheus", method, path,
            check="prometheus_url", slow="retry later or raise timeout_s", **kwargs,
        )  # fmt: skip
        self._raise_for_status(response, f"Prometheus {method} {path}")
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            shown = relay(response.text, self._secrets(), limit=200)
            raise BadPayload(self.manager, f"Prometheus {method} {path} answered non-JSON: {shown!r}") from exc
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else body
            raise BadPayload(self.manager, f"Prometheus {method} {path} failed: {relay(str(error), self._secrets())}")
        return body.get("data")

    def _secrets(self) -> list[str]:
        return [self._token] if self._token else []

    def _raise_for_status(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        try:
            said = response.json().get("error") or response.reason_phrase
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            said = response.text or response.reason_phrase
        detail = relay(str(said), self._secrets())
        if status in (401, 403):
            hint = "set bearer_token" if self._token is None else "check bearer_token (and its permissions)"
            refused = "invalid credentials" if status == 401 else "permission denied"
            raise CollectorAuthError(self.manager, f"{refused}: {what} was refused ({status} {detail}); {hint}")
        if status in (429, 503) and "Retry-After" in response.headers:
            try:
                retry_after = max(float(response.headers["Retry-After"]), 1.0)
            except ValueError:
                retry_after = 60.0
            raise Throttled(self.manager, f"{what} asked to slow down ({status}); retrying after {retry_after:.0f} s",
                            retry_after)  # fmt: skip
        if status >= 500:
            raise SourceUnavailable(self.manager, f"{what} failed on the server ({status} {detail}); retry later")
        raise BadPayload(self.manager, f"{what} was rejected ({status} {detail})")


def _result(manager: str, data: Any, expected: str, call: str) -> list[JsonObject]:
    if not isinstance(data, dict) or data.get("resultType") != expected or not isinstance(data.get("result"), list):
        shown = data.get("resultType") if isinstance(data, dict) else type(data).__name__
        raise BadPayload(manager, f"Prometheus {call} answered {shown!r}, expected a {expected}")
    return list(data["result"])
