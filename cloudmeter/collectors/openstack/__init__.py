"""OpenStack: Ceilometer's measures from Gnocchi, with Keystone and Nova (manager kind ``openstack``)."""

from cloudmeter.collectors.openstack.collector import GnocchiCollector
from cloudmeter.collectors.openstack.config import FlavorConfig, OpenStackConfig

__all__ = ["FlavorConfig", "GnocchiCollector", "OpenStackConfig"]
