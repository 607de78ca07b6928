"""Nova's flavors, hypervisors and aggregates: the parsers on the API reference's samples, NovaAPI against the
fake Nova of tests/nova_server.py (which answers as the samples do), and the catalog of a real Keystone."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import secrets
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given

from cloudmeter.collectors.openstack import GnocchiCollector, OpenStackConfig
from cloudmeter.collectors.openstack.keystone import KeystoneAuth, PasswordCredentials
from cloudmeter.collectors.openstack.nova import NovaAPI, NovaFacts, nova_api, read_nova
from cloudmeter.collectors.openstack.nova_parse import (
    HostCapacity,
    page,
    parse_aggregates,
    parse_flavors,
    parse_hypervisors,
    served_microversion,
    version_range,
)
from cloudmeter.collectors.openstack.parse import MAX_MEMORY_MIB, MAX_VCPUS, MIB, Flavor
from cloudmeter.collectors.registry import parse_manager_config
from cloudmeter.errors import BadPayload, CollectorAuthError, PayloadError, SourceUnavailable, Throttled
from cloudmeter.model import ResourceRef
from tests import nova_server
from tests.collectors.test_payload_fuzz import FUZZ, JSON_VALUES, mutated, parsed
from tests.gnocchi_server import GnocchiServer
from tests.keystone_server import ADMIN_PASSWORD, REGION, KeystoneServer
from tests.loopback import free_port
from tests.nova_server import (
    ADMIN_TOKEN,
    MEMBER_TOKEN,
    USAGE,
    NovaCloud,
    NovaServer,
    aggregate_view,
    flavor_view,
    hypervisor_view,
    next_links,
    sample,
    sample_cloud,
)

#: Where the samples were made: the links in them start so.
SAMPLE_APP = "http://openstack.example.com/v2.1/6f70656e737461636b20342065766572"
PUBLIC_FLAVORS = {
    "1": Flavor(1, 512),
    "2": Flavor(1, 2048),
    "3": Flavor(2, 4096),
    "4": Flavor(4, 8192),
    "5": Flavor(8, 16384),
    "6": Flavor(1, 512),
    "7": Flavor(1, 2048),
}
NAMES = ["m1.tiny", "m1.small", "m1.medium", "m1.large", "m1.xlarge", "m1.tiny.specs", "m1.small.description"]
VCENTER_NODES = tuple(f"domain-c{k}.22d3fe0a-6ebd-4b4c-8b2f-0f8e2b7c1d56" for k in (7, 8))
#: What read_nova makes of nova_server.sample_cloud() as an admin.
SAMPLE_FACTS = NovaFacts(
    {**PUBLIC_FLAVORS, "10": Flavor(2, 1024)},
    {**{name: PUBLIC_FLAVORS[str(k)] for k, name in enumerate(NAMES, start=1)}, "test_flavor": Flavor(2, 1024)},
    {
        "host1": HostCapacity(2, 8192, ("host2",)),  # node host2 of service host host1 (the v2.53 sample)
        "compute-2": HostCapacity(64, 524288, ("compute-2.example.org",)),
        "ironic-1": HostCapacity(None, None, ("bm-node-1",)),  # Ironic reports 0 vcpus and memory
        "vcenter-1": HostCapacity(48, 196608, VCENTER_NODES),  # two nodes of one service host, summed
    },
    {"host1": "london-az", "compute-2": "london-az", "ironic-1": "baremetal", "vcenter-1": "a-vmware"},
)


# ---- the parsers on the documented samples ------------------------------------------------------------------


def test_flavors_of_the_samples() -> None:
    by_id, by_name = parse_flavors(sample("flavors/flavors-detail-resp.json")["flavors"])
    assert by_id == {k: v for k, v in PUBLIC_FLAVORS.items() if k != "7"}
    assert by_name == {name: PUBLIC_FLAVORS[str(k)] for k, name in enumerate(NAMES[:6], start=1)}

    by_id, by_name = parse_flavors(sample("flavors/v2.75/flavors-detail-resp.json")["flavors"])
    assert by_id == PUBLIC_FLAVORS
    assert by_name["m1.small.description"] == Flavor(1, 2048)


@pytest.mark.parametrize(
    ("name", "with_capacity", "expected"),
    [
        (
            "hypervisors-detail-resp.json",
            True,
            {"e6a37ee802d74863ab8b91ade8f12a67": HostCapacity(2, 8192, ("fake-mini",))},
        ),
        ("v2.33/hypervisors-detail-resp.json", True, {"host1": HostCapacity(2, 8192, ("host1",))}),
        ("v2.53/hypervisors-detail-resp.json", True, {"host1": HostCapacity(2, 8192, ("host2",))}),
        ("v2.88/hypervisors-detail-resp.json", False, {"host2": HostCapacity(None, None, ("host2",))}),
    ],
)
def test_hypervisors_of_the_samples_by_service_host(
    name: str, with_capacity: bool, expected: dict[str, HostCapacity]
) -> None:
    answer = sample(f"os-hypervisors/{name}")

    assert parse_hypervisors(page(answer, "hypervisors", "GET")[0], with_capacity=with_capacity) == expected


def test_the_288_answer_has_no_capacity_to_read() -> None:
    answer = sample("os-hypervisors/v2.88/hypervisors-detail-resp.json")

    with pytest.raises(PayloadError, match=r"hypervisors\[0\] lacks vcpus or memory_mb, which microversions before"):
        parse_hypervisors(answer["hypervisors"], with_capacity=True)


def test_aggregates_of_the_samples() -> None:
    assert parse_aggregates(sample("os-aggregates/aggregates-list-get-resp.json")["aggregates"]) == {
        "21549b2f665945baaa7101926a00143c": "name"
    }
    assert parse_aggregates(sample("os-aggregates/v2.41/aggregates-list-get-resp.json")["aggregates"]) == {
        "compute": "name"
    }


def test_a_host_in_several_aggregates_gets_its_zone_then_the_first_name() -> None:
    aggregates = [
        {"id": 1, "name": "rack-b", "hosts": ["c1", "c2"], "availability_zone": None},
        {"id": 2, "name": "rack-a", "hosts": ["c2", "c3"], "availability_zone": None},
        {"id": 3, "name": "zz-zone", "hosts": ["c1"], "availability_zone": "east"},
        {"id": 4, "name": "empty", "hosts": None, "availability_zone": "west"},
    ]
    for order in itertools.permutations(aggregates):
        assert parse_aggregates(order) == {"c1": "zz-zone", "c2": "rack-a", "c3": "rack-a"}


@pytest.mark.parametrize("vcpus", [0, -4, MAX_VCPUS + 1, None])
def test_a_capacity_not_positive_or_absurd_is_unknown(vcpus: int | None) -> None:
    node = {"hypervisor_hostname": "n1", "service": {"host": "h1"}, "vcpus": vcpus, "memory_mb": MAX_MEMORY_MIB + 1}
    other = {**node, "hypervisor_hostname": "n2", "vcpus": 8, "memory_mb": 1024}

    assert parse_hypervisors([node], with_capacity=True) == {"h1": HostCapacity(None, None, ("n1",))}
    assert parse_hypervisors([other, node], with_capacity=True) == {"h1": HostCapacity(None, None, ("n1", "n2"))}


def test_a_flavor_without_a_usable_size_is_left_out_and_a_shared_name_maps_to_none() -> None:
    flavors = [
        {"id": "a", "name": "twin", "vcpus": 1, "ram": 512},
        {"id": "b", "name": "twin", "vcpus": 2, "ram": 1024},
        {"id": "c", "name": "broken", "vcpus": 0, "ram": 1024},
    ]

    assert parse_flavors(flavors) == ({"a": Flavor(1, 512), "b": Flavor(2, 1024)}, {})


def test_version_documents_and_headers() -> None:
    assert version_range(sample("versions/v21-version-get-resp.json")) == ((2, 1), (2, 104))
    assert version_range({"version": {"id": "v2.0", "version": "", "min_version": ""}}) is None
    assert served_microversion("compute 2.87") == (2, 87)
    assert served_microversion("placement 1.39, compute 2.53") == (2, 53)
    assert served_microversion("2.25") == (2, 25)  # X-OpenStack-Nova-API-Version
    assert served_microversion(None) is None
    assert served_microversion("compute latest") is None


@pytest.mark.parametrize(
    ("parse", "answer", "where"),
    [
        (parse_flavors, [{"id": 1, "name": "x", "vcpus": 1, "ram": 1}], "flavors[0].id is 1, expected a non-empty"),
        (parse_flavors, [{"id": "1", "name": "x", "vcpus": "2", "ram": 1}], "flavors[0].vcpus is '2', expected a"),
        (parse_flavors, [{"id": "1", "name": "x", "vcpus": True, "ram": 1}], "flavors[0].vcpus is True"),
        (parse_flavors, [{"id": "1", "name": "x", "ram": 1}], "flavors[0] lacks vcpus or ram"),
        (parse_flavors, [[]], "flavors[0] is [], expected an object"),
        (lambda a: parse_hypervisors(a, with_capacity=False), [{"service": None}], "hypervisors[0].service is"),
        (lambda a: parse_hypervisors(a, with_capacity=False), [{"service": {"host": ""}}], "service.host is ''"),
        (
            lambda a: parse_hypervisors(a, with_capacity=True),
            [{"service": {"host": "h"}, "vcpus": 2.5, "memory_mb": 1}],
            "hypervisors[0].vcpus is 2.5, expected a whole number",
        ),
        (parse_aggregates, [{"id": 1, "hosts": []}], "aggregates[0].name is missing or null"),
        (parse_aggregates, [{"name": "a", "hosts": "h1"}], "aggregates[0].hosts is 'h1', expected a list"),
        (parse_aggregates, [{"name": "a", "hosts": [None]}], "aggregates[0].hosts[0] is missing or null"),
        (parse_aggregates, [{"name": "a", "availability_zone": 3}], "aggregates[0].availability_zone is 3"),
        (lambda a: page(a, "flavors", "GET /flavors/detail"), {"flavors": {}}, "GET /flavors/detail flavors is {}"),
        (lambda a: page(a, "flavors", "GET /f"), {"flavors": [], "flavors_links": [{"rel": "next"}]}, "href is"),
        (version_range, {"version": {"version": "2.x", "min_version": "2.1"}}, "GET / version.version is '2.x'"),
    ],
)
def test_a_malformed_answer_is_a_payload_error_naming_the_place(
    parse: Callable[[Any], Any], answer: Any, where: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        parse(answer)
    assert where in str(caught.value)


@FUZZ
@given(mutated(sample("flavors/v2.75/flavors-detail-resp.json"), JSON_VALUES))
def test_fuzzed_flavors(answer: Any) -> None:
    found = parsed(lambda: parse_flavors(page(answer, "flavors", "GET /flavors/detail")[0]))
    for flavors in found or ():
        assert all(1 <= f.vcpus <= MAX_VCPUS and 1 <= f.memory_mib <= MAX_MEMORY_MIB for f in flavors.values())


@FUZZ
@given(mutated(sample("os-hypervisors/v2.53/hypervisors-detail-resp.json"), JSON_VALUES), JSON_VALUES)
def test_fuzzed_hypervisors(answer: Any, capacity: Any) -> None:
    found = parsed(lambda: parse_hypervisors(page(answer, "hypervisors", "GET")[0], with_capacity=bool(capacity)))
    for host, known in (found or {}).items():
        assert isinstance(host, str) and host
        assert known.vcpus is None or 1 <= known.vcpus <= MAX_VCPUS
        assert known.memory_mib is None or 1 <= known.memory_mib <= MAX_MEMORY_MIB


@FUZZ
@given(mutated(sample("os-aggregates/v2.41/aggregates-list-get-resp.json"), JSON_VALUES))
def test_fuzzed_aggregates(answer: Any) -> None:
    found = parsed(lambda: parse_aggregates(page(answer, "aggregates", "GET /os-aggregates")[0]))
    assert all(isinstance(host, str) and isinstance(name, str) for host, name in (found or {}).items())


# ---- the fake answers as the samples do ---------------------------------------------------------------------


def test_the_fake_renders_the_hypervisor_samples() -> None:
    for name, mv, legacy in (("", (2, 1), None), ("v2.33/", (2, 33), None), ("v2.53/", (2, 53), (1, 6))):
        answer = sample(f"os-hypervisors/{name}hypervisors-detail-resp.json")
        documented = answer["hypervisors"][0]
        ids = legacy or (documented["id"], documented["service"]["id"])
        record = {**documented, "legacy_id": ids[0], "legacy_service_id": ids[1]}
        if mv < (2, 28):
            record["cpu_info"] = json.loads(documented["cpu_info"])
        assert hypervisor_view(record, mv) == documented, name
        if mv >= (2, 33):
            links = next_links(SAMPLE_APP, "os-hypervisors/detail", {"limit": "1"}, [documented], 1)
            assert links == answer["hypervisors_links"]

    answer = sample("os-hypervisors/v2.88/hypervisors-detail-resp.json")
    documented = answer["hypervisors"][0]
    record = {**documented, **dict.fromkeys(USAGE, 0), "legacy_id": 1, "legacy_service_id": 1}
    assert hypervisor_view(record, (2, 88)) == documented
    assert (
        next_links(SAMPLE_APP, "os-hypervisors/detail", {"limit": "1"}, [documented], 1) == answer["hypervisors_links"]
    )


def test_the_fake_renders_the_flavor_and_aggregate_samples() -> None:
    app, project = "http://openstack.example.com/v2", "6f70656e737461636b20342065766572"
    for name, mv in (("", (2, 1)), ("v2.75/", (2, 75))):
        for documented in sample(f"flavors/{name}flavors-detail-resp.json")["flavors"]:
            record = {"description": None, "extra_specs": {}, **documented, "swap": documented["swap"] or 0}
            assert flavor_view(record, mv, app, project) == documented
    for name, mv in (("", (2, 1)), ("v2.41/", (2, 41))):
        documented = sample(f"os-aggregates/{name}aggregates-list-get-resp.json")["aggregates"][0]
        assert aggregate_view({"uuid": "u", **documented}, mv) == documented


# ---- NovaAPI against the fake -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nova(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NovaServer]:
    """The fake Nova serving the sample cloud."""
    with nova_server.running(tmp_path_factory.mktemp("nova"), sample_cloud()) as server:
        yield server


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[NovaCloud], NovaServer]]:
    """Starts fake Novas serving other clouds, for one test."""
    count = itertools.count()
    with ExitStack() as stack:
        yield lambda cloud: stack.enter_context(nova_server.running(tmp_path / f"nova{next(count)}", cloud))


def _api(server: NovaServer, token: str = ADMIN_TOKEN, seen: list[str] | None = None, **options: Any) -> NovaAPI:
    hooks = {"request": [lambda request: seen.append(request.url.raw_path.decode())]} if seen is not None else {}
    client = httpx.Client(base_url=server.endpoint, headers={"X-Auth-Token": token}, event_hooks=hooks)
    return NovaAPI("os", client, **options)


def test_read_nova_gives_the_sample_cloud(nova: NovaServer) -> None:
    api = _api(nova)

    assert read_nova(api) == SAMPLE_FACTS
    assert api.microversion() == (2, 87)


def test_listings_follow_next_links(nova: NovaServer) -> None:
    seen: list[str] = []

    facts = read_nova(_api(nova, seen=seen, page_size=2))

    assert facts == SAMPLE_FACTS
    flavors = "/v2.1/flavors/detail?is_public=None&limit=2"
    hypervisors = "/v2.1/os-hypervisors/detail?limit=2"
    second, third = (hypervisor_view(node, (2, 87))["id"] for node in sample_cloud().nodes[1:4:2])
    assert seen == [
        "/v2.1/",
        flavors,  # flavorids sort as strings: 1, 10 | 2, 3 | 4, 5 | 6, 7 | (empty)
        *(f"{flavors}&marker={marker}" for marker in ("10", "3", "5", "7")),
        hypervisors,
        f"{hypervisors}&marker={second}",
        f"{hypervisors}&marker={third}",
        "/v2.1/os-aggregates",
    ]


def test_from_288_nova_leaves_vcpus_and_memory_out(nova: NovaServer) -> None:
    headers = {"X-Auth-Token": ADMIN_TOKEN}
    for asked, present in (("2.87", True), ("2.88", False), ("latest", False)):
        answer = httpx.get(
            f"{nova.endpoint}/os-hypervisors/detail", headers={**headers, "OpenStack-API-Version": f"compute {asked}"}
        )
        assert all(("vcpus" in node and "memory_mb" in node) is present for node in answer.json()["hypervisors"])


def test_at_288_capacities_are_unknown_and_said_so(nova: NovaServer, caplog: pytest.LogCaptureFixture) -> None:
    facts = read_nova(_api(nova, microversion=(2, 88)))

    assert facts.host_capacity == {
        host: HostCapacity(None, None, c.nodes) for host, c in SAMPLE_FACTS.host_capacity.items()
    }
    assert (facts.flavors_by_id, facts.host_clusters) == (SAMPLE_FACTS.flavors_by_id, SAMPLE_FACTS.host_clusters)
    assert facts.warnings == (
        "Nova served hypervisors at microversion 2.88, which has no vcpus or memory_mb (removed in 2.88, now in "
        "Placement), so host capacities are unknown",
    )
    assert facts.warnings[0] in caplog.text


def test_the_microversion_asked_is_clamped_to_what_nova_serves(serve: Callable[[NovaCloud], NovaServer]) -> None:
    seen: list[str] = []
    old = _api(serve(dataclasses.replace(sample_cloud(), max_version="2.25")), seen=seen)
    assert read_nova(old) == SAMPLE_FACTS  # before 2.33: hypervisors in one answer, no limit sent
    assert old.microversion() == (2, 25) and "/v2.1/os-hypervisors/detail" in seen

    future = _api(serve(dataclasses.replace(sample_cloud(), min_version="2.90")))
    facts = read_nova(future)
    assert future.microversion() == (2, 90)
    assert facts.host_capacity["host1"] == HostCapacity(None, None, ("host2",))
    assert "microversion 2.90" in facts.warnings[0]


def test_a_member_reads_public_flavors_and_is_told_what_it_may_not(
    nova: NovaServer, caplog: pytest.LogCaptureFixture
) -> None:
    facts = read_nova(_api(nova, MEMBER_TOKEN))

    assert (facts.flavors_by_id, facts.host_capacity, facts.host_clusters) == (PUBLIC_FLAVORS, {}, {})
    assert facts.warnings == (
        "Nova refused GET /os-hypervisors/detail (403): the user lacks the admin role (policy "
        "os_compute_api:os-hypervisors:list-detail), so host capacities are unknown; as a non-admin it sees public "
        "flavors only",
        "Nova refused GET /os-aggregates (403): the user lacks the admin role (policy "
        "os_compute_api:os-aggregates:index), so host aggregates (clusters) are unknown",
    )
    nova_log = "cloudmeter.collectors.openstack.nova"
    assert [r.levelno for r in caplog.records if r.name == nova_log] == [logging.WARNING] * 2


def test_an_unknown_token_is_invalid_credentials(nova: NovaServer) -> None:
    token = secrets.token_hex(20)

    with pytest.raises(CollectorAuthError, match="invalid credentials: Nova GET /flavors/detail") as caught:
        read_nova(_api(nova, token))
    assert token not in str(caught.value)


def _mocked(answer: Callable[[httpx.Request], httpx.Response]) -> NovaAPI:
    client = httpx.Client(base_url="http://nova/v2.1", transport=httpx.MockTransport(answer))
    return NovaAPI("os", client, microversion=(2, 87))


def _flavors_then(answer: httpx.Response) -> Callable[[httpx.Request], httpx.Response]:
    """Flavors as documented, then ``answer`` to everything else."""
    documented = sample("flavors/v2.75/flavors-detail-resp.json")
    return lambda request: httpx.Response(200, json=documented) if "flavors" in request.url.path else answer


@pytest.mark.parametrize(
    ("answer", "error", "says"),
    [
        (httpx.Response(500, json={"computeFault": {"code": 500}}), SourceUnavailable, "failed on the server (500"),
        (httpx.Response(429, headers={"Retry-After": "7"}), Throttled, "retrying after 7 s"),
        (httpx.Response(401, json={"error": {"code": 401}}), CollectorAuthError, "invalid credentials"),
        (httpx.Response(200, text="<html>proxy</html>"), BadPayload, "answered non-JSON: '<html>proxy</html>'"),
        (httpx.Response(200, json={"hypervisors": [{"service": {}}]}), BadPayload, "hypervisors[0].service.host is"),
        (httpx.Response(200, json={"hypervisors": {}}), BadPayload, "GET /os-hypervisors/detail hypervisors is {}"),
    ],
)
def test_nova_errors_become_cloudmeter_errors(answer: httpx.Response, error: type[Exception], says: str) -> None:
    with pytest.raises(error) as caught:
        read_nova(_mocked(_flavors_then(answer)))
    assert says in str(caught.value)


def test_a_nova_answer_quoting_the_token_relays_none() -> None:
    token = f"gAAAAAB{secrets.token_urlsafe(40)}"  # Fernet-shaped, as Keystone issues them

    def quoting(request: httpx.Request) -> httpx.Response:
        sent = request.headers["X-Auth-Token"]
        if request.url.path.endswith("/os-aggregates"):
            return httpx.Response(400, json={"badRequest": {"code": 400, "message": f"bad token {sent}"}})
        return httpx.Response(200, text=f"<html>{sent}</html>")

    for path in ("/os-aggregates", "/flavors/detail"):
        client = httpx.Client(
            base_url="http://nova/v2.1", headers={"X-Auth-Token": token}, transport=httpx.MockTransport(quoting)
        )
        with pytest.raises(BadPayload) as caught:
            NovaAPI("os", client, microversion=(2, 87)).listing(path, "items")
        assert token not in str(caught.value) and token[7:30] not in str(caught.value)


def test_a_next_link_that_repeats_itself_is_a_bad_payload() -> None:
    looping = {
        "flavors": [{"id": "1", "name": "a", "vcpus": 1, "ram": 1}],
        "flavors_links": [{"rel": "next", "href": "http://nova/v2.1/flavors/detail?marker=1"}],
    }

    with pytest.raises(BadPayload, match="next link without a new marker"):
        read_nova(_mocked(lambda request: httpx.Response(200, json=looping)))


def test_without_a_version_document_no_microversion_is_asked() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2.1/":
            return httpx.Response(404, json={"itemNotFound": {"code": 404}})
        assert "OpenStack-API-Version" not in request.headers
        name = {"/v2.1/flavors/detail": "flavors/flavors-detail-resp.json"}.get(request.url.path)
        name = name or {"/v2.1/os-aggregates": "os-aggregates/aggregates-list-get-resp.json"}.get(request.url.path)
        return httpx.Response(200, json=sample(name or "os-hypervisors/hypervisors-detail-resp.json"))

    api = NovaAPI("os", httpx.Client(base_url="http://nova/v2.1", transport=httpx.MockTransport(answer)))
    facts = read_nova(api)

    assert api.microversion() is None
    assert facts.host_capacity == {"e6a37ee802d74863ab8b91ade8f12a67": HostCapacity(2, 8192, ("fake-mini",))}


def test_an_unreachable_nova_is_unavailable() -> None:
    port = free_port()
    api = NovaAPI("os", httpx.Client(base_url=f"http://127.0.0.1:{port}/v2.1"))

    with pytest.raises(SourceUnavailable, match=rf"Nova at http://127.0.0.1:{port}/v2.1/ is unreachable"):
        read_nova(api)


# ---- through a real Keystone's catalog ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def keystone_nova(keystone: KeystoneServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NovaServer]:
    """The fake Nova validating tokens with ``keystone``, the ``compute`` service of its catalog."""
    work = tmp_path_factory.mktemp("nova-ks")
    with nova_server.running(work, sample_cloud(), keystone.url, ADMIN_PASSWORD) as server:
        service = keystone.register_service("compute", "nova", server.endpoint)
        yield server
        keystone.remove_service(service)  # later tests' catalogs hold no Nova that has stopped


def _keystone_auth(keystone: KeystoneServer, username: str = "admin", password: str = ADMIN_PASSWORD) -> KeystoneAuth:
    return KeystoneAuth("os", PasswordCredentials(keystone.url, username, password, "admin"))


def _member(keystone: KeystoneServer) -> tuple[str, str]:
    """A user with only the ``member`` role on project ``admin``: its name and password."""
    name, password = f"viewer-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    with httpx.Client(base_url=keystone.url, auth=keystone.admin_auth(), timeout=60) as admin:
        user = admin.post("/users", json={"user": {"name": name, "password": password, "domain_id": "default"}})
        project = admin.get("/projects", params={"name": "admin"}).json()["projects"][0]["id"]
        role = admin.get("/roles", params={"name": "member"}).json()["roles"][0]["id"]
        admin.put(f"/projects/{project}/users/{user.json()['user']['id']}/roles/{role}").raise_for_status()
    return name, password


def test_the_catalog_leads_to_nova(keystone: KeystoneServer, keystone_nova: NovaServer) -> None:
    api = nova_api("os", _keystone_auth(keystone), REGION, "public")

    assert api is not None and str(api.client.base_url) == f"{keystone_nova.endpoint}/"
    assert read_nova(api) == SAMPLE_FACTS


def test_a_keystone_member_reads_what_nova_lets_it(keystone: KeystoneServer, keystone_nova: NovaServer) -> None:
    api = nova_api("os", _keystone_auth(keystone, *_member(keystone)), REGION, "public")
    assert api is not None

    facts = read_nova(api)

    assert (facts.flavors_by_id, facts.host_capacity, facts.host_clusters) == (PUBLIC_FLAVORS, {}, {})
    assert len(facts.warnings) == 2


def test_the_fake_takes_only_tokens_keystone_issued(keystone_nova: NovaServer) -> None:
    answer = httpx.get(f"{keystone_nova.endpoint}/flavors/detail", headers={"X-Auth-Token": secrets.token_hex(16)})

    assert answer.status_code == 401 and answer.json()["error"]["title"] == "Unauthorized"
    assert httpx.get(f"{keystone_nova.endpoint}/").json()["version"]["version"] == "2.104"  # needs no token


def test_a_region_without_nova_has_no_api(keystone: KeystoneServer, keystone_nova: NovaServer) -> None:
    assert nova_api("os", _keystone_auth(keystone), "Nowhere", "public") is None


# ---- the OpenStack collector with Nova in the catalog -----------------------------------------------------


@pytest.fixture
def tiny_on_compute_2(keystone_gnocchi: GnocchiServer) -> Iterator[str]:
    """One instance of flavor id "1" (m1.tiny in the samples) on compute-2, without vcpus/memory meters; removed
    afterwards (other tests expect an empty Gnocchi)."""
    instance_id = str(uuid.uuid4())
    instance = {
        "id": instance_id,
        "display_name": "tiny",
        "flavor_id": "1",
        "flavor_name": "m1.tiny",
        "host": "compute-2",
        "started_at": (datetime.now(UTC) - timedelta(days=3)).isoformat(),
        "metrics": {"cpu": {"archive_policy_name": "ceilometer-low-rate"}},
    }
    keystone_gnocchi.client.post("/v1/resource/instance", json=instance).raise_for_status()
    yield instance_id
    keystone_gnocchi.client.delete(f"/v1/resource/instance/{instance_id}").raise_for_status()


def test_the_collector_takes_flavors_capacity_and_clusters_from_nova(
    keystone: KeystoneServer, keystone_nova: NovaServer, tiny_on_compute_2: str
) -> None:
    config = parse_manager_config(
        "os",
        {
            "kind": "openstack",
            "auth_url": keystone.url,
            "password": ADMIN_PASSWORD,
            "project_name": "admin",
            "region": REGION,
            "host_clusters": {"vcenter-1": "configured"},  # the config still overrides
        },
    )
    assert isinstance(config, OpenStackConfig)

    items = {item.ref: item for item in GnocchiCollector("os", config).inventory().items}

    vm = items[ResourceRef("vm", tiny_on_compute_2)]
    assert (vm.vcpus, vm.memory_bytes) == (1, 512 * MIB)  # flavors-detail-resp.json: "1" is 1 vCPU, 512 MiB
    host = items[ResourceRef("host", "compute-2")]
    assert (host.vcpus, host.memory_bytes, host.parent) == (64, 524288 * MIB, ResourceRef("cluster", "london-az"))
    documented = items[ResourceRef("host", "host1")]  # v2.53 sample: node host2 of service host1
    assert (documented.vcpus, documented.memory_bytes) == (2, 8192 * MIB)
    vcenter = items[ResourceRef("host", "vcenter-1")]  # two nodes summed; its cluster from the config
    assert (vcenter.vcpus, vcenter.memory_bytes, vcenter.parent) == (
        48,
        196608 * MIB,
        ResourceRef("cluster", "configured"),
    )
    assert (items[ResourceRef("host", "ironic-1")].vcpus, items[ResourceRef("host", "ironic-1")].memory_bytes) == (
        None,
        None,
    )  # 0 reported: unknown, never a capacity of zero
