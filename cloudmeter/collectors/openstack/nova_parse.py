"""Pure parsing of what Nova's compute API answers: flavors, hypervisors (host capacity), host aggregates.

No I/O here: ``nova`` fetches, these functions convert, and tests feed them the API reference's samples.

    GET /flavors/detail?is_public=None   flavors          -> flavor id -> Flavor, flavor name -> Flavor
    GET /os-hypervisors/detail           hypervisors      -> compute service host -> HostCapacity
    GET /os-aggregates                   aggregates       -> compute service host -> aggregate name (cluster)
    GET /  (the version document)        version          -> (min_version, version): the microversions served

Hosts are keyed by the compute *service* host (``service.host`` of a hypervisor, an aggregate's ``hosts``),
which is what Ceilometer puts in an instance's ``host`` attribute in Gnocchi. A hypervisor's
``hypervisor_hostname`` is the compute node's name, often an FQDN (``compute-2.example.org`` for the service
host ``compute-2``), and one service host may have several nodes (Ironic): their capacities are summed, and
unknown if one of them is unknown (a sum short of a node would inflate the host's percentages).

Capacity is physical (``vcpus``, ``memory_mb``: the host's CPUs and RAM, before allocation ratios). Since
microversion 2.88 Nova leaves these fields out (they moved to Placement): parsed with ``with_capacity=False``,
hosts are known but their capacity is unknown. A capacity that is not positive or is more than the resources
table holds is unknown (None); a flavor whose vcpus or ram is so is left out.

An answer that does not follow the documented shapes raises ``PayloadError`` naming the place; the caller
adds the manager (``PayloadError.bad_payload``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from cloudmeter.collectors.openstack.parse import MAX_MEMORY_MIB, MAX_VCPUS, Flavor
from cloudmeter.errors import PayloadError

#: A compute API microversion, ``(2, 87)`` for "2.87".
Microversion = tuple[int, int]
#: The microversion since which ``/os-hypervisors/detail`` omits vcpus, memory_mb and the other usage fields.
CAPACITY_REMOVED: Final[Microversion] = (2, 88)

_MICROVERSION: Final = re.compile(r"^([1-9][0-9]*)\.(0|[1-9][0-9]*)$")


@dataclass(frozen=True)
class HostCapacity:
    """A compute service host's physical capacity (None: unknown) and the names of its compute nodes."""

    vcpus: int | None
    memory_mib: int | None
    nodes: tuple[str, ...] = ()


def microversion(text: str) -> Microversion | None:
    """``"2.87"`` as ``(2, 87)``; None if ``text`` is not a microversion."""
    found = _MICROVERSION.match(text.strip())
    return (int(found[1]), int(found[2])) if found else None


def served_microversion(header: str | None) -> Microversion | None:
    """The compute microversion an ``OpenStack-API-Version`` header (``compute 2.87``, possibly among other
    services' entries) or an ``X-OpenStack-Nova-API-Version`` header (``2.87``) names."""
    for entry in (header or "").split(","):
        service, _, version = entry.strip().rpartition(" ")
        if service.strip().lower() in ("", "compute"):
            return microversion(version)
    return None


def version_range(body: Any) -> tuple[Microversion, Microversion] | None:
    """``(min_version, version)`` of a version document (``GET /`` of the compute endpoint); None for an API
    without microversions (the legacy v2.0, whose fields are empty)."""
    where = "GET / version"
    document = PayloadError.expect(
        PayloadError.expect(body, dict, "GET /", "an object").get("version"), dict, where, "an object"
    )
    found = []
    for key in ("min_version", "version"):
        text = PayloadError.expect(document.get(key, ""), str, f"{where}.{key}", 'a microversion like "2.1"')
        if not text:
            return None
        parsed = microversion(text)
        if parsed is None:
            raise PayloadError.unexpected(f"{where}.{key}", text, 'a microversion like "2.1"')
        found.append(parsed)
    return found[0], found[1]


def page(body: Any, collection: str, where: str) -> tuple[list[Any], dict[str, str] | None]:
    """The items of one page of ``collection`` and the query parameters of its ``<collection>_links`` next link
    (None on the last page)."""
    answer = PayloadError.expect(body, dict, where, "an object")
    items = PayloadError.expect(answer.get(collection), list, f"{where} {collection}", "a list")
    links = PayloadError.expect(answer.get(f"{collection}_links", []), list, f"{where} {collection}_links", "a list")
    for k, value in enumerate(links):
        at = f"{where} {collection}_links[{k}]"
        link = PayloadError.expect(value, dict, at, "an object")
        if link.get("rel") == "next":
            href = PayloadError.expect(link.get("href"), str, f"{at}.href", "a URL")
            return items, dict(parse_qsl(urlsplit(href).query))
    return items, None


def _count(item: Mapping[str, Any], key: str, where: str, most: int) -> int | None:
    """``item[key]``: a whole number from 1 to ``most``, or None when it is null, not positive or more."""
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError.unexpected(f"{where}.{key}", value, "a whole number")
    return value if 1 <= value <= most else None


def _name(item: Mapping[str, Any], key: str, where: str) -> str:
    """``item[key]``: a non-empty string."""
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise PayloadError.unexpected(f"{where}.{key}", value, "a non-empty string")
    return value


def parse_flavors(flavors: Iterable[Any]) -> tuple[dict[str, Flavor], dict[str, Flavor]]:
    """Flavors by id and by name from the items of ``GET /flavors/detail`` (all pages).

    A flavor with no usable vcpus or ram is left out. Names are unique in Nova; should two flavors share one,
    the name is ambiguous and maps to neither (their ids still do).
    """
    by_id: dict[str, Flavor] = {}
    named: dict[str, list[Flavor]] = defaultdict(list)
    for k, value in enumerate(flavors):
        where = f"/flavors/detail flavors[{k}]"
        flavor = PayloadError.expect(value, dict, where, "an object")
        flavor_id, name = _name(flavor, "id", where), _name(flavor, "name", where)
        if "vcpus" not in flavor or "ram" not in flavor:
            raise PayloadError(where, "lacks vcpus or ram")
        vcpus, ram = _count(flavor, "vcpus", where, MAX_VCPUS), _count(flavor, "ram", where, MAX_MEMORY_MIB)
        if vcpus is not None and ram is not None:
            by_id[flavor_id] = Flavor(vcpus, ram)
            named[name].append(by_id[flavor_id])
    return by_id, {name: found[0] for name, found in named.items() if len(found) == 1}


def parse_hypervisors(hypervisors: Iterable[Any], *, with_capacity: bool) -> dict[str, HostCapacity]:
    """Capacity by compute service host from the items of ``GET /os-hypervisors/detail`` (all pages).

    ``with_capacity``: the answer's microversion is below 2.88, so each item documents ``vcpus`` and
    ``memory_mb``; otherwise every capacity is unknown.
    """
    nodes: dict[str, list[tuple[str, int | None, int | None]]] = defaultdict(list)
    for k, value in enumerate(hypervisors):
        where = f"/os-hypervisors/detail hypervisors[{k}]"
        hypervisor = PayloadError.expect(value, dict, where, "an object")
        service = PayloadError.expect(hypervisor.get("service"), dict, f"{where}.service", "an object")
        host = _name(service, "host", f"{where}.service")
        node = PayloadError.expect(
            hypervisor.get("hypervisor_hostname") or "", str, f"{where}.hypervisor_hostname", "a string"
        )
        vcpus = memory = None
        if with_capacity:
            if "vcpus" not in hypervisor or "memory_mb" not in hypervisor:
                raise PayloadError(where, "lacks vcpus or memory_mb, which microversions before 2.88 carry")
            vcpus = _count(hypervisor, "vcpus", where, MAX_VCPUS)
            memory = _count(hypervisor, "memory_mb", where, MAX_MEMORY_MIB)
        nodes[host].append((node, vcpus, memory))
    return {host: _host(found) for host, found in nodes.items()}


def _host(nodes: list[tuple[str, int | None, int | None]]) -> HostCapacity:
    """One service host's capacity: the sum over its nodes, unknown if one node's is (or the sum is absurd)."""
    vcpus = [v for _, v, _ in nodes]
    memory = [m for _, _, m in nodes]
    total_vcpus = None if None in vcpus else sum(v for v in vcpus if v is not None)
    total_memory = None if None in memory else sum(m for m in memory if m is not None)
    return HostCapacity(
        total_vcpus if total_vcpus is not None and total_vcpus <= MAX_VCPUS else None,
        total_memory if total_memory is not None and total_memory <= MAX_MEMORY_MIB else None,
        tuple(sorted(name for name, _, _ in nodes if name)),
    )


def parse_aggregates(aggregates: Iterable[Any]) -> dict[str, str]:
    """The cluster of each compute service host from ``GET /os-aggregates``: the name of its aggregate.

    A host in several aggregates gets, deterministically, the one with an availability zone (Nova puts a host
    in at most one zone, so zone aggregates partition the hosts as clusters do), then the first by name, then
    by id.
    """
    candidates: dict[str, list[tuple[bool, str, str]]] = defaultdict(list)
    for k, value in enumerate(aggregates):
        where = f"/os-aggregates aggregates[{k}]"
        aggregate = PayloadError.expect(value, dict, where, "an object")
        name = _name(aggregate, "name", where)
        zone = aggregate.get("availability_zone")
        PayloadError.expect(zone or "", str, f"{where}.availability_zone", "a string or null")
        hosts = PayloadError.expect(aggregate.get("hosts") or [], list, f"{where}.hosts", "a list or null")
        for j, host in enumerate(hosts):
            if not isinstance(host, str) or not host:
                raise PayloadError.unexpected(f"{where}.hosts[{j}]", host, "a host name")
            candidates[host].append((not zone, name, str(aggregate.get("id"))))
    return {host: min(found)[1] for host, found in sorted(candidates.items())}
