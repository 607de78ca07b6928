"""The daemon's own metrics, served for Prometheus on ``/metrics`` when ``metrics_port`` is set."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, start_http_server

JOBS = Counter("cloudmeter_jobs", "Jobs run, by manager, job and result", ["manager", "job", "result"])
SAMPLES = Counter("cloudmeter_samples_captured", "Raw samples captured", ["manager"])
LAG = Gauge("cloudmeter_capture_lag_seconds", "Time between now and the end of the last captured window", ["manager"])
LEASED = Gauge("cloudmeter_managers_leased", "Managers this daemon runs")


def serve(port: int) -> None:
    """Serve ``/metrics`` on ``port`` (0: any free port) in a background thread."""
    start_http_server(port)
