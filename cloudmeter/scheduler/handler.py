"""The event side of a leased manager, as ManageIQ's event catcher and handler: a ``catchers.Catcher`` on the
manager's ``EventSource`` whose batches ``Handler.deliver`` stores and applies (``storage.events.record``) in one
transaction before the source acknowledges them.

What the events could not resolve (an unknown resource or host), and VMs a ``created`` event did not size, are
refreshed right after, alone (``CatchesEvents.inventory_of``, saved as a partial inventory): within seconds, not at
the next full refresh. A failed targeted refresh is one log line; the next full refresh is the safety net. A batch
that changed placements or allocations sets ``changed``: the next capture reads the topology again and rebuilds
the rolled-up hours the change moved (``roll_dirty``), once per cycle rather than once per batch.

The event side has a collector of its own (the jobs' collector is used by one job at a time).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import psycopg

from cloudmeter.collectors.base import CatchesEvents, Collector, ManagerConfig
from cloudmeter.collectors.registry import build_collector
from cloudmeter.errors import CloudmeterError, StorageError
from cloudmeter.model import Event, ResourceRef
from cloudmeter.redact import one_line
from cloudmeter.scheduler.catchers import Catcher
from cloudmeter.storage import events as stored_events
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database
from cloudmeter.storage.dsn import scrub
from cloudmeter.storage.inventory import save_inventory

log = logging.getLogger(__name__)


class Handler:
    """Stores a manager's batches of events and what they prove, then refreshes what they left unresolved."""

    def __init__(self, db: Database, name: str, manager_id: int, collector: CatchesEvents) -> None:
        self.db = db
        self.name = name
        self.manager_id = manager_id
        self.collector = collector
        #: Set when a batch changed a resource's history; the capture cycle clears it.
        self.changed = threading.Event()

    def deliver(self, events: list[Event]) -> None:
        """``Deliver`` for the catcher: returns once the batch and its effects are committed."""
        with self.db.connection() as conn:
            recorded = stored_events.record(conn, self.manager_id, events)
        unsized = [e.resource for e in events if e.kind == "created" and e.resource is not None and e.vcpus is None]
        refresh = list(dict.fromkeys([*recorded.unresolved, *unsized]))
        if refresh:
            self.refresh(refresh)
        if recorded.changed or refresh:
            self.changed.set()

    def refresh(self, refs: list[ResourceRef]) -> None:
        """A targeted refresh of ``refs``: what the source says of them now, saved without retiring others."""
        try:
            inventory = self.collector.inventory_of(refs)
            with self.db.connection() as conn:
                save_inventory(conn, self.manager_id, inventory, partial=True)
        except CloudmeterError as exc:
            log.warning(
                "manager %s: targeted refresh of %d resources failed: %s", self.name, len(refs), one_line(str(exc))
            )
            return
        found = len(inventory.items)
        log.info("manager %s: refreshed %d resources the events named (%d listed)", self.name, len(refs), found)

    def state(self, connected: bool | None, error: str | None) -> None:
        """Record the catcher's state for ``cloudmeter status`` (None: not running); never raises."""
        try:
            with self.db.connection() as conn:
                managers.mark_catcher(conn, self.manager_id, connected, one_line(scrub(error)) if error else None)
        except (psycopg.Error, StorageError) as exc:
            log.debug("manager %s: event catcher state not recorded: %s", self.name, exc)

    def resume_after(self) -> str | None:
        """The newest stored event's ``message_id``: where a source that can replay resumes."""
        with self.db.connection() as conn:
            return stored_events.last_message_id(conn, self.manager_id)


@dataclass(frozen=True)
class EventSide:
    """A leased manager's running catcher and its handler."""

    catcher: Catcher
    handler: Handler

    def stop(self, timeout_s: float) -> None:
        """Stop the catcher (a batch not yet committed is left to the source to deliver again)."""
        if not self.catcher.stop(timeout_s):
            log.warning("manager %s: event catcher still busy after %.0f s; leaving it", self.handler.name, timeout_s)
        self.handler.state(None, None)


def start_catcher(
    db: Database, name: str, manager_id: int, config: ManagerConfig, jobs_collector: Collector
) -> EventSide | None:
    """Start manager ``name``'s event catcher, if its kind and configuration have an event source (asked of the
    jobs' collector; the handler's targeted refreshes get a collector of their own, built only then)."""
    if not isinstance(jobs_collector, CatchesEvents) or (source := jobs_collector.events()) is None:
        return None
    collector = build_collector(name, config)
    assert isinstance(collector, CatchesEvents)  # the same kind as the jobs' collector
    handler = Handler(db, name, manager_id, collector)
    catcher = Catcher(name, source, handler.deliver, handler.resume_after, on_state=handler.state)
    catcher.start()
    return EventSide(catcher, handler)
