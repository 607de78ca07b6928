"""vSphere's SOAP API through pyVmomi: one session per manager, the few calls cloudmeter needs, and errors
translated at the boundary.

    vim.fault.InvalidLogin                      -> CollectorAuthError  "invalid credentials"
    vim.fault.NoPermission                      -> CollectorAuthError  "permission denied"
    vim.fault.NotAuthenticated (expired)        -> log in again and retry the call once
    ssl.SSLCertVerificationError                -> ConfigError         names verify_tls
    another TLS failure (not HTTPS there)       -> ConfigError         names host and port
    "is down or is not a VIM server"            -> ConfigError         not a vCenter/ESXi endpoint
    refused, unresolvable, timed out, cut off   -> SourceUnavailable   "... is unreachable"
    any other vmodl.MethodFault                 -> SourceUnavailable

The session is logged in on first use, reused by every later call (inventory and capture jobs alike), logged in
again when vCenter expired it, and logged out by ``close()`` or when the API object is collected (at exit too).
Inventory reads go through one ContainerView and ``RetrievePropertiesEx`` per object type, following the
continuation token; values come back flat: ``{"moid": ..., "property.path": value}`` with managed object
references as their ids. A targeted read names its objects instead (``properties``) and climbs their parents
(``lineage``). Events come from an ``EventFeed``: an EventHistoryCollector whose latestPage a PropertyCollector
of its own watches with WaitForUpdatesEx (as ManageIQ's catcher does).
"""

from __future__ import annotations

import http.client
import logging
import ssl
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final, TypeVar

from pyVim.connect import SmartConnect
from pyVmomi import vim, vmodl
from pyVmomi.VmomiSupport import ManagedObject

from cloudmeter.collectors import usage
from cloudmeter.collectors.vmware.config import VmwareConfig
from cloudmeter.errors import CollectorAuthError, ConfigError, SourceUnavailable

log = logging.getLogger(__name__)

#: Objects per RetrievePropertiesEx page (vCenter may send fewer and a token for the rest).
PAGE_SIZE: Final = 1000
#: vCenter's advanced setting limiting the metrics of one historical QueryPerf.
MAX_QUERY_METRICS: Final = "config.vpxd.stats.maxQueryMetrics"
#: Events per QueryEvents answer, and per page of an event collector (vCenter's cap for one answer).
MAX_EVENTS: Final = 1000
_T = TypeVar("_T")
Flat = dict[str, Any]


class VsphereAPI:
    """One manager's vCenter or ESXi endpoint; ``connect`` (pyVim's SmartConnect) is a seam for tests."""

    def __init__(self, manager: str, config: VmwareConfig, connect: Callable[..., Any] = SmartConnect) -> None:
        self.manager = manager
        self.config = config
        self._connect = connect
        self._instance: Any = None
        self._logout: weakref.finalize[[Any], VsphereAPI] | None = None

    @property
    def where(self) -> str:
        return f"vSphere at {self.config.host}:{self.config.port}"

    def call(self, what: str, fn: Callable[[Any], _T]) -> _T:
        """``fn(content)`` on the logged-in session (one request counted as ``what``), logged in again once if
        vCenter expired the session; failures as cloudmeter's errors."""
        for attempt in (1, 2):
            try:
                with self._translated(what):
                    content = self._content()  # pyVmomi reads it from the server: a lost server fails here
                    usage.request(self.manager, f"vsphere:{what}")
                    return fn(content)
            except vim.fault.NotAuthenticated:
                self._forget()
                if attempt == 2:
                    raise SourceUnavailable(
                        self.manager, f"{self.where} ended the session again right after a new login; retry later"
                    ) from None
                log.info("manager %r: the vSphere session expired; logging in again", self.manager)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Log out (best effort); the next call logs in again."""
        if self._logout is not None:
            self._logout()
        self._forget()

    def _content(self) -> Any:
        if self._instance is None:
            self._login()
        return self._instance.content

    def _login(self) -> None:
        context = ssl.create_default_context()
        if not self.config.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        usage.request(self.manager, "vsphere:Login")
        with self._translated("Login"):
            instance = self._connect(
                host=self.config.host,
                port=self.config.port,
                user=self.config.username,
                pwd=self.config.password.get_secret_value(),
                sslContext=context,
                httpConnectionTimeout=self.config.timeout_s,
            )
        self._instance = instance
        self._logout = weakref.finalize(self, _logout, instance)

    def _forget(self) -> None:
        if self._logout is not None:
            self._logout.detach()
        self._instance, self._logout = None, None

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        try:
            yield
        except vim.fault.NotAuthenticated:  # a NoPermission too: before it
            raise
        except vim.fault.InvalidLogin:
            raise CollectorAuthError(
                self.manager,
                f"invalid credentials: {self.where} refused user {self.config.username!r}; check username and password",
            ) from None
        except vim.fault.NoPermission as exc:
            privilege = getattr(exc, "privilegeId", "") or "?"
            raise CollectorAuthError(
                self.manager,
                f"permission denied: {what} needs privilege {privilege} at {self.where}; grant the user a role "
                "with it (Read-only on the vCenter root covers cloudmeter)",
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise ConfigError(
                f"manager {self.manager!r}: the TLS certificate of {self.config.host}:{self.config.port} is not "
                f"trusted ({exc.verify_message}); add its CA to the system's trust store, or set verify_tls = false "
                "(tests only)"
            ) from None
        except ssl.SSLError as exc:
            raise ConfigError(
                f"manager {self.manager!r}: {self.config.host}:{self.config.port} did not complete a TLS handshake "
                f"({exc.reason}); give the vCenter's HTTPS port (443) in port"
            ) from None
        except TimeoutError as exc:
            raise SourceUnavailable(
                self.manager, f"{self.where} did not answer {what} within {self.config.timeout_s:g} s ({exc})"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise SourceUnavailable(
                self.manager, f"{self.where} is unreachable ({type(exc).__name__}: {exc}); check host and port"
            ) from None
        except vmodl.MethodFault as exc:
            raise SourceUnavailable(
                self.manager, f"{what} failed at {self.where} ({type(exc).__name__}: {exc.msg}); retry later"
            ) from None
        except Exception as exc:  # SmartConnect's one plain Exception: no vSphere service behind the address
            if "is not a VIM server" not in str(exc):
                raise
            raise ConfigError(
                f"manager {self.manager!r}: {self.config.host}:{self.config.port} answers, but is not a vCenter "
                "or ESXi endpoint (no vSphere API at /sdk); check host and port"
            ) from None

    # ---- the calls -------------------------------------------------------------------------------------------

    def about(self) -> Any:
        """``content.about``: product, version, API type (VirtualCenter or HostAgent)."""
        return self.call("about", lambda content: content.about)

    def retrieve(self, kind: type, paths: Sequence[str], containers: Sequence[Any] | None = None) -> list[Flat]:
        """Every object of ``kind`` under ``containers`` (default: the root folder) with properties ``paths``:
        one ContainerView and RetrievePropertiesEx (plus ContinueRetrievePropertiesEx pages) per container."""
        found: list[Flat] = []
        for container in containers or [None]:
            found.extend(self.call("RetrievePropertiesEx", _retriever(container, kind, paths)))
        return found

    def counters(self) -> dict[str, int]:
        """Performance counter ids by name (``cpu.usagemhz.average``)."""

        def read(content: Any) -> dict[str, int]:
            return {
                f"{c.groupInfo.key}.{c.nameInfo.key}.{c.rollupType}": int(c.key)
                for c in content.perfManager.perfCounter
            }

        return self.call("perfCounter", read)

    def historical_intervals(self) -> list[tuple[int, int]]:
        """The statistics levels vCenter keeps: (sampling period, seconds kept) of each enabled one."""
        levels = self.call("historicalInterval", lambda content: content.perfManager.historicalInterval)
        return sorted((int(level.samplingPeriod), int(level.length)) for level in levels or [] if level.enabled)

    def max_query_metrics(self) -> int | None:
        """vCenter's limit on metrics (entities x counters) per historical QueryPerf, the advanced setting
        ``config.vpxd.stats.maxQueryMetrics``; None while it is unset, 0 or less: none."""

        def read(content: Any) -> int | None:
            try:
                options = content.setting.QueryOptions(MAX_QUERY_METRICS)
            except vim.fault.InvalidName:
                return None
            values = [o.value for o in options or [] if o.key == MAX_QUERY_METRICS]
            try:
                return int(values[0]) if values else None
            except (TypeError, ValueError):
                return None

        return self.call("QueryOptions", read)

    def query_perf(self, specs: list[Any]) -> list[Any]:
        """``PerformanceManager.QueryPerf`` of ``specs`` (vim.PerformanceManager.QuerySpec)."""
        return list(self.call("QueryPerf", lambda content: content.perfManager.QueryPerf(querySpec=specs)) or [])

    def removed_vms(self, since: datetime) -> list[Any]:
        """The VmRemovedEvent events from ``since`` on (at most ``MAX_EVENTS``, newest kept by vCenter); none
        where the endpoint keeps no events."""
        spec = vim.event.EventFilterSpec(
            eventTypeId=["VmRemovedEvent"], time=vim.event.EventFilterSpec.ByTime(beginTime=since), maxCount=MAX_EVENTS
        )

        def query(content: Any) -> list[Any]:
            try:
                return list(content.eventManager.QueryEvents(spec) or [])
            except vmodl.fault.NotImplemented:  # a host agent without an event history
                return []

        return self.call("QueryEvents", query)

    def properties(self, kind: type, moids: Sequence[str], paths: Sequence[str]) -> list[Flat]:
        """Properties ``paths`` of the objects of ``kind`` with these ids (one RetrievePropertiesEx); those
        vCenter no longer has are left out."""
        objects = [vmodl.query.PropertyCollector.ObjectSpec(obj=kind(moid)) for moid in moids]
        return [_flat(item) for item in self._collect(objects, kind, paths)]

    def lineage(self, objects: Sequence[Any], paths: Sequence[str]) -> list[Flat]:
        """These managed objects and every ManagedEntity above them (parent, its parent, ... up to the root
        folder), each once, with properties ``paths`` and its type as ``"type"`` (one RetrievePropertiesEx)."""
        prop = vmodl.query.PropertyCollector
        climb = prop.TraversalSpec(
            name="up", type=vim.ManagedEntity, path="parent", skip=False, selectSet=[prop.SelectionSpec(name="up")]
        )
        specs = [prop.ObjectSpec(obj=obj, skip=False, selectSet=[climb]) for obj in objects]
        return [_flat(item) | {"type": item.obj._wsdlName} for item in self._collect(specs, vim.ManagedEntity, paths)]

    def _collect(self, objects: list[Any], kind: type, paths: Sequence[str]) -> list[Any]:
        if not objects:
            return []
        prop = vmodl.query.PropertyCollector
        spec = prop.FilterSpec(
            objectSet=objects,
            propSet=[prop.PropertySpec(type=kind, pathSet=list(paths))],
            reportMissingObjectsInResults=True,
        )
        found = self.call("RetrievePropertiesEx", lambda content: _pages(content.propertyCollector, spec))
        return [item for item in found if not any(_gone(missing) for missing in item.missingSet or [])]

    def event_feed(self, type_ids: Sequence[str]) -> EventFeed:
        """A new ``EventFeed`` of the events of these classes."""
        return EventFeed(self, type_ids)


class EventFeed:
    """vCenter's events of some classes as they are posted: an EventHistoryCollector (a latest page of
    ``MAX_EVENTS``) and a PropertyCollector of its own reporting each change of that page. Both belong to the
    session, which drops them when it ends (``VsphereAPI.close``)."""

    def __init__(self, api: VsphereAPI, type_ids: Sequence[str]) -> None:
        self.api = api
        spec = vim.event.EventFilterSpec(eventTypeId=list(type_ids), maxCount=MAX_EVENTS)

        def create(content: Any) -> tuple[Any, Any]:
            collector = content.eventManager.CreateCollectorForEvents(spec)
            collector.SetCollectorPageSize(MAX_EVENTS)
            watcher = content.propertyCollector.CreatePropertyCollector()
            prop = vmodl.query.PropertyCollector
            watcher.CreateFilter(
                prop.FilterSpec(
                    objectSet=[prop.ObjectSpec(obj=collector)],
                    propSet=[prop.PropertySpec(type=vim.event.EventHistoryCollector, pathSet=["latestPage"])],
                ),
                partialUpdates=False,
            )
            return collector, watcher

        self._collector, self._watcher = api.call("CreateCollectorForEvents", create)
        self._version = ""

    def wait(self, seconds: int) -> list[list[Any]] | None:
        """The latest page after each change within ``seconds`` (the first call: the page now); None: none."""
        options = vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=seconds)
        found = self.api.call("WaitForUpdatesEx", lambda _: self._watcher.WaitForUpdatesEx(self._version, options))
        if found is None:
            return None
        self._version = found.version
        return [
            list(change.val or [])
            for update in found.filterSet or []
            for obj in update.objectSet or []
            for change in obj.changeSet or []
            if change.name == "latestPage"
        ]

    def older(self, down_to: int) -> list[Any]:
        """The events before the latest page, newest first, a page at a time until one reaches back to event key
        ``down_to`` or vCenter has no older ones (ResetCollector, then ReadPreviousEvents)."""
        self.api.call("ResetCollector", lambda _: self._collector.ResetCollector())
        found: list[Any] = []
        while True:
            page = self.api.call("ReadPreviousEvents", lambda _: self._collector.ReadPreviousEvents(MAX_EVENTS))
            found.extend(page or [])
            if not page or min(event.key for event in page) <= down_to:
                return found


def _gone(missing: Any) -> bool:
    return isinstance(getattr(missing, "fault", None), vmodl.fault.ManagedObjectNotFound)


def _pages(collector: Any, spec: Any) -> list[Any]:
    """Every object RetrievePropertiesEx finds for ``spec``, following the continuation token."""
    result = collector.RetrievePropertiesEx([spec], vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=PAGE_SIZE))
    found: list[Any] = []
    while result is not None:
        found.extend(result.objects)
        result = collector.ContinueRetrievePropertiesEx(result.token) if result.token else None
    return found


def _retriever(container: Any, kind: type, paths: Sequence[str]) -> Callable[[Any], list[Flat]]:
    return lambda content: _retrieve(content, container, kind, paths)


def _retrieve(content: Any, container: Any, kind: type, paths: Sequence[str]) -> list[Flat]:
    view = content.viewManager.CreateContainerView(container or content.rootFolder, [kind], True)
    try:
        collector = content.propertyCollector
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[
                vmodl.query.PropertyCollector.ObjectSpec(
                    obj=view,
                    skip=True,
                    selectSet=[
                        vmodl.query.PropertyCollector.TraversalSpec(
                            name="view", path="view", skip=False, type=vim.view.ContainerView
                        )
                    ],
                )
            ],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=kind, pathSet=list(paths))],
        )
        return [_flat(item) for item in _pages(collector, spec)]
    finally:
        view.Destroy()


def _flat(item: Any) -> Flat:
    flat: Flat = {"moid": item.obj._moId}
    for prop in item.propSet or []:
        value = prop.val
        flat[prop.name] = value._moId if isinstance(value, ManagedObject) else value
    return flat


def _logout(instance: Any) -> None:
    try:
        instance.content.sessionManager.Logout()
    except Exception as exc:  # the server may be gone at exit
        log.debug("vSphere logout failed: %s", type(exc).__name__)
