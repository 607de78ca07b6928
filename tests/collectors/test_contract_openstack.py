"""The OpenStack collector meets the collector contract: against a real Gnocchi 4.7.1, and replayed from its
cassette without one.

The live run has a Gnocchi of its own (basic auth), loaded with the small cloud of ceilometer_cloud.py: web-1,
db-1 (live-migrated) and batch-1 (deleted at T0 + 90 min, no memory.usage meter, so its mem_used_bytes is
missing), two hours of 5-minute readings from T0. Gnocchi's basic auth takes any password, so the refusal comes
from a real Keystone given a wrong password. The collectors' clock stands at the time the cloud was made.

``--record-cassettes`` (or CLOUDMETER_RECORD_CASSETTES=1) records the live run into cassettes/openstack.yaml
(and openstack.scenario.json); the replay class runs the same contract from them, with no server started.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloudmeter.collectors.openstack import GnocchiCollector, OpenStackConfig
from cloudmeter.model import ResourceRef, Window
from cloudmeter.testing import CollectorCassette, CollectorContract, Scenario, ScenarioFixtures
from tests import gnocchi_server
from tests.collectors import ceilometer_cloud as cloud
from tests.collectors.contract_fixtures import closed_port, committed_leaks, live_cassette, replayed
from tests.gnocchi_server import GnocchiServer
from tests.keystone_server import ADMIN_PASSWORD, KeystoneServer

NAME = "openstack"
#: Fake secrets, constant so the committed cassette can be searched for them.
BASIC_PASSWORD = "gnocchi-basic-contract-7Hq2"
WRONG_PASSWORD = "keystone-wrong-contract-p4Zx"
SECRETS = [BASIC_PASSWORD, WRONG_PASSWORD]
#: The peers' addresses as the cassette names them.
GNOCCHI = "http://gnocchi.cassette.invalid:8041"
KEYSTONE = "http://keystone.cassette.invalid:5000"


def config(gnocchi_url: str, **fields: object) -> OpenStackConfig:
    raw = {
        "auth_mode": "basic",
        "gnocchi_url": gnocchi_url,
        "password": BASIC_PASSWORD,
        "region": "RegionTest",
        "host_clusters": cloud.HOST_CLUSTERS,
        "flavors": cloud.FLAVORS,
        **fields,
    }
    return OpenStackConfig.model_validate(raw)


def gnocchi_collector(scenario: Scenario, gnocchi_url: str, **fields: object) -> GnocchiCollector:
    return GnocchiCollector("os", config(gnocchi_url, **fields), clock=lambda: scenario.now)


def refused(scenario: Scenario, keystone_url: str, gnocchi_url: str) -> GnocchiCollector:
    """A manager whose Keystone refuses its password."""
    fields = {"auth_mode": "keystone", "auth_url": keystone_url, "project_name": "admin", "password": WRONG_PASSWORD}
    return gnocchi_collector(scenario, gnocchi_url, username="admin", **fields)


def unreachable_collector(scenario: Scenario) -> GnocchiCollector:
    return gnocchi_collector(scenario, f"http://127.0.0.1:{closed_port()}")


# ---- against the real peers --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def contract_gnocchi(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GnocchiServer]:
    """A Gnocchi of this module's own (other modules load other clouds), holding ceilometer_cloud's."""
    with gnocchi_server.running(tmp_path_factory.mktemp("gnocchi-contract"), pg_server) as server:
        cloud.load(server.client, server.indexer_dsn)
        yield server


LIVE_SCENARIO = Scenario(
    now=cloud.NOW,
    window=Window(cloud.T0, cloud.at(24)),
    missing_metric=(ResourceRef("vm", cloud.BATCH.id), "mem_used_bytes"),
    retired_refs=frozenset({ResourceRef("vm", cloud.BATCH.id)}),
)


class TestGnocchiLive(ScenarioFixtures, CollectorContract):
    @pytest.fixture(scope="class")
    @classmethod
    def cassette(
        cls, request: pytest.FixtureRequest, contract_gnocchi: GnocchiServer, keystone: KeystoneServer
    ) -> Iterator[CollectorCassette | None]:
        keystone_base = keystone.url.removesuffix("/v3")
        hosts = {contract_gnocchi.url: GNOCCHI, keystone_base: KEYSTONE}
        yield from live_cassette(request.config, NAME, LIVE_SCENARIO, SECRETS, hosts)

    @pytest.fixture
    def scenario(self) -> Scenario:
        return LIVE_SCENARIO

    @pytest.fixture
    def collector(self, contract_gnocchi: GnocchiServer) -> GnocchiCollector:
        return gnocchi_collector(LIVE_SCENARIO, contract_gnocchi.url)

    @pytest.fixture
    def bad_credentials(self, contract_gnocchi: GnocchiServer, keystone: KeystoneServer) -> GnocchiCollector:
        return refused(LIVE_SCENARIO, keystone.url, contract_gnocchi.url)

    @pytest.fixture
    def unreachable(self) -> GnocchiCollector:
        return unreachable_collector(LIVE_SCENARIO)

    @pytest.fixture
    def secrets(self) -> list[str]:
        return SECRETS


# ---- replayed from the cassette ------------------------------------------------------------------------------


class TestGnocchiReplay(ScenarioFixtures, CollectorContract):
    @pytest.fixture(scope="class")
    @classmethod
    def cassette(cls) -> CollectorCassette:
        return replayed(NAME, SECRETS)

    @pytest.fixture
    def scenario(self, cassette: CollectorCassette) -> Scenario:
        return cassette.scenario

    @pytest.fixture
    def collector(self, cassette: CollectorCassette) -> GnocchiCollector:
        return gnocchi_collector(cassette.scenario, GNOCCHI)

    @pytest.fixture
    def bad_credentials(self, cassette: CollectorCassette) -> GnocchiCollector:
        return refused(cassette.scenario, f"{KEYSTONE}/v3", GNOCCHI)

    @pytest.fixture
    def unreachable(self, cassette: CollectorCassette) -> GnocchiCollector:
        return unreachable_collector(cassette.scenario)

    @pytest.fixture
    def secrets(self) -> list[str]:
        return SECRETS


def test_the_committed_cassette_holds_no_secret() -> None:
    """Runs after the classes, so a recording run checks what it just wrote."""
    assert committed_leaks(NAME, [*SECRETS, ADMIN_PASSWORD]) == []
