"""CloudWatch capture: GetMetricData answers to SampleBatches, stubbed and through botocore's own parser.

    python benchmarks/cloudwatch.py [--quick] [--json] [--runs N]

One day (``--quick``: three hours) of one-minute datapoints of 62 instances with 8 series each (496 queries,
one full GetMetricData request), paged the way CloudWatch pages (at most 100,800 datapoints a page).
Medians of ``--runs`` runs, in datapoints per second:

- stubbed: ``CloudWatchCollector.capture`` end to end with Stubbers answering the documented shapes
  (request validation included; the Stubber skips response parsing)
- wire: the same capture with CloudWatch answering JSON bytes (as the real service does, epoch-second
  timestamps) through the client's serializer and parser, with the collector's timestamp parser
- wire_botocore_ts: the same with botocore's default timestamp parser (a local-time datetime per datapoint)
- convert: the collector's conversion alone (``Datapoints.add`` of every page, then ``batch``)
- reference: the tests' plain per-datapoint conversion (``tests/collectors/aws_fixtures.py``)

Every run asserts that each capture agrees with the reference.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.stub import Stubber

from cloudmeter.collectors.aws import AwsClients, AwsConfig, CloudWatchCollector
from cloudmeter.collectors.aws.parse import SERIES, Datapoints, plan_requests
from cloudmeter.model import ResourceRef, SampleBatch, Window

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.collectors import aws_fixtures  # the tests' payload shapes and reference

INSTANCES = 62
PAGE_DATAPOINTS = 100_800
T0 = 1_790_000_000 - 1_790_000_000 % 3600
PERIOD = 60
VCPUS, MEMORY_BYTES = 2.0, 8192.0 * (1 << 20)  # m5.large


class Workload:
    """The pages answering one GetMetricData request over ``minutes`` minutes (newest first, as by default)."""

    def __init__(self, minutes: int) -> None:
        self.minutes = minutes
        self.ids = [f"i-{k:05d}" for k in range(INSTANCES)]
        (self.request,) = plan_requests(self.ids, aws_fixtures.by_instance(self.ids), PERIOD)
        self.values = np.random.default_rng(0).random((len(self.request.queries), minutes)) * 100
        per_page = PAGE_DATAPOINTS // len(self.request.queries)
        newest_first = np.arange(minutes)[::-1]
        self.parts = [newest_first[lo : lo + per_page] for lo in range(0, minutes, per_page)]

    @property
    def datapoints(self) -> int:
        return len(self.request.queries) * self.minutes

    @property
    def window(self) -> Window:
        return Window(aws_fixtures.at(T0), aws_fixtures.at(T0 + PERIOD * self.minutes))

    def pages(self, stamp: Callable[[int], Any]) -> list[dict[str, Any]]:
        """GetMetricData answers with timestamps made by ``stamp(epoch seconds)``."""
        pages = []
        for number, part in enumerate(self.parts):
            stamps = [stamp(T0 + PERIOD * int(j)) for j in part]
            page: dict[str, Any] = {
                "MetricDataResults": [
                    {
                        "Id": q["Id"],
                        "Timestamps": stamps,
                        "Values": self.values[k, part].tolist(),
                        "StatusCode": "Complete",
                    }
                    for k, q in enumerate(self.request.queries)
                ]
            }
            if number + 1 < len(self.parts):
                page["NextToken"] = f"page-{number + 1}"
            pages.append(page)
        return pages


class _Body:
    """An HTTP response body botocore can read."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._content


def wire(client: Any, work: Workload) -> None:
    """Make ``client`` (CloudWatch) answer ListMetrics and then each GetMetricData page as JSON bytes."""
    listed = {"Metrics": [aws_fixtures.agent_metric(InstanceId=iid) for iid in work.ids]}
    bodies = iter([json.dumps(listed).encode()] + [json.dumps(p).encode() for p in work.pages(float)])

    def send(**event: Any) -> AWSResponse:
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.0"
        return AWSResponse(event["request"].url, 200, headers, _Body(next(bodies)))

    client.meta.events.register("before-send.cloudwatch", send)


def capture(work: Workload, cloudwatch: str) -> tuple[float, list[SampleBatch]]:
    """Seconds of one capture (answers prepared beforehand) and its batches; ``cloudwatch`` says how it answers."""
    clients = aws_fixtures.stub_clients()
    if cloudwatch == "wire_botocore_ts":
        default = boto3.Session(aws_access_key_id="AKIDSTUB", aws_secret_access_key="stub", region_name="us-east-1")
        clients = AwsClients(clients.sts, clients.ec2, default.client("cloudwatch"))
    launched = aws_fixtures.at(T0 - 86400)
    with contextlib.ExitStack() as stack:
        ec2 = stack.enter_context(Stubber(clients.ec2))
        instances = (aws_fixtures.instance(iid, launched=launched) for iid in work.ids)
        ec2.add_response("describe_instances", aws_fixtures.reservations(instances))
        ec2.add_response("describe_instance_types", aws_fixtures.instance_types(["m5.large"]))
        if cloudwatch == "stubbed":
            stubber = stack.enter_context(Stubber(clients.cloudwatch))
            listed = [aws_fixtures.agent_metric(InstanceId=iid) for iid in work.ids]
            stubber.add_response("list_metrics", {"Metrics": listed})
            for page in work.pages(aws_fixtures.at):
                stubber.add_response("get_metric_data", page)
        else:
            wire(clients.cloudwatch, work)
        now = datetime.fromtimestamp(T0 + PERIOD * work.minutes + 3600, UTC)
        collector = CloudWatchCollector("bench", AwsConfig(region="us-east-1"), clients=clients, clock=lambda: now)
        start = time.perf_counter()
        batches = list(collector.capture(work.window))
        return time.perf_counter() - start, batches


def convert(work: Workload) -> float:
    """Seconds of the conversion alone, from the documented shapes."""
    pages = work.pages(aws_fixtures.at)
    start = time.perf_counter()
    points = Datapoints(work.request)
    for page in pages:
        points.add(page["MetricDataResults"])
    refs = tuple(ResourceRef("vm", iid) for iid in work.ids)
    points.batch(refs, np.full(INSTANCES, VCPUS), np.full(INSTANCES, MEMORY_BYTES), PERIOD, T0, work.window.end_s)
    return time.perf_counter() - start


def reference(work: Workload) -> tuple[float, aws_fixtures.Samples]:
    """Seconds of the plain reference, from the same documented shapes, and its samples."""
    pages = work.pages(aws_fixtures.at)
    vcpus, memory = dict.fromkeys(work.ids, VCPUS), dict.fromkeys(work.ids, MEMORY_BYTES)
    start = time.perf_counter()
    series: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for page in pages:
        for k, answer in enumerate(page["MetricDataResults"]):
            key = (work.ids[int(work.request.rows[k])], SERIES[int(work.request.columns[k])][1])
            stamps = (int(t.timestamp()) for t in answer["Timestamps"])
            series.setdefault(key, []).extend(zip(stamps, answer["Values"], strict=True))
    samples = aws_fixtures.reference_samples(series, vcpus, memory, PERIOD, T0, work.window.end_s)
    return time.perf_counter() - start, samples


CAPTURES = ("stubbed", "wire", "wire_botocore_ts")


def one_run(work: Workload) -> dict[str, float]:
    reference_s, expected = reference(work)
    seconds = {"reference": reference_s, "convert": convert(work)}
    for name in CAPTURES:
        seconds[name], batches = capture(work, name)
        aws_fixtures.assert_samples(aws_fixtures.samples(batches), expected)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="three hours of datapoints instead of a day")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    work = Workload(180 if args.quick else 1440)
    one_run(Workload(30))  # warm up
    runs = [one_run(work) for _ in range(args.runs)]
    rates = {name: work.datapoints / statistics.median(r[name] for r in runs) for name in runs[0]}
    print(
        f"{work.datapoints:,} datapoints ({INSTANCES} instances x 8 series x {work.minutes} minutes in "
        f"{len(work.parts)} pages), medians of {args.runs} runs"
    )
    print(f"  {'step':<17} {'datapoints/s':>13} {'vs reference':>13}")
    for name, rate in rates.items():
        print(f"  {name:<17} {rate:>13,.0f} {rate / rates['reference']:>12.2f}x")
    if args.json:
        figures = {"datapoints": float(work.datapoints)}
        for name, rate in rates.items():
            figures[f"{name}_datapoints_per_s"] = rate
            figures[f"{name}_vs_reference"] = rate / rates["reference"]
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
