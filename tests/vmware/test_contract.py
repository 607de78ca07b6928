"""The vmware collector meets the collector contract: against a real vcsim (world.py's), and replayed from its
cassette without one.

The retired VM is the one destroyed through the API (vCenter's VmRemovedEvent lists it), the missing metric
DC0_C0_H1-vm0's net_tx_bps, the window the last two hours (realtime and 300-second samples, the powered-off
VM's gap inside). The refused collector logs in as a user vcsim does not know (with a wrong password): the
cassette keeps user names and redacts passwords, so the user name is what tells its Login from the others'.

``--record-cassettes`` (or CLOUDMETER_RECORD_CASSETTES=1) records the live run into cassettes/vmware.yaml (and
vmware.scenario.json); the replay class runs the same contract from them, with no vcsim started. pyVmomi
imports ``HTTPSConnection`` by name, so the cassette patches it there too (``PATCHES``).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest
import pyVim.connect
import pyVmomi.SoapAdapter
import yaml
from vcr.errors import CannotOverwriteExistingCassetteException  # type: ignore[import-untyped]
from vcr.stubs import VCRHTTPSConnection  # type: ignore[import-untyped]

from cloudmeter.collectors.vmware import VmwareConfig, VsphereCollector
from cloudmeter.model import ResourceRef, Window, from_epoch_s
from cloudmeter.testing import CollectorCassette, CollectorContract, Scenario, ScenarioFixtures
from tests.collectors.contract_fixtures import closed_port, committed_leaks, live_cassette, replayed
from tests.vmware import world
from tests.vmware.conftest import World

if TYPE_CHECKING:
    from vcr.request import Request  # type: ignore[import-untyped]

NAME: Final = "vmware"
CASSETTES: Final = Path(__file__).resolve().parent / "cassettes"
SECRETS: Final = [world.PASSWORD, world.WRONG_PASSWORD]
#: A user vcsim does not know: the refused Login differs from the others in what the cassette keeps.
REFUSED_USERNAME: Final = "refused-contract@vsphere.local"
#: vcsim as the cassette names it.
VCSIM_HOST, VCSIM_PORT = "vcsim.cassette.invalid", 8989
#: pyVmomi's SOAP stub and pyVim's SmartConnect use the HTTPSConnection they imported, not http.client's.
PATCHES: Final = (
    (pyVmomi.SoapAdapter, "HTTPSConnection", VCRHTTPSConnection),
    (pyVim.connect, "HTTPSConnection", VCRHTTPSConnection),
)

#: What the cassette writes for a session key: text in XML (vcrpy's ``<redacted>`` would read as an element).
SESSION_KEY: Final = "redacted-session-key"
#: The session key of a Login's answer (it is also in the ids of the session's views), and a view's id.
_SESSION_KEY: Final = re.compile(r"<LoginResponse[^>]*><returnval><key>([^<]+)</key>")
_VIEW: Final = re.compile(
    r'<CreateContainerViewResponse[^>]*><returnval type="ContainerView">session\[[^\]]*\]([^<]+)<'
)


def stable_names(request: Request, response: dict[str, Any]) -> dict[str, str]:
    """The session key redacted; a ContainerView's random id named after what the view holds (the request that
    made it), so every session's view of the same objects has the same id and their reads are recorded once."""
    body = _text(response["body"]["string"])
    names = {found[1]: SESSION_KEY for found in _SESSION_KEY.finditer(body)}
    if (view := _VIEW.search(body)) is not None:
        names[view[1]] = "view-" + hashlib.sha256(_text(request.body).encode()).hexdigest()[:12]
    return names


def _text(body: bytes | str | None) -> str:
    return body.decode() if isinstance(body, bytes) else body or ""


def vsphere_collector(scenario: Scenario, host: str, port: int, **fields: Any) -> VsphereCollector:
    raw = {"host": host, "port": port, "username": world.USERNAME, "password": world.PASSWORD, "verify_tls": False}
    return VsphereCollector("vc", VmwareConfig.model_validate(raw | fields), clock=lambda: scenario.now)


def refused(scenario: Scenario, host: str, port: int) -> VsphereCollector:
    return vsphere_collector(scenario, host, port, username=REFUSED_USERNAME, password=world.WRONG_PASSWORD)


def unreachable_collector(scenario: Scenario) -> VsphereCollector:
    return vsphere_collector(scenario, "127.0.0.1", closed_port())


# ---- against vcsim ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_scenario(vsphere: World) -> Scenario:
    return Scenario(
        now=from_epoch_s(vsphere.now),
        window=Window(from_epoch_s(vsphere.now - 7200), from_epoch_s(vsphere.now)),
        missing_metric=(ResourceRef("vm", vsphere.morefs[world.MISSING_VM]), "net_tx_bps"),
        retired_refs=frozenset({ResourceRef("vm", vsphere.retired)}),
    )


class TestVsphereLive(ScenarioFixtures, CollectorContract):
    @pytest.fixture(scope="class")
    @classmethod
    def cassette(
        cls, request: pytest.FixtureRequest, vsphere: World, live_scenario: Scenario
    ) -> Iterator[CollectorCassette | None]:
        hosts = {f"https://{vsphere.server.host}:{vsphere.server.port}": f"https://{VCSIM_HOST}:{VCSIM_PORT}"}
        yield from live_cassette(
            request.config, NAME, live_scenario, SECRETS, hosts, directory=CASSETTES, names=stable_names,
            patches=PATCHES,
        )  # fmt: skip

    @pytest.fixture
    def scenario(self, live_scenario: Scenario) -> Scenario:
        return live_scenario

    @pytest.fixture
    def collector(self, vsphere: World, live_scenario: Scenario) -> VsphereCollector:
        return vsphere_collector(live_scenario, vsphere.server.host, vsphere.server.port)

    @pytest.fixture
    def bad_credentials(self, vsphere: World, live_scenario: Scenario) -> VsphereCollector:
        return refused(live_scenario, vsphere.server.host, vsphere.server.port)

    @pytest.fixture
    def unreachable(self, live_scenario: Scenario) -> VsphereCollector:
        return unreachable_collector(live_scenario)

    @pytest.fixture
    def secrets(self) -> list[str]:
        return SECRETS


# ---- replayed from the cassette ------------------------------------------------------------------------------


class TestVsphereReplay(ScenarioFixtures, CollectorContract):
    @pytest.fixture(scope="class")
    @classmethod
    def cassette(cls) -> CollectorCassette:
        return replayed(NAME, SECRETS, directory=CASSETTES, patches=PATCHES)

    @pytest.fixture
    def scenario(self, cassette: CollectorCassette) -> Scenario:
        return cassette.scenario

    @pytest.fixture
    def collector(self, cassette: CollectorCassette) -> VsphereCollector:
        return vsphere_collector(cassette.scenario, VCSIM_HOST, VCSIM_PORT)

    @pytest.fixture
    def bad_credentials(self, cassette: CollectorCassette) -> VsphereCollector:
        return refused(cassette.scenario, VCSIM_HOST, VCSIM_PORT)

    @pytest.fixture
    def unreachable(self, cassette: CollectorCassette) -> VsphereCollector:
        return unreachable_collector(cassette.scenario)

    @pytest.fixture
    def secrets(self) -> list[str]:
        return SECRETS


def test_the_committed_cassette_holds_no_secret() -> None:
    """Runs after the classes, so a recording run checks what it just wrote."""
    assert committed_leaks(NAME, SECRETS, directory=CASSETTES) == []


def test_the_committed_cassette_holds_no_session_key() -> None:
    """The session's cookie is not written, and its key only as ``SESSION_KEY`` (in Login answers and view ids)."""
    text = (CASSETTES / f"{NAME}.yaml").read_text()
    bodies = [_text(i["response"]["body"]["string"]) for i in yaml.safe_load(text)["interactions"]]
    keys = {found[1] for body in bodies for found in _SESSION_KEY.finditer(body)}
    in_views = {found[1] for found in re.finditer(r"session\[([^\]]*)\]", text)}
    assert "vmware_soap_session" not in text
    assert keys == {SESSION_KEY}
    assert in_views == {SESSION_KEY}


def test_a_request_missing_from_the_cassette_fails_the_replay(tmp_path: Path) -> None:
    """Without the recorded answer to its RetrievePropertiesEx of hosts, a replayed inventory fails; it does not
    reach the network."""
    recorded = yaml.safe_load((CASSETTES / f"{NAME}.yaml").read_text())
    kept = [i for i in recorded["interactions"] if "<type>HostSystem</type>" not in _text(i["request"]["body"])]
    assert len(kept) < len(recorded["interactions"])
    (tmp_path / f"{NAME}.yaml").write_text(yaml.safe_dump({**recorded, "interactions": kept}))
    shutil.copy(CASSETTES / f"{NAME}.scenario.json", tmp_path)
    cassette = replayed(NAME, SECRETS, directory=tmp_path, patches=PATCHES)
    collector = vsphere_collector(cassette.scenario, VCSIM_HOST, VCSIM_PORT)
    with cassette.playing():
        collector.verify()  # its requests are still there
        with pytest.raises(CannotOverwriteExistingCassetteException):
            collector.inventory()
