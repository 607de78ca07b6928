"""A collector whose every answer must come within a bound: the daemon's guard against sources that hang or trickle.

httpx and botocore give up on a read that gets no byte for a while (OpenStack's ``timeout_s``, AWS's 60 s), but a
source that sends a byte every few seconds keeps each read alive and its request open for ever. So the daemon
calls its collectors through ``Bounded``: each call (``inventory``, ``verify``, ``retention_s``, the next batch
of a ``capture``) runs in a helper thread, and the job waits for its answer at most ``limit_s`` (``FACTOR`` x the
manager's ``timeout_s``). Past that the job raises ``NoAnswer``, a ``SourceUnavailable``, and goes on without the
helper, which is left to end with its request (a daemon thread: it holds up no exit). Only the job's own thread
writes to storage, so nothing an abandoned call brings back is ever stored.

The bound is per answer, not per job: a long catch-up or a large cloud takes as long as it takes while batches
keep coming; only a source that stops answering ends a job. A wait also ends when ``stop`` is set (SIGTERM),
with ``Interrupted``, so a stuck source never holds up the daemon's shutdown.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from cloudmeter.collectors.base import Collector, ManagerConfig
from cloudmeter.errors import CloudmeterError, SourceUnavailable
from cloudmeter.model import Inventory, SampleBatch, Window

_T = TypeVar("_T")

#: A source must answer each call within this many times its manager's ``timeout_s`` (httpx's per-read timeout):
#: generous for a call made of many requests (an inventory pages through every instance), short of for ever.
FACTOR: Final = 10
#: The ``timeout_s`` of kinds that have none: botocore's read timeout (``collectors.aws.connect``).
DEFAULT_TIMEOUT_S: Final = 60.0
#: How often a wait looks at ``stop``.
_POLL_S: Final = 0.25


def limit_s(config: ManagerConfig) -> float:
    """How long a job of a manager with ``config`` waits for one answer of its source."""
    timeout = getattr(config, "timeout_s", None)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        timeout = DEFAULT_TIMEOUT_S
    return FACTOR * float(timeout)


class NoAnswer(SourceUnavailable):
    """The source did not answer a call within the bound (it hangs, or sends too slowly); transient."""

    def __init__(self, manager: str, what: str, limit_s: float) -> None:
        super().__init__(
            manager,
            f"no answer to {what} within {limit_s:g} s ({FACTOR} x timeout_s): the source hangs or sends too "
            "slowly; retry later",
        )
        self.what = what
        self.limit_s = limit_s


class Interrupted(CloudmeterError):
    """The daemon stopped while a job waited for its source; nothing failed."""

    def __init__(self, manager: str, what: str) -> None:
        super().__init__(f"manager {manager!r}: stopped waiting for {what}: the daemon is shutting down")
        self.manager = manager


@dataclass(frozen=True)
class _Answer(Generic[_T]):
    """What a helper thread hands back: a value, an error, or the end of a capture."""

    value: _T | None = None
    error: Exception | None = None
    done: bool = False


class Bounded:
    """``collector``'s calls, each answered within ``limit_s`` or given up (``NoAnswer``); see the module doc.

    Serves the calls jobs make (``jobs.Source``); one job at a time uses it.
    """

    def __init__(self, collector: Collector, limit_s: float, stop: threading.Event) -> None:
        self.collector = collector
        self.name = collector.name
        self.limit_s = limit_s
        self._stop = stop

    def verify(self) -> None:
        """The collector's ``verify``, within the bound."""
        self._call("verify", self.collector.verify)

    @property
    def retention_s(self) -> int | None:
        """The collector's ``retention_s`` (which may ask the source, e.g. Gnocchi's archive policies), within the
        bound; read it once per job."""
        return self._call("the retention query", lambda: self.collector.retention_s)

    def inventory(self) -> Inventory:
        """The collector's ``inventory``, within the bound."""
        found = self._call("inventory", self.collector.inventory)
        assert found is not None
        return found

    def capture(self, window: Window) -> Iterator[SampleBatch]:
        """The collector's batches of ``window``, each within the bound; read one at a time, as they are asked
        for (no read-ahead), in one helper thread."""
        what = f"capture {window}"
        more: queue.SimpleQueue[bool] = queue.SimpleQueue()  # True: read the next batch; False: stop
        answers: queue.SimpleQueue[_Answer[SampleBatch]] = queue.SimpleQueue()
        self._start(what, lambda: _serve(lambda: self.collector.capture(window), more, answers))
        try:
            while True:
                more.put(True)
                answer = self._wait(answers, what)
                if answer.error is not None:
                    raise answer.error
                if answer.done:
                    return
                assert answer.value is not None
                yield answer.value
        finally:
            more.put(False)

    def _call(self, what: str, call: Callable[[], _T]) -> _T | None:
        answers: queue.SimpleQueue[_Answer[_T]] = queue.SimpleQueue()

        def run() -> None:
            try:
                answers.put(_Answer(call()))
            except Exception as exc:
                answers.put(_Answer(error=exc))

        self._start(what, run)
        answer = self._wait(answers, what)
        if answer.error is not None:
            raise answer.error
        return answer.value

    def _start(self, what: str, target: Callable[[], None]) -> None:
        threading.Thread(target=target, name=f"source {self.name}: {what}", daemon=True).start()

    def _wait(self, answers: queue.SimpleQueue[_Answer[_T]], what: str) -> _Answer[_T]:
        deadline = time.monotonic() + self.limit_s
        while True:
            if self._stop.is_set():
                raise Interrupted(self.name, what)
            left = deadline - time.monotonic()
            if left <= 0:
                raise NoAnswer(self.name, what, self.limit_s)
            try:
                return answers.get(timeout=min(left, _POLL_S))
            except queue.Empty:
                continue


def _serve(
    open_batches: Callable[[], Iterable[SampleBatch]],
    more: queue.SimpleQueue[bool],
    answers: queue.SimpleQueue[_Answer[SampleBatch]],
) -> None:
    """A helper thread's loop: the next batch each time one is asked for, until the end, an error or a stop."""
    batches: Iterator[SampleBatch] | None = None
    try:
        while more.get():
            try:
                if batches is None:
                    batches = iter(open_batches())
                batch = next(batches)
            except StopIteration:
                answers.put(_Answer(done=True))
                return
            except Exception as exc:
                answers.put(_Answer(error=exc))
                return
            answers.put(_Answer(batch))
    finally:
        close = getattr(batches, "close", None)  # a generator's cleanup runs in the thread that ran it
        if close is not None:
            close()
