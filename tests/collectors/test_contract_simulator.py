"""The simulator meets the collector contract (cloudmeter.testing).

The world of seed 1 with 12 VMs (read off once from its config, then checked by the contract itself): VM 7 is
created at the start, migrates at 06:25 and is deleted at 10:09; VM 1 is created at 06:15; VMs 2 and 9 have no
memory agent; about a third of the VMs report every 5 minutes instead of every minute. The window 05:00-11:00
holds all of that; the clock stands at 12:00.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloudmeter.collectors.simulator import SimulatorCollector, SimulatorConfig
from cloudmeter.model import ResourceRef, Window
from cloudmeter.testing import CollectorContract

START = datetime(2026, 1, 1, tzinfo=UTC)
NOW = START + timedelta(hours=12)
WORLD = {"seed": 1, "vms": 12, "horizon_days": 1, "clusters": 1, "hosts_per_cluster": 3, "coarse_share": 0.3}


def simulator(**fields: object) -> SimulatorCollector:
    return SimulatorCollector("sim", SimulatorConfig.model_validate(WORLD | fields), clock=lambda: NOW)


class TestSimulatorContract(CollectorContract):
    @pytest.fixture
    def collector(self) -> SimulatorCollector:
        return simulator()

    @pytest.fixture
    def window(self) -> Window:
        return Window(START + timedelta(hours=5), START + timedelta(hours=11))

    @pytest.fixture
    def bad_credentials(self) -> SimulatorCollector:
        return simulator(fail="auth")

    @pytest.fixture
    def unreachable(self) -> SimulatorCollector:
        return simulator(fail="unavailable")

    @pytest.fixture
    def secrets(self) -> list[str]:
        return []  # SimulatorConfig has no secret field: the secret checks skip, saying so

    @pytest.fixture
    def retired_refs(self) -> set[ResourceRef]:
        return {ResourceRef("vm", "sim-vm-00007")}

    @pytest.fixture
    def missing_metric(self) -> tuple[ResourceRef, str]:
        return ResourceRef("vm", "sim-vm-00002"), "mem_used_bytes"
