"""A small Nova compute API on loopback, since Nova itself is not installable here: the calls cloudmeter makes,
answered as Nova's API reference documents them and as its code behaves.

Bodies are nova's api samples (doc/api_samples of openstack/nova, copied verbatim into
tests/collectors/nova_payloads/; the tests check the views below reproduce them exactly):
flavors/flavors-detail-resp.json and v2.75/; os-hypervisors/hypervisors-detail-resp.json and its v2.33, v2.53
and v2.88 variants; os-aggregates/aggregates-list-get-resp.json and v2.41/; versions/v21-version-get-resp.json.
Behaviour follows nova/api/openstack/ (compute/flavors.py, hypervisors.py, aggregates.py, common.py, wsgi.py):

- microversions from ``OpenStack-API-Version: compute X`` (or ``X-OpenStack-Nova-API-Version``), ``latest``,
  by default 2.1; 400 if malformed, 406 outside ``[min_version, max_version]``; the one served is echoed.
  Hypervisors: ``cpu_info`` an object since 2.28, paging since 2.33, uuids for ids since 2.53, and since 2.88
  no vcpus, memory_mb and the other usage fields (``uptime`` instead). Aggregates: ``uuid`` since 2.41.
  Flavors: ``description`` since 2.55, ``extra_specs`` since 2.61, ``swap`` 0 rather than "" since 2.75.
- paging by ``limit`` (at most ``max_limit``) and ``marker`` (400 if unknown), with a ``<collection>_links``
  next link whenever a page is full; flavors in flavorid order (as strings), hypervisors in id order.
- ``X-Auth-Token`` checked against a real Keystone (tests/keystone_server.py) when given one, else against
  ``NovaCloud.tokens``; 401 otherwise. Nova's default policy: os-hypervisors and os-aggregates need the admin
  role (403 ``forbidden``); ``is_public`` is honoured for admins only (others see public, enabled flavors).

Content is records in the shape of the richest view before 2.88 (a flavor of v2.75 without links, a
hypervisor of v2.53 plus its pre-2.53 integer ids ``legacy_id``/``legacy_service_id`` and ``uptime``, an
aggregate of v2.41). Run as ``python -m tests.nova_server CONFIG.json`` (prints ``READY <port>``, exits when
stdin closes), or from a fixture with ``running(work, cloud, ...)``; the catalog's ``compute`` service names
``NovaServer.endpoint``.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests import loopback

ROOT = Path(__file__).resolve().parents[1]
PAYLOADS = ROOT / "tests" / "collectors" / "nova_payloads"
ADMIN_TOKEN, MEMBER_TOKEN = "nova-admin-token", "nova-member-token"
Version = tuple[int, int]
Record = dict[str, Any]
_VERSION = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")  # nova/api/openstack/api_version_request.py
#: The fields 2.88 removed from hypervisor views.
USAGE = {"vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used", "local_gb_used", "free_ram_mb"}
USAGE |= {"free_disk_gb", "current_workload", "running_vms", "disk_available_least", "cpu_info"}


@dataclass(frozen=True)
class NovaCloud:
    """What the fake serves; ``tokens`` (token -> role names) authenticate when no Keystone is given."""

    flavors: list[Record] = field(default_factory=list)
    nodes: list[Record] = field(default_factory=list)
    aggregates: list[Record] = field(default_factory=list)
    min_version: str = "2.1"
    max_version: str = "2.104"
    max_limit: int = 1000
    tokens: dict[str, list[str]] = field(
        default_factory=lambda: {ADMIN_TOKEN: ["admin", "member", "reader"], MEMBER_TOKEN: ["member", "reader"]}
    )


def version(text: str) -> Version:
    """``"2.87"`` as ``(2, 87)``; ValueError if malformed."""
    found = _VERSION.match(text)
    if found is None:
        raise ValueError(text)
    return int(found[1]), int(found[2])


def sample(name: str) -> Any:
    """One of the api samples, e.g. ``flavors/v2.75/flavors-detail-resp.json``."""
    return json.loads((PAYLOADS / name).read_text())


def node(like: Record, legacy_id: int, hostname: str, host: str, vcpus: int, memory_mb: int, **more: Any) -> Record:
    """A hypervisor record like ``like``, with its names, ids and capacity (nothing used)."""
    service = {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, host)), "host": host, "disabled_reason": None}
    usage = {"vcpus": vcpus, "memory_mb": memory_mb, "memory_mb_used": 0, "free_ram_mb": memory_mb}
    ids = {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, hostname)), "legacy_id": legacy_id, "legacy_service_id": 100}
    return {**like, **ids, "hypervisor_hostname": hostname, "service": service, **usage, **more}


def sample_cloud() -> NovaCloud:
    """A small cloud from the api samples, with what they lack added:

    - flavors: the seven of flavors/v2.75/flavors-detail-resp.json and the private ``test_flavor`` (id "10")
      of flavor-access/flavor-create-req.json;
    - hypervisors: the node ``host2`` of service host ``host1`` of os-hypervisors/v2.53/hypervisors-detail-resp
      .json; ``compute-2.example.org`` of host ``compute-2``; an Ironic node reporting 0 vcpus and memory; two
      vCenter cluster nodes under the one service host ``vcenter-1``;
    - aggregates: the zone ``london`` of os-aggregates/v2.41/aggregates-list-get-resp.json (named ``london-az``,
      hosts host1 and compute-2), and zoneless ``gpu`` (compute-2), ``baremetal`` (ironic-1, vcenter-1) and
      ``a-vmware`` (vcenter-1).
    """
    documented_flavors, private = (
        sample(f"{name}.json") for name in ("flavors/v2.75/flavors-detail-resp", "flavor-access/flavor-create-req")
    )
    flavors = [{key: value for key, value in f.items() if key != "links"} for f in documented_flavors["flavors"]]
    flavors.append({**flavors[0], "description": None, "extra_specs": {}, **private["flavor"]})
    documented = sample("os-hypervisors/v2.53/hypervisors-detail-resp.json")["hypervisors"][0]
    vmware = {"hypervisor_type": "VMware vCenter Server", "host_ip": "10.0.0.30"}
    nodes = [
        {**documented, "legacy_id": 1, "legacy_service_id": 6, "uptime": None},
        node(documented, 2, "compute-2.example.org", "compute-2", 64, 524288, hypervisor_type="QEMU"),
        node(documented, 3, "bm-node-1", "ironic-1", 0, 0, hypervisor_type="ironic"),
        node(documented, 4, "domain-c7.22d3fe0a-6ebd-4b4c-8b2f-0f8e2b7c1d56", "vcenter-1", 32, 131072, **vmware),
        node(documented, 5, "domain-c8.22d3fe0a-6ebd-4b4c-8b2f-0f8e2b7c1d56", "vcenter-1", 16, 65536, **vmware),
    ]
    zone = sample("os-aggregates/v2.41/aggregates-list-get-resp.json")["aggregates"][0]
    aggregates = [{**zone, "name": "london-az", "hosts": ["host1", "compute-2"]}]
    zoneless = {"gpu": ["compute-2"], "baremetal": ["ironic-1", "vcenter-1"], "a-vmware": ["vcenter-1"]}
    for k, (name, hosts) in enumerate(zoneless.items(), start=2):
        made = {"id": k, "uuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), "name": name, "hosts": hosts}
        aggregates.append({**zone, **made, "availability_zone": None, "metadata": {}})
    return NovaCloud(flavors, nodes, aggregates)


# ---- views, as Nova's view builders make them ----------------------------------------------------------------


def flavor_view(flavor: Record, mv: Version, app_url: str, project: str = "") -> Record:
    """One flavor of ``GET /flavors/detail`` (compute/views/flavors.py ``show``)."""
    path = "/".join(part for part in (project, "flavors", flavor["id"]) if part)
    bookmark = f"{app_url.rsplit('/', 1)[0]}/{path}"
    view = {
        **copy.deepcopy(flavor),
        "links": [{"href": f"{app_url}/{path}", "rel": "self"}, {"href": bookmark, "rel": "bookmark"}],
    }
    if mv < (2, 75):
        view["swap"] = view["swap"] or ""
    for key, since in (("description", (2, 55)), ("extra_specs", (2, 61))):
        if mv < since:
            del view[key]
    if mv >= (2, 102):
        del view["OS-FLV-DISABLED:disabled"], view["rxtx_factor"]
    return view


def hypervisor_view(record: Record, mv: Version) -> Record:
    """One hypervisor of ``GET /os-hypervisors/detail`` (compute/hypervisors.py ``_view_hypervisor``)."""
    view = copy.deepcopy(record)
    legacy_id, legacy_service_id, uptime = (
        view.pop("legacy_id"),
        view.pop("legacy_service_id"),
        view.pop("uptime", None),
    )
    if mv < (2, 53):
        view["id"], view["service"]["id"] = legacy_id, legacy_service_id
    if mv < (2, 28):
        view["cpu_info"] = json.dumps(view["cpu_info"])
    if mv >= (2, 88):
        view = {key: value for key, value in view.items() if key not in USAGE} | {"uptime": uptime}
    return view


def aggregate_view(record: Record, mv: Version) -> Record:
    """One aggregate of ``GET /os-aggregates`` (compute/aggregates.py ``_build_aggregate_items``)."""
    return {key: value for key, value in record.items() if key != "uuid" or mv >= (2, 41)}


def next_links(app_url: str, collection: str, params: dict[str, str], page: list[Any], limit: int) -> list[Any]:
    """A next link when the page is full (common.py ``_get_collection_links`` and ``_get_next_link``)."""
    if not limit or len(page) != limit:
        return []
    query = dict(sorted(params.items())) | {"marker": str(page[-1]["id"])}
    return [{"href": f"{app_url}/{collection}?{urlencode(query)}", "rel": "next"}]


# ---- the server ---------------------------------------------------------------------------------------------

_FAULTS = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound"}
_TRUTH = dict.fromkeys(("1", "t", "true", "on", "y", "yes"), True) | dict.fromkeys(
    ("0", "f", "false", "off", "n", "no"), False
)
_FLAVOR_PARAMS = {"limit", "marker", "is_public", "minRam", "minDisk", "sort_key", "sort_dir"}
_HYPERVISOR_PARAMS = {"limit", "marker", "hypervisor_hostname_pattern", "with_servers"}


class Refused(Exception):
    """An error answer (wsgi.py ``Fault``): its status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Keystone:
    """Validates tokens against a real Keystone with an admin token; caches each token's roles."""

    def __init__(self, url: str, password: str) -> None:
        import httpx

        self.url, self.password, self._client = url, password, httpx.Client(timeout=30)
        self._service_token = ""
        self._roles: dict[str, list[str] | None] = {}
        self._lock = threading.Lock()

    def _login(self) -> str:
        user = {"name": "admin", "domain": {"name": "Default"}, "password": self.password}
        scope = {"project": {"name": "admin", "domain": {"name": "Default"}}}
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": user}}, "scope": scope}}
        response = self._client.post(f"{self.url}/auth/tokens", json=body)
        response.raise_for_status()
        return response.headers["X-Subject-Token"]

    def roles(self, token: str) -> list[str] | None:
        """The role names of ``token``; None if Keystone does not know it (or it expired)."""
        with self._lock:
            if token not in self._roles:
                for _ in range(2):  # once more with a new service token if that one expired
                    self._service_token = self._service_token or self._login()
                    headers = {"X-Auth-Token": self._service_token, "X-Subject-Token": token}
                    response = self._client.get(f"{self.url}/auth/tokens", headers=headers)
                    if response.status_code != 401:
                        break
                    self._service_token = ""
                found = response.json()["token"]["roles"] if response.status_code == 200 else None
                self._roles[token] = None if found is None else [role["name"] for role in found]
            return self._roles[token]


class Nova(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cloud: NovaCloud, keystone: _Keystone | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.cloud, self.keystone = cloud, keystone

    def roles(self, token: str) -> list[str] | None:
        return self.keystone.roles(token) if self.keystone else self.cloud.tokens.get(token)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Nova

    def do_GET(self) -> None:
        cloud, url = self.server.cloud, urlsplit(self.path)
        app_url = f"http://{self.headers.get('Host', '127.0.0.1')}/v2.1"
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        path = url.path.removeprefix("/v2.1").rstrip("/") or "/"
        mv: Version | None = None
        try:
            if path == "/":  # the version document needs no token (api-paste.ini routes /v2.1 so)
                document = sample("versions/v21-version-get-resp.json")["version"]
                document |= {"version": cloud.max_version, "min_version": cloud.min_version}
                document["links"][0]["href"] = f"{app_url}/"
                return self._answer(200, {"version": document})
            roles = self.server.roles(self.headers.get("X-Auth-Token", ""))
            if roles is None:
                message = "The request you have made requires authentication."
                challenge = {"WWW-Authenticate": f'Keystone uri="{getattr(self.server.keystone, "url", "")}"'}
                body = {"error": {"code": 401, "title": "Unauthorized", "message": message}}
                return self._answer(401, body, headers=challenge)
            mv = self._microversion()
            self._answer(200, self._route(path, params, mv, "admin" in roles, app_url), mv)
        except Refused as refused:
            body = {_FAULTS.get(refused.status, "computeFault"): {"code": refused.status, "message": str(refused)}}
            self._answer(refused.status, body, mv)
        except Exception as exc:  # nova/api/openstack/__init__.py FaultWrapper: a bug is a 500, not a hang-up
            self.log_error("unexpected %r", exc)
            body = {"computeFault": {"code": 500, "message": "Unexpected API Error. Please report this."}}
            self._answer(500, body, mv)

    def _microversion(self) -> Version:
        """wsgi.py ``set_api_version_request``."""
        cloud = self.server.cloud
        entries = [e.strip().partition(" ") for e in self.headers.get("OpenStack-API-Version", "").split(",")]
        asked = next((v.strip() for service, _, v in entries if service.lower() == "compute"), None)
        asked = asked or self.headers.get("X-OpenStack-Nova-API-Version")
        lowest, highest = version(cloud.min_version), version(cloud.max_version)
        if asked is None or asked == "latest":
            return highest if asked else lowest
        try:
            wanted = version(asked)
        except ValueError:
            message = f"API Version String {asked} is of invalid format. Must be of format MajorNum.MinorNum."
            raise Refused(400, message) from None
        if not lowest <= wanted <= highest:
            message = f"Version {asked} is not supported by the API. Minimum is {cloud.min_version} and maximum is "
            raise Refused(406, f"{message}{cloud.max_version}.")
        return wanted

    def _route(self, path: str, params: dict[str, str], mv: Version, admin: bool, app_url: str) -> Any:
        cloud = self.server.cloud
        if path == "/flavors/detail":
            _only(params, _FLAVOR_PARAMS if mv >= (2, 75) else None)
            flavors = sorted(_visible(cloud.flavors, params, admin), key=lambda f: str(f["id"]))
            page, limit = _paged(flavors, params, cloud.max_limit, lambda f: str(f["id"]))
            found = [flavor_view(f, mv, app_url) for f in page]
            return {"flavors": found} | _links(next_links(app_url, "flavors/detail", params, found, limit), "flavors")
        if path == "/os-hypervisors/detail":
            _require(admin, "os_compute_api:os-hypervisors:list-detail")
            _only(params, _HYPERVISOR_PARAMS if mv >= (2, 53) else None)
            nodes = [hypervisor_view(n, mv) for n in sorted(cloud.nodes, key=lambda n: int(n["legacy_id"]))]
            if mv < (2, 33):
                return {"hypervisors": nodes}
            page, limit = _paged(nodes, params, cloud.max_limit, lambda n: str(n["id"]))
            links = next_links(app_url, "os-hypervisors/detail", params, page, limit)
            return {"hypervisors": page} | _links(links, "hypervisors")
        if path == "/os-aggregates":
            _require(admin, "os_compute_api:os-aggregates:index")
            return {"aggregates": [aggregate_view(a, mv) for a in cloud.aggregates]}
        raise Refused(404, "The resource could not be found.")

    def _answer(self, status: int, body: Any, mv: Version | None = None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        served = (
            {}
            if mv is None
            else {
                "OpenStack-API-Version": f"compute {mv[0]}.{mv[1]}",
                "X-OpenStack-Nova-API-Version": f"{mv[0]}.{mv[1]}",
                "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
            }
        )
        for name, value in {
            "Content-Type": "application/json",
            "Content-Length": str(len(data)),
            **served,
            **(headers or {}),
        }.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _only(params: dict[str, str], allowed: set[str] | None) -> None:
    """The query schemas that refuse other parameters (flavors since 2.75, hypervisors since 2.53)."""
    unexpected = sorted(set(params) - allowed) if allowed is not None else []
    if unexpected:
        raise Refused(400, f"Invalid input for query parameters {unexpected[0]}. Additional properties are not allowed")


def _require(admin: bool, policy: str) -> None:
    if not admin:
        raise Refused(403, f"Policy doesn't allow {policy} to be performed.")


def _visible(flavors: list[Record], params: dict[str, str], admin: bool) -> list[Record]:
    """flavors.py ``_get_flavors``/``_parse_is_public``: admins filter by is_public (default true, "none": all)."""
    if not admin:
        return [f for f in flavors if f["os-flavor-access:is_public"] and not f["OS-FLV-DISABLED:disabled"]]
    wanted = params.get("is_public", "true").lower()
    if wanted == "none":
        return flavors
    if wanted not in _TRUTH:
        raise Refused(400, f"Invalid is_public filter [{params['is_public']}]")
    return [f for f in flavors if f["os-flavor-access:is_public"] == _TRUTH[wanted]]


def _paged(rows: list[Any], params: dict[str, str], max_limit: int, key: Callable[[Any], str]) -> tuple[list[Any], int]:
    """The page after ``marker`` of at most ``limit`` rows (common.py ``get_limit_and_marker``), and the limit."""
    text = params.get("limit", str(max_limit))
    if not text.isdigit():
        raise Refused(400, f"limit must be an integer >= 0, not {text!r}")
    limit, start = min(max_limit, int(text)), 0
    if "marker" in params:
        keys = [key(row) for row in rows]
        if params["marker"] not in keys:
            raise Refused(400, f"marker [{params['marker']}] not found")
        start = keys.index(params["marker"]) + 1
    return rows[start : start + limit], limit


def _links(links: list[Any], collection: str) -> Record:
    return {f"{collection}_links": links} if links else {}


# ---- running it ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NovaServer:
    """A running fake Nova: ``url`` its root, ``endpoint`` its compute API (what the catalog names)."""

    url: str

    @property
    def endpoint(self) -> str:
        return f"{self.url}/v2.1"


@contextmanager
def running(work: Path, cloud: NovaCloud, keystone_url: str | None = None, password: str = "") -> Iterator[NovaServer]:
    """The fake Nova serving ``cloud`` on a free loopback port (tokens checked by the Keystone at
    ``keystone_url`` as its ``admin`` with ``password``, else by ``cloud.tokens``); stopped on exit."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "nova.json"
    config.touch(mode=0o600)
    config.write_text(json.dumps({"cloud": asdict(cloud), "keystone": keystone_url, "password": password}))
    command = [sys.executable, "-m", "tests.nova_server", str(config)]
    with loopback.serving(command, work, "fake Nova", cwd=ROOT) as (_, port):
        yield NovaServer(f"http://127.0.0.1:{port}")


def _exit_when_stdin_closes() -> None:
    sys.stdin.read()
    os._exit(0)


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    keystone = _Keystone(config["keystone"], config["password"]) if config["keystone"] else None
    server = Nova(NovaCloud(**config["cloud"]), keystone)
    print(f"READY {server.server_address[1]}", flush=True)
    threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
