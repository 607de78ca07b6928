"""vSphere: inventory of 2,000 VMs and one capture of them against vcsim, the time split by who spends it.

    python benchmarks/vsphere.py [--quick] [--json] [--runs N] [--vms N] [--batches 16,64,...]

A vcsim (tests/vmware/vcsim/main.go, built as the tests build it) with ``--vms`` VMs, 50 per host, 10 hosts a
cluster (``--quick``: 200 VMs), and an hour of realtime samples (20 s) of the 7 counters capture reads for every
VM and host, pushed into its QueryPerf. Medians of ``--runs`` runs:

- inventory: ``VsphereCollector.inventory()`` (a ContainerView and RetrievePropertiesEx per object type)
- capture at each QueryPerf batch size (entities per call, ``entities_per_query``): the last hour, split into
  vsphere (vcsim's answer: the same SOAP requests replayed with http.client, the whole body read), pyvmomi
  (the QueryPerf calls less that: serializing the request and parsing the answer into objects) and convert
  (``parse.to_batch``: objects to SampleBatch), plus what is left (reading VMs and hosts, building specs).

``convert_vs_fetch`` is convert / (vsphere + pyvmomi) at the chosen batch size (the goal: under 0.10).
"""

from __future__ import annotations

import http.client
import json
import ssl
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import parser
from pyVim.connect import Disconnect
from pyVmomi import vim

from cloudmeter.collectors.vmware import VmwareConfig, VsphereCollector
from cloudmeter.collectors.vmware import collector as collector_module
from cloudmeter.model import Window, from_epoch_s

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.vmware import world  # the tests' vcsim and names
from tests.vmware.conftest import by_name, connect
from tests.vmware.vcsim_server import VcsimServer, running

PER_HOST = 50
CHOSEN = 64  # entities_per_query's default


def push_hour(server: VcsimServer, now: int) -> int:
    """An hour of realtime samples of every counter of every VM and host; the points pushed."""
    instance = connect(server)
    try:
        entities = [(vm._moId, world.COUNTERS_VM) for vm in by_name(instance.content, vim.VirtualMachine).values()]
        entities += [(h._moId, world.COUNTERS_HOST) for h in by_name(instance.content, vim.HostSystem).values()]
    finally:
        Disconnect(instance)
    series = [
        {"entity": moid, "counter": counter, "instance": "", "interval": 20,
         "points": [[now - 3600 + 20 * k, 100 + (k * 7 + j) % 50] for k in range(1, 181)]}
        for moid, counters in entities for j, counter in enumerate(counters)
    ]  # fmt: skip
    server.push(series, now=now)
    return len(series) * 180


class Tally:
    """Seconds spent in QueryPerf calls and in conversion, and the SOAP requests sent (to replay)."""

    def __init__(self) -> None:
        self.query_s = self.convert_s = 0.0
        self.requests: list[tuple[str, str, bytes, dict[str, str]]] = []


@contextmanager
def tallied(collector: VsphereCollector, tally: Tally) -> Iterator[None]:
    query, convert, send = collector.api.query_perf, collector_module.to_batch, http.client.HTTPConnection.request

    def timed_query(specs: list[Any]) -> list[Any]:
        began = time.perf_counter()
        try:
            return query(specs)
        finally:
            tally.query_s += time.perf_counter() - began

    def timed_convert(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return convert(*args, **kwargs)
        finally:
            tally.convert_s += time.perf_counter() - began

    def recorded(self: http.client.HTTPConnection, method: str, url: str, body: Any = None, headers: Any = None,
                 **kwargs: Any) -> None:  # fmt: skip
        if isinstance(body, (bytes, str)) and "<QueryPerf " in (body if isinstance(body, str) else body.decode()):
            raw = body if isinstance(body, bytes) else body.encode()
            tally.requests.append((f"{self.host}:{self.port}", url, raw, dict(headers or {})))
        send(self, method, url, body, headers or {}, **kwargs)

    collector.api.query_perf = timed_query
    collector_module.to_batch = timed_convert
    http.client.HTTPConnection.request = recorded
    try:
        yield
    finally:
        collector_module.to_batch = convert
        http.client.HTTPConnection.request = send
        del collector.api.query_perf


def replay(requests: list[tuple[str, str, bytes, dict[str, str]]]) -> float:
    """Seconds vcsim takes to answer ``requests`` (sent again as they were, each answer read whole)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    total = 0.0
    for address, url, body, headers in requests:
        host, port = address.rsplit(":", 1)
        connection = http.client.HTTPSConnection(host, int(port), context=context)
        began = time.perf_counter()
        connection.request("POST", url, body, headers)
        answer = connection.getresponse().read()
        total += time.perf_counter() - began
        connection.close()
        assert b"QueryPerfResponse" in answer, answer[:300]
    return total


def one_capture(make: Callable[[int], VsphereCollector], batch: int, window: Window) -> dict[str, float]:
    collector = make(batch)
    collector.verify()  # logged in, counters and levels asked, outside the timing
    collector._counter_ids()
    _ = collector.retention_s
    tally = Tally()
    with tallied(collector, tally):
        began = time.perf_counter()
        rows = sum(len(b) for b in collector.capture(window))
        total = time.perf_counter() - began
    vsphere = replay(tally.requests)
    collector.close()
    return {
        "total": total,
        "vsphere": vsphere,
        "pyvmomi": tally.query_s - vsphere,
        "convert": tally.convert_s,
        "rest": total - tally.query_s - tally.convert_s,
        "calls": float(len(tally.requests)),
        "rows": float(rows),
    }


def main() -> None:
    args_parser = parser(__doc__, "200 VMs instead of 2,000", 2000)
    args_parser.add_argument("--batches", default="8,16,32,64,128,256,512,1024")
    args = args_parser.parse_args()
    vms = 200 if args.quick else args.vms
    hosts = max(1, vms // PER_HOST)
    clusters = max(1, hosts // 10)
    flags = ("-dc", "1", "-cluster", str(clusters), "-cluster-host", str(hosts // clusters), "-host", "0",
             "-vms-per-host", str(PER_HOST), "-templates", "0", "-mhz", "2400", "-cores", "32")  # fmt: skip
    batches = [int(b) for b in args.batches.split(",")]
    began = time.perf_counter()
    with running(*flags, username=world.USERNAME, password=world.PASSWORD) as server:
        started_s = time.perf_counter() - began
        now = int(time.time()) // 3600 * 3600 + 3600
        points = push_hour(server, now)
        clock = datetime.fromtimestamp(now, UTC)

        def make(batch: int) -> VsphereCollector:
            config = VmwareConfig(host=server.host, port=server.port, username=world.USERNAME,
                                  password=world.PASSWORD, verify_tls=False, entities_per_query=batch)  # fmt: skip
            return VsphereCollector("bench", config, clock=lambda: clock)

        inventory = make(CHOSEN)
        inventory.verify()
        items = len(inventory.inventory().items)
        inventory_s = statistics.median(_timed(inventory.inventory) for _ in range(args.runs))
        window = Window(from_epoch_s(now - 3600), from_epoch_s(now))
        results = {b: _medians([one_capture(make, b, window) for _ in range(args.runs)]) for b in batches}
    print(f"vcsim: {vms:,} VMs on {hosts} hosts ({items} resources) started in {started_s:.1f} s; {points:,} points")
    print(f"inventory: {inventory_s:.2f} s (median of {args.runs})")
    print(f"capture of the last hour (medians of {args.runs}):")
    print(f"  {'batch':>6} {'calls':>6} {'rows':>8} {'total s':>8} {'vsphere':>8} {'pyvmomi':>8} {'convert':>8} "
          f"{'rest':>6} {'convert/fetch':>14}")  # fmt: skip
    for b, r in results.items():
        fetch = r["vsphere"] + r["pyvmomi"]
        print(f"  {b:>6} {r['calls']:>6.0f} {r['rows']:>8,.0f} {r['total']:>8.2f} {r['vsphere']:>8.2f} "
              f"{r['pyvmomi']:>8.2f} {r['convert']:>8.3f} {r['rest']:>6.2f} {r['convert'] / fetch:>14.3f}")  # fmt: skip
    if args.json:
        figures = {"vms": float(vms), "inventory_s": inventory_s}
        for b, r in results.items():
            figures |= {
                f"capture_{name}_s_batch_{b}": value for name, value in r.items() if name not in ("calls", "rows")
            }
        chosen = results.get(CHOSEN, next(iter(results.values())))
        figures["convert_vs_fetch"] = chosen["convert"] / (chosen["vsphere"] + chosen["pyvmomi"])
        print(json.dumps(figures))


def _timed(run: Callable[[], object]) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


def _medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(r[name] for r in runs) for name in runs[0]}


if __name__ == "__main__":
    main()
