"""OpenStack through Gnocchi (where Ceilometer publishes): manager kind ``openstack``.

Authentication is Keystone v3 password (the Gnocchi URL from the service catalog, or ``gnocchi_url``) or
Gnocchi's own basic auth for deployments without Keystone. Fetching happens here; converting happens in
``gnocchi_parse``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final, Literal

import httpx
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cloudmeter.collectors.base import ManagerConfig, Secret
from cloudmeter.collectors.gnocchi_api import GnocchiAPI
from cloudmeter.collectors.gnocchi_parse import (
    Flavor,
    Layout,
    Role,
    Topology,
    infrastructure,
    latest_allocations,
    layout,
    parse_measures,
    resource_ids,
    vm_items,
)
from cloudmeter.collectors.keystone import KeystoneAuth, PasswordCredentials
from cloudmeter.errors import CollectorError, ConfigError, PayloadError
from cloudmeter.model import Inventory, ResourceRef, SampleBatch, Window

Floats = npt.NDArray[np.float64]

#: Metrics read per /v1/aggregates request, and the longest stretch of time one request covers.
METRICS_PER_REQUEST: Final = 500
CHUNK_S: Final = 86400
#: Ids per ``in`` filter of a resource search.
IDS_PER_SEARCH: Final = 500


class FlavorConfig(BaseModel):
    """A flavor's allocation, for deployments that do not publish the ``vcpus``/``memory`` meters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vcpus: int = Field(ge=1)
    memory_mib: int = Field(ge=1)


class OpenStackConfig(ManagerConfig):
    """A ``[managers.NAME]`` table of kind ``openstack``."""

    kind: Literal["openstack"] = "openstack"
    auth_mode: Literal["keystone", "basic"] = "keystone"
    auth_url: str | None = Field(None, description="Keystone, e.g. https://keystone.example:5000/v3")
    username: str = "admin"
    password: Secret | None = None
    project_name: str | None = None
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"
    region: str | None = Field(None, description="the catalog region; also the name of the region resource")
    interface: Literal["public", "internal", "admin"] = "public"
    gnocchi_url: str | None = Field(None, description="overrides the catalog; required with basic auth")
    host_clusters: dict[str, str] = Field(default_factory=dict, description="compute host -> cluster (aggregate/AZ)")
    flavors: dict[str, FlavorConfig] = Field(default_factory=dict, description="flavor name -> vcpus, memory_mib")
    granularity_s: int = Field(300, ge=1, le=86400, description="the archive-policy granularity to read")
    polling_interval_s: int = Field(300, ge=1, le=86400, description="Ceilometer's polling interval")
    retired_lookback_days: int = Field(30, ge=1, le=3660, description="keep listing instances deleted this recently")
    timeout_s: float = Field(30.0, gt=0, le=3600)
    verify_tls: bool = True

    @model_validator(mode="after")
    def _auth_complete(self) -> OpenStackConfig:
        if self.auth_mode == "basic" and not self.gnocchi_url:
            raise ValueError("auth_mode 'basic' needs gnocchi_url (there is no service catalog without Keystone)")
        if self.auth_mode == "keystone":
            missing = [name for name in ("auth_url", "password", "project_name") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"auth_mode 'keystone' needs {', '.join(missing)} (or set auth_mode = 'basic')")
        return self

    @property
    def interval_s(self) -> int:
        """How often a VM gets a reading: the polling interval, at least one archive bucket."""
        return max(self.polling_interval_s, self.granularity_s)

    @property
    def max_span_s(self) -> int:
        """The longest time between two counter readings that still gives a rate (one missed poll)."""
        return 2 * self.interval_s


class GnocchiCollector:
    """Inventory and metrics of one OpenStack cloud from Gnocchi."""

    kind: ClassVar[str] = "openstack"
    config_model: ClassVar[type[ManagerConfig]] = OpenStackConfig
    retention_s: ClassVar[int | None] = 30 * 86400  # Ceilometer's archive policies keep 5-minute means 30 days

    def __init__(self, name: str, config: OpenStackConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.name = name
        self.config = config
        self._transport = transport
        self._api: GnocchiAPI | None = None
        self._flavors = {name: Flavor(f.vcpus, f.memory_mib) for name, f in config.flavors.items()}
        region = config.region or "RegionOne"
        self._topology = Topology(ResourceRef("provider", name), ResourceRef("region", region), config.host_clusters)

    @property
    def api(self) -> GnocchiAPI:
        """The Gnocchi client, authenticated on first use."""
        if self._api is None:
            self._api = GnocchiAPI(self.name, self._client())
        return self._api

    def _client(self) -> httpx.Client:
        config = self.config
        auth: httpx.Auth
        if config.auth_mode == "basic":
            password = config.password.get_secret_value() if config.password else ""
            assert config.gnocchi_url is not None  # the config validator insists on it
            auth, url = httpx.BasicAuth(config.username, password), config.gnocchi_url
        else:
            assert config.auth_url and config.password and config.project_name
            keystone = KeystoneAuth(
                self.name,
                PasswordCredentials(
                    config.auth_url,
                    config.username,
                    config.password.get_secret_value(),
                    config.project_name,
                    config.user_domain_name,
                    config.project_domain_name,
                ),
                verify_tls=config.verify_tls,
                timeout_s=config.timeout_s,
                transport=self._transport,
            )
            found = config.gnocchi_url or keystone.token().endpoint("metric", config.region, config.interface)
            if found is None:
                raise ConfigError(
                    f"manager {self.name!r}: Keystone's catalog has no {config.interface} 'metric' (Gnocchi) endpoint"
                    f" in region {config.region or 'any'}; set gnocchi_url or fix region/interface"
                )
            auth, url = keystone, found
        return httpx.Client(
            base_url=url,
            auth=auth,
            headers={"Accept": "application/json"},
            timeout=config.timeout_s,
            verify=config.verify_tls,
            transport=self._transport,
        )

    def verify(self) -> None:
        """Read Ceilometer's ``instance`` resource type: it needs valid credentials (resource listings don't
        under basic auth) and proves Ceilometer publishes here."""
        if self.api.find("/v1/resource_type/instance") is None:
            raise CollectorError(
                self.name,
                f"Gnocchi at {self.api.client.base_url} has no 'instance' resource type, so Ceilometer does not "
                "publish there; check gnocchi_url (or run ceilometer-upgrade)",
            )

    def inventory(self) -> Inventory:
        """Instances alive or deleted within ``retired_lookback_days``, with their host history; their hosts,
        clusters, the provider and the region."""
        now = datetime.now(UTC)
        current = list(
            self.api.search("instance", _alive_since(now - timedelta(days=self.config.retired_lookback_days)))
        )
        try:
            history = [
                revision
                for chunk in _batched(resource_ids(current, "instance"), IDS_PER_SEARCH)
                for revision in self.api.search("instance", {"in": {"id": chunk}}, history=True)
            ]
            vms = vm_items(current, history, self._current_allocations(layout(current, {}), now), self._flavors)
            return Inventory(now, (*infrastructure(vms, history, self._topology), *vms))
        except PayloadError as exc:
            raise exc.bad_payload(self.name, "Gnocchi") from exc

    def _current_allocations(self, group: Layout, now: datetime) -> tuple[Floats, Floats]:
        """The latest ``vcpus``/``memory`` readings of the last day (or the configured flavors)."""
        gauges = [m for m in group.metrics if m.role in (Role.VCPUS, Role.MEMORY)]
        wanted = Layout(group.refs, group.flavor_names, gauges)
        measures: dict[str, list[list[Any]]] = {}
        for part in wanted.groups(METRICS_PER_REQUEST):
            ids = [m.metric_id for m in part.metrics]
            measures.update(self.api.measures(ids, now - timedelta(days=1), now, self.config.granularity_s))
        return latest_allocations(wanted, measures, self._flavors)

    def capture(self, window: Window) -> Iterator[SampleBatch]:
        """Counter rates and gauges of every VM alive in ``window``, one batch per group of VMs and day."""
        config = self.config
        lookback = timedelta(seconds=config.max_span_s)
        try:
            groups = self._layout(window.start - lookback).groups(METRICS_PER_REQUEST)
            for chunk in window.split(CHUNK_S):
                for group in groups:
                    measures = self.api.measures(
                        [m.metric_id for m in group.metrics], chunk.start - lookback, chunk.end, config.granularity_s
                    )
                    yield parse_measures(
                        group,
                        measures,
                        chunk,
                        max_span_s=config.max_span_s,
                        interval_s=config.interval_s,
                        flavors=self._flavors,
                    )
        except PayloadError as exc:
            raise exc.bad_payload(self.name, "Gnocchi") from exc

    def _layout(self, start: datetime) -> Layout:
        instances = list(self.api.search("instance", _alive_since(start)))
        ids = resource_ids(instances, "instance")
        devices = {
            kind: [
                device
                for chunk in _batched(ids, IDS_PER_SEARCH)
                for device in self.api.search(kind, {"in": {"instance_id": chunk}})
            ]
            for kind in ("instance_disk", "instance_network_interface")
        }
        return layout(instances, devices)


def _alive_since(moment: datetime) -> dict[str, Any]:
    """A search for resources not ended before ``moment``. Nothing on started_at: Gnocchi stamps it when
    Ceilometer's first sample arrives, just after the reading that sample carries."""
    return {"or": [{"=": {"ended_at": None}}, {">=": {"ended_at": moment.isoformat()}}]}


def _batched(items: Sequence[str], size: int) -> Iterator[list[str]]:
    return (list(items[i : i + size]) for i in range(0, len(items), size))
