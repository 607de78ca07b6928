"""VMware vSphere: vCenter (or a standalone ESXi) inventory and PerformanceManager metrics (manager kind ``vmware``)."""

from cloudmeter.collectors.vmware.collector import VsphereCollector
from cloudmeter.collectors.vmware.config import VmwareConfig

__all__ = ["VmwareConfig", "VsphereCollector"]
