"""Nova's compute API over httpx: flavors, host capacity and host aggregates, for the OpenStack collector.

Errors are translated as ``api.raise_for_status`` does (401/403 -> CollectorAuthError, 429/503 with
Retry-After -> Throttled, 5xx and transport errors -> SourceUnavailable, other 4xx and non-JSON -> BadPayload),
with no credentials relayed. Two calls are admin-only under Nova's default policy; a 403 there is expected for
a non-admin user and leaves that fact empty, with a warning naming the policy:

    GET /flavors/detail?is_public=None   everyone (is_public=None lists private flavors too, for admins only)
    GET /os-hypervisors/detail           os_compute_api:os-hypervisors:list-detail (admin)
    GET /os-aggregates                   os_compute_api:os-aggregates:index (admin)

Microversions: ``/os-hypervisors/detail`` carries ``vcpus`` and ``memory_mb`` only below microversion 2.88
(2.88 moved them to Placement). Nova still serves every microversion from its ``min_version`` (2.1 in every
release so far) to its ``version``, so every call asks for ``OpenStack-API-Version: compute 2.87`` (the
newest with those fields; paging of hypervisors since 2.33), clamped to the range the version document
(``GET /`` of the endpoint) announces. Without a readable version document no microversion is asked for
(Nova then serves 2.1, which has the fields). The microversion an answer was served at (its
``OpenStack-API-Version`` header) decides how it is parsed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from cloudmeter.collectors.openstack.api import raise_for_status
from cloudmeter.collectors.openstack.keystone import KeystoneAuth
from cloudmeter.collectors.openstack.nova_parse import (
    CAPACITY_REMOVED,
    HostCapacity,
    Microversion,
    page,
    parse_aggregates,
    parse_flavors,
    parse_hypervisors,
    served_microversion,
    version_range,
)
from cloudmeter.collectors.openstack.parse import Flavor
from cloudmeter.errors import BadPayload, PayloadError, SourceUnavailable
from cloudmeter.redact import relay

log = logging.getLogger(__name__)

#: The newest microversion whose ``/os-hypervisors/detail`` still carries vcpus and memory_mb.
WANTED_MICROVERSION: Final[Microversion] = (2, 87)
#: Since this microversion ``/os-hypervisors/detail`` pages by limit and marker.
HYPERVISOR_PAGING: Final[Microversion] = (2, 33)
#: Nova's default ``[api] max_limit``: the largest page it serves.
PAGE_SIZE: Final = 1000
#: Pages followed at most in one listing (a next link that never ends is a broken server).
MAX_PAGES: Final = 10_000
_HEADER: Final = "OpenStack-API-Version"
_LEGACY_HEADER: Final = "X-OpenStack-Nova-API-Version"


@dataclass(frozen=True)
class Listing:
    """Every item of a (paged) collection, and the microversion Nova served it at."""

    items: list[Any]
    microversion: Microversion


class NovaAPI:
    """One manager's Nova endpoint; ``client`` carries the base URL (the catalog's ``compute`` endpoint, e.g.
    ``https://nova.example:8774/v2.1``) and authentication (a ``KeystoneAuth``)."""

    def __init__(
        self,
        manager: str,
        client: httpx.Client,
        *,
        microversion: Microversion | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.manager = manager
        self.client = client
        self.page_size = page_size
        self._asked = microversion
        self._negotiated = microversion is not None

    def microversion(self) -> Microversion | None:
        """The microversion the calls ask for (None: none, the server's default), negotiated once unless given."""
        if not self._negotiated:
            self._asked = self._negotiate()
            self._negotiated = True
        return self._asked

    def _negotiate(self) -> Microversion | None:
        response = self._send("GET", "/", ok=(404,))
        try:
            served = None if response.status_code == 404 else version_range(self._decode(response, "GET /"))
        except (PayloadError, BadPayload) as exc:
            log.info(
                "manager %s: Nova's version document is unreadable (%s); asking no microversion", self.manager, exc
            )
            return None
        if served is None:
            return None
        lowest, highest = served
        return max(lowest, min(WANTED_MICROVERSION, highest))

    def _send(self, method: str, path: str, *, ok: tuple[int, ...] = (), **kwargs: Any) -> httpx.Response:
        where = f"Nova {method} {path}"
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise SourceUnavailable(
                self.manager,
                f"Nova at {self.client.base_url} is unreachable ({exc}); check the catalog's compute endpoint",
            ) from exc
        except httpx.TimeoutException as exc:
            raise SourceUnavailable(self.manager, f"{where} timed out; retry later") from exc
        except httpx.TransportError as exc:
            raise SourceUnavailable(self.manager, f"{where} failed: {exc}") from exc
        if response.status_code not in ok:
            raise_for_status(self.manager, response, where)
        return response

    def _decode(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            sent = [response.request.headers.get("X-Auth-Token", ""), response.request.headers.get("Authorization", "")]
            shown = relay(response.text, sent, limit=200)
            raise BadPayload(self.manager, f"Nova {what} answered non-JSON: {shown!r}") from exc

    def _headers(self) -> dict[str, str]:
        asked = self.microversion()
        if asked is None:
            return {}
        text = f"{asked[0]}.{asked[1]}"
        return {_HEADER: f"compute {text}", _LEGACY_HEADER: text}

    def listing(
        self,
        path: str,
        collection: str,
        params: Mapping[str, Any] | None = None,
        *,
        paged: bool = True,
        forbidden_ok: bool = False,
    ) -> Listing | None:
        """Every item of ``collection`` at ``path``, following its next links (``paged``: with ``limit``);
        None if Nova answers 403 and ``forbidden_ok``."""
        query: dict[str, Any] = {**(params or {}), **({"limit": self.page_size} if paged else {})}
        headers = self._headers()
        items: list[Any] = []
        markers: set[str] = set()
        for _ in range(MAX_PAGES):
            response = self._send("GET", path, params=query, headers=headers, ok=(403,) if forbidden_ok else ())
            if response.status_code == 403:
                return None
            try:
                found, following = page(self._decode(response, f"GET {path}"), collection, f"GET {path}")
            except PayloadError as exc:
                raise exc.bad_payload(self.manager, "Nova") from exc
            items.extend(found)
            if not found or following is None:
                served = served_microversion(response.headers.get(_HEADER) or response.headers.get(_LEGACY_HEADER))
                return Listing(items, served or self.microversion() or (2, 1))
            marker = following.get("marker", "")
            if not marker or marker in markers:
                raise BadPayload(self.manager, f"Nova GET {path} sent a next link without a new marker: {following}")
            markers.add(marker)
            query = {**query, **following}
        raise BadPayload(self.manager, f"Nova GET {path} had more than {MAX_PAGES} pages")

    def flavors(self) -> Listing:
        """Every flavor, private ones included when the user is an admin."""
        found = self.listing("/flavors/detail", "flavors", {"is_public": "None"})
        assert found is not None  # not forbidden_ok
        return found

    def hypervisors(self) -> Listing | None:
        """Every hypervisor (compute node) in detail; None if the user may not list them."""
        asked = self.microversion() or (2, 1)
        return self.listing(
            "/os-hypervisors/detail", "hypervisors", paged=asked >= HYPERVISOR_PAGING, forbidden_ok=True
        )

    def aggregates(self) -> Listing | None:
        """Every host aggregate (not paged); None if the user may not list them."""
        return self.listing("/os-aggregates", "aggregates", paged=False, forbidden_ok=True)


@dataclass(frozen=True)
class NovaFacts:
    """What Nova says about a cloud: flavors, compute service hosts' physical capacity, their clusters.

    Hosts are keyed by the compute service host, as Gnocchi's instances carry it in ``host``. An empty mapping
    is a fact Nova did not give (see ``warnings``).
    """

    flavors_by_id: Mapping[str, Flavor]
    flavors_by_name: Mapping[str, Flavor]
    host_capacity: Mapping[str, HostCapacity]
    host_clusters: Mapping[str, str]
    warnings: tuple[str, ...] = ()


#: The admin-only calls: what a 403 leaves unknown, and the policy that refused it.
_ADMIN_ONLY: Final = {
    "/os-hypervisors/detail": ("host capacities", "os_compute_api:os-hypervisors:list-detail"),
    "/os-aggregates": ("host aggregates (clusters)", "os_compute_api:os-aggregates:index"),
}


def _forbidden(path: str, first: bool) -> str:
    unknown, policy = _ADMIN_ONLY[path]
    also = "; as a non-admin it sees public flavors only" if first else ""
    refused = f"Nova refused GET {path} (403): the user lacks the admin role (policy {policy})"
    return f"{refused}, so {unknown} are unknown{also}"


def read_nova(api: NovaAPI) -> NovaFacts:
    """Flavors, host capacities and host clusters from ``api``; a fact the user may not read is empty and a
    warning (logged, and in ``warnings``) says which permission is missing."""
    warnings: list[str] = []
    try:
        by_id, by_name = parse_flavors(api.flavors().items)
        capacity: dict[str, HostCapacity] = {}
        hypervisors = api.hypervisors()
        if hypervisors is None:
            warnings.append(_forbidden("/os-hypervisors/detail", first=True))
        else:
            with_capacity = hypervisors.microversion < CAPACITY_REMOVED
            capacity = parse_hypervisors(hypervisors.items, with_capacity=with_capacity)
            if not with_capacity:
                served = "{}.{}".format(*hypervisors.microversion)
                warnings.append(
                    f"Nova served hypervisors at microversion {served}, which has no vcpus or memory_mb (removed in"
                    " 2.88, now in Placement), so host capacities are unknown"
                )
        aggregates = api.aggregates()
        if aggregates is None:
            warnings.append(_forbidden("/os-aggregates", first=hypervisors is not None))
        clusters = parse_aggregates(aggregates.items) if aggregates is not None else {}
    except PayloadError as exc:
        raise exc.bad_payload(api.manager, "Nova") from exc
    for warning in warnings:
        log.warning("manager %s: %s", api.manager, warning)
    return NovaFacts(by_id, by_name, capacity, clusters, tuple(warnings))


def nova_api(
    manager: str,
    keystone: KeystoneAuth,
    region: str | None,
    interface: str,
    *,
    timeout_s: float = 30.0,
    verify_tls: bool = True,
    transport: httpx.BaseTransport | None = None,
) -> NovaAPI | None:
    """A NovaAPI on the ``compute`` endpoint of ``keystone``'s catalog; None if the catalog has none there."""
    url = keystone.token().endpoint("compute", region, interface)
    if url is None:
        return None
    client = httpx.Client(
        base_url=url,
        auth=keystone,
        headers={"Accept": "application/json"},
        timeout=timeout_s,
        verify=verify_tls,
        transport=transport,
    )
    return NovaAPI(manager, client)
