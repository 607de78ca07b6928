"""Event catchers: one long-lived thread per manager running its ``EventSource`` until stopped.

A source that fails (``SourceUnavailable`` when its connection fails or drops, or ``deliver`` raising because the
batch could not be committed; anything else is a bug, logged the same way so no exception ends the thread) is
called again after an exponential back-off: ``backoff_initial_s`` doubled after each failure in a row, at most
``backoff_max_s``; a failure after the source had connected starts again from ``backoff_initial_s``. State changes
are logged in one line each (connected, disconnected with the reason, a different reason while still failing); the
messages come from the errors, which never quote secrets.

A source calls ``deliver([])`` once connected: the catcher is then ``connected`` (a source that never does so
shows connected from its first batch) and nothing is handed on. ``received`` counts the events handed on and
committed (a re-delivered event counts again); ``last_event_ts`` is the newest event's time. Prometheus:
``cloudmeter_events_received``, ``cloudmeter_event_lag_seconds`` (commit time minus the newest event's time of
each batch) and ``cloudmeter_events_connected``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from cloudmeter.collectors.base import Deliver, EventSource
from cloudmeter.model import Event
from cloudmeter.scheduler import metrics

log = logging.getLogger(__name__)


class Catcher:
    """Runs ``source.catch(deliver, ...)`` for manager ``name`` in a daemon thread, reconnecting with back-off.

    ``resume_after`` is asked before each connection for the ``message_id`` of the newest event stored;
    ``on_state`` is told when it connects (True, None) and when it disconnects or fails anew (False, why); it must
    not raise.
    """

    def __init__(
        self,
        name: str,
        source: EventSource,
        deliver: Deliver,
        resume_after: Callable[[], str | None],
        *,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        on_state: Callable[[bool, str | None], None] | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self._deliver = deliver
        self._resume_after = resume_after
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.connected = False
        self.received = 0
        self.last_event_ts: datetime | None = None
        self.last_error: str | None = None
        self._on_state = on_state
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"catcher-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the source to stop and wait up to ``timeout`` seconds; whether the thread has ended."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self.source.catch(self._handed, self._stop, self._resume_after())
            except Exception as exc:
                failures = 1 if self.connected else failures + 1
                self._failed(exc, self._backoff_s(failures))
            else:
                self._set_connected(False)
        self._set_connected(False)

    def _backoff_s(self, failures: int) -> float:
        return float(min(self.backoff_initial_s * 2.0 ** min(failures - 1, 64), self.backoff_max_s))

    def _failed(self, exc: Exception, wait_s: float) -> None:
        reason = (str(exc) or type(exc).__name__).removeprefix(f"manager {self.name!r}: ")
        if self.connected or reason != self.last_error:
            log.warning("manager %r: event catcher disconnected: %s; retrying in %.1f s", self.name, reason, wait_s)
            if self._on_state is not None:
                self._on_state(False, reason)
        else:
            log.debug("manager %r: event catcher still failing; retrying in %.1f s", self.name, wait_s)
        self.last_error = reason
        self._set_connected(False)
        self._stop.wait(wait_s)

    def _set_connected(self, connected: bool) -> None:
        if connected and not self.connected:
            log.info("manager %r: event catcher connected to %s", self.name, self.source)
            if self._on_state is not None:
                self._on_state(True, None)
        self.connected = connected
        metrics.EVENTS_CONNECTED.labels(self.name).set(int(connected))

    def _handed(self, events: list[Event]) -> None:
        self._set_connected(True)
        if not events:
            return
        self._deliver(events)
        newest = max(event.ts for event in events)
        self.received += len(events)
        self.last_event_ts = newest if self.last_event_ts is None else max(self.last_event_ts, newest)
        metrics.EVENTS.labels(self.name).inc(len(events))
        metrics.EVENT_LAG.labels(self.name).set((datetime.now(UTC) - newest).total_seconds())
