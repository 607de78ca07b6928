"""The AWS collector against moto's real HTTP server (``endpoint_url``): verify, EC2 inventory, basic statistics.

moto is right about these (shared/RECIPES.md): credentials and IAM denials, EC2 instances, types, hosts and
Auto Scaling tags, and CloudWatch Average/Sum over seeded datapoints. What it gets wrong (paging, PartialData,
throttling, ...) is covered by Stubber contract tests in ``test_cloudwatch_contract.py``.
"""

from __future__ import annotations

import json
import logging
import socket
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import boto3
import numpy as np
import pytest
from moto.core import enable_iam_authentication
from moto.server import ThreadedMotoServer

from cloudmeter.collectors import registry
from cloudmeter.collectors.aws import CloudWatchCollector
from cloudmeter.collectors.base import Collector
from cloudmeter.errors import CollectorAuthError, ConfigError, SourceUnavailable
from cloudmeter.model import METRICS, ResourceRef, Window, epoch_s
from cloudmeter.scheduler import jobs
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database
from tests.collectors.aws_fixtures import GIB, assert_samples, at, samples

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"  # a fake, checked never to leak
ACCOUNT = "123456789012"  # moto's account
AMI = "ami-12c6146b"  # one of moto's images


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def moto(moto_url: str) -> str:
    """The server's URL, its state reset."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")).close()
    return moto_url


def collector(url: str, **fields: Any) -> CloudWatchCollector:
    """An ``aws`` manager named "lab" built through the registry, like the CLI does."""
    raw = {"kind": "aws", "region": "us-east-1", "endpoint_url": url, "access_key_id": "AKIDTEST"} | fields
    raw.setdefault("secret_access_key", SECRET)
    built = registry.build_collector("lab", registry.parse_manager_config("lab", raw))
    assert isinstance(built, CloudWatchCollector)
    return built


def admin(url: str, service: Any, region: str = "us-east-1") -> Any:
    return boto3.client(
        service, region_name=region, endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


# ---- verify ----------------------------------------------------------------------------------------------


def test_is_a_collector_found_through_the_registry() -> None:
    assert registry.collector_class("aws") is CloudWatchCollector
    assert isinstance(collector("http://127.0.0.1:1"), Collector)


def test_verify_passes_with_a_secret_from_the_environment(
    moto: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CLOUDMETER_TEST_AWS_SECRET", SECRET)
    caplog.set_level(logging.INFO, "cloudmeter.collectors.aws")
    collector(moto, secret_access_key="env:CLOUDMETER_TEST_AWS_SECRET").verify()
    assert f"manager 'lab' verified: account {ACCOUNT} as arn:aws:sts::{ACCOUNT}:user/moto in us-east-1" in caplog.text
    assert SECRET not in caplog.text


def test_verify_with_a_role_acts_as_that_role(moto: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "cloudmeter.collectors.aws")
    collector(moto, role_arn=f"arn:aws:iam::{ACCOUNT}:role/cloudmeter-reader").verify()
    assert f"as arn:aws:sts::{ACCOUNT}:assumed-role/cloudmeter-reader/cloudmeter in" in caplog.text


def iam_user(url: str, actions: Sequence[str]) -> tuple[str, str]:
    """A moto IAM user allowed ``actions``; returns its access key id and secret."""
    iam = admin(url, "iam")
    iam.create_user(UserName="reader")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}]}
    iam.put_user_policy(UserName="reader", PolicyName="reader", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.mark.parametrize("wrong", ["key", "secret"])
def test_bad_credentials_are_an_auth_error_without_the_secret(moto: str, wrong: str) -> None:
    key, secret = iam_user(moto, ["sts:GetCallerIdentity"])
    fields = {"access_key_id": "AKIAUNKNOWN000000000"} if wrong == "key" else {"secret_access_key": SECRET}
    lab = collector(moto, **({"access_key_id": key, "secret_access_key": secret} | fields))
    with enable_iam_authentication(), pytest.raises(CollectorAuthError) as caught:
        lab.verify()
    code = "InvalidClientTokenId" if wrong == "key" else "SignatureDoesNotMatch"
    assert str(caught.value) == (
        f"manager 'lab': invalid credentials: AWS answered {code} to sts:GetCallerIdentity; check access_key_id "
        "and secret_access_key (or the default credential chain)"
    )
    assert SECRET not in str(caught.value) and secret not in str(caught.value)


def test_a_missing_permission_is_named(moto: str) -> None:
    key, secret = iam_user(moto, ["sts:GetCallerIdentity", "ec2:DescribeRegions"])
    lab = collector(moto, access_key_id=key, secret_access_key=secret)
    with enable_iam_authentication(), pytest.raises(CollectorAuthError, match="missing permission") as caught:
        lab.verify()
    assert str(caught.value).startswith("manager 'lab': missing permission ec2:DescribeInstances (AWS answered ")
    assert "allow it in the IAM policy" in str(caught.value) and secret not in str(caught.value)


def test_an_unknown_region_is_a_config_error(moto: str) -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown AWS region 'xx-nowhere-1' \(ec2:DescribeRegions failed: .*\); set `region` to a region",
    ):
        collector(moto, region="xx-nowhere-1").verify()


def test_a_region_the_account_has_not_enabled_is_a_config_error(moto: str) -> None:
    with pytest.raises(ConfigError, match="region 'ap-east-1' is not enabled for this account; enable it"):
        collector(moto, region="ap-east-1").verify()


def test_an_unreachable_endpoint_is_unavailable() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SourceUnavailable, match=f"sts:GetCallerIdentity failed: .*127.0.0.1:{port}") as caught:
        collector(f"http://127.0.0.1:{port}").verify()
    assert SECRET not in str(caught.value)


def test_no_credentials_anywhere_is_an_auth_error(moto: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.setenv(name, "/nonexistent/aws")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    config = registry.parse_manager_config("lab", {"kind": "aws", "region": "us-east-1", "endpoint_url": moto})
    with pytest.raises(CollectorAuthError, match="no AWS credentials found: set access_key_id and secret_access_key"):
        registry.build_collector("lab", config).verify()


# ---- inventory -------------------------------------------------------------------------------------------


def run(url: str, instance_type: str, zone: str, *, detailed: bool = False, **placement: Any) -> dict[str, Any]:
    """One instance launched in moto; returns it as run_instances answered."""
    answer = admin(url, "ec2").run_instances(
        ImageId=AMI,
        MinCount=1,
        MaxCount=1,
        InstanceType=instance_type,
        Placement={"AvailabilityZone": zone} | placement,
        Monitoring={"Enabled": detailed},
    )
    instance: dict[str, Any] = answer["Instances"][0]
    return instance


def tag(url: str, instance_id: str, **tags: str) -> None:
    admin(url, "ec2").create_tags(Resources=[instance_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


def fleet(url: str) -> dict[str, Any]:
    """Two Auto Scaling instances, a tagged one, one on a dedicated host, a stopped and a terminated one."""
    ec2, autoscaling = admin(url, "ec2"), admin(url, "autoscaling")
    ec2.create_launch_template(
        LaunchTemplateName="web", LaunchTemplateData={"ImageId": AMI, "InstanceType": "c5.xlarge"}
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="web-asg",
        LaunchTemplate={"LaunchTemplateName": "web"},
        MinSize=2,
        MaxSize=2,
        AvailabilityZones=["us-east-1a"],
    )
    web = sorted(i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"])
    db = run(url, "m5.large", "us-east-1b")
    tag(url, db["InstanceId"], Name="db-1", team="data")
    host = ec2.allocate_hosts(AvailabilityZone="us-east-1a", InstanceType="m5.large", Quantity=1)["HostIds"][0]
    licensed = run(url, "m5.large", "us-east-1a", HostId=host, Tenancy="host")
    stopped = run(url, "t3.micro", "us-east-1b")
    ec2.stop_instances(InstanceIds=[stopped["InstanceId"]])
    gone = run(url, "t3.micro", "us-east-1b")
    before = datetime.now(UTC).replace(microsecond=0)
    ec2.terminate_instances(InstanceIds=[gone["InstanceId"]])
    after = datetime.now(UTC)
    return {
        "web": web,
        "db": db,
        "host": host,
        "licensed": licensed,
        "stopped": stopped,
        "gone": gone,
        "terminated_between": (before, after),
    }


def test_inventory_builds_the_topology(moto: str) -> None:
    world = fleet(moto)
    lab = collector(moto)
    described = []
    lab.clients.ec2.meta.events.register(
        "provide-client-params.ec2.DescribeInstanceTypes", lambda **kwargs: described.append(kwargs["params"])
    )
    items = {item.ref: item for item in lab.inventory().items}

    region, provider = ResourceRef("region", "us-east-1"), ResourceRef("provider", "lab")
    zone_a, zone_b = ResourceRef("cluster", "us-east-1a"), ResourceRef("cluster", "us-east-1b")
    host = ResourceRef("host", world["host"])
    small, large, xlarge = (2, GIB), (2, 8 * GIB), (4, 8 * GIB)  # t3.micro, m5.large, c5.xlarge
    expected = {
        region: ("us-east-1", None, None),
        provider: ("lab", region, None),
        zone_a: ("us-east-1a", provider, None),
        zone_b: ("us-east-1b", provider, None),
        host: (world["host"], zone_a, None),
        **{ResourceRef("vm", web): (web, zone_a, xlarge) for web in world["web"]},
        ResourceRef("vm", world["db"]["InstanceId"]): ("db-1", zone_b, large),
        ResourceRef("vm", world["licensed"]["InstanceId"]): (world["licensed"]["InstanceId"], host, large),
        ResourceRef("vm", world["stopped"]["InstanceId"]): (world["stopped"]["InstanceId"], zone_b, small),
        ResourceRef("vm", world["gone"]["InstanceId"]): (world["gone"]["InstanceId"], zone_b, small),
    }
    got = {
        ref: (i.name, i.parent, (i.vcpus, i.memory_bytes) if ref.kind == "vm" else i.vcpus) for ref, i in items.items()
    }
    assert got == expected
    vms = [i for i in items.values() if i.ref.kind == "vm"]
    assert {i.project for i in vms} == {ACCOUNT}
    db = items[ResourceRef("vm", world["db"]["InstanceId"])]
    assert db.created_at == world["db"]["LaunchTime"]
    assert dict(db.tags) == {
        "Name": "db-1",
        "team": "data",
        "aws:instance-type": "m5.large",
        "aws:availability-zone": "us-east-1b",
    }
    assert items[ResourceRef("vm", world["web"][0])].tags["aws:autoscaling:groupName"] == "web-asg"
    before, after = world["terminated_between"]
    retired = items[ResourceRef("vm", world["gone"]["InstanceId"])].retired_at
    assert retired is not None and before <= retired <= after
    assert [i.ref for i in vms if i.retired_at is not None] == [ResourceRef("vm", world["gone"]["InstanceId"])]
    earliest = min(i.created_at for i in vms if i.created_at is not None)
    assert items[region].created_at == items[provider].created_at == earliest

    lab.inventory()
    assert described == [{"InstanceTypes": ["c5.xlarge", "m5.large", "t3.micro"]}], "types not cached"


def test_cluster_tag_groups_instances_by_its_value(moto: str) -> None:
    world = fleet(moto)
    items = {i.ref: i for i in collector(moto, cluster_tag="aws:autoscaling:groupName").inventory().items}
    asg = ResourceRef("cluster", "aws:autoscaling:groupName=web-asg")
    assert (items[asg].name, items[asg].parent) == ("web-asg", ResourceRef("provider", "lab"))
    assert {ref for ref, i in items.items() if i.parent == asg} == {ResourceRef("vm", w) for w in world["web"]}
    assert items[ResourceRef("vm", world["db"]["InstanceId"])].parent == ResourceRef("cluster", "us-east-1b")
    assert items[ResourceRef("host", world["host"])].parent == ResourceRef("cluster", "us-east-1a")


# ---- capture ---------------------------------------------------------------------------------------------


def put(url: str, namespace: str, name: str, dimensions: dict[str, str], points: Sequence[tuple[int, float]]) -> None:
    """Seed datapoints, at most 1000 per call as on AWS."""
    cloudwatch = admin(url, "cloudwatch")
    dims = [{"Name": k, "Value": v} for k, v in dimensions.items()]
    data = [{"MetricName": name, "Dimensions": dims, "Timestamp": at(ts), "Value": v} for ts, v in points]
    for k in range(0, len(data), 1000):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[k : k + 1000])


def test_capture_reads_cloudwatch_statistics(moto: str, caplog: pytest.LogCaptureFixture) -> None:
    # Launched now; the data lies in the hour after next, so the instances are alive in the window.
    t0 = -(-epoch_s(datetime.now(UTC)) // 3600) * 3600 + 3600
    detailed = run(moto, "m5.large", "us-east-1a", detailed=True)["InstanceId"]
    basic = run(moto, "t3.micro", "us-east-1b")["InstanceId"]
    minutes = range(10)
    put(
        moto,
        "AWS/EC2",
        "CPUUtilization",
        {"InstanceId": detailed},
        [(t0 + 60 * k + 5, 10.0 + k) for k in minutes if k != 3],
    )
    put(moto, "AWS/EC2", "CPUUtilization", {"InstanceId": detailed}, [(t0 - 55, 99.0), (t0 + 3605, 99.0)])  # outside
    put(
        moto,
        "AWS/EC2",
        "NetworkIn",
        {"InstanceId": detailed},
        [(t0 + 60 * k + s, v) for k in minutes for s, v in ((5, 600.0 * k), (35, 1200.0))],
    )
    put(moto, "AWS/EC2", "DiskReadBytes", {"InstanceId": detailed}, [(t0 + 60 * k + 10, 60.0) for k in range(5)])
    put(moto, "AWS/EC2", "EBSReadBytes", {"InstanceId": detailed}, [(t0 + 60 * k + 10, 120.0 * k) for k in minutes])
    agent = {"InstanceId": detailed, "ImageId": AMI, "InstanceType": "m5.large"}
    put(moto, "CWAgent", "mem_used_percent", agent, [(t0 + 60 * k + 20, 25.0 + k) for k in minutes])
    put(moto, "AWS/EC2", "CPUUtilization", {"InstanceId": basic}, [(t0 + 60 * j + 1, float(j)) for j in range(10)])
    put(moto, "AWS/EC2", "NetworkOut", {"InstanceId": basic}, [(t0 + 60 * j + 1, 3000.0) for j in range(10)])

    lab = CloudWatchCollector("lab", collector(moto).config, clock=lambda: at(t0 + 7200))
    caplog.set_level(logging.INFO, "cloudmeter.collectors.aws")
    batches = list(lab.capture(Window(at(t0), at(t0 + 3600))))

    nan = np.nan
    expected = {
        (detailed, t0 + 60 * k): [
            nan if k == 3 else 10.0 + k,
            nan if k == 3 else (10.0 + k) / 100 * 2,
            (25.0 + k) / 100 * 8 * GIB,
            25.0 + k,
            (60.0 + 120.0 * k) / 60 if k < 5 else 120.0 * k / 60,
            nan,
            (600.0 * k + 1200.0) / 60,
            nan,
        ]
        for k in minutes
    } | {
        (basic, t0): [2.0, 2.0 / 100 * 2, nan, nan, nan, nan, nan, 15000.0 / 300],
        (basic, t0 + 300): [7.0, 7.0 / 100 * 2, nan, nan, nan, nan, nan, 15000.0 / 300],
    }
    assert_samples(samples(batches), expected)
    assert sorted((b.interval_s, [r.ems_ref for r in b.refs]) for b in batches) == [(60, [detailed]), (300, [basic])]
    assert all(b.values.shape[1] == len(METRICS) for b in batches)
    assert "GetMetricData calls: 2, metrics requested: 15" in caplog.text  # 7 + 7 + 1 memory query


def test_refresh_and_capture_into_the_database(moto: str, db: Database) -> None:
    t0 = -(-epoch_s(datetime.now(UTC)) // 3600) * 3600 + 3600
    busy = run(moto, "m5.large", "us-east-1a", detailed=True)["InstanceId"]  # 2 vCPUs, 8 GiB
    idle = run(moto, "t3.micro", "us-east-1a", detailed=True)["InstanceId"]  # 2 vCPUs
    put(moto, "AWS/EC2", "CPUUtilization", {"InstanceId": busy}, [(t0 + 60 * k + 5, 40.0) for k in range(60)])
    put(moto, "AWS/EC2", "CPUUtilization", {"InstanceId": idle}, [(t0 + 60 * k + 5, 5.0) for k in range(30)])
    lab = CloudWatchCollector("lab", collector(moto).config, clock=lambda: at(t0 + 7200))
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, "lab", "aws", lab.config.public_fields())

    jobs.refresh_inventory(db, manager_id, lab)
    result = jobs.capture(db, manager_id, lab, Window(at(t0), at(t0 + 3600)))

    assert result.rows == 60 + 30
    with db.connection() as conn:
        hourly = conn.execute(
            """SELECT r.kind, r.ems_ref, h.cpu_used_cores_avg, h.cpu_used_cores_max, h.sample_count
               FROM metric_hourly h JOIN resources r ON r.id = h.resource_id
               WHERE r.kind IN ('vm', 'cluster') ORDER BY r.kind, r.ems_ref""",
        ).fetchall()
    by_ref = {ems_ref: (kind, avg, peak, count) for kind, ems_ref, avg, peak, count in hourly}
    assert by_ref[busy] == ("vm", pytest.approx(0.8), pytest.approx(0.8), 60)  # 40% of 2 vCPUs
    assert by_ref[idle] == ("vm", pytest.approx(0.1), pytest.approx(0.1), 30)  # 5% of 2, half the hour
    # the zone sums its VMs at each minute: 0.9 cores for 30 minutes, 0.8 for the other 30
    kind, avg, peak, _ = by_ref["us-east-1a"]
    assert (kind, avg, peak) == ("cluster", pytest.approx((30 * 0.9 + 30 * 0.8) / 60), pytest.approx(0.9))
