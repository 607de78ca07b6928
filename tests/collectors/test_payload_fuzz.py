"""Fuzz: documented Gnocchi and AWS answers, mutated structurally, into every pure parser.

Each answer starts from the tests' realistic payloads (the scenario of ceilometer_cloud.py as Gnocchi answers it,
aws_fixtures.py's EC2 and CloudWatch shapes); hypothesis then drops keys and list items, puts other JSON types,
extra nesting, lists for objects, non-finite, huge and negative numbers and wrong timestamps in their place, and
truncates lists. Whatever it makes, a parser gives a valid result (every sample finite or NaN, never a negative
rate; allocations the resources table holds) or one of cloudmeter's own errors, short and naming the place;
never another exception nor a numpy warning. ``CLOUDMETER_FUZZ_EXAMPLES`` (default 200) sets the examples per
parser.
"""

from __future__ import annotations

import copy
import json
import math
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudmeter.collectors.aws.inventory import InstanceType, build_inventory, parse_instance_types, parse_instances
from cloudmeter.collectors.aws.parse import Datapoints, memory_dimensions, plan_requests
from cloudmeter.collectors.openstack import GnocchiCollector, OpenStackConfig
from cloudmeter.collectors.openstack.api import GnocchiAPI
from cloudmeter.collectors.openstack.inventory import (
    Revision,
    Topology,
    allocation,
    infrastructure,
    last_reading,
    revisions,
    vm_items,
)
from cloudmeter.collectors.openstack.parse import (
    Flavor,
    Flavors,
    Polling,
    layout,
    parse_measures,
    readings,
    resource_ids,
)
from cloudmeter.collectors.openstack.policy import archive_policies, metric_policies
from cloudmeter.errors import BadPayload, CloudmeterError
from cloudmeter.model import KINDS, METRICS, InventoryItem, Placement, ResourceRef, SampleBatch, Window, epoch_s
from tests.collectors import aws_fixtures as aws
from tests.collectors import ceilometer_cloud as cloud

_T = TypeVar("_T")
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # numpy's overflow and invalid-value warnings
FUZZ = settings(max_examples=int(os.environ.get("CLOUDMETER_FUZZ_EXAMPLES", "200")), deadline=None, derandomize=True)

# ---- mutations -------------------------------------------------------------------------------------------

Path = tuple[str | int, ...]
EXTREMES = (math.nan, math.inf, -math.inf, 1e308, -1e308, 10**400, -(10**400), 2**63, 0, -1, -5e12, 5e-324)
BAD_TIMES = (
    "",
    "x",
    "yesterday",
    "1772323200",
    "2026-13-01T00:00:00+00:00",
    "2026-03-01T25:00:00Z",
    "2026-03-01T00:00:00",  # no time zone
    "2026-03-01",
    "0001-01-01T00:00:00+05:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-05:00",  # after year 9999 in UTC
)
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.sampled_from(EXTREMES),
    st.text(max_size=8),
    st.sampled_from(BAD_TIMES),
    st.just([]),
    st.just({}),
)
#: Datetimes (botocore hands them over): naive, and at the ends of what a datetime holds.
ODD_TIMES = (
    datetime(2026, 3, 1),
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
    datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),
)
BOTO_VALUES = st.one_of(JSON_VALUES, st.sampled_from((*ODD_TIMES, datetime(1970, 1, 1, tzinfo=UTC))))
#: "extreme" keeps the type: an extreme number for a number, a wrong timestamp for a string, an odd datetime.
MUTATIONS = (
    "drop",
    "replace",
    "in a list",
    "in an object",
    "object as list",
    "truncate",
    "negate",
    "extreme",
    "extreme",
)


def _nodes(doc: Any, path: Path = ()) -> Iterator[Path]:
    yield path
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _nodes(value, (*path, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _nodes(value, (*path, index))


def _extreme(node: Any, pick: int) -> Any:
    for kind, choices in ((int | float, EXTREMES), (str, BAD_TIMES), (datetime, ODD_TIMES)):
        if isinstance(node, kind) and not isinstance(node, bool):
            return choices[pick % len(choices)]
    return EXTREMES[pick % len(EXTREMES)]


def _mutate(doc: Any, path: Path, how: str, value: Any, cut: int, pick: int) -> None:
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    node = parent[path[-1]]
    if how == "drop":
        del parent[path[-1]]
    elif how == "in a list":
        parent[path[-1]] = [node]
    elif how == "in an object":
        parent[path[-1]] = {"value": node}
    elif how == "object as list" and isinstance(node, dict):
        parent[path[-1]] = list(node.values())
    elif how == "truncate" and isinstance(node, list):
        parent[path[-1]] = node[: cut % (len(node) + 1)]
    elif how == "negate" and isinstance(node, int | float) and not isinstance(node, bool):
        parent[path[-1]] = -node * 10**cut
    elif how == "extreme":
        parent[path[-1]] = _extreme(node, pick)
    else:
        parent[path[-1]] = value


@st.composite
def mutated(draw: st.DrawFn, seed: Any, values: st.SearchStrategy[Any], fixed: int = 1) -> Any:
    """``seed`` with one to three mutations; the root and containers shallower than ``fixed`` (what the caller
    guarantees: the list a parser is given, the JSON object a response is) are only truncated if lists."""
    doc = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_nodes(doc))))
        cut = draw(st.integers(0, 5))
        if len(path) < max(fixed, 1):
            container = doc if not path else doc[path[0]]
            if isinstance(container, list):
                del container[cut % (len(container) + 1) :]
            continue
        _mutate(doc, path, draw(st.sampled_from(MUTATIONS)), draw(values), cut, draw(st.integers(0, 99)))
    return doc


def parsed(parse: Callable[[], _T]) -> _T | None:
    """What ``parse()`` returns, or None when it refuses with one of cloudmeter's errors (its message short)."""
    try:
        return parse()
    except CloudmeterError as error:
        assert 0 < len(str(error)) <= 300, str(error)
        return None


# ---- what a valid result is ------------------------------------------------------------------------------


def check_batch(batch: SampleBatch, refs: tuple[ResourceRef, ...], window: Window) -> None:
    assert isinstance(batch, SampleBatch) and set(batch.refs) <= set(refs)
    assert not np.isinf(batch.values).any(), "an infinite sample"
    assert ((batch.resource_idx >= 0) & (batch.resource_idx < len(batch.refs))).all()
    assert ((batch.ts_s >= window.start_s) & (batch.ts_s < window.end_s)).all()
    keys = batch.resource_idx.astype(np.int64) * 2**40 + batch.ts_s
    assert len(np.unique(keys)) == len(keys), "a (resource, ts) twice"


def check_item(item: InventoryItem) -> None:
    assert item.ref.kind in KINDS and isinstance(item.ref.ems_ref, str) and isinstance(item.name, str)
    assert item.parent is None or isinstance(item.parent.ems_ref, str)
    placements: list[InventoryItem | Placement] = [item, *item.history]
    for placement in placements:
        vcpus, memory = placement.vcpus, placement.memory_bytes
        assert vcpus is None or (type(vcpus) is int and 1 <= vcpus < 2**31), vcpus
        assert memory is None or (type(memory) is int and 1 <= memory < 2**63), memory
        assert placement.project is None or isinstance(placement.project, str)
    assert all(isinstance(key, str) and isinstance(value, str) for key, value in item.tags.items())
    moments = (item.created_at, item.retired_at, *(placement.valid_from for placement in item.history))
    assert all(moment is None or moment.utcoffset() == timedelta(0) for moment in moments)


# ---- Gnocchi: the scenario of ceilometer_cloud.py as Gnocchi's searches and /v1/aggregates answer it --------

GNOCCHI_WINDOW = Window(cloud.at(10), cloud.at(18))  # a counter restart, the end of a gap, a deletion
METRIC_IDS: dict[tuple[str, str], str] = {}


def _metric(resource_id: str, meter: str) -> str:
    return METRIC_IDS.setdefault((resource_id, meter), str(uuid.uuid5(uuid.NAMESPACE_URL, f"{resource_id}/{meter}")))


def _meters(vm: cloud.VM) -> list[str]:
    return ["cpu", *(["memory.usage"] if vm.memory_mib else []), *(["vcpus", "memory"] if vm.allocation_meters else [])]


def _instance(vm: cloud.VM, host: str, since: datetime, ended: datetime | None) -> dict[str, Any]:
    """One instance revision as Gnocchi 4.7 answers a resource search (Ceilometer's attributes)."""
    return {
        "id": vm.id,
        "type": "instance",
        "original_resource_id": vm.id,
        "creator": "admin",
        "created_by_user_id": "admin",
        "created_by_project_id": "",
        "user_id": None,
        "project_id": vm.project,
        "started_at": cloud.T0.isoformat(),
        "ended_at": ended.isoformat() if ended else None,
        "revision_start": since.isoformat(),
        "revision_end": None,
        "display_name": vm.name,
        "flavor_id": f"id-{vm.flavor}",
        "flavor_name": vm.flavor,
        "host": host,
        "image_ref": None,
        "server_group": None,
        "availability_zone": vm.availability_zone,
        "launched_at": None,
        "created_at": None,
        "deleted_at": None,
        "metrics": {meter: _metric(vm.id, meter) for meter in _meters(vm)},
    }


def _history(vm: cloud.VM) -> list[dict[str, Any]]:
    if vm.moved_to:
        return [_instance(vm, vm.host, cloud.T0, None), _instance(vm, vm.moved_to, cloud.MIGRATED_AT, None)]
    if vm.ended_at:
        return [_instance(vm, vm.host, cloud.T0, None), _instance(vm, vm.host, vm.ended_at, vm.ended_at)]
    return [_instance(vm, vm.host, cloud.T0, None)]


def _device(vm: cloud.VM, device: cloud.Device) -> dict[str, Any]:
    device_id = f"{vm.id}-{device.name}"
    return {
        "id": device_id,
        "type": device.kind,
        "original_resource_id": device_id,
        "started_at": cloud.at(device.first_k).isoformat(),
        "ended_at": None,
        "revision_start": cloud.at(device.first_k).isoformat(),
        "revision_end": None,
        "name": device.name,
        "instance_id": vm.id,
        "metrics": {meter: _metric(device_id, meter) for meter in device.meters},
    }


SEARCHES: dict[str, list[dict[str, Any]]] = {
    "instance": [_history(vm)[-1] for vm in cloud.VMS],
    "instance_disk": [_device(vm, d) for vm in cloud.VMS for d in vm.devices if d.kind == "instance_disk"],
    "instance_network_interface": [
        _device(vm, d) for vm in cloud.VMS for d in vm.devices if d.kind == "instance_network_interface"
    ],
}
HISTORY = [revision for vm in cloud.VMS for revision in _history(vm)]


def _readings(vm: cloud.VM) -> dict[str, list[tuple[int, float]]]:
    """Each metric's readings of ``vm`` (k from 9, the one before the window) by metric id, from the rules."""
    ks = [k for k in vm.readings if 9 <= k < 18]
    cpu = dict(zip(vm.readings, cloud.cpu_counter(vm), strict=True))
    series = {_metric(vm.id, "cpu"): [(k, cpu[k]) for k in ks]}
    if vm.memory_mib:
        series[_metric(vm.id, "memory.usage")] = [(k, vm.memory_mib(k)) for k in ks]
    if vm.allocation_meters:
        series[_metric(vm.id, "vcpus")] = [(k, vm.allocation_meters[0]) for k in ks]
        series[_metric(vm.id, "memory")] = [(k, vm.allocation_meters[1]) for k in ks]
    for device in vm.devices:
        for meter, growth in zip(device.meters, device.growth, strict=True):
            first = device.first_k
            series[_metric(f"{vm.id}-{device.name}", meter)] = [
                (k, 1e9 + growth * (k - first)) for k in ks if k >= first
            ]
    return series


AGGREGATES = {
    "measures": {
        metric_id: {"mean": [[cloud.at(k).isoformat(), 300.0, value] for k, value in points]}
        for vm in cloud.VMS
        for metric_id, points in _readings(vm).items()
    }
}
# GET /v1/archive_policy and GET /v1/metric as Gnocchi 4.7.1 answers them (Ceilometer's ceilometer-high)
HIGH = {
    "name": "ceilometer-high",
    "back_window": 0,
    "definition": [
        {"timespan": "1:00:00", "granularity": "0:00:01", "points": 3600},
        {"timespan": "1 day, 0:00:00", "granularity": "0:01:00", "points": 1440},
        {"timespan": "365 days, 0:00:00", "granularity": "1:00:00", "points": 8760},
    ],
    "aggregation_methods": ["mean"],
}
LOW = {**HIGH, "name": "ceilometer-low", "definition": [{"granularity": "0:05:00", "points": 8640}]}
POLICIES = [HIGH, LOW]
METRIC_LIST = [
    {"id": str(uuid.uuid4()), "name": "cpu", "unit": None, "resource_id": cloud.WEB.id, "archive_policy": HIGH},
    {"id": str(uuid.uuid4()), "name": "vcpus", "archive_policy_name": "ceilometer-low"},
]
GNOCCHI_FLAVORS = Flavors(by_name={name: Flavor(**fields) for name, fields in cloud.FLAVORS.items()})
GNOCCHI_LAYOUT = layout(
    SEARCHES["instance"],
    {kind: SEARCHES[kind] for kind in ("instance_disk", "instance_network_interface")},
    GNOCCHI_FLAVORS,
)


def gnocchi_api(answer: Callable[[httpx.Request], Any]) -> GnocchiAPI:
    """A GnocchiAPI whose server answers ``answer(request)`` as JSON (NaN and Infinity as Python writes them)."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.dumps(answer(request)).encode()
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    return GnocchiAPI("fuzz", httpx.Client(base_url="http://gnocchi.test", transport=httpx.MockTransport(handle)))


@FUZZ
@given(mutated(SEARCHES, JSON_VALUES, fixed=2))
def test_gnocchi_resource_searches(answers: dict[str, list[Any]]) -> None:
    ids = parsed(lambda: resource_ids(answers["instance"], "instance"))
    found = parsed(
        lambda: layout(
            answers["instance"], {kind: answers[kind] for kind in SEARCHES if kind != "instance"}, GNOCCHI_FLAVORS
        )
    )
    if found is None or ids is None:
        return
    assert [ref.ems_ref for ref in found.refs] == ids and len(found.flavors) == len(ids)
    assert all(isinstance(m.metric_id, str) and 0 <= m.vm < len(ids) for m in found.metrics)


@FUZZ
@given(mutated({"instance": SEARCHES["instance"], "history": HISTORY}, JSON_VALUES, fixed=2))
def test_gnocchi_instance_history(answers: dict[str, list[Any]]) -> None:
    instances, history = answers["instance"], answers["history"]
    topology = Topology(ResourceRef("provider", "os"), ResourceRef("region", "r"), cloud.HOST_CLUSTERS)

    def parse() -> list[InventoryItem]:
        by_instance = revisions(instances, history)
        found = {
            (r.instance_id, r.start): allocation(r, GNOCCHI_FLAVORS, 2.0, 2048.0)
            for listed in by_instance.values()
            for r in listed
        }
        return vm_items(by_instance, found)

    vms = parsed(parse)
    if vms is None:
        return
    assert len(vms) == len(instances)
    for item in [*vms, *(parsed(lambda: infrastructure(vms, history, topology)) or [])]:
        check_item(item)


GNOCCHI_REVISION = Revision(cloud.T0, cloud.DELETED_AT, cloud.WEB.id, {})


@FUZZ
@given(mutated(AGGREGATES, JSON_VALUES, fixed=0))
def test_gnocchi_aggregates(body: dict[str, Any]) -> None:
    api = gnocchi_api(lambda _: body)

    def parse() -> tuple[SampleBatch, list[float]]:
        measures = api.measures([m.metric_id for m in GNOCCHI_LAYOUT.metrics], cloud.at(9), cloud.at(18), 300)
        batch = parse_measures(GNOCCHI_LAYOUT, measures, GNOCCHI_WINDOW, Polling(300))
        found = [readings(measures, m.metric_id) for m in GNOCCHI_LAYOUT.metrics]  # as inventory reads allocations
        return batch, [last_reading(ts, values, 300, GNOCCHI_REVISION, 2**31 - 1) for ts, values in found]

    found = parsed(parse)
    if found is None:
        return
    batch, allocations = found
    check_batch(batch, tuple(GNOCCHI_LAYOUT.refs), GNOCCHI_WINDOW)
    counted = [METRICS.index(name) for name in METRICS if name.endswith("_bps") or name.startswith("cpu_")]
    assert not (batch.values[:, counted] < 0).any(), "a negative rate from counters"
    known = [a for a in allocations if not math.isnan(a)]
    assert all(1 <= a <= 2**31 - 1 and a == round(a) for a in known)


@FUZZ
@given(mutated({"policies": POLICIES, "metrics": METRIC_LIST}, JSON_VALUES, fixed=2))
def test_gnocchi_archive_policies(answers: dict[str, Any]) -> None:
    policies = parsed(lambda: archive_policies(answers["policies"]))
    for policy in (policies or {}).values():
        assert policy.keeps and all(k.granularity_s >= 1 and k.points >= 1 for k in policy.keeps)
    named = parsed(lambda: metric_policies(answers["metrics"], "/v1/metric"))
    assert named is None or all(isinstance(v, str) and v for v in named.values())


# ---- AWS: aws_fixtures' documented shapes ----------------------------------------------------------------

AWS_NOW = datetime(2026, 3, 1, tzinfo=UTC)
LAUNCHED = AWS_NOW - timedelta(days=30)
FLEET = aws.reservations(
    [
        aws.instance("i-1", launched=LAUNCHED, tags={"Name": "web", "team": "a"}),
        aws.instance("i-2", "t3.micro", launched=LAUNCHED, detailed=False, root_attached=LAUNCHED - timedelta(days=9)),
        aws.instance("i-3", launched=LAUNCHED, state="stopped", reason="User initiated (2026-02-20 10:11:12 GMT)"),
        aws.instance("i-4", "c5.xlarge", launched=LAUNCHED, host_id="h-0abc", zone="us-east-1b"),
    ]
)["Reservations"]
TYPES = aws.instance_types(aws.TYPES)["InstanceTypes"]
AGENT_METRICS = [
    aws.agent_metric(InstanceId="i-1", ImageId="ami-1", InstanceType="m5.large"),
    aws.agent_metric(InstanceId="i-1", ImageId="ami-1"),
    aws.agent_metric(AutoScalingGroupName="web"),
]
IDS = ["i-1", "i-2"]
REQUEST = plan_requests(IDS, aws.by_instance(IDS[:1]), 60)[0]
T0 = epoch_s(AWS_NOW)
RESULTS = [
    aws.result(query["Id"], [(T0 + 60 * k, 10.0 * (k + 1) + n) for k in range(3)])
    for n, query in enumerate(REQUEST.queries)
]
AWS_WINDOW = Window(AWS_NOW, AWS_NOW + timedelta(minutes=3))


@FUZZ
@given(mutated(FLEET, BOTO_VALUES))
def test_describe_instances(reservations: list[Any]) -> None:
    instances = parsed(lambda: parse_instances(reservations))
    if instances is None:
        return
    types = {"m5.large": InstanceType(2, 8 << 30), "t3.micro": InstanceType(2, 1 << 30)}
    for item in build_inventory("lab", "us-east-1", "team", instances, types, AWS_NOW).items:
        check_item(item)


@FUZZ
@given(mutated(TYPES, BOTO_VALUES))
def test_describe_instance_types(infos: list[Any]) -> None:
    for name, kind in (parsed(lambda: parse_instance_types(infos)) or {}).items():
        assert isinstance(name, str) and 1 <= kind.vcpus < 2**31 and 1 <= kind.memory_bytes < 2**63


@FUZZ
@given(mutated(AGENT_METRICS, BOTO_VALUES))
def test_list_metrics(metrics: list[Any]) -> None:
    for instance, dimensions in (parsed(lambda: memory_dimensions(metrics)) or {}).items():
        assert {"Name": "InstanceId", "Value": instance} in dimensions
        assert all(isinstance(d["Name"], str) and isinstance(d["Value"], str) for d in dimensions)


@FUZZ
@given(mutated(RESULTS, BOTO_VALUES), st.integers(0, len(RESULTS)))
def test_get_metric_data(results: list[Any], split: int) -> None:
    def add() -> Datapoints:
        points = Datapoints(REQUEST)
        points.add(results[:split])  # two pages
        points.add(results[split:])
        return points

    points = parsed(add)
    if points is None:
        return
    refs = tuple(ResourceRef("vm", iid) for iid in IDS)
    batch = points.batch(
        refs, np.array([2.0, 2.0]), np.array([8.0, 1.0]) * 2**30, 60, AWS_WINDOW.start_s, AWS_WINDOW.end_s
    )
    check_batch(batch, refs, AWS_WINDOW)


# ---- end to end: a non-finite reading is NULL, a malformed answer BadPayload -------------------------------


def _collector(answers: dict[str, Any]) -> GnocchiCollector:
    """A collector whose Gnocchi answers searches (by resource type, with history) and /v1/aggregates."""

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        key = "aggregates" if path == "/v1/aggregates" else path.rsplit("/", 1)[1]
        if request.url.params.get("history") == "true":
            key = "history"
        if path.startswith("/v1/metric"):  # every metric on the policy the scenario's Gnocchi gives them all
            answer: Any = [{"id": metric_id, "archive_policy": LOW} for metric_id in METRIC_IDS.values()]
            answer = answer if path == "/v1/metric" else {"id": key, "archive_policy": LOW}
        else:
            answer = [LOW] if path == "/v1/archive_policy" else answers[key]
        body = json.dumps(answer).encode()  # NaN and Infinity as Python (so Gnocchi) writes them
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    config = OpenStackConfig(auth_mode="basic", gnocchi_url="http://gnocchi.test", flavors=cloud.FLAVORS)
    return GnocchiCollector("os", config, transport=httpx.MockTransport(handle))


def test_infinity_from_gnocchi_is_null() -> None:
    answers: dict[str, Any] = {**SEARCHES, "history": HISTORY, "aggregates": copy.deepcopy(AGGREGATES)}
    measures = answers["aggregates"]["measures"]
    measures[_metric(cloud.WEB.id, "memory.usage")]["mean"][5][2] = math.inf  # k = 14
    measures[_metric(cloud.WEB.id, "cpu")]["mean"][6][2] = math.inf  # k = 15: its rate and the next one's

    batches = list(_collector(answers).capture(GNOCCHI_WINDOW))

    row: dict[int, dict[str, float]] = {}
    for batch in batches:
        assert not np.isinf(batch.values).any()
        for idx, ts, values in zip(batch.resource_idx, batch.ts_s, batch.values, strict=True):
            if batch.refs[idx] == ResourceRef("vm", cloud.WEB.id):
                row[(int(ts) - int(cloud.T0.timestamp())) // cloud.STEP_S] = dict(zip(METRICS, values, strict=True))
    assert math.isnan(row[14]["mem_used_bytes"]) and math.isnan(row[14]["mem_usage_pct"])
    assert math.isnan(row[15]["cpu_used_cores"]) and math.isnan(row[16]["cpu_used_cores"])
    assert row[17]["cpu_used_cores"] == pytest.approx(cloud.WEB.cores(17))
    assert row[15]["mem_used_bytes"] == (512 + 8 * 15) * 2**20  # its neighbours are untouched (ceilometer_cloud)


def test_a_malformed_gnocchi_answer_is_bad_payload() -> None:
    answers: dict[str, Any] = {**copy.deepcopy(SEARCHES), "history": copy.deepcopy(HISTORY), "aggregates": AGGREGATES}
    answers["history"][0]["started_at"] = "yesterday"
    with pytest.raises(BadPayload) as caught:
        _collector(answers).inventory()
    assert str(caught.value) == (
        f"manager 'os': Gnocchi answered a malformed result: instance {cloud.WEB.id} started_at is 'yesterday', "
        "expected an ISO 8601 time with a time zone"
    )
    answers["instance_disk"][0]["metrics"] = ["not", "an", "object"]
    with pytest.raises(BadPayload, match=r"instance_disk \S+-vda metrics is \['not', 'an', 'object'\], expected an"):
        list(_collector(answers).capture(GNOCCHI_WINDOW))
