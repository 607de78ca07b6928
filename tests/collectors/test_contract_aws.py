"""The AWS collector meets the collector contract: against moto's server, and replayed from its cassette
without it.

At recording time ``R`` three instances with detailed monitoring are launched: ``web`` (m5.large, with the
CloudWatch agent's memory metric), ``batch`` (t3.micro, no agent: its mem_used_bytes is missing) and ``gone``
(t3.micro), which is terminated a second later and has one datapoint while it ran and one a minute after its
termination was asked for, as CloudWatch has while an instance shuts down. ``web`` and ``batch`` report every
minute for 90 minutes from the minute after launch. The window is three hours from the hour ``R`` falls in; the
collectors' clock stands an hour after it. moto accepts any keys unless its IAM authentication is on: the
refusal is a real one, of an IAM user's key with a wrong secret while it is on.

``--record-cassettes`` (or CLOUDMETER_RECORD_CASSETTES=1) records the moto run into cassettes/aws.yaml (and
aws.scenario.json); the replay class runs the same contract from them, with no server started.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs
from xml.etree import ElementTree

import boto3
import pytest
from moto.core import enable_iam_authentication
from moto.server import ThreadedMotoServer

from cloudmeter.collectors.aws import AwsConfig, CloudWatchCollector
from cloudmeter.model import ResourceRef, Window, epoch_s
from cloudmeter.testing import CollectorCassette, CollectorContract, Scenario, ScenarioFixtures
from tests.collectors.contract_fixtures import closed_port, committed_leaks, live_cassette, replayed

if TYPE_CHECKING:
    from vcr.request import Request  # type: ignore[import-untyped]

NAME = "aws"
ACCESS_KEY_ID = "AKIDCONTRACT00000001"
#: Fake secrets, constant so the committed cassette can be searched for them.
SECRET_KEY = "contract-aws-secret-9fQ2vLr7Xw"
WRONG_SECRET = "contract-aws-wrong-3mKp8Tz1Yb"
SECRETS = [SECRET_KEY, WRONG_SECRET]
#: moto's server as the cassette names it.
MOTO = "http://moto.cassette.invalid:5000"
AMI = "ami-12c6146b"  # one of moto's images
EC2_XML_NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15"


def aws_collector(scenario: Scenario, endpoint_url: str, **fields: Any) -> CloudWatchCollector:
    raw = {
        "region": "us-east-1",
        "endpoint_url": endpoint_url,
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_KEY,
    }
    return CloudWatchCollector("lab", AwsConfig.model_validate(raw | fields), clock=lambda: scenario.now)


def refused(scenario: Scenario, endpoint_url: str) -> CloudWatchCollector:
    """The IAM user's key with a wrong secret."""
    key = scenario.extra["refused_access_key_id"]
    return aws_collector(scenario, endpoint_url, access_key_id=key, secret_access_key=WRONG_SECRET)


def unreachable_collector(scenario: Scenario) -> CloudWatchCollector:
    return aws_collector(scenario, f"http://127.0.0.1:{closed_port()}")


def max_results(request: Request, response: dict[str, Any]) -> dict[str, Any]:
    """moto answers DescribeInstanceTypes with every type it knows (900 of them, 5.8 MB) whatever MaxResults says
    (verify's dry run asks for 5, and ignores the answer): the cassette keeps the first MaxResults, as AWS would."""
    asked = parse_qs(request.body.decode() if isinstance(request.body, bytes) else str(request.body or ""))
    if asked.get("Action") != ["DescribeInstanceTypes"] or "MaxResults" not in asked:
        return response
    ElementTree.register_namespace("", EC2_XML_NAMESPACE)
    answer = ElementTree.fromstring(response["body"]["string"])
    listed = answer.find(f"{{{EC2_XML_NAMESPACE}}}instanceTypeSet")
    assert listed is not None, "moto's DescribeInstanceTypes answer has no instanceTypeSet"
    for item in list(listed)[int(asked["MaxResults"][0]) :]:
        listed.remove(item)
    body = ElementTree.tostring(answer, encoding="utf-8", xml_declaration=True)
    response["body"]["string"] = body
    response["headers"] = {
        k: [str(len(body))] if k.lower() == "content-length" else v for k, v in response["headers"].items()
    }
    return response


# ---- against moto --------------------------------------------------------------------------------------------


def admin(url: str, service: Any) -> Any:
    return boto3.client(
        service, region_name="us-east-1", endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="x"
    )


def launch(url: str, instance_type: str) -> dict[str, Any]:
    answer = admin(url, "ec2").run_instances(
        ImageId=AMI, MinCount=1, MaxCount=1, InstanceType=instance_type, Monitoring={"Enabled": True}
    )
    instance: dict[str, Any] = answer["Instances"][0]
    return instance


def put(url: str, namespace: str, name: str, dimensions: dict[str, str], points: Sequence[tuple[int, float]]) -> None:
    dims = [{"Name": k, "Value": v} for k, v in dimensions.items()]
    data = [
        {"MetricName": name, "Dimensions": dims, "Timestamp": datetime.fromtimestamp(ts, UTC), "Value": v}
        for ts, v in points
    ]
    for k in range(0, len(data), 1000):
        admin(url, "cloudwatch").put_metric_data(Namespace=namespace, MetricData=data[k : k + 1000])


def iam_key(url: str) -> str:
    """An IAM user's access key id (its secret is thrown away: the refused collector uses a wrong one)."""
    iam = admin(url, "iam")
    iam.create_user(UserName="reader")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName="reader", PolicyName="all", PolicyDocument=json.dumps(policy))
    return str(iam.create_access_key(UserName="reader")["AccessKey"]["AccessKeyId"])


def build_cloud(url: str) -> Scenario:
    """The instances and datapoints of the module docstring; the scenario the contract runs on."""
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).close()
    web, batch, gone = launch(url, "m5.large"), launch(url, "t3.micro"), launch(url, "t3.micro")
    time.sleep(1.1)  # so that gone's termination (whole seconds) falls after its launch
    admin(url, "ec2").terminate_instances(InstanceIds=[gone["InstanceId"]])
    launched = epoch_s(web["LaunchTime"])
    hour = launched // 3600 * 3600
    first = launched // 60 * 60 + 60
    minutes = [first + 60 * k for k in range(90)]
    for instance, cpu in ((web, 35.0), (batch, 80.0)):
        dims = {"InstanceId": instance["InstanceId"]}
        put(url, "AWS/EC2", "CPUUtilization", dims, [(t + 5, cpu + (t // 60) % 7) for t in minutes])
        put(url, "AWS/EC2", "NetworkIn", dims, [(t + 5, 6.0e5 + t % 3600) for t in minutes])
        put(url, "AWS/EC2", "NetworkOut", dims, [(t + 5, 3.0e5) for t in minutes])
        put(url, "AWS/EC2", "EBSReadBytes", dims, [(t + 10, 1.2e6) for t in minutes])
        put(url, "AWS/EC2", "EBSWriteBytes", dims, [(t + 10, 2.4e6) for t in minutes if (t // 60) % 4])
    agent = {"InstanceId": web["InstanceId"], "ImageId": AMI, "InstanceType": "m5.large"}
    put(url, "CWAgent", "mem_used_percent", agent, [(t + 20, 40.0 + (t // 60) % 11) for t in minutes])
    gone_launched = epoch_s(gone["LaunchTime"])
    put(url, "AWS/EC2", "CPUUtilization", {"InstanceId": gone["InstanceId"]}, [(gone_launched, 12.0)])
    put(url, "AWS/EC2", "CPUUtilization", {"InstanceId": gone["InstanceId"]}, [(gone_launched + 62, 3.0)])
    return Scenario(
        now=datetime.fromtimestamp(hour + 4 * 3600, UTC),
        window=Window(datetime.fromtimestamp(hour, UTC), datetime.fromtimestamp(hour + 3 * 3600, UTC)),
        missing_metric=(ResourceRef("vm", batch["InstanceId"]), "mem_used_bytes"),
        retired_refs=frozenset({ResourceRef("vm", gone["InstanceId"])}),
        extra={"refused_access_key_id": iam_key(url)},
    )


@pytest.fixture(scope="module")
def moto_cloud() -> Iterator[tuple[str, Scenario]]:
    """moto's server (its process-wide state emptied) holding the cloud of ``build_cloud``."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        yield url, build_cloud(url)
    finally:
        server.stop()


class TestCloudWatchLive(ScenarioFixtures, CollectorContract):
    @pytest.fixture(scope="class")
    @classmethod
    def cassette(
        cls, request: pytest.FixtureRequest, moto_cloud: tuple[str, Scenario]
    ) -> Iterator[CollectorCassette | None]:
        url, scenario = moto_cloud
        yield from live_cassette(request.config, NAME, scenario, SECRETS, {url: MOTO}, edit=max_results)

    @pytest.fixture
    def scenario(self, moto_cloud: tuple[str, Scenario]) -> Scenario:
        return moto_cloud[1]

    @pytest.fixture
    def collector(self, moto_cloud: tuple[str, Scenario]) -> CloudWatchCollector:
        url, scenario = moto_cloud
        return aws_collector(scenario, url)

    @pytest.fixture
    def bad_credentials(self, moto_cloud: tuple[str, Scenario]) -> Iterator[CloudWatchCollector]:
        url, scenario = moto_cloud
        with enable_iam_authentication():  # for this test only: the other collectors' keys are unknown to IAM
            yield refused(scenario, url)

    @pytest.fixture
    def unreachable(self, moto_cloud: tuple[str, Scenario]) -> CloudWatchCollector:
        return unreachable_collector(moto_cloud[1])

    @pytest.fixture
    def secrets(self) -> list[str]:
        return SECRETS


# ---- replayed from the cassette ------------------------------------------------------------------------------


class TestCloudWatchReplay(ScenarioFixtures, CollectorContract):
    @pytest.fixture(scope="class")
    @classmethod
    def cassette(cls) -> CollectorCassette:
        return replayed(NAME, SECRETS)

    @pytest.fixture
    def scenario(self, cassette: CollectorCassette) -> Scenario:
        return cassette.scenario

    @pytest.fixture
    def collector(self, cassette: CollectorCassette) -> CloudWatchCollector:
        return aws_collector(cassette.scenario, MOTO)

    @pytest.fixture
    def bad_credentials(self, cassette: CollectorCassette) -> CloudWatchCollector:
        return refused(cassette.scenario, MOTO)

    @pytest.fixture
    def unreachable(self, cassette: CollectorCassette) -> CloudWatchCollector:
        return unreachable_collector(cassette.scenario)

    @pytest.fixture
    def secrets(self) -> list[str]:
        return SECRETS


def test_the_committed_cassette_holds_no_secret() -> None:
    """Runs after the classes, so a recording run checks what it just wrote."""
    assert committed_leaks(NAME, SECRETS) == []
