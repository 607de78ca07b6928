"""The ``[managers.NAME]`` table of kind ``vmware``."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from cloudmeter.collectors.base import ManagerConfig, Secret


class VmwareConfig(ManagerConfig):
    """One vCenter Server (or a standalone ESXi host), logged in to with a user and password."""

    model_config = ConfigDict(hide_input_in_errors=True)  # the input holds the secret

    kind: Literal["vmware"] = Field("vmware", description="the collector kind")
    host: str = Field(min_length=1, description="the vCenter (or ESXi) host name or address, e.g. vcenter.example")
    port: int = Field(443, ge=1, le=65535, description="its HTTPS port")
    username: str = Field(min_length=1, description="the user to log in as, e.g. readonly@vsphere.local")
    password: Secret = Field(description="that user's password")
    verify_tls: bool = Field(True, description="check the server's TLS certificate (turn off only for tests)")
    datacenters: list[str] = Field(
        default_factory=list, description="names of the datacenters to read (default: all of them)"
    )
    region: str | None = Field(
        None, min_length=1, description="the region resource every datacenter belongs to (default: one per datacenter)"
    )
    timeout_s: float = Field(60.0, gt=0, le=3600, description="seconds to wait for each vSphere answer")
    retired_lookback_days: int = Field(
        30, ge=1, le=3660, description="list VMs removed this recently (from vCenter's VmRemovedEvent events)"
    )
    entities_per_query: int = Field(
        64, ge=1, le=10000, description="VMs or hosts per PerformanceManager.QueryPerf call"
    )
    events: bool = Field(
        True, description="follow vCenter's VM events (migrations, resizes, power, create, delete) as they happen"
    )
