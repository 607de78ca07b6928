"""OpenStack through Gnocchi (where Ceilometer publishes): manager kind ``openstack``.

Authentication is Keystone v3 password (the Gnocchi URL from the service catalog, or ``gnocchi_url``) or
Gnocchi's own basic auth for deployments without Keystone. Fetching happens here; converting happens in
``parse``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final

import httpx
import numpy as np

from cloudmeter.collectors.base import ManagerConfig
from cloudmeter.collectors.openstack.api import GnocchiAPI
from cloudmeter.collectors.openstack.config import OpenStackConfig
from cloudmeter.collectors.openstack.events import NovaNotifications
from cloudmeter.collectors.openstack.inventory import (
    Allocation,
    Revision,
    Topology,
    allocation,
    infrastructure,
    last_reading,
    revisions,
    vm_items,
)
from cloudmeter.collectors.openstack.keystone import KeystoneAuth, PasswordCredentials
from cloudmeter.collectors.openstack.nova import NovaAPI, NovaFacts, nova_api, read_nova
from cloudmeter.collectors.openstack.nova_parse import HostCapacity
from cloudmeter.collectors.openstack.parse import (
    MAX_MEMORY_MIB,
    MAX_VCPUS,
    METERS,
    Flavor,
    Flavors,
    Layout,
    Polling,
    Role,
    layout,
    parse_measures,
    readings,
    resource_ids,
)
from cloudmeter.collectors.openstack.policy import (
    ArchivePolicy,
    NoCommonGranularity,
    archive_policies,
    choose_granularity,
    metric_policies,
)
from cloudmeter.errors import CollectorError, ConfigError, PayloadError
from cloudmeter.model import Inventory, ResourceRef, SampleBatch, Window, as_utc, epoch_s

log = logging.getLogger(__name__)

#: Metrics read per /v1/aggregates request, and the longest stretch of time one request covers.
METRICS_PER_REQUEST: Final = 500
CHUNK_S: Final = 86400
#: Ids per ``in`` filter of a resource search.
IDS_PER_SEARCH: Final = 500


#: Metrics of unknown archive policy looked up one by one; beyond this, metrics are listed by meter name.
LOOKUPS_ONE_BY_ONE: Final = 50
#: Ceilometer's default polling interval: assumed until the readings show another.
DEFAULT_POLLING_S: Final = 300
#: The coarsest granularity allocations are read at (fewer points; a resize is still seen within it).
ALLOCATION_GRANULARITY_S: Final = 3600
DAY: Final = timedelta(days=1)
_METER_NAMES: Final = {role: name for meters in METERS.values() for name, role in meters.items()}


class GnocchiCollector:
    """Inventory and metrics of one OpenStack cloud from Gnocchi.

    ``transport`` (httpx's) and ``clock`` (what "now" is: the deleted instances still listed, the newest
    allocation readings, the granularity still kept) are seams for tests and recorded runs.
    """

    kind: ClassVar[str] = "openstack"
    config_model: ClassVar[type[ManagerConfig]] = OpenStackConfig

    def __init__(
        self,
        name: str,
        config: OpenStackConfig,
        transport: httpx.BaseTransport | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.name = name
        self.config = config
        self._transport = transport
        self._clock = clock
        self._api: GnocchiAPI | None = None
        self._flavors = Flavors(by_name={name: Flavor(f.vcpus, f.memory_mib) for name, f in config.flavors.items()})
        region = config.region or "RegionOne"
        self._topology = Topology(ResourceRef("provider", name), ResourceRef("region", region), config.host_clusters)
        self._host_capacity = {host: HostCapacity(c.vcpus, c.memory_mib) for host, c in config.host_capacity.items()}
        self._topology = replace(self._topology, capacity=self._host_capacity)
        self._policies: dict[str, ArchivePolicy] = {}
        self._metric_policy: dict[str, str] = {}
        self._polling_s = config.polling_interval_s or DEFAULT_POLLING_S
        self._keystone: KeystoneAuth | None = None
        self._nova: NovaAPI | None = None
        self._nova_read = False

    @property
    def retention_s(self) -> int | None:
        """How far back from now Gnocchi keeps live series: ``retention_days``, else the deepest definition
        (points x granularity, back from a series' newest measure) of the archive policies the metrics of the
        instances of ``retired_lookback_days`` are on (of every policy while none is known)."""
        if self.config.retention_days is not None:
            return self.config.retention_days * 86400
        try:
            if not self._metric_policy:
                self._learn_policies(self._layout(self._clock() - timedelta(days=self.config.retired_lookback_days)))
            if not self._policies:
                self._load_policies()
        except PayloadError as exc:
            raise exc.bad_payload(self.name, "Gnocchi") from exc
        used = [self._policies[name] for name in set(self._metric_policy.values()) if name in self._policies]
        return max(
            (keep.timespan_s for policy in used or self._policies.values() for keep in policy.keeps), default=None
        )

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
            keystone = self._keystone = KeystoneAuth(
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
        under basic auth) and proves Ceilometer publishes here. A configured ``granularity_s`` must be kept by
        some archive policy. With ``amqp_url``, the notification broker's credentials and Nova's exchange too."""
        notifications = self.events()
        if notifications is not None:
            notifications.verify()
        if self.api.find("/v1/resource_type/instance") is None:
            raise CollectorError(
                self.name,
                f"Gnocchi at {self.api.client.base_url} has no 'instance' resource type, so Ceilometer does not "
                "publish there; check gnocchi_url (or run ceilometer-upgrade)",
            )
        wanted = self.config.granularity_s
        if wanted is not None:
            try:
                policies = self._load_policies()
            except PayloadError as exc:
                raise exc.bad_payload(self.name, "Gnocchi") from exc
            if all(wanted not in policy.granularities for policy in policies.values()):
                kept = sorted({g for policy in policies.values() for g in policy.granularities})
                raise ConfigError(
                    f"manager {self.name!r}: no archive policy keeps granularity_s = {wanted} (they keep "
                    f"{', '.join(f'{g} s' for g in kept)}); set one of those, or remove it to read the finest kept"
                )

    def inventory(self) -> Inventory:
        """Instances alive or deleted within ``retired_lookback_days``, with their host history and each
        revision's allocation; their hosts, clusters, the provider and the region."""
        now = as_utc(self._clock())
        lookback = _alive_since(now - timedelta(days=self.config.retired_lookback_days))
        return self._inventory(list(self.api.search("instance", lookback)), now, learn_nova=True)

    def inventory_of(self, refs: list[ResourceRef]) -> Inventory:
        """The instances among ``refs`` (by id, alive or not) with their host history and allocations, the hosts
        they were on, those hosts' clusters, the provider and the region; an instance Gnocchi does not have is left
        out. Nova's flavors and aggregates are those of the last full refresh (read now if there was none)."""
        ids = sorted({ref.ems_ref for ref in refs if ref.kind == "vm"})
        current = [
            found
            for chunk in _batched(ids, IDS_PER_SEARCH)
            for found in self.api.search("instance", {"in": {"id": chunk}})
        ]
        whole = self._inventory(current, as_utc(self._clock()), learn_nova=not self._nova_read)
        hosts = {p.parent for item in whole.items if item.ref.kind == "vm" for p in item.history}
        parents = {item.parent for item in whole.items if item.ref in hosts}
        kept = [
            item for item in whole.items if item.ref.kind in ("vm", "provider", "region") or item.ref in hosts | parents
        ]
        return Inventory(whole.observed_at, tuple(kept))

    def events(self) -> NovaNotifications | None:
        """Nova's notifications on ``amqp_url``; None without it."""
        config = self.config
        if config.amqp_url is None:
            return None
        return NovaNotifications(
            self.name,
            config.amqp_url.get_secret_value(),
            exchange=config.amqp_exchange,
            topics=tuple(config.amqp_topics),
            queue=config.amqp_queue,
            durable_exchange=config.amqp_durable_exchange,
            max_queued=config.amqp_max_queued,
        )

    def _inventory(self, current: list[Any], now: datetime, *, learn_nova: bool) -> Inventory:
        """``current`` (instances a search answered) with their history and allocations, and the infrastructure."""
        try:
            history = [
                revision
                for chunk in _batched(resource_ids(current, "instance"), IDS_PER_SEARCH)
                for revision in self.api.search("instance", {"in": {"id": chunk}}, history=True)
            ]
            if learn_nova:
                self._learn_nova()
            by_instance = revisions(current, history)
            vms = vm_items(by_instance, self._allocations(current, by_instance, now))
            return Inventory(now, (*infrastructure(vms, history, self._topology), *vms))
        except PayloadError as exc:
            raise exc.bad_payload(self.name, "Gnocchi") from exc

    def _allocations(
        self, current: list[Any], by_instance: dict[str, list[Revision]], now: datetime
    ) -> dict[tuple[str, datetime], Allocation]:
        """Each revision's allocation: its known flavor's, else its ``vcpus``/``memory`` readings of the day before
        it ended (or of the last day, while current); one read per such day for all revisions ending in it."""
        found: dict[tuple[str, datetime], Allocation] = {}
        wanting: dict[Window, list[Revision]] = defaultdict(list)
        for revision in (r for listed in by_instance.values() for r in listed):
            if self._flavors.find(revision.attributes, revision.where) is None:
                wanting[_reading_window(revision, now)].append(revision)
            else:
                found[revision.instance_id, revision.start] = allocation(revision, self._flavors)
        if not wanting:
            return found
        whole = layout(current, {}, self._flavors)
        allocation_metrics = [m for m in whole.metrics if m.role in (Role.VCPUS, Role.MEMORY)]
        gauges = Layout(whole.refs, whole.flavors, allocation_metrics, whole.ends)
        self._learn_policies(gauges)
        index = {ref.ems_ref: vm for vm, ref in enumerate(gauges.refs)}
        metrics = {vm: {m.role: m.metric_id for m in listed} for vm, listed in gauges.by_vm().items()}
        for window, ending in wanting.items():
            vms = {index[r.instance_id] for r in ending}
            measures: dict[str, list[list[Any]]] = {}
            read_at: dict[int, int] = {}
            by_granularity = self._by_granularity(gauges, window.start, now, vms, ALLOCATION_GRANULARITY_S)
            for granularity, members in by_granularity.items():
                for group in gauges.groups(METRICS_PER_REQUEST, members):
                    ids = [m.metric_id for m in group.metrics]
                    measures.update(self.api.measures(ids, window.start, window.end, granularity))
                read_at.update(dict.fromkeys(members, granularity))
            for revision in ending:
                vm = index[revision.instance_id]
                vcpus, memory = (
                    _reading(measures, metrics.get(vm, {}).get(role), read_at.get(vm), revision, most)
                    for role, most in ((Role.VCPUS, MAX_VCPUS), (Role.MEMORY, MAX_MEMORY_MIB))
                )
                found[revision.instance_id, revision.start] = allocation(revision, self._flavors, vcpus, memory)
        return found

    def capture(self, window: Window) -> Iterator[SampleBatch]:
        """Counter rates and gauges of every VM alive in ``window``, one batch per group of VMs (of one
        granularity) and day."""
        config = self.config
        now = as_utc(self._clock())
        try:
            if not self._nova_read:
                self._learn_nova()
            whole = self._layout(window.start - timedelta(seconds=2 * self._polling_s))
            self._learn_policies(whole)
            for chunk in window.split(CHUNK_S):
                lookback_s = 2 * self._polling_s
                for granularity, vms in self._by_granularity(
                    whole, chunk.start - timedelta(seconds=lookback_s), now
                ).items():
                    polling = Polling(granularity, config.polling_interval_s, self._polling_s)
                    start = chunk.start - timedelta(seconds=max(lookback_s, 2 * granularity))
                    for group in whole.groups(METRICS_PER_REQUEST, vms):
                        ids = [m.metric_id for m in group.metrics]
                        measures = self.api.measures(ids, start, chunk.end, granularity)
                        batch = parse_measures(group, measures, chunk, polling)
                        self._polling_s = batch.interval_s if config.polling_interval_s is None else self._polling_s
                        yield batch
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
        return layout(instances, devices, self._flavors)

    def _learn_nova(self) -> None:
        """Flavors by id, hosts' physical capacity and aggregates from Nova, where Keystone's catalog has it; a
        Nova that fails leaves them to Gnocchi's readings and the configuration, with a warning."""
        facts: NovaFacts | None = None
        self.api  # noqa: B018 - authenticates, so the catalog is known
        try:
            if self._nova is None and self._keystone is not None:
                config = self.config
                self._nova = nova_api(
                    self.name,
                    self._keystone,
                    config.region,
                    config.interface,
                    timeout_s=config.timeout_s,
                    verify_tls=config.verify_tls,
                    transport=self._transport,
                )
            facts = read_nova(self._nova) if self._nova is not None else None
        except CollectorError as exc:
            log.warning("%s; flavors, host capacities and aggregates come from Gnocchi and the config only", exc)
        self._nova_read = True
        self._flavors = Flavors(self._flavors.by_name, facts.flavors_by_id if facts else {})
        self._topology = replace(
            self._topology,
            aggregates=facts.host_clusters if facts else {},
            capacity={**(facts.host_capacity if facts else {}), **self._host_capacity},
        )

    def _learn_policies(self, found: Layout) -> None:
        """Learn the archive policy of every metric of ``found`` not known yet (a metric never changes policy)."""
        unknown = [m for m in found.metrics if m.metric_id not in self._metric_policy]
        if not unknown:
            return
        if len(unknown) <= LOOKUPS_ONE_BY_ONE:
            for metric in unknown:
                body = self.api.find(f"/v1/metric/{metric.metric_id}")  # None: deleted since the search
                self._metric_policy |= metric_policies([body] if body else [], f"/v1/metric/{metric.metric_id}")
        else:
            for name in sorted({_METER_NAMES[m.role] for m in unknown}):
                self._metric_policy |= metric_policies(self.api.metrics_named(name), f"/v1/metric?name={name}")
        if not set(self._metric_policy.values()) <= self._policies.keys():
            self._load_policies()

    def _load_policies(self) -> dict[str, ArchivePolicy]:
        """Every archive policy Gnocchi has (``GET /v1/archive_policy``), kept for the reads that follow."""
        self._policies = archive_policies(self.api.request("GET", "/v1/archive_policy"))
        return self._policies

    def _by_granularity(
        self,
        found: Layout,
        start: datetime,
        now: datetime,
        vms: set[int] | None = None,
        coarsest_up_to: int | None = None,
    ) -> dict[int, list[int]]:
        """The VMs of ``found`` (all, or ``vms``) by the granularity to read them at from ``start``: one every
        metric of the VM keeps that far back from its newest measures (now, or when the VM ended: a series that
        stopped keeps its fine buckets). VMs whose metrics all vanished are left out."""
        by_policies: dict[tuple[frozenset[str], int], list[int]] = defaultdict(list)
        for vm, metrics in found.by_vm().items():
            names = frozenset(self._metric_policy[m.metric_id] for m in metrics if m.metric_id in self._metric_policy)
            if names and (vms is None or vm in vms):
                newest = min(found.ends[vm] or epoch_s(now), epoch_s(now))
                by_policies[names, newest - epoch_s(start)].append(vm)
        result: dict[int, list[int]] = defaultdict(list)
        for (names, back_s), members in by_policies.items():
            policies = [self._policies[name] for name in sorted(names) if name in self._policies]
            configured = None if coarsest_up_to else self.config.granularity_s
            try:
                granularity = choose_granularity(policies, back_s, configured, coarsest_up_to=coarsest_up_to)
            except NoCommonGranularity as exc:
                if configured is None:
                    raise CollectorError(self.name, f"{exc}; give those meters one archive policy") from exc
                raise ConfigError(
                    f"manager {self.name!r}: {exc}; set granularity_s to one they all keep, or remove it to read the "
                    "finest each metric keeps"
                ) from exc
            result[granularity].extend(members)
        return dict(result)


def _reading_window(revision: Revision, now: datetime) -> Window:
    """Where a revision's last allocation reading is: the last day while current, else the UTC day it ended and
    the one before (so revisions ending the same day share one read)."""
    if revision.end is None:
        return Window(now - DAY, now)
    day = revision.end.replace(hour=0, minute=0, second=0, microsecond=0)
    return Window(day - DAY, min(day + DAY, now))


def _reading(
    measures: dict[str, list[list[Any]]],
    metric_id: str | None,
    granularity_s: int | None,
    revision: Revision,
    most: float,
) -> float:
    if metric_id is None or granularity_s is None:
        return np.nan
    ts, values = readings(measures, metric_id)
    return last_reading(ts, values, granularity_s, revision, most)


def _alive_since(moment: datetime) -> dict[str, Any]:
    """A search for resources not ended before ``moment``. Nothing on started_at: Gnocchi stamps it when
    Ceilometer's first sample arrives, just after the reading that sample carries."""
    return {"or": [{"=": {"ended_at": None}}, {">=": {"ended_at": moment.isoformat()}}]}


def _batched(items: Sequence[str], size: int) -> Iterator[list[str]]:
    return (list(items[i : i + size]) for i in range(0, len(items), size))
