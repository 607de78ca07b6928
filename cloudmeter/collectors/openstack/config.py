"""The ``[managers.NAME]`` table of kind ``openstack``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cloudmeter.collectors.base import ManagerConfig, Secret

#: The URL schemes of amqp_url (oslo.messaging's rabbit:// names the same protocol).
AMQP_SCHEMES = ("amqp://", "amqps://", "rabbit://")


class FlavorConfig(BaseModel):
    """A flavor's allocation (or a host's capacity), where the cloud does not tell it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vcpus: int = Field(ge=1, description="virtual CPUs")
    memory_mib: int = Field(ge=1, description="memory in MiB")


class OpenStackConfig(ManagerConfig):
    """A ``[managers.NAME]`` table of kind ``openstack``."""

    kind: Literal["openstack"] = Field("openstack", description="the collector kind")
    auth_mode: Literal["keystone", "basic"] = Field(
        "keystone", description="keystone: a token from auth_url; basic: HTTP basic auth straight to gnocchi_url"
    )
    auth_url: str | None = Field(None, description="Keystone, e.g. https://keystone.example:5000/v3")
    username: str = Field("admin", description="the user to authenticate as")
    password: Secret | None = Field(None, description="that user's password (required with keystone auth)")
    project_name: str | None = Field(None, description="the project to scope the token to (keystone auth)")
    user_domain_name: str = Field("Default", description="the Keystone domain of the user")
    project_domain_name: str = Field("Default", description="the Keystone domain of the project")
    region: str | None = Field(None, description="the catalog region; also the name of the region resource")
    interface: Literal["public", "internal", "admin"] = Field(
        "public", description="the catalog endpoint interface to use"
    )
    gnocchi_url: str | None = Field(None, description="overrides the catalog; required with basic auth")
    host_clusters: dict[str, str] = Field(default_factory=dict, description="compute host -> cluster (aggregate/AZ)")
    host_capacity: dict[str, FlavorConfig] = Field(
        default_factory=dict, description="compute host -> vcpus, memory_mib (overrides Nova's hypervisors)"
    )
    flavors: dict[str, FlavorConfig] = Field(default_factory=dict, description="flavor name -> vcpus, memory_mib")
    granularity_s: int | None = Field(
        None, ge=1, le=86400, description="the archive-policy granularity to read (default: the finest kept)"
    )
    polling_interval_s: int | None = Field(
        None, ge=1, le=86400, description="Ceilometer's polling interval (default: what the readings show)"
    )
    retired_lookback_days: int = Field(30, ge=1, le=3660, description="keep listing instances deleted this recently")
    retention_days: int | None = Field(
        None, ge=1, le=3660, description="how far back Gnocchi keeps measures (default: what its archive policies keep)"
    )
    timeout_s: float = Field(30.0, gt=0, le=3600, description="seconds to wait for each HTTP response")
    verify_tls: bool = Field(True, description="check the servers' TLS certificates (turn off only for tests)")
    amqp_url: Secret | None = Field(
        None,
        description="the RabbitMQ Nova notifies on, amqp://USER:PASSWORD@HOST:5672/VHOST (Nova's [oslo_messaging_"
        "notifications] transport_url; rabbit:// is read as amqp://); unset: no events, the periodic refresh only",
    )
    amqp_exchange: str = Field(
        "nova", min_length=1, max_length=255, description="the exchange Nova publishes to (its control_exchange)"
    )
    amqp_topics: list[str] = Field(
        default_factory=lambda: ["notifications"],
        min_length=1,
        description="the notification topics to bind (Nova's [oslo_messaging_notifications] topics; "
        "versioned_notifications with [notifications] notification_format = versioned). Bind one format only: "
        "Nova's 'both' sends every change twice",
    )
    amqp_queue: str | None = Field(
        None, min_length=1, max_length=255, description="cloudmeter's own durable queue (default cloudmeter-NAME)"
    )
    amqp_durable_exchange: bool = Field(
        False,
        description="whether Nova's exchange is durable (Nova's amqp_durable_queues or rabbit_quorum_queue): "
        "used only to create it when Nova has not yet; a different durability stops Nova's notifications",
    )
    amqp_max_queued: int = Field(
        100_000, ge=1, le=100_000_000, description="most notifications kept queued while cloudmeter is away"
    )

    @model_validator(mode="after")
    def _amqp_url_scheme(self) -> OpenStackConfig:
        if self.amqp_url is not None and not self.amqp_url.get_secret_value().startswith(AMQP_SCHEMES):
            raise ValueError(f"amqp_url must start with {', '.join(AMQP_SCHEMES)}")
        return self

    @model_validator(mode="after")
    def _auth_complete(self) -> OpenStackConfig:
        if self.auth_mode == "basic" and not self.gnocchi_url:
            raise ValueError("auth_mode 'basic' needs gnocchi_url (there is no service catalog without Keystone)")
        if self.auth_mode == "keystone":
            missing = [name for name in ("auth_url", "password", "project_name") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"auth_mode 'keystone' needs {', '.join(missing)} (or set auth_mode = 'basic')")
        return self
