"""What a kubernetes manager that cannot work says: one line naming what is wrong and how to fix it, never the
token. Against the real Prometheus (and its bearer-token proxy), and through the httpx transport seam for what a
healthy Prometheus never answers (missing exporters, a refused query, a Prometheus without cluster labels)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from cloudmeter.collectors.kubernetes import KubernetesCollector, KubernetesConfig
from cloudmeter.collectors.kubernetes.parse import combine, uid_of
from cloudmeter.collectors.registry import parse_manager_config
from cloudmeter.errors import BadPayload, CollectorAuthError, ConfigError, SourceUnavailable
from cloudmeter.model import METRICS
from tests.collectors.contract_fixtures import closed_port
from tests.kubernetes import world
from tests.kubernetes.conftest import TOKEN, WRONG_TOKEN, Prom


def test_a_wrong_token_is_permission_denied(prometheus: Prom) -> None:
    with pytest.raises(CollectorAuthError) as caught:
        prometheus.collector(url=prometheus.proxy_url, bearer_token=WRONG_TOKEN).verify()
    assert str(caught.value) == (
        "manager 'k8s': permission denied: Prometheus GET /api/v1/status/buildinfo was refused (403 Unauthorized); "
        "check bearer_token (and its permissions)"
    )


def test_no_token_where_one_is_wanted_says_set_it(prometheus: Prom) -> None:
    with pytest.raises(CollectorAuthError) as caught:
        prometheus.collector(url=prometheus.proxy_url).verify()
    assert str(caught.value).endswith("was refused (401 Unauthorized); set bearer_token")


def test_the_right_token_verifies_through_the_proxy(prometheus: Prom) -> None:
    prometheus.collector(url=prometheus.proxy_url, bearer_token=TOKEN).verify()


def test_an_unreachable_prometheus_is_unavailable() -> None:
    port = closed_port()
    raw = {"prometheus_url": f"http://127.0.0.1:{port}", "cluster": "prod", "bearer_token": TOKEN}
    config = KubernetesConfig.model_validate(raw)
    with pytest.raises(SourceUnavailable) as caught:
        KubernetesCollector("k8s", config).verify()
    message = str(caught.value)
    assert message.startswith(f"manager 'k8s': Prometheus at http://127.0.0.1:{port} is unreachable (")
    assert message.endswith("; check prometheus_url") and TOKEN not in message


def fake(
    answers: dict[str, list[dict[str, Any]]], seen: list[str] | None = None, status: int = 200
) -> httpx.MockTransport:
    """A Prometheus whose instant queries answer ``answers[first word of the query]`` (else nothing)."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/status/buildinfo":
            return httpx.Response(200, json={"status": "success", "data": {"version": "2.42.0"}})
        query = dict(httpx.QueryParams(request.content.decode()))["query"]
        if seen is not None:
            seen.append(query)
        if status != 200:
            return httpx.Response(status, json={"status": "error", "errorType": "bad_data",
                                                "error": f"parse error near {TOKEN[:4]}"})  # fmt: skip
        result = next((rows for key, rows in answers.items() if key in query), [])
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": result}})

    return httpx.MockTransport(handle)


def fake_collector(transport: httpx.MockTransport) -> KubernetesCollector:
    config = KubernetesConfig.model_validate({"prometheus_url": "http://prom.example:9090", "cluster": "prod"})
    return KubernetesCollector("k8s", config, transport=transport)


def _present(*series: str) -> list[dict[str, Any]]:
    return [{"metric": {"series": s}, "value": [0, "3"]} for s in series]


def test_missing_cadvisor_series_are_named() -> None:
    clusters = [{"metric": {"cluster": "prod"}, "value": [0, "3"]}]
    transport = fake({"count by (cluster)": clusters,
                      "label_replace": _present("kube_pod_info", "kube_node_status_capacity")})  # fmt: skip
    with pytest.raises(SourceUnavailable) as caught:
        fake_collector(transport).verify()
    assert str(caught.value) == (
        "manager 'k8s': Prometheus at http://prom.example:9090 has no container_cpu_usage_seconds_total (from "
        "cAdvisor (the kubelets' /metrics/cadvisor)) in the last 24h for cluster 'prod'; scrape them (or fix cluster)"
    )


def test_without_cluster_labels_nothing_is_filtered() -> None:
    seen: list[str] = []
    everything = _present("kube_pod_info", "kube_node_status_capacity", "container_cpu_usage_seconds_total")
    transport = fake({"count by (cluster)": [{"metric": {}, "value": [0, "3"]}], "label_replace": everything}, seen)
    fake_collector(transport).verify()
    assert seen[0].startswith("count by (cluster)") and "cluster=" not in seen[1]
    assert "kube_pod_info{}" in seen[1]


def test_a_refused_query_is_a_bad_payload_without_the_token() -> None:
    with pytest.raises(BadPayload) as caught:
        fake_collector(fake({}, status=400)).verify()
    assert str(caught.value).startswith("manager 'k8s': Prometheus POST /api/v1/query was rejected (400 parse error")


def test_an_answer_of_the_wrong_shape_is_a_bad_payload() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps({"status": "success", "data": {"resultType": "matrix",
                                                                                     "result": []}}))  # fmt: skip

    with pytest.raises(BadPayload, match="answered 'matrix', expected a vector"):
        fake_collector(httpx.MockTransport(handle)).inventory()


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"cluster": "prod"}, "prometheus_url: Field required"),
        ({"prometheus_url": "prom.example:9090", "cluster": "prod"}, "is not an http(s) URL"),
        ({"prometheus_url": "http://prom.example:9090"}, "cluster: Field required"),
        ({"prometheus_url": "http://p:9090", "cluster": "prod", "step_s": 1}, "step_s: Input should be greater"),
    ],
)
def test_config_errors_are_one_line_naming_the_field(raw: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_manager_config("k8s", {"kind": "kubernetes", **raw})
    message = str(caught.value)
    assert message.startswith("manager 'k8s' (kind 'kubernetes') is invalid: ") and "\n" not in message
    assert problem in message


def test_the_token_is_masked_in_the_config() -> None:
    config = KubernetesConfig.model_validate({"prometheus_url": "http://p:9090", "cluster": "c", "bearer_token": TOKEN})
    assert TOKEN not in repr(config) and "bearer_token" not in config.public_fields()


@pytest.mark.parametrize(
    ("cgroup", "uid"),
    [
        (f"/kubepods/burstable/pod{world.U_WEB1}/abc", world.U_WEB1),
        (f"/kubepods/pod{world.U_WEB1}/abc", world.U_WEB1),
        ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
         f"{world.U_WEB1.replace('-', '_')}.slice/cri-containerd-abc.scope", world.U_WEB1),
        ("/kubepods/burstable", None),
        ("/system.slice/kubelet.service", None),
    ],
)  # fmt: skip
def test_the_pod_uid_is_read_from_both_cgroup_drivers(cgroup: str, uid: str | None) -> None:
    assert uid_of(cgroup) == uid


def test_pod_level_network_series_stand_for_the_sandbox_only_without_its_own() -> None:
    cgroup = f"/kubepods/burstable/pod{world.U_WEB1}"

    def series(container: str, value: str) -> dict[str, Any]:
        return {"metric": {"container": container, "id": cgroup}, "values": [[120, value]]}

    both = combine({"net_rx_bps": [series("POD", "10"), series("", "7")]}, 120, 60, 1)
    alone = combine({"net_rx_bps": [series("", "7")]}, 120, 60, 1)
    rx = METRICS.index("net_rx_bps")
    assert list(both) == list(alone) == [(world.U_WEB1, "POD")]
    assert (both[world.U_WEB1, "POD"][0, rx], alone[world.U_WEB1, "POD"][0, rx]) == (10.0, 7.0)
