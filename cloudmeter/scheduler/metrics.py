"""The daemon's own metrics, served for Prometheus on ``/metrics`` when ``metrics_port`` is set."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, start_http_server

JOBS = Counter("cloudmeter_jobs", "Jobs run, by manager, job and result", ["manager", "job", "result"])
SAMPLES = Counter("cloudmeter_samples_captured", "Raw samples captured", ["manager"])
LAG = Gauge("cloudmeter_capture_lag_seconds", "Time between now and the end of the last captured window", ["manager"])
LEASED = Gauge("cloudmeter_managers_leased", "Managers this daemon runs")
NEWEST = Gauge(
    "cloudmeter_newest_sample_timestamp_seconds", "Time of the newest raw sample stored (Unix seconds)", ["manager"]
)
STALE = Gauge(
    "cloudmeter_source_stale",
    "1 while the source has sent nothing for [schedule] stale_after_intervals capture intervals of captured time",
    ["manager"],
)
REQUESTS = Counter(
    "cloudmeter_source_requests", "API requests sent to the source, by manager and call", ["manager", "api"]
)
METRICS_REQUESTED = Counter(
    "cloudmeter_cloudwatch_metrics_requested", "CloudWatch metrics named by GetMetricData requests", ["manager"]
)
EVENTS = Counter("cloudmeter_events_received", "Events a catcher handed over and saw committed", ["manager"])
EVENT_LAG = Gauge(
    "cloudmeter_event_lag_seconds", "Time between the newest event of the last batch and its commit", ["manager"]
)
EVENTS_CONNECTED = Gauge("cloudmeter_events_connected", "1 while the manager's event catcher is connected", ["manager"])
COST = Counter("cloudmeter_source_cost_usd", "What the API requests cost at list prices (US$)", ["manager"])


def serve(port: int) -> None:
    """Serve ``/metrics`` on ``port`` (0: any free port) in a background thread."""
    start_http_server(port)
