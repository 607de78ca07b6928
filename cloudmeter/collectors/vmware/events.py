"""vCenter's event history as a manager's ``EventSource``: the VM events of ``event_parse.EVENT_TYPES``.

ManageIQ's way: an EventHistoryCollector and WaitForUpdatesEx on its ``latestPage`` (``api.EventFeed``), one
second at a time so that ``stop`` is seen promptly. vCenter numbers its events in the order it posts them (the
``key``, our message id), so "what we have" is one number: ``resume_after``, the newest key stored. Whenever the
latest page does not reach back to it (a restart, or more events at once than a page holds), the pages before
it are read back to that key (ReadPreviousEvents), so nothing vCenter still keeps is lost while the daemon was
down. With no ``resume_after`` (the first start) events are followed from now on.

Events go to ``deliver`` oldest first in batches of at most ``BATCH``; when ``deliver`` raises, ``catch`` raises
it (the next catch, resumed from what was stored, reads them again). An event about another datacenter than
the configured ones is skipped; one that cannot be parsed (no key or time) is logged and skipped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

from cloudmeter.collectors.base import Deliver
from cloudmeter.collectors.vmware.api import VsphereAPI
from cloudmeter.collectors.vmware.event_parse import EVENT_TYPES, parse_event
from cloudmeter.errors import PayloadError
from cloudmeter.model import Event

log = logging.getLogger(__name__)

#: Events per ``deliver`` call at most.
BATCH: Final = 500
#: Seconds each WaitForUpdatesEx waits for a change: how long ``stop`` may go unseen.
WAIT_S: Final = 1


class VsphereEvents:
    """The events of one vCenter, on a session of its own (``api``), logged out after each catch."""

    def __init__(self, api: VsphereAPI, datacenters: Sequence[str] = ()) -> None:
        self.api = api
        self.datacenters = frozenset(datacenters)

    def catch(self, deliver: Deliver, stop: threading.Event, resume_after: str | None) -> None:
        """Say ``deliver([])`` once connected, then hand vCenter's events after ``resume_after`` (an event key), then
        each new one, to ``deliver`` until ``stop`` is set; SourceUnavailable when vCenter cannot be reached."""
        try:
            feed = self.api.event_feed(EVENT_TYPES)
            last = None if resume_after is None else int(resume_after)
            log.info("manager %r: catching vCenter's events after %s", self.api.manager, resume_after or "now")
            deliver([])  # connected (the catcher shows it)
            while not stop.is_set():
                pages = feed.wait(WAIT_S)
                if pages is None:
                    continue
                found = {event.key: event for page in pages for event in page}
                if last is None or (found and max(found) < last):
                    last = self._start(found, last)
                    continue
                if found and min(found) > last:
                    found.update((event.key, event) for event in feed.older(last))
                last = self._hand(deliver, [found[key] for key in sorted(found) if key > last], last)
        finally:
            self.api.close()

    def _start(self, found: dict[int, Any], last: int | None) -> int:
        """Where to follow from when there is nothing to resume: the newest event now."""
        newest = max(found, default=0)
        if last is not None:
            log.warning(
                "manager %r: vCenter's newest event (%d) is older than the last one stored (%d): its event history "
                "was reset; following its events from now on",
                self.api.manager,
                newest,
                last,
            )
        return newest

    def _hand(self, deliver: Deliver, events: Sequence[Any], last: int) -> int:
        """Deliver ``events`` (oldest first) in batches; the newest key handed (or skipped)."""
        for start in range(0, len(events), BATCH):
            chunk = events[start : start + BATCH]
            parsed = list(self._parsed(chunk))
            if parsed:
                deliver(parsed)
            last = chunk[-1].key
        return last

    def _parsed(self, events: Iterable[Any]) -> Iterator[Event]:
        for event in events:
            datacenter = getattr(getattr(event, "datacenter", None), "name", None)
            if self.datacenters and datacenter not in self.datacenters:
                continue
            try:
                yield parse_event(event)
            except PayloadError as exc:
                log.warning("manager %r: skipped an event vCenter sent malformed: %s", self.api.manager, exc)
