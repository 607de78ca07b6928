"""The ``[managers.NAME]`` table of kind ``kubernetes``."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from cloudmeter.collectors.base import ManagerConfig, Secret


class KubernetesConfig(ManagerConfig):
    """One Kubernetes (or OpenShift) cluster's kube-state-metrics and cAdvisor series, read from Prometheus."""

    model_config = ConfigDict(hide_input_in_errors=True)  # the input holds the secret

    kind: Literal["kubernetes"] = Field("kubernetes", description="the collector kind")
    prometheus_url: str = Field(
        min_length=1,
        description="Prometheus (or Thanos querier) base URL, e.g. https://thanos-querier.openshift-monitoring:9091",
    )
    bearer_token: Secret | None = Field(
        None, description="sent as 'Authorization: Bearer ...' (OpenShift: a service account's token); or env:VAR"
    )
    verify_tls: bool = Field(True, description="check the server's TLS certificate (turn off only for tests)")
    cluster: str = Field(
        min_length=1,
        description="the cluster's name; where the series carry a 'cluster' label, only this value's are read",
    )
    region: str | None = Field(None, min_length=1, description="the region resource above the cluster")
    step_s: int = Field(60, ge=5, le=3600, description="seconds between samples (query_range step and rate range)")
    timeout_s: float = Field(60.0, gt=0, le=3600, description="seconds to wait for each Prometheus answer")
    lookback_h: int = Field(
        24,
        ge=1,
        le=24 * 3660,
        description="hours of series inventory and verify read, so short-lived pods are not missed",
    )

    @field_validator("prometheus_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value.split("://", 1)[1].strip("/")) == 0:
            raise ValueError(f"{value!r} is not an http(s) URL; give e.g. http://prometheus.example:9090")
        return value.rstrip("/")
