"""Contract tests of the AWS collector where moto is wrong, with botocore Stubbers answering documented shapes.

GetMetricData paging (NextToken, PartialData), ScanBy order, throttling, exact dimension sets, the 500-query
limit and the period CloudWatch serves by age; plus the pure parts (periods, inventory parsing, the
conversion against a plain reference) and the config schema.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import botocore.session
import numpy as np
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cloudmeter.collectors import registry
from cloudmeter.collectors.aws import AwsConfig, CloudWatchCollector, connect, parse_timestamp
from cloudmeter.collectors.aws.inventory import build_inventory, parse_instance_types, parse_instances
from cloudmeter.collectors.aws.parse import Datapoints, memory_dimensions, periods_by_age, plan_requests, time_slices
from cloudmeter.errors import BadPayload, CollectorAuthError, ConfigError, SourceUnavailable, Throttled
from cloudmeter.model import ResourceRef, SampleBatch, Window, epoch_s
from tests.collectors.aws_fixtures import (
    GIB,
    TYPES,
    agent_metric,
    assert_samples,
    at,
    by_instance,
    instance,
    instance_types,
    queries,
    reference_samples,
    reservations,
    result,
    samples,
    stub_clients,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.literals import StatusCodeType
    from mypy_boto3_cloudwatch.type_defs import DimensionTypeDef, MetricDataResultTypeDef, MetricOutputTypeDef

NOW = datetime(2026, 3, 1, tzinfo=UTC)
NOW_S = epoch_s(NOW)
DAY = 86400
LAUNCHED = NOW - timedelta(days=200)
#: A recent hour: CloudWatch serves it at 60 s.
RECENT = Window(NOW - timedelta(hours=3), NOW - timedelta(hours=2))
R0 = epoch_s(RECENT.start)


@dataclass
class Stubbed:
    """A collector whose EC2 and CloudWatch clients answer from Stubbers, recording what it sends."""

    collector: CloudWatchCollector
    cloudwatch: Stubber
    sleeps: list[float] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, *pages: dict[str, Any]) -> None:
        """Queue GetMetricData answers."""
        for page in pages:
            self.cloudwatch.add_response("get_metric_data", page)

    def capture(self, window: Window = RECENT) -> list[SampleBatch]:
        return list(self.collector.capture(window))


@contextmanager
def stubbed(
    instances: Sequence[dict[str, Any]], agent_metrics: Sequence[MetricOutputTypeDef] = ()
) -> Iterator[Stubbed]:
    """Discovery (instances, their types, the agent's memory metrics) answered; GetMetricData left to the test."""
    clients = stub_clients()
    with Stubber(clients.ec2) as ec2, Stubber(clients.cloudwatch) as cloudwatch:
        ec2.add_response("describe_instances", reservations(instances))
        types = sorted({i["InstanceType"] for i in instances})
        ec2.add_response("describe_instance_types", instance_types(types), {"InstanceTypes": types})
        cloudwatch.add_response("list_metrics", {"Metrics": list(agent_metrics)})
        sleeps: list[float] = []
        lab = CloudWatchCollector(
            "lab", AwsConfig(region="us-east-1"), clients=clients, clock=lambda: NOW, sleep=sleeps.append
        )
        stub = Stubbed(lab, cloudwatch, sleeps)
        clients.cloudwatch.meta.events.register(
            "provide-client-params.cloudwatch.GetMetricData", lambda params, **_: stub.requests.append(params)
        )
        yield stub
        ec2.assert_no_pending_responses()
        cloudwatch.assert_no_pending_responses()


def allocations(*instance_ids_and_types: tuple[str, str]) -> tuple[dict[str, float], dict[str, float]]:
    """vCPUs and memory bytes by instance, from the documented ``TYPES``."""
    vcpus = {iid: float(TYPES[kind][0]) for iid, kind in instance_ids_and_types}
    memory = {iid: float(TYPES[kind][1] << 20) for iid, kind in instance_ids_and_types}
    return vcpus, memory


ONE = [instance("i-1", launched=LAUNCHED)]
CPU_A = [(R0 + 60 * k, 10.0 + k) for k in range(30)]  # minutes 0-29 of RECENT
CPU_B = [(R0 + 60 * k, 10.0 + k) for k in range(30, 60)]
NET_IN = [(R0 + 60 * k, 6000.0 * k) for k in range(0, 60, 2)]


# ---- GetMetricData paging, order, status, throttling -----------------------------------------------------


def test_next_token_pages_are_merged_and_the_cost_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "cloudmeter.collectors.aws")
    with stubbed(ONE) as stub:
        stub.answer(
            {"MetricDataResults": [result("q0", CPU_B)], "NextToken": "page-2"},
            {"MetricDataResults": [result("q0", CPU_A), result("q1", NET_IN)]},
        )
        batches = stub.capture()
    assert [r.get("NextToken") for r in stub.requests] == [None, "page-2"]
    assert stub.requests[0]["MetricDataQueries"] == stub.requests[1]["MetricDataQueries"] == queries(["i-1"], 60)
    vcpus, memory = allocations(("i-1", "m5.large"))
    series = {("i-1", "CPUUtilization"): CPU_A + CPU_B, ("i-1", "NetworkIn"): NET_IN}
    assert_samples(samples(batches), reference_samples(series, vcpus, memory, 60, R0, R0 + 3600))
    assert [b.interval_s for b in batches] == [60]
    assert "manager 'lab': GetMetricData calls: 2, metrics requested: 14, about US$0.00014" in caplog.text


@pytest.mark.parametrize("newest_first", [True, False])
def test_scan_by_order_does_not_matter(newest_first: bool) -> None:
    def page(points: list[tuple[int, float]]) -> dict[str, Any]:
        answer = result("q0", points)
        if not newest_first:
            answer["Timestamps"].reverse()
            answer["Values"].reverse()
        return {"MetricDataResults": [answer]}

    with stubbed(ONE) as stub:
        stub.answer(page(CPU_A))
        got = samples(stub.capture())
    vcpus, memory = allocations(("i-1", "m5.large"))
    assert_samples(got, reference_samples({("i-1", "CPUUtilization"): CPU_A}, vcpus, memory, 60, R0, R0 + 3600))


def test_partial_data_continues_with_next_token() -> None:
    with stubbed(ONE) as stub:
        stub.answer(
            {"MetricDataResults": [result("q0", CPU_A, "PartialData")], "NextToken": "more"},
            {"MetricDataResults": [result("q0", CPU_B, "Complete")]},
        )
        got = samples(stub.capture())
    vcpus, memory = allocations(("i-1", "m5.large"))
    want = reference_samples({("i-1", "CPUUtilization"): CPU_A + CPU_B}, vcpus, memory, 60, R0, R0 + 3600)
    assert_samples(got, want)
    assert len(got) == 60


@pytest.mark.parametrize("code", ["Throttling", "ThrottlingException"])
def test_throttling_is_retried_with_backoff(code: str) -> None:
    with stubbed(ONE) as stub:
        for _ in range(2):
            stub.cloudwatch.add_client_error("get_metric_data", code, "Rate exceeded", 400)
        stub.answer({"MetricDataResults": [result("q0", CPU_A)]})
        got = samples(stub.capture())
    assert len(got) == 30
    assert len(stub.sleeps) == 2 and 1 <= stub.sleeps[0] <= 2 and 2 <= stub.sleeps[1] <= 3  # 1 s, 2 s, + jitter


def test_throttling_that_never_ends_is_throttled() -> None:
    with stubbed(ONE) as stub:
        for _ in range(5):
            stub.cloudwatch.add_client_error("get_metric_data", "Throttling", "Rate exceeded", 400)
        with pytest.raises(Throttled, match="still throttled cloudwatch:GetMetricData after 5 attempts") as caught:
            stub.capture()
    assert caught.value.retry_after == 60 and len(stub.sleeps) == 4


@pytest.mark.parametrize(
    ("status", "error", "says"),
    [
        ("Forbidden", CollectorAuthError, "cloudwatch:GetMetricData answered Forbidden for 'q0'"),
        ("InternalError", SourceUnavailable, "CloudWatch had an internal error reading 'q0'; retry later"),
    ],
)
def test_failed_results_raise(status: StatusCodeType, error: type[Exception], says: str) -> None:
    with stubbed(ONE) as stub:
        stub.answer({"MetricDataResults": [result("q0", [], status)]})
        with pytest.raises(error, match=says):
            stub.capture()


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ({"Id": "q7", "Timestamps": [at(R0)], "Values": [1.0]}, "MetricDataResults[0].Id is 'q7', expected one"),
        ({"Id": "cpu", "Timestamps": [at(R0)], "Values": [1.0]}, "MetricDataResults[0].Id is 'cpu', expected one"),
        ({"Id": "q0", "Timestamps": [at(R0)], "Values": []}, "result 'q0' has 1 timestamps but 0 values"),
        # botocore's Stubber lets a timestamp through as text (its parser would have made it a datetime)
        (
            {"Id": "q0", "Timestamps": ["2026-03-01"], "Values": [1.0]},
            "MetricDataResults[0].Timestamps[0] is '2026-03-01'",
        ),
    ],
)
def test_malformed_results_are_bad_payloads(answer: dict[str, Any], says: str) -> None:
    with stubbed(ONE) as stub:
        stub.answer({"MetricDataResults": [answer]})
        with pytest.raises(
            BadPayload, match=re.escape(f"manager 'lab': GetMetricData answered a malformed result: {says}")
        ):
            stub.capture()


def test_a_malformed_instance_is_a_bad_payload() -> None:
    broken = instance("i-1", launched=LAUNCHED)
    del broken["LaunchTime"]
    clients = stub_clients()
    with Stubber(clients.ec2) as ec2:
        ec2.add_response("describe_instances", reservations([broken]))
        lab = CloudWatchCollector("lab", AwsConfig(region="us-east-1"), clients=clients, clock=lambda: NOW)
        with pytest.raises(BadPayload) as caught:
            lab.inventory()
    assert str(caught.value) == (
        "manager 'lab': DescribeInstances answered a malformed result: Reservations[0].Instances[0].LaunchTime is "
        "missing or null, expected a time with a time zone"
    )


def test_an_infinite_statistic_is_null() -> None:
    with stubbed(ONE) as stub:
        stub.answer(
            {
                "MetricDataResults": [
                    result("q0", [(R0, math.inf), (R0 + 60, 12.0)]),  # CPUUtilization
                    result("q1", [(R0, -math.inf)]),  # NetworkIn
                    result("q3", [(R0, math.inf)]),  # DiskReadBytes, beside EBSReadBytes
                    result("q4", [(R0, 600.0)]),
                ]
            }
        )
        got = samples(stub.capture())
    nan = math.nan
    assert_samples(
        got, {("i-1", R0): [nan, nan, nan, nan, 10.0, nan, nan, nan], ("i-1", R0 + 60): [12.0, 0.24, *[nan] * 6]}
    )


def test_access_denied_names_the_action() -> None:
    with stubbed(ONE) as stub:
        stub.cloudwatch.add_client_error("get_metric_data", "AccessDenied", "not authorized", 403)
        with pytest.raises(CollectorAuthError, match=r"missing permission cloudwatch:GetMetricData \(AWS answered"):
            stub.capture()


# ---- what is asked: dimension sets, batching, periods ----------------------------------------------------


def test_memory_is_read_with_the_agents_exact_dimension_set() -> None:
    fleet = [instance("i-1", launched=LAUNCHED), instance("i-2", "t3.micro", launched=LAUNCHED)]
    listed = [
        agent_metric(InstanceId="i-1", ImageId="ami-1", InstanceType="m5.large"),
        agent_metric(InstanceId="i-1", ImageId="ami-1"),
        agent_metric(AutoScalingGroupName="web"),  # no instance: not read
    ]
    chosen: dict[str, list[DimensionTypeDef]] = {
        "i-1": [{"Name": "InstanceId", "Value": "i-1"}, {"Name": "ImageId", "Value": "ami-1"}]
    }
    memory_points = [(R0 + 60 * k, 40.0 + k) for k in range(10)]
    with stubbed(fleet, listed) as stub:
        expected = {
            "MetricDataQueries": queries(["i-1", "i-2"], 60, chosen),
            "StartTime": RECENT.start,
            "EndTime": RECENT.end,
        }
        stub.cloudwatch.add_response(
            "get_metric_data", {"MetricDataResults": [result("q7", memory_points), result("q8", CPU_A)]}, expected
        )
        got = samples(stub.capture())
    vcpus, memory = allocations(("i-1", "m5.large"), ("i-2", "t3.micro"))
    series = {("i-1", "mem_used_percent"): memory_points, ("i-2", "CPUUtilization"): CPU_A}
    assert_samples(got, reference_samples(series, vcpus, memory, 60, R0, R0 + 3600))
    assert got[("i-1", R0)][2] == 0.40 * 8 * GIB  # 40 % of 8 GiB


def test_requests_hold_at_most_500_queries_and_keep_an_instances_together() -> None:
    ids = [f"i-{k:03d}" for k in range(72)]  # 7 queries each: 71 fit in 497, the last goes alone
    with stubbed([instance(iid, launched=LAUNCHED) for iid in ids]) as stub:
        for part in (ids[:71], ids[71:]):
            expected = {"MetricDataQueries": queries(part, 60), "StartTime": RECENT.start, "EndTime": RECENT.end}
            stub.cloudwatch.add_response("get_metric_data", {"MetricDataResults": [result("q0", CPU_A)]}, expected)
        batches = stub.capture()
    assert [len(r["MetricDataQueries"]) for r in stub.requests] == [497, 7]
    assert [(b.refs[0].ems_ref, len(b.refs), len(b)) for b in batches] == [("i-000", 71, 30), ("i-071", 1, 30)]


def test_the_period_follows_age_and_monitoring() -> None:
    fleet = [instance("i-d", launched=LAUNCHED), instance("i-b", "t3.micro", launched=LAUNCHED, detailed=False)]
    cut = NOW_S - 15 * DAY + 3600  # the whole hour after the 15-day limit plus its 10-minute margin
    window = Window(at(cut - 3 * 3600), at(cut + 2 * 3600))
    with stubbed(fleet) as stub:
        stub.answer(
            {"MetricDataResults": [result("q0", [(cut - 3600, 1.0)])]},
            {"MetricDataResults": [result("q0", [(cut + 60, 2.0)])]},
            {"MetricDataResults": [result("q0", [(cut + 300, 3.0)])]},
        )
        batches = stub.capture(window)
    asked = [
        (r["MetricDataQueries"][0]["MetricStat"]["Period"], epoch_s(r["StartTime"]), epoch_s(r["EndTime"]))
        for r in stub.requests
    ]
    assert asked == [(300, cut - 3 * 3600, cut), (60, cut, cut + 7200), (300, cut, cut + 7200)]
    assert [len(r["MetricDataQueries"]) for r in stub.requests] == [14, 7, 7]
    assert [(b.interval_s, b.refs[b.resource_idx[0]].ems_ref, int(b.ts_s[0])) for b in batches] == [
        (300, "i-d", cut - 3600),
        (60, "i-d", cut + 60),
        (300, "i-b", cut + 300),
    ]


def test_old_windows_use_hours_from_the_hour_before() -> None:
    start = NOW_S - 100 * DAY + 1234  # not on the hour
    with stubbed(ONE) as stub:
        stub.answer({"MetricDataResults": [result("q0", [(start - 1234, 5.0), (start - 1234 + 3600, 6.0)])]})
        batches = stub.capture(Window(at(start), at(start + 7200)))
    request = stub.requests[0]
    assert request["MetricDataQueries"][0]["MetricStat"]["Period"] == 3600
    assert (epoch_s(request["StartTime"]), epoch_s(request["EndTime"])) == (start - 1234, start - 1234 + 3 * 3600)
    # The hour that starts before the window belongs to the previous one.
    assert [(b.interval_s, b.ts_s.tolist()) for b in batches] == [(3600, [start - 1234 + 3600])]


def test_only_instances_alive_in_the_window_are_read() -> None:
    before, after = RECENT.start - timedelta(days=1), RECENT.end + timedelta(minutes=5)
    fleet = [
        instance(
            "i-gone", launched=LAUNCHED, state="terminated", reason=f"User initiated ({before:%Y-%m-%d %H:%M:%S} GMT)"
        ),
        instance("i-late", launched=after),
        instance(
            "i-stopped", launched=LAUNCHED, state="stopped", reason=f"User initiated ({after:%Y-%m-%d %H:%M:%S} GMT)"
        ),
        instance("i-1", launched=LAUNCHED),
    ]
    with stubbed(fleet) as stub:
        stub.answer({"MetricDataResults": []})
        assert stub.capture() == []
    assert stub.requests[0]["MetricDataQueries"] == queries(["i-stopped", "i-1"], 60)


@pytest.mark.parametrize(("region", "error"), [("us-eats-1", ConfigError), ("eu-west-3", SourceUnavailable)])
def test_an_unreachable_region_is_a_typo_or_an_outage(region: str, error: type[Exception]) -> None:
    session = botocore.session.Session()
    session.set_credentials("AKIDSTUB", "stub-secret")

    def offline(**event: Any) -> None:
        raise EndpointConnectionError(endpoint_url=event["request"].url)

    session.register("before-send", offline)
    config = AwsConfig(region=region)
    with pytest.raises(error) as caught:
        CloudWatchCollector("lab", config, clients=connect(config, session)).verify()
    if error is ConfigError:
        assert "unknown AWS region 'us-eats-1'" in str(caught.value) and "did you mean 'us-east-1'?" in str(
            caught.value
        )
    else:
        assert "Could not connect to the endpoint URL" in str(caught.value)


# ---- pure parts ------------------------------------------------------------------------------------------


def test_periods_by_age_cut_on_whole_hours_with_a_margin() -> None:
    now = NOW_S + 1800  # half past
    cut15 = now - 1800 - 15 * DAY + 3600  # now - 15 days + 10 minutes, rounded up to the hour
    cut63 = now - 1800 - 63 * DAY + 3600
    assert periods_by_age(now - 70 * DAY, now, now) == [
        (now - 70 * DAY, cut63, 3600),
        (cut63, cut15, 300),
        (cut15, now, 60),
    ]
    assert periods_by_age(now - 3600, now, now) == [(now - 3600, now, 60)]
    assert periods_by_age(now - 30 * DAY, now - 20 * DAY, now) == [(now - 30 * DAY, now - 20 * DAY, 300)]


def test_time_slices_round_down_and_cap_the_periods() -> None:
    assert time_slices(1000, 200_000, 60) == [(960, 87360), (87360, 173760), (173760, 200_040)]
    assert time_slices(3600, 7200, 3600) == [(3600, 7200)]


def test_plan_requests_packs_whole_instances() -> None:
    ids = [f"i-{k}" for k in range(130)]
    plan = plan_requests(ids, by_instance(ids[::2]), 60)  # 8 or 7 queries alternately
    assert [(r.first, r.stop, len(r.queries)) for r in plan] == [(0, 66, 495), (66, 130, 480)]
    for request in plan:
        assert [q["Id"] for q in request.queries] == [f"q{k}" for k in range(len(request.queries))]
        assert sorted(set(request.rows.tolist())) == list(range(request.stop - request.first))


def test_memory_dimensions_choose_the_smallest_set() -> None:
    found = memory_dimensions(
        [
            agent_metric(InstanceId="i-1", InstanceType="m5.large", ImageId="ami-1"),
            agent_metric(InstanceId="i-1", ImageId="ami-1"),
            agent_metric(ImageId="ami-1", InstanceId="i-2"),
            agent_metric(AutoScalingGroupName="web"),
        ]
    )
    assert found == {
        "i-1": [{"Name": "InstanceId", "Value": "i-1"}, {"Name": "ImageId", "Value": "ami-1"}],
        "i-2": [{"Name": "ImageId", "Value": "ami-1"}, {"Name": "InstanceId", "Value": "i-2"}],
    }


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    instances=st.integers(1, 4),
    period=st.sampled_from([60, 300, 3600]),
    data=st.data(),
)
def test_conversion_matches_the_plain_reference(instances: int, period: int, data: st.DataObject) -> None:
    ids = [f"i-{k}" for k in range(instances)]
    (request,) = plan_requests(ids, by_instance(ids[1:]), period)
    start, end = 1_700_000_000 - 1_700_000_000 % 3600, 1_700_000_000 - 1_700_000_000 % 3600 + 20 * period
    point = st.tuples(st.integers(start - period, end + period - 1), st.floats(0, 1e9, allow_nan=False))
    series: dict[tuple[str, str], list[tuple[int, float]]] = {}
    answers: list[MetricDataResultTypeDef] = []
    for k, query in enumerate(request.queries):
        stat = query["MetricStat"]
        iid = stat["Metric"]["Dimensions"][0]["Value"]
        # One datapoint per period at most, as CloudWatch answers.
        points = list({(ts - ts % period): (ts, v) for ts, v in data.draw(st.lists(point, max_size=8))}.values())
        series[(iid, stat["Metric"]["MetricName"])] = points
        answers.append(result(f"q{k}", points))
    split = data.draw(st.integers(0, len(answers)))
    points_of = Datapoints(request)
    points_of.add(answers[:split])  # two pages
    points_of.add(answers[split:])
    vcpus, memory_bytes = allocations(*((iid, ("m5.large", "t3.micro")[k % 2]) for k, iid in enumerate(ids)))
    batch = points_of.batch(
        tuple(ResourceRef("vm", iid) for iid in ids),
        np.array([vcpus[iid] for iid in ids]),
        np.array([memory_bytes[iid] for iid in ids]),
        period,
        start,
        end,
    )
    assert_samples(samples([batch]), reference_samples(series, vcpus, memory_bytes, period, start, end))
    key = batch.resource_idx.astype(np.int64) * 2**40 + batch.ts_s
    assert np.all(np.diff(key) > 0), "rows not sorted by (instance, ts)"


def test_parse_instances_uses_root_volume_and_transition_times() -> None:
    restarted = instance("i-r", launched=NOW - timedelta(days=1), root_attached=NOW - timedelta(days=90))
    gone = instance("i-g", launched=LAUNCHED, state="terminated", reason="User initiated (2026-02-20 10:11:12 GMT)")
    vanished = instance("i-v", launched=LAUNCHED, state="terminated", reason="Server.InternalError")
    parsed = {i.ref.ems_ref: i for i in parse_instances(reservations([restarted, gone, vanished])["Reservations"])}
    assert parsed["i-r"].started_at == NOW - timedelta(days=90) and parsed["i-r"].ended_at is None
    assert parsed["i-g"].ended_at == datetime(2026, 2, 20, 10, 11, 12, tzinfo=UTC)
    types = parse_instance_types(instance_types(["m5.large"])["InstanceTypes"])
    items = {i.ref.ems_ref: i for i in build_inventory("lab", "us-east-1", None, parsed.values(), types, NOW).items}
    assert items["i-r"].created_at == NOW - timedelta(days=90) and items["i-r"].retired_at is None
    assert items["i-g"].retired_at == datetime(2026, 2, 20, 10, 11, 12, tzinfo=UTC)
    assert items["i-v"].retired_at == NOW  # EC2 gives no time: retired when seen so
    assert (items["i-r"].vcpus, items["i-r"].memory_bytes, items["i-r"].project) == (2, 8 * GIB, "111122223333")


def test_epoch_timestamps_parse_straight_to_utc() -> None:
    parsed = parse_timestamp(NOW_S + 0.5)
    assert parsed == NOW + timedelta(seconds=0.5) and parsed.tzinfo is UTC
    assert parse_timestamp("2026-03-01T00:00:00Z") == parse_timestamp("Sun, 01 Mar 2026 00:00:00 GMT") == NOW


# ---- config ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"region": "US East"}, "region", "is not an AWS region name"),
        ({"access_key_id": "AKID"}, None, "give both access_key_id and secret_access_key"),
        ({"secret_access_key": "s3cr3t"}, None, "give both access_key_id and secret_access_key"),
        ({"role_arn": "reader"}, "role_arn", "arn:aws:iam::123456789012:role/NAME"),
        ({"endpoint_url": "localhost:5000"}, "endpoint_url", "should match pattern"),
        ({"cluster_tag": ""}, "cluster_tag", "at least 1 character"),
        ({"regoin": "us-east-1"}, "regoin", "Extra inputs are not permitted"),
    ],
)
def test_bad_config_names_the_field(fields: dict[str, str], field: str | None, says: str) -> None:
    with pytest.raises(ValidationError, match=says) as caught:
        AwsConfig.model_validate({"region": "us-east-1"} | fields)
    assert [err["loc"] for err in caught.value.errors()] == [(field,) if field else ()]
    assert "s3cr3t" not in str(caught.value)
    with pytest.raises(
        ConfigError, match=f"manager 'lab' \\(kind 'aws'\\) is invalid: {field or ''}.*{says}"
    ) as wrapped:
        registry.parse_manager_config("lab", {"kind": "aws", "region": "us-east-1"} | fields)
    assert "s3cr3t" not in str(wrapped.value)


def test_the_secret_is_never_shown() -> None:
    config = AwsConfig(region="eu-west-1", access_key_id="AKIDTEST", secret_access_key="s3cr3t")
    assert "s3cr3t" not in repr(config) and "s3cr3t" not in str(config.public_fields())
    assert config.public_fields() == {
        "kind": "aws",
        "enabled": True,
        "region": "eu-west-1",
        "access_key_id": "AKIDTEST",
        "role_arn": None,
        "endpoint_url": None,
        "cluster_tag": None,
    }
