"""Kubernetes and OpenShift: kube-state-metrics and cAdvisor series from Prometheus (manager kind ``kubernetes``)."""

from cloudmeter.collectors.kubernetes.collector import KubernetesCollector
from cloudmeter.collectors.kubernetes.config import KubernetesConfig

__all__ = ["KubernetesCollector", "KubernetesConfig"]
