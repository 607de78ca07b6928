"""The vmware collector meets the collector contract against a real vcsim (world.py's): the retired VM is the
one destroyed through the API (vCenter's VmRemovedEvent lists it), the missing metric DC0_C0_H1-vm0's net_tx_bps,
the window the last two hours (realtime and 300-second samples, the powered-off VM's gap inside)."""

from __future__ import annotations

import pytest

from cloudmeter.collectors.vmware import VmwareConfig, VsphereCollector
from cloudmeter.model import ResourceRef, Window, from_epoch_s
from cloudmeter.testing import CollectorContract
from tests.collectors.contract_fixtures import closed_port
from tests.vmware import world
from tests.vmware.conftest import World


class TestVsphereLive(CollectorContract):
    @pytest.fixture
    def collector(self, vsphere: World) -> VsphereCollector:
        return vsphere.collector()

    @pytest.fixture
    def window(self, vsphere: World) -> Window:
        return Window(from_epoch_s(vsphere.now - 7200), from_epoch_s(vsphere.now))

    @pytest.fixture
    def bad_credentials(self, vsphere: World) -> VsphereCollector:
        return vsphere.collector(password=world.WRONG_PASSWORD)

    @pytest.fixture
    def unreachable(self) -> VsphereCollector:
        raw = {"host": "127.0.0.1", "port": closed_port(), "username": world.USERNAME, "password": world.PASSWORD}
        return VsphereCollector("vc", VmwareConfig.model_validate(raw))

    @pytest.fixture
    def secrets(self) -> list[str]:
        return [world.PASSWORD, world.WRONG_PASSWORD]

    @pytest.fixture
    def retired_refs(self, vsphere: World) -> set[ResourceRef]:
        return {ResourceRef("vm", vsphere.retired)}

    @pytest.fixture
    def missing_metric(self, vsphere: World) -> tuple[ResourceRef, str]:
        return ResourceRef("vm", vsphere.morefs[world.MISSING_VM]), "net_tx_bps"
