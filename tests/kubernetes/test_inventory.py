"""The inventory of world.py's cluster, against what the world defines: topology, nodes' capacity and allocatable,
namespaces as projects, pods by uid (the rescheduled pod twice), requests and limits, placements, the deleted pod's
retirement, and the cluster filter."""

from __future__ import annotations

from typing import Final

import pytest

from cloudmeter.errors import ConfigError
from cloudmeter.model import Inventory, InventoryItem, Placement, Requests, ResourceRef, from_epoch_s
from tests.kubernetes import world
from tests.kubernetes.conftest import Prom

MIB: Final = world.MIB
GIB: Final = world.GIB


@pytest.fixture(scope="module")
def inventory(prometheus: Prom) -> Inventory:
    return prometheus.collector().inventory()


def items(inventory: Inventory) -> dict[ResourceRef, InventoryItem]:
    return {item.ref: item for item in inventory.items}


def pod(inventory: Inventory, uid: str) -> InventoryItem:
    return items(inventory)[ResourceRef("pod", uid)]


def container(inventory: Inventory, uid: str, name: str) -> InventoryItem:
    return items(inventory)[ResourceRef("container", f"{uid}/{name}")]


def test_topology_from_containers_to_the_region(inventory: Inventory) -> None:
    found = items(inventory)
    region, provider = ResourceRef("region", "kubernetes"), ResourceRef("provider", "k8s")
    cluster = ResourceRef("cluster", world.CLUSTER)
    assert found[provider].parent == region and found[cluster].parent == provider
    nodes = {ref.ems_ref for ref in found if ref.kind == "host"}
    assert nodes == {"node-a", "node-b", "node-c"}  # not staging's stg-node
    assert all(found[ResourceRef("host", n)].parent == cluster for n in nodes)
    uids = {p.uid for p in world.PODS if p.cluster == world.CLUSTER}
    assert {ref.ems_ref for ref in found if ref.kind == "pod"} == uids
    for p in world.PODS:
        if p.cluster != world.CLUSTER:
            continue
        item = found[ResourceRef("pod", p.uid)]
        assert (item.name, item.parent, item.project) == (p.name, ResourceRef("host", p.node), p.namespace)
        names = {c.name for c in p.containers} | {"POD"}
        assert {ref.ems_ref for ref in found if ref.kind == "container" and ref.ems_ref.startswith(p.uid)} == {
            f"{p.uid}/{n}" for n in names
        }
        for n in names:
            c = found[ResourceRef("container", f"{p.uid}/{n}")]
            assert (c.name, c.parent, c.project, c.vcpus) == (n, item.ref, p.namespace, None)


def test_nodes_carry_capacity_and_allocatable(inventory: Inventory) -> None:
    found = items(inventory)
    for n in world.NODES[:3]:
        node = found[ResourceRef("host", n.name)]
        assert (node.vcpus, node.memory_bytes) == (n.cores, n.memory_bytes)
        assert node.created_at == from_epoch_s(world.NODES_CREATED)  # kube_node_created: past hours have capacity
        assert dict(node.tags) == {
            "allocatable_cpu_cores": f"{n.allocatable_cores:g}",
            "allocatable_memory_bytes": str(n.allocatable_memory_bytes),
            "topology_kubernetes_io_zone": n.zone,
        }
    assert found[ResourceRef("host", "node-a")].tags["allocatable_cpu_cores"] == "3.5"


def test_namespaces_are_projects_with_their_labels(inventory: Inventory) -> None:
    found = items(inventory)
    for name, labels in world.NAMESPACES.items():
        project = found[ResourceRef("project", name)]
        assert (project.name, project.parent, dict(project.tags)) == (name, None, labels)
    # a project exists from its first pod's start: batch's db-0 (first uid) started 7190 s before START
    assert found[ResourceRef("project", "batch")].created_at == from_epoch_s(world.START - 7190)


def test_requests_and_limits(inventory: Inventory) -> None:
    app = container(inventory, world.U_WEB1, "app")
    assert app.requests == Requests(0.5, 1.0, 256 * MIB, 512 * MIB)
    assert (app.memory_bytes, app.vcpus) == (256 * MIB, None)
    sidecar = container(inventory, world.U_WEB1, "sidecar")
    assert sidecar.requests == Requests(None, None, None, None) and sidecar.memory_bytes is None
    # a pod's requests are its containers' sums where every container sets them: the sidecar sets none
    assert pod(inventory, world.U_WEB1).requests == Requests(None, None, None, None)
    assert pod(inventory, world.U_WEB2).requests == Requests(0.25, None, 128 * MIB, None)
    assert pod(inventory, world.U_WEB2).memory_bytes == 128 * MIB
    assert pod(inventory, world.U_JOB).requests == Requests(1.0, 2.0, 512 * MIB, 1 * GIB)
    assert container(inventory, world.U_WEB1, "POD").requests is None


def test_pods_carry_labels_owner_and_phase(inventory: Inventory) -> None:
    assert dict(pod(inventory, world.U_WEB1).tags) == {
        "app": "web", "owner_kind": "ReplicaSet", "owner_name": "web-7d9", "phase": "Running",
    }  # fmt: skip
    assert dict(pod(inventory, world.U_JOB).tags) == {
        "job_name": "job-1", "owner_kind": "Job", "owner_name": "job-1", "phase": "Succeeded",
    }  # fmt: skip


def test_placements_start_with_the_pod(inventory: Inventory) -> None:
    web = pod(inventory, world.U_WEB2)
    started = from_epoch_s(world.pod(world.U_WEB2).started)
    requests = Requests(0.25, None, 128 * MIB, None)
    assert web.created_at == started and web.retired_at is None
    assert web.history == (Placement(started, ResourceRef("host", "node-b"), None, 128 * MIB, "shop", requests),)
    app = container(inventory, world.U_WEB2, "app")
    assert app.history == (Placement(started, web.ref, None, 128 * MIB, "shop", requests),)


def test_a_rescheduled_pod_is_two_uids_on_two_nodes(inventory: Inventory) -> None:
    """db-0 moved from node-b to node-c: two pods of the same name, the first retired at its last scrape (the
    kubelet's, 5 s after kube-state-metrics'), the second created when it started."""
    old, new = pod(inventory, world.U_DB_OLD), pod(inventory, world.U_DB_NEW)
    assert old.name == new.name == "db-0"
    assert (old.parent, new.parent) == (ResourceRef("host", "node-b"), ResourceRef("host", "node-c"))
    assert old.retired_at == from_epoch_s(world.DB_MOVED - world.SCRAPE + world.CADVISOR_OFFSET)
    assert new.created_at == from_epoch_s(world.DB_NEW_STARTED) and new.retired_at is None
    assert container(inventory, world.U_DB_OLD, "db").retired_at == old.retired_at


def test_a_deleted_pod_is_retired_at_its_last_scrape(inventory: Inventory) -> None:
    job = pod(inventory, world.U_JOB)
    assert job.created_at == from_epoch_s(world.START + 1200)
    assert job.retired_at == from_epoch_s(world.JOB_DELETED - world.SCRAPE + world.CADVISOR_OFFSET)
    for name in ("worker", "POD"):
        assert container(inventory, world.U_JOB, name).retired_at == job.retired_at
    live = [i for i in inventory.items if i.ref.kind == "pod" and i.retired_at is None]
    assert {i.ref.ems_ref for i in live} == {world.U_WEB1, world.U_WEB2, world.U_DB_NEW, world.U_IDLE}


def test_short_lived_pods_are_listed_from_the_look_back_window(prometheus: Prom) -> None:
    """Two hours' look-back from END (START + 3 h) sees the job deleted at 100 min, not the pod deleted at 45."""
    short = items(prometheus.collector(lookback_h=2).inventory())
    assert ResourceRef("pod", world.U_DB_OLD) not in short and ResourceRef("pod", world.U_JOB) in short


def test_another_cluster_in_the_same_prometheus(prometheus: Prom) -> None:
    found = items(prometheus.collector(cluster=world.OTHER_CLUSTER).inventory())
    assert {ref.ems_ref for ref in found if ref.kind in ("host", "pod")} == {"stg-node", world.U_STAGING}


def test_a_cluster_prometheus_does_not_hold_is_a_config_error(prometheus: Prom) -> None:
    with pytest.raises(ConfigError) as caught:
        prometheus.collector(cluster="nope").verify()
    assert str(caught.value) == (
        f"manager 'k8s': Prometheus at {prometheus.url} has no series of cluster 'nope'; its clusters: prod, "
        "staging: fix cluster"
    )
