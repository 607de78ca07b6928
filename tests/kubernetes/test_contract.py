"""The kubernetes collector meets the collector contract against a real Prometheus (world.py's series), through a
bearer-token proxy, as OpenShift's Thanos querier is reached. Cassettes come later.

The retired resources are the deleted job's pod and the rescheduled pod's first uid; the missing metric is
web-1's sidecar's disk_read_bps (cAdvisor has no filesystem series for it); the window spans the reschedule, the
gap, the reset, the restart and the deletion.

Two checks of the kit do not fit Kubernetes yet and are expected to fail (strict, so they are noticed when the
kit changes): the kit orders the topology by ``model.KINDS``, where pod and container come last (after region),
so container -> pod -> host reads as "not above it"; and it bounds ``_pct`` by 100, while a container may use more
than its request (job-1's worker uses 1.5 cores of a 1-core request: cpu_usage_pct 150).
"""

from __future__ import annotations

from typing import Final

import pytest

from cloudmeter.collectors.kubernetes import KubernetesCollector
from cloudmeter.model import ResourceRef, Window, from_epoch_s
from cloudmeter.testing import CollectorContract
from tests.collectors.contract_fixtures import closed_port
from tests.kubernetes import world
from tests.kubernetes.conftest import TOKEN, WRONG_TOKEN, Prom

WINDOW: Final = Window(from_epoch_s(world.START + 1800), from_epoch_s(world.START + 9000))


class TestKubernetesLive(CollectorContract):
    @pytest.fixture
    def collector(self, prometheus: Prom) -> KubernetesCollector:
        return prometheus.collector(url=prometheus.proxy_url, bearer_token=TOKEN)

    @pytest.fixture
    def bad_credentials(self, prometheus: Prom) -> KubernetesCollector:
        return prometheus.collector(url=prometheus.proxy_url, bearer_token=WRONG_TOKEN)

    @pytest.fixture
    def unreachable(self, prometheus: Prom) -> KubernetesCollector:
        return prometheus.collector(url=f"http://127.0.0.1:{closed_port()}", bearer_token=TOKEN)

    @pytest.fixture
    def secrets(self) -> list[str]:
        return [TOKEN, WRONG_TOKEN]

    @pytest.fixture
    def window(self) -> Window:
        return WINDOW

    @pytest.fixture
    def retired_refs(self) -> set[ResourceRef]:
        return {ResourceRef("pod", world.U_JOB), ResourceRef("pod", world.U_DB_OLD),
                ResourceRef("container", f"{world.U_JOB}/worker")}  # fmt: skip

    @pytest.fixture
    def missing_metric(self) -> tuple[ResourceRef, str]:
        return ResourceRef("container", f"{world.U_WEB1}/sidecar"), "disk_read_bps"
