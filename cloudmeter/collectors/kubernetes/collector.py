"""Kubernetes (and OpenShift) from Prometheus: kube-state-metrics for inventory, cAdvisor for samples, manager
kind ``kubernetes``.

Fetching happens here and in ``api``; converting in ``inventory`` and ``parse``. Where one Prometheus holds
several clusters, its series carry a ``cluster`` label: then only those whose ``cluster`` is the configured one
are read (and a name that matches none is a ConfigError listing those that exist). Where no series carries a
``cluster`` label, nothing is filtered: the Prometheus is the cluster's own.

Capture reads each namespace with its own query_range calls (one per metric, at most ``MAX_STEPS`` steps each),
so an answer grows with a namespace's containers, not the cluster's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import ClassVar, Final

import httpx

from cloudmeter.collectors.base import ManagerConfig, payload_errors
from cloudmeter.collectors.kubernetes.api import PrometheusAPI
from cloudmeter.collectors.kubernetes.config import KubernetesConfig
from cloudmeter.collectors.kubernetes.inventory import QUERIES, build_inventory, container_requests
from cloudmeter.collectors.kubernetes.parse import CAPTURE, Target, combine, container_ref, grid, matchers, to_batch
from cloudmeter.errors import ConfigError, SourceUnavailable
from cloudmeter.model import Inventory, SampleBatch, Window, epoch_s

log = logging.getLogger(__name__)

#: Steps per query_range call (a day at 60 s; Prometheus refuses more than 11,000 points per series).
MAX_STEPS: Final = 1440
#: The series verify requires, each with the exporter that writes it.
REQUIRED: Final = (
    ("kube_pod_info", "kube-state-metrics"),
    ("kube_node_status_capacity", "kube-state-metrics"),
    ("container_cpu_usage_seconds_total", "cAdvisor (the kubelets' /metrics/cadvisor)"),
)


class KubernetesCollector:
    """Inventory and metrics of one Kubernetes cluster from its Prometheus, implementing the ``Collector``
    protocol. ``transport`` (httpx) and ``clock`` are seams for tests."""

    kind: ClassVar[str] = "kubernetes"
    config_model: ClassVar[type[ManagerConfig]] = KubernetesConfig
    #: Prometheus' retention is its own setting (15 days by default) and the API does not tell it.
    retention_s: ClassVar[int | None] = None

    def __init__(
        self,
        name: str,
        config: KubernetesConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.name = name
        self.config = config
        self.api = PrometheusAPI(name, config, transport)
        self._clock = clock
        self._selector: str | None = None

    def __repr__(self) -> str:
        return f"KubernetesCollector({self.name!r}, {self.config.prometheus_url}, cluster {self.config.cluster!r})"

    def close(self) -> None:
        self.api.close()

    def verify(self) -> None:
        """Prometheus answers buildinfo, and has kube-state-metrics' and cAdvisor's series for the cluster."""
        info = self.api.buildinfo()
        now = epoch_s(self._clock())
        sel = self._sel(now)
        lookback = f"{self.config.lookback_h}h"
        # count() drops the series' name: label_replace names each part of the one query's answer
        present = " or ".join(
            f'label_replace(count(last_over_time({s}{{{sel}}}[{lookback}])), "series", "{s}", "", "")'
            for s, _ in REQUIRED
        )
        with payload_errors(self.name, "query"):
            found = {str(row.get("metric", {}).get("series")) for row in self.api.query(present, now)}
        missing = [f"{series} (from {source})" for series, source in REQUIRED if series not in found]
        if missing:
            raise SourceUnavailable(
                self.name,
                f"Prometheus at {self.config.prometheus_url} has no {', '.join(missing)} in the last {lookback}"
                f"{self._where()}; scrape them (or fix cluster)",
            )
        log.info("manager %r verified: Prometheus %s at %s%s", self.name, info.get("version", "?"),
                 self.config.prometheus_url, self._where())  # fmt: skip

    def inventory(self) -> Inventory:
        """Nodes, namespaces, pods and containers seen in the look-back window; deleted pods as retired."""
        observed_at = self._clock()
        now = epoch_s(observed_at)
        fields = {"sel": self._sel(now), "lookback": self.config.lookback_h * 3600}
        answers = {}
        with payload_errors(self.name, "query"):
            for name, template in QUERIES.items():
                answers[name] = self.api.query(template.format(**fields), now)
            return build_inventory(self.name, self.config.cluster, self.config.region, answers, observed_at)

    def capture(self, window: Window) -> Iterator[SampleBatch]:
        """Samples of every container (and pod sandbox) with timestamps on the ``step_s`` grid in ``window``."""
        step = self.config.step_s
        span = grid(window.start_s, window.end_s, step)
        if span is None:
            return
        first, last = span
        sel = self._sel(last + step)
        reach = last + step - first + step + 300  # the window's series, with Prometheus' lookback before it
        targets, namespaces = self._targets(sel, last + step, reach)
        calls = 0
        for namespace in namespaces:
            ns_sel = sel + matchers(namespace=namespace)
            for a in range(first, last + 1, MAX_STEPS * step):
                b = min(last, a + (MAX_STEPS - 1) * step)
                n = (b - a) // step + 1
                answers = {}
                with payload_errors(self.name, "query_range"):
                    for metric, (template, _) in CAPTURE.items():
                        promql = template.format(sel=ns_sel, step=step)
                        answers[metric] = self.api.query_range(promql, a + step, b + step, step)
                        calls += 1
                    batch = to_batch(combine(answers, a + step, step, n), targets, a, step)
                if len(batch):
                    yield batch
        log.info("manager %r: %d query_range calls for %s", self.name, calls, window)

    # ---- reading -------------------------------------------------------------------------------------------

    def _targets(self, sel: str, at: int, reach: int) -> tuple[dict[tuple[str, str], Target], list[str]]:
        """Every container's requests, and the namespaces with cAdvisor series, in ``reach`` seconds before ``at``."""
        requests = QUERIES["requests"].format(sel=sel, lookback=reach)
        spaces = f'count by (namespace) (last_over_time(container_cpu_usage_seconds_total{{{sel}pod!=""}}[{reach}s]))'
        with payload_errors(self.name, "query"):
            asked = container_requests(self.api.query(requests, at))
            namespaces = sorted(str(row.get("metric", {}).get("namespace", "")) for row in self.api.query(spaces, at))
        targets = {key: Target(container_ref(*key), got) for key, got in asked.items()}
        return targets, [ns for ns in namespaces if ns]

    def _sel(self, at: int) -> str:
        """The cluster's label matchers (each followed by a comma): none where no series has a ``cluster`` label."""
        if self._selector is None:
            promql = f"count by (cluster) (last_over_time(kube_node_info[{self.config.lookback_h * 3600}s]))"
            rows = self.api.query(promql, at)
            clusters = sorted({str(row.get("metric", {}).get("cluster", "")) for row in rows} - {""})
            if clusters and self.config.cluster not in clusters:
                raise ConfigError(
                    f"manager {self.name!r}: Prometheus at {self.config.prometheus_url} has no series of cluster "
                    f"{self.config.cluster!r}; its clusters: {', '.join(clusters)}: fix cluster"
                )
            self._selector = matchers(cluster=self.config.cluster) if clusters else ""
        return self._selector

    def _where(self) -> str:
        return f" for cluster {self.config.cluster!r}" if self._selector else ""
