"""The ``[managers.NAME]`` table of kind ``simulator``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, Field, field_validator

from cloudmeter.collectors.base import ManagerConfig
from cloudmeter.model import as_utc


class SimulatorConfig(ManagerConfig):
    """A seeded synthetic cloud; ``fail`` makes every call fail the way a broken manager would."""

    kind: Literal["simulator"] = Field("simulator", description="the collector kind")
    seed: int = Field(default=42, ge=0, le=2**63 - 1, description="draws the world: the same seed, the same cloud")
    region: str = Field(default="sim-region-1", description="the name of the region resource")
    clusters: int = Field(default=2, ge=1, le=1000, description="how many clusters")
    hosts_per_cluster: int = Field(default=4, ge=1, le=10_000, description="compute hosts in each cluster")
    vms: int = Field(default=40, ge=0, le=1_000_000, description="how many VMs, spread over the hosts")
    interval_s: int = Field(default=60, ge=1, le=3600, description="seconds between samples; divides 3600")
    coarse_interval_s: int = Field(
        default=300,
        ge=1,
        le=3600,
        description="seconds between the samples of the coarse_share (like AWS without detailed monitoring)",
    )
    coarse_share: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="share of the VMs sampled at coarse_interval_s, picked by a hash of (seed, VM) so the rest of "
        "the world stays as the seed draws it",
    )
    start: AwareDatetime = Field(default=datetime(2026, 1, 1, tzinfo=UTC), description="when the world begins")
    horizon_days: int = Field(
        default=30, ge=1, le=3660, description="days after start in which VMs are created, migrated and deleted"
    )
    fail: Literal["auth", "unavailable"] | None = Field(
        default=None, description="make every call fail as a broken manager would (bad credentials, source down)"
    )

    @field_validator("interval_s", "coarse_interval_s")
    @classmethod
    def _divides_hour(cls, value: int) -> int:
        if 3600 % value:
            raise ValueError(f"interval_s must divide 3600 (e.g. 60, 300, 3600), got {value}")
        return value

    @field_validator("start")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return as_utc(value)
