"""kube-state-metrics' and cAdvisor's series as cloudmeter's resources (pure: instant-query answers go in).

Topology: container -> pod -> node (kind ``host``) -> cluster -> provider (the manager) -> region, and each pod
and container in the project of its namespace (a ``project`` resource named after the namespace, with the
namespace's labels as tags). ems_refs: a node's name, a pod's uid, a container's ``<pod uid>/<name>`` (the pod
sandbox, which carries the pod's network, ``<pod uid>/POD``), the cluster's configured name.

Every series is read over the look-back window (``last_over_time(...[lookback])``), so pods that lived and went
inside it are listed. A pod's node is the ``node`` label of its cAdvisor series (found by the uid in their
``id``), else kube_pod_info's; a rescheduled pod is a new uid, so a new pod. A pod whose series (of
kube-state-metrics and cAdvisor) all ended more than ``GRACE_S`` before now was deleted: it is retired at its
last scrape. That is found exactly, and cheaply over a long look-back: a subquery stepping at Prometheus' default
lookback delta (``GRACE_S``: each sample is the newest one the first step after it sees) for what ended before its
last step, and the instant ``timestamp()`` for the samples after that. With a shorter ``--query.lookback-delta`` a
deleted pod's last scrape may be found up to ``GRACE_S`` early.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from cloudmeter.collectors.kubernetes.parse import SANDBOX, container_ref, uid_of
from cloudmeter.errors import PayloadError
from cloudmeter.model import Inventory, InventoryItem, Placement, Requests, ResourceRef, as_utc, from_epoch_s

#: Prometheus' own staleness (its default lookback delta): series silent this long are gone.
GRACE_S: Final = 300

#: cAdvisor's series that tell when a container (and a pod's sandbox, by its network) was last scraped.
_WORKING_SET: Final = 'container_memory_working_set_bytes{{{sel}container!="",container!="POD"}}'
_SANDBOX_NETWORK: Final = 'container_network_receive_bytes_total{{{sel}container=~"POD|",pod!=""}}'


def _seen(series: str) -> tuple[str, str]:
    """Per container of ``series`` (a template): its newest sample's time over the look-back, and now."""
    by = "max by (namespace, pod, container, id, node) "
    return f"{by}(max_over_time(timestamp({series})[{{lookback}}s:{GRACE_S}s]))", f"{by}(timestamp({series}))"


#: The instant queries of an inventory: name -> PromQL template (``{sel}``: the cluster's label matchers, each
#: followed by a comma; ``{lookback}`` in seconds). ``*_seen`` and ``*_seen_now``: the newest sample's time.
QUERIES: Final[dict[str, str]] = {
    "node_info": "last_over_time(kube_node_info{{{sel}}}[{lookback}s])",
    "node_labels": "last_over_time(kube_node_labels{{{sel}}}[{lookback}s])",
    "node_created": "last_over_time(kube_node_created{{{sel}}}[{lookback}s])",
    "capacity": 'last_over_time(kube_node_status_capacity{{{sel}resource=~"cpu|memory"}}[{lookback}s])',
    "allocatable": 'last_over_time(kube_node_status_allocatable{{{sel}resource=~"cpu|memory"}}[{lookback}s])',
    "namespaces": "last_over_time(kube_namespace_labels{{{sel}}}[{lookback}s])",
    "pod_info": "last_over_time(kube_pod_info{{{sel}}}[{lookback}s])",
    "pod_labels": "last_over_time(kube_pod_labels{{{sel}}}[{lookback}s])",
    "phase": "last_over_time(kube_pod_status_phase{{{sel}}}[{lookback}s]) == 1",
    "started": "last_over_time(kube_pod_start_time{{{sel}}}[{lookback}s])",
    "created": "last_over_time(kube_pod_created{{{sel}}}[{lookback}s])",
    "pod_seen": "max_over_time(timestamp(kube_pod_info{{{sel}}})[{lookback}s:" + f"{GRACE_S}s])",
    "pod_seen_now": "timestamp(kube_pod_info{{{sel}}})",
    "containers": "last_over_time(kube_pod_container_info{{{sel}}}[{lookback}s])",
    "requests": 'last_over_time(kube_pod_container_resource_requests{{{sel}resource=~"cpu|memory"}}[{lookback}s])',
    "limits": 'last_over_time(kube_pod_container_resource_limits{{{sel}resource=~"cpu|memory"}}[{lookback}s])',
    "cadvisor_seen": _seen(_WORKING_SET)[0],
    "cadvisor_seen_now": _seen(_WORKING_SET)[1],
    "network_seen": _seen(_SANDBOX_NETWORK)[0],
    "network_seen_now": _seen(_SANDBOX_NETWORK)[1],
}

Answers = Mapping[str, Sequence[Mapping[str, Any]]]


def _rows(answers: Answers, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of the vector answered to query ``name``."""
    found = []
    for k, element in enumerate(answers.get(name, ())):
        where = f"{name}[{k}]"
        metric = PayloadError.expect(element.get("metric"), dict, f"{where}.metric", "an object of labels")
        value = element.get("value")
        if not (isinstance(value, list) and len(value) == 2):
            raise PayloadError.unexpected(f"{where}.value", value, "[time, value]")
        try:
            number = float(value[1])
        except (TypeError, ValueError) as exc:
            raise PayloadError.unexpected(f"{where}.value", value, "[time, numeric string]") from exc
        found.append(({str(a): str(b) for a, b in metric.items()}, number))
    return found


def _label_tags(labels: Mapping[str, str]) -> dict[str, str]:
    """kube-state-metrics' ``label_<name>`` labels as tags named ``<name>``."""
    return {k.removeprefix("label_"): v for k, v in labels.items() if k.startswith("label_")}


def _number(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


@dataclass
class _Pod:
    uid: str
    namespace: str
    name: str
    node: str | None = None
    owner_kind: str = ""
    owner_name: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    started: float | None = None
    created: float | None = None
    last_seen: float = 0.0
    containers: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> {"cpu_request": ...}
    sandbox: bool = False


def _pods(answers: Answers) -> dict[str, _Pod]:
    pods: dict[str, _Pod] = {}
    for labels, _ in _rows(answers, "pod_info"):
        uid = labels.get("uid")
        if not uid:
            continue
        pod = pods.setdefault(uid, _Pod(uid, labels.get("namespace", ""), labels.get("pod", uid)))
        pod.node = pod.node or labels.get("node") or None
        pod.owner_kind = pod.owner_kind or labels.get("created_by_kind", "")
        pod.owner_name = pod.owner_name or labels.get("created_by_name", "")
    for labels, _ in _rows(answers, "pod_labels"):
        if labels.get("uid") in pods:
            pods[labels["uid"]].tags.update(_label_tags(labels))
    for labels, _ in _rows(answers, "phase"):
        if labels.get("uid") in pods:
            pods[labels["uid"]].tags["phase"] = labels.get("phase", "")
    for name in ("started", "created", "pod_seen", "pod_seen_now"):
        for labels, value in _rows(answers, name):
            timed = pods.get(labels.get("uid", ""))
            if timed is None:
                continue
            if name.startswith("pod_seen"):
                timed.last_seen = max(timed.last_seen, value)
            else:
                setattr(timed, name, value)
    for labels, _ in _rows(answers, "containers"):
        if labels.get("uid") in pods and labels.get("container"):
            pods[labels["uid"]].containers.setdefault(labels["container"], {})
    for kind in ("requests", "limits"):
        for labels, value in _rows(answers, kind):
            owner = pods.get(labels.get("uid", ""))
            if owner is not None and labels.get("container") and labels.get("resource") in ("cpu", "memory"):
                owner.containers.setdefault(labels["container"], {})[f"{labels['resource']}_{kind}"] = value
    for name in ("cadvisor_seen", "cadvisor_seen_now", "network_seen", "network_seen_now"):
        for labels, value in _rows(answers, name):
            seen = pods.get(uid_of(labels.get("id", "")) or "")
            if seen is None:
                continue
            seen.node = labels.get("node") or seen.node
            seen.last_seen = max(seen.last_seen, value)
            seen.sandbox = seen.sandbox or name.startswith("network")
    return pods


def _requests(values: Mapping[str, float]) -> Requests:
    def memory(key: str) -> int | None:
        return int(values[key]) if key in values else None

    return Requests(
        values.get("cpu_requests"), values.get("cpu_limits"), memory("memory_requests"), memory("memory_limits")
    )


def container_requests(answer: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Requests]:
    """Each (pod uid, container)'s CPU and memory requests, from the answer to ``QUERIES["requests"]``."""
    values: dict[tuple[str, str], dict[str, float]] = {}
    for labels, value in _rows({"requests": answer}, "requests"):
        if labels.get("container") and labels.get("resource") in ("cpu", "memory"):
            values.setdefault((labels.get("uid", ""), labels["container"]), {})[f"{labels['resource']}_requests"] = (
                value
            )
    return {key: _requests(asked) for key, asked in values.items()}


def _sums(each: Sequence[Requests]) -> Requests:
    """A pod's requests: each value the sum of its containers' where every container sets it, else None."""

    def total(name: str) -> Any:
        values = [getattr(r, name) for r in each]
        return sum(values) if values and all(v is not None for v in values) else None

    return Requests(*(total(name) for name in ("cpu_request_cores", "cpu_limit_cores",
                                               "memory_request_bytes", "memory_limit_bytes")))  # fmt: skip


def _nodes(answers: Answers, cluster: ResourceRef) -> list[InventoryItem]:
    amounts: dict[str, dict[str, float]] = defaultdict(dict)
    for kind in ("capacity", "allocatable"):
        for labels, value in _rows(answers, kind):
            amounts[labels.get("node", "")][f"{kind}_{labels.get('resource')}"] = value
    tags: dict[str, dict[str, str]] = defaultdict(dict)
    for labels, _ in _rows(answers, "node_labels"):
        tags[labels.get("node", "")].update(_label_tags(labels))
    created = {labels.get("node", ""): from_epoch_s(int(value)) for labels, value in _rows(answers, "node_created")}
    items = []
    for name in sorted({labels.get("node", "") for labels, _ in _rows(answers, "node_info")} - {""}):
        have = amounts[name]
        node_tags = dict(tags[name])
        if "allocatable_cpu" in have:
            node_tags["allocatable_cpu_cores"] = _number(have["allocatable_cpu"])
        if "allocatable_memory" in have:
            node_tags["allocatable_memory_bytes"] = str(int(have["allocatable_memory"]))
        cores = int(have.get("capacity_cpu", 0)) or None
        memory = int(have["capacity_memory"]) if have.get("capacity_memory") else None
        ref = ResourceRef("host", name)
        items.append(
            InventoryItem(ref, name, cluster, vcpus=cores, memory_bytes=memory, tags=node_tags,
                          created_at=created.get(name))
        )  # fmt: skip
    return items


def build_inventory(
    manager: str, cluster: str, region: str | None, answers: Answers, observed_at: datetime
) -> Inventory:
    """Region, provider, cluster, nodes, namespaces (as projects), pods and containers from ``QUERIES``' answers."""
    observed_at = as_utc(observed_at)
    now_s = observed_at.timestamp()
    region_ref = ResourceRef("region", region or "kubernetes")
    provider = ResourceRef("provider", manager)
    cluster_ref = ResourceRef("cluster", cluster)
    nodes = _nodes(answers, cluster_ref)
    # the cluster (and what stands above it) exists since its first node: past hours roll up to it
    since = min((node.created_at for node in nodes if node.created_at), default=None)
    items: dict[ResourceRef, InventoryItem] = {
        region_ref: InventoryItem(region_ref, region_ref.ems_ref, created_at=since),
        provider: InventoryItem(provider, manager, region_ref, created_at=since),
        cluster_ref: InventoryItem(cluster_ref, cluster, provider, created_at=since),
    }
    for node in nodes:
        items[node.ref] = node
    namespaces: dict[str, dict[str, str]] = defaultdict(dict)
    for labels, _ in _rows(answers, "namespaces"):
        namespaces[labels.get("namespace", "")].update(_label_tags(labels))
    born: dict[str, datetime] = {}
    for pod in sorted(_pods(answers).values(), key=lambda p: p.uid):
        for item in _pod_items(pod, items, now_s):
            items[item.ref] = item
        created = items[ResourceRef("pod", pod.uid)].created_at
        if created is not None and (pod.namespace not in born or created < born[pod.namespace]):
            born[pod.namespace] = created
    for namespace in sorted((set(namespaces) | set(born)) - {""}):
        ref = ResourceRef("project", namespace)
        since = born.get(namespace)
        history = (Placement(since, None),) if since else ()
        items[ref] = InventoryItem(ref, namespace, tags=namespaces.get(namespace, {}), created_at=since,
                                   history=history)  # fmt: skip
    return Inventory(observed_at, tuple(items.values()))


def _pod_items(pod: _Pod, items: Mapping[ResourceRef, InventoryItem], now_s: float) -> list[InventoryItem]:
    """A pod and its containers (the sandbox too, where it has network series)."""
    node = ResourceRef("host", pod.node) if pod.node and ResourceRef("host", pod.node) in items else None
    start = pod.started if pod.started is not None else pod.created
    retired_s = pod.last_seen if pod.last_seen and pod.last_seen < now_s - GRACE_S else None
    if start is not None and retired_s is not None:
        start = min(start, retired_s)
    created = from_epoch_s(int(start)) if start is not None else None
    retired = from_epoch_s(int(retired_s)) if retired_s is not None else None
    ref = ResourceRef("pod", pod.uid)
    each = {name: _requests(values) for name, values in sorted(pod.containers.items()) if name != SANDBOX}
    total = _sums(list(each.values()))
    tags = pod.tags | {"owner_kind": pod.owner_kind, "owner_name": pod.owner_name}
    tags.setdefault("phase", "")
    found = [
        InventoryItem(ref, pod.name, node, memory_bytes=total.memory_request_bytes, project=pod.namespace, tags=tags,
                      created_at=created, retired_at=retired, requests=total,
                      history=_placed(created, node, total.memory_request_bytes, pod.namespace, total))
    ]  # fmt: skip
    containers = [*each.items(), *([(SANDBOX, None)] if pod.sandbox else [])]
    for name, requests in containers:
        memory = requests.memory_request_bytes if requests else None
        found.append(
            InventoryItem(container_ref(pod.uid, name), name, ref, memory_bytes=memory, project=pod.namespace,
                          tags={"pod": pod.name, "namespace": pod.namespace}, created_at=created,
                          retired_at=retired, requests=requests,
                          history=_placed(created, ref, memory, pod.namespace, requests))
        )  # fmt: skip
    return found


def _placed(
    since: datetime | None, parent: ResourceRef | None, memory: int | None, project: str, requests: Requests | None
) -> tuple[Placement, ...]:
    if since is None:
        return ()
    return (Placement(since, parent, None, memory, project, requests),)
