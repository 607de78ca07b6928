"""Capture from a real Gnocchi: the OpenStack collector against Gnocchi's own /v1/aggregates, same window, same run.

    python benchmarks/gnocchi.py [--quick] [--json] [--runs N] [--vms N] [--hours N]

Loads Ceilometer-shaped data (per VM: cpu, memory.usage, vcpus, memory on the instance, one disk and one NIC
with their byte counters: 8 metrics at 5-minute readings) into a Gnocchi 4.7.1 started like the tests start it
(tests/gnocchi_server.py), then times, for the whole window:

- capture: ``GnocchiCollector.capture`` (resource search, /v1/aggregates by metric id, rates, sums, batches)
- fetch: the same /v1/aggregates requests alone (HTTP and JSON decoding: the floor for any client)
- gnocchi rate: Gnocchi computing the counters' rates itself (``rate:mean`` of the same counter metrics), the
  "let the server do it" alternative, which gives negative rates at restarts and spans gaps

Prints medians of ``--runs`` runs, measures read per second, and each time's ratio to the fetch.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import harness  # benchmarks/harness.py, beside this script
import httpx
import numpy as np

from cloudmeter.collectors.openstack import GnocchiCollector, OpenStackConfig
from cloudmeter.collectors.openstack.api import GnocchiAPI
from cloudmeter.collectors.openstack.collector import DEFAULT_POLLING_S, METRICS_PER_REQUEST
from cloudmeter.collectors.openstack.parse import Role
from cloudmeter.model import Window
from cloudmeter.storage.embedded import EmbeddedPostgres

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests import gnocchi_server  # the test suite's server launcher

STEP_S = 300
COUNTERS = (Role.CPU, Role.DISK_READ, Role.DISK_WRITE, Role.NET_RX, Role.NET_TX)


def load(client: httpx.Client, vms: int, start: datetime, readings: int) -> int:
    """Create ``vms`` instances with a disk and a NIC each, post their readings, have Gnocchi process them."""
    rng = np.random.default_rng(7)
    stamps = [(start + timedelta(seconds=STEP_S * k)).isoformat() for k in range(readings)]

    def series(values: np.ndarray) -> list[dict[str, Any]]:
        return [{"timestamp": t, "value": float(v)} for t, v in zip(stamps, values, strict=True)]

    def counter(per_step: float) -> list[dict[str, Any]]:
        return series(np.cumsum(rng.uniform(0.2, 1.8, readings) * per_step))

    policy = {"archive_policy_name": "ceilometer-low-rate"}
    measures = 0
    for first in range(0, vms, 50):
        batch: dict[str, Any] = {}
        for _ in range(first, min(first + 50, vms)):
            vm = str(uuid.uuid4())
            instance = {"id": vm, "display_name": vm[:8], "flavor_id": "f", "flavor_name": "m1", "host": "c1"}
            names = ("cpu", "memory.usage", "vcpus", "memory")
            client.post("/v1/resource/instance", json={**instance, "metrics": dict.fromkeys(names, policy)})
            for kind, meters in (
                ("instance_disk", ("disk.device.read.bytes", "disk.device.write.bytes")),
                ("instance_network_interface", ("network.incoming.bytes", "network.outgoing.bytes")),
            ):
                device_id = f"{vm}-{kind}"
                device = {
                    "id": device_id,
                    "name": "d",
                    "instance_id": vm,
                    "metrics": dict.fromkeys(meters, policy),
                }
                client.post(f"/v1/resource/{kind}", json=device).raise_for_status()
                batch[device_id] = {meter: counter(3e6) for meter in meters}
            batch[vm] = {
                "cpu": counter(STEP_S * 1e9),
                "memory.usage": series(rng.uniform(1000, 3000, readings)),
                "vcpus": series(np.full(readings, 2.0)),
                "memory": series(np.full(readings, 4096.0)),
            }
            measures += 8 * readings
        client.post("/v1/batch/resources/metrics/measures", json=batch).raise_for_status()
    for resource in client.post("/v1/search/resource/generic", json={}, params={"limit": 1000}).json():
        for metric_id in resource["metrics"].values():
            client.get(f"/v1/metric/{metric_id}/measures", params={"refresh": "true", "limit": 1})
    return measures


def main() -> None:
    parser = harness.parser(__doc__, "40 VMs, 6 hours", 200)
    parser.add_argument("--hours", type=int, default=24)
    args = parser.parse_args()
    vms, hours = (40, 6) if args.quick else (args.vms, args.hours)
    readings = hours * 3600 // STEP_S
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours + 1)
    window = Window(start, start + timedelta(hours=hours))

    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedPostgres(Path(tmp)) as pg,
        gnocchi_server.running(Path(tmp) / "gnocchi", pg.uri) as server,
    ):
        began = time.perf_counter()
        measures = load(server.client, vms, start, readings)
        load_s = time.perf_counter() - began
        config = OpenStackConfig(auth_mode="basic", gnocchi_url=server.url)
        collector = GnocchiCollector("bench", config)
        api = GnocchiAPI("bench", httpx.Client(base_url=server.url, auth=("admin", ""), timeout=600))
        lookback = timedelta(seconds=2 * DEFAULT_POLLING_S)  # what capture reads before the window
        groups = collector._layout(window.start - lookback).groups(METRICS_PER_REQUEST)

        def capture() -> int:
            return sum(len(batch) for batch in collector.capture(window))

        def fetch() -> None:
            for group in groups:
                api.measures([m.metric_id for m in group.metrics], window.start - lookback, window.end, 300)

        def gnocchi_rate() -> None:
            for group in groups:
                ids = [m.metric_id for m in group.metrics if m.role in COUNTERS]
                operations = ["metric", *([i, "rate:mean"] for i in ids)]
                api.request(
                    "POST",
                    "/v1/aggregates",
                    params={"start": window.start.isoformat(), "stop": window.end.isoformat(), "granularity": 300},
                    json={"operations": operations},
                )

        rows = capture()  # warm the JIT and the server's caches
        times = {name: harness.median_time(run, args.runs) for name, run in (("capture", capture), ("fetch", fetch))}
        times["gnocchi rate"] = harness.median_time(gnocchi_rate, args.runs)

    figures: dict[str, float] = {"vms": vms, "measures": measures, "rows": rows, "load_s": round(load_s, 2)}
    print(f"{vms} VMs x {hours} h: {measures:,} measures loaded in {load_s:.1f} s; capture yields {rows:,} rows")
    print(f"{'':<14}{'median s':>10}{'measures/s':>14}{'vs fetch':>10}")
    read = {"capture": measures, "fetch": measures, "gnocchi rate": measures * len(COUNTERS) // 8}
    for name, seconds in times.items():
        rate = read[name] / seconds
        print(f"{name:<14}{seconds:>10.3f}{rate:>14,.0f}{seconds / times['fetch']:>10.2f}")
        figures[f"{name.replace(' ', '_')}_measures_per_s"] = round(rate)
    figures["capture_vs_fetch"] = round(times["capture"] / times["fetch"], 3)
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
