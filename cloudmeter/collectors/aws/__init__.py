"""AWS: EC2 inventory and CloudWatch metrics (manager kind ``aws``)."""

from cloudmeter.collectors.aws.api import AwsClients, connect, parse_timestamp
from cloudmeter.collectors.aws.collector import CloudWatchCollector
from cloudmeter.collectors.aws.config import AwsConfig

__all__ = ["AwsClients", "AwsConfig", "CloudWatchCollector", "connect", "parse_timestamp"]
