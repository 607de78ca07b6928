"""The kubernetes collector meets the collector contract: against a real Prometheus (world.py's series) through a
bearer-token proxy, as OpenShift's Thanos querier is reached, and replayed from its cassette without either.

The retired resources are the deleted job's pod and the rescheduled pod's first uid; the missing metric is
web-1's sidecar's disk_read_bps (cAdvisor has no filesystem series for it); the window spans the reschedule, the
gap, the reset, the restart and the deletion.

The cassette keeps no bearer token (it drops the Authorization header), and a token is all that tells a refused
request from an accepted one: the refused collector reaches Prometheus through a second proxy (the same rules, its
own port), which the cassette names as a host of its own, so its replayed requests are refused too.

``--record-cassettes`` (or CLOUDMETER_RECORD_CASSETTES=1) records the live run into cassettes/kubernetes.yaml
(and kubernetes.scenario.json); the replay class runs the same contract from them, with no Prometheus started.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs

import httpx
import pytest
import yaml
from vcr.errors import CannotOverwriteExistingCassetteException  # type: ignore[import-untyped]

from cloudmeter.collectors.kubernetes import KubernetesCollector, KubernetesConfig
from cloudmeter.errors import CollectorAuthError
from cloudmeter.model import ResourceRef, Window, from_epoch_s
from cloudmeter.testing import CollectorCassette, CollectorContract, Scenario, ScenarioFixtures
from tests.collectors.contract_fixtures import closed_port, committed_leaks, live_cassette, replayed
from tests.kubernetes import world
from tests.kubernetes.conftest import TOKEN, WRONG_TOKEN, Prom, bearer_proxy

NAME: Final = "kubernetes"
CASSETTES: Final = Path(__file__).resolve().parent / "cassettes"
SECRETS: Final = [TOKEN, WRONG_TOKEN]
#: The proxies as the cassette names them: the accepted collectors' and the refused one's.
PROMETHEUS: Final = "http://prometheus.cassette.invalid:9091"
REFUSING: Final = "http://refused.cassette.invalid:9091"

SCENARIO: Final = Scenario(
    now=from_epoch_s(world.END),
    window=Window(from_epoch_s(world.START + 1800), from_epoch_s(world.START + 9000)),
    missing_metric=(ResourceRef("container", f"{world.U_WEB1}/sidecar"), "disk_read_bps"),
    retired_refs=frozenset({ResourceRef("pod", world.U_JOB), ResourceRef("pod", world.U_DB_OLD),
                            ResourceRef("container", f"{world.U_JOB}/worker")}),
)  # fmt: skip


def k8s_collector(scenario: Scenario, url: str, token: str = TOKEN) -> KubernetesCollector:
    raw = {"prometheus_url": url, "bearer_token": token, "cluster": world.CLUSTER, "lookback_h": 6}
    return KubernetesCollector("k8s", KubernetesConfig.model_validate(raw), clock=lambda: scenario.now)


def unreachable_collector(scenario: Scenario) -> KubernetesCollector:
    return k8s_collector(scenario, f"http://127.0.0.1:{closed_port()}")


# ---- against Prometheus ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def refusing_proxy(prometheus: Prom) -> Iterator[str]:
    """A second bearer-token proxy: the refused collector's, so the cassette tells its requests from the others'."""
    with bearer_proxy(prometheus.url) as url:
        yield url


class TestKubernetesLive(ScenarioFixtures, CollectorContract):
    @pytest.fixture(scope="class")
    @classmethod
    def cassette(
        cls, request: pytest.FixtureRequest, prometheus: Prom, refusing_proxy: str
    ) -> Iterator[CollectorCassette | None]:
        hosts = {prometheus.proxy_url: PROMETHEUS, refusing_proxy: REFUSING}
        yield from live_cassette(request.config, NAME, SCENARIO, SECRETS, hosts, directory=CASSETTES)

    @pytest.fixture
    def scenario(self) -> Scenario:
        return SCENARIO

    @pytest.fixture
    def collector(self, prometheus: Prom) -> KubernetesCollector:
        return k8s_collector(SCENARIO, prometheus.proxy_url)

    @pytest.fixture
    def bad_credentials(self, refusing_proxy: str) -> KubernetesCollector:
        return k8s_collector(SCENARIO, refusing_proxy, WRONG_TOKEN)

    @pytest.fixture
    def unreachable(self) -> KubernetesCollector:
        return unreachable_collector(SCENARIO)

    @pytest.fixture
    def secrets(self) -> list[str]:
        return SECRETS


# ---- replayed from the cassette ------------------------------------------------------------------------------


class TestKubernetesReplay(ScenarioFixtures, CollectorContract):
    @pytest.fixture(scope="class")
    @classmethod
    def cassette(cls) -> CollectorCassette:
        return replayed(NAME, SECRETS, directory=CASSETTES)

    @pytest.fixture
    def scenario(self, cassette: CollectorCassette) -> Scenario:
        return cassette.scenario

    @pytest.fixture
    def collector(self, cassette: CollectorCassette) -> KubernetesCollector:
        return k8s_collector(cassette.scenario, PROMETHEUS)

    @pytest.fixture
    def bad_credentials(self, cassette: CollectorCassette) -> KubernetesCollector:
        return k8s_collector(cassette.scenario, REFUSING, WRONG_TOKEN)

    @pytest.fixture
    def unreachable(self, cassette: CollectorCassette) -> KubernetesCollector:
        return unreachable_collector(cassette.scenario)

    @pytest.fixture
    def secrets(self) -> list[str]:
        return SECRETS


def test_the_committed_cassette_holds_no_secret() -> None:
    """Runs after the classes, so a recording run checks what it just wrote."""
    assert committed_leaks(NAME, SECRETS, directory=CASSETTES) == []


# ---- the cassette holds what the replay needs, and nothing else ----------------------------------------------


def _recorded() -> list[dict[str, Any]]:
    interactions: list[dict[str, Any]] = yaml.load((CASSETTES / f"{NAME}.yaml").read_text(), Loader=yaml.CSafeLoader)[
        "interactions"
    ]
    return interactions


def _key(method: str, uri: str, body: bytes | str | None) -> tuple[str, str, str]:
    return method, uri, body.decode() if isinstance(body, bytes) else body or ""


def _contract_calls(cassette: CollectorCassette, asked: set[tuple[str, str, str]] | None = None) -> None:
    """What the replayed contract asks of Prometheus: verify (refused, then accepted), inventory, and the
    split-window check's captures (the whole window and its pieces, cut where the contract cuts it) by a
    collector of their own, as each test of the contract has (a collector asks for the cluster label once)."""

    def log(request: httpx.Request) -> None:
        if asked is not None:
            asked.add(_key(request.method, str(request.url), request.content))

    collectors = [k8s_collector(cassette.scenario, PROMETHEUS) for _ in range(2)]
    refused = k8s_collector(cassette.scenario, REFUSING, WRONG_TOKEN)
    for each in (*collectors, refused):
        each.api.client.event_hooks["request"].append(log)
    with cassette.playing():
        with pytest.raises(CollectorAuthError):
            refused.verify()
        collectors[0].verify()
        collectors[0].inventory()
        TestKubernetesReplay().test_capture_of_a_split_window_equals_the_whole(collectors[1], cassette.scenario.window)


def test_the_replay_asks_for_every_recorded_interaction() -> None:
    """Each interaction answers a request of the replayed contract (and identical requests are recorded once),
    so none can go without failing the replay; nothing is recorded that the replay does not ask for."""
    asked: set[tuple[str, str, str]] = set()
    _contract_calls(replayed(NAME, SECRETS, directory=CASSETTES), asked)
    recorded = [_key(i["request"]["method"], i["request"]["uri"], i["request"]["body"]) for i in _recorded()]
    assert len(set(recorded)) == len(recorded), "an identical request is recorded twice"
    unasked = set(recorded) - asked
    assert not unasked, f"{len(unasked)} recorded interactions are never asked for, e.g. {min(unasked)}"


def _query(interaction: dict[str, Any]) -> str:
    return str(parse_qs(interaction["request"]["body"] or "").get("query", [""])[0])


@pytest.mark.parametrize(
    "dropped",
    [
        pytest.param(lambda i: i["request"]["uri"] == f"{PROMETHEUS}/api/v1/status/buildinfo", id="verify"),
        pytest.param(lambda i: _query(i).startswith("last_over_time(kube_pod_labels"), id="inventory"),
        pytest.param(lambda i: _query(i).startswith("rate(container_fs_writes_bytes_total"), id="capture"),
    ],
)
def test_a_request_missing_from_the_cassette_fails_the_replay(tmp_path: Path, dropped: Any) -> None:
    """Without one recorded answer (verify's buildinfo, an inventory query, capture's query_range of one
    metric), the replay fails at that request; it does not reach the network."""
    recorded = _recorded()
    kept = [i for i in recorded if not dropped(i)]
    assert 0 < len(kept) < len(recorded)
    (tmp_path / f"{NAME}.yaml").write_text(yaml.dump({"interactions": kept, "version": 1}, Dumper=yaml.CSafeDumper))
    shutil.copy(CASSETTES / f"{NAME}.scenario.json", tmp_path)
    with pytest.raises(CannotOverwriteExistingCassetteException):
        _contract_calls(replayed(NAME, SECRETS, directory=tmp_path))
