"""Nova's notifications on RabbitMQ as an ``EventSource``, consumed with kombu.

A durable queue of cloudmeter's own (``amqp_queue``, default ``cloudmeter-<manager>``; never Ceilometer's
``notifications.info``, whose messages it would steal) is bound to Nova's exchange with ``<topic>.#`` for each of
``amqp_topics``, so both ``notifications.info`` and ``notifications.error`` arrive, and keeps at most
``amqp_max_queued`` messages while nobody consumes (the oldest are dropped: the periodic refresh is the safety net).

Nova's exchange is declared passively: declaring it with another durability than Nova's makes RabbitMQ refuse
Nova's own declaration (406) and oslo then drops every notification. Only when it does not exist yet (Nova has not
notified since the broker started) is it created, with Nova's settings (topic, not auto-deleted, durable only with
``amqp_durable_exchange``).

Messages are parsed as they arrive and handed to ``deliver`` in batches of at most ``batch_size`` or after
``batch_s``, in a thread of its own while the next batch is received and parsed; the batch is acknowledged (one
``basic.ack`` with ``multiple``) only after ``deliver`` returns. When
``deliver`` raises, nothing is acknowledged and the connection is closed, so the broker delivers the batch again
(``redelivered``) to the next connection. A message that is no oslo notification (``PayloadError``) is logged with
its message id and rejected without requeue: RabbitMQ dead-letters it to the queue ``<amqp_queue>.dead`` for
inspection. Once connected, ``deliver([])`` says so (the catcher shows the source connected; there is nothing to
store). On ``stop`` a batch not yet delivered stays unacknowledged: the broker hands it to the next consumer. The
queue keeps what arrives while cloudmeter is away, so ``resume_after`` is not needed; but a broker restart drops a
non-durable exchange (Nova's default) with our queue's binding, so notifications sent after it and before the
catcher reconnects (and binds again) reach only Ceilometer's queue.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final

import kombu
from amqp.exceptions import AccessRefused, NotFound
from kombu.message import Message

from cloudmeter.collectors.base import Deliver
from cloudmeter.collectors.openstack.event_parse import parse_notification
from cloudmeter.errors import CollectorAuthError, ConfigError, PayloadError, SourceUnavailable
from cloudmeter.model import Event
from cloudmeter.redact import relay

log = logging.getLogger(__name__)

#: How often the consumer looks at ``stop`` and the batch's age while no message arrives (seconds).
POLL_S: Final = 0.1
#: AMQP heartbeats (seconds): a broker gone without closing the connection is noticed within about twice this.
HEARTBEAT_S: Final = 30
CONNECT_TIMEOUT_S: Final = 10.0
#: Most messages kept in the dead-letter queue.
DEAD_MAX: Final = 10_000


class NovaNotifications:
    """The notifications of one OpenStack manager on its RabbitMQ (``amqp_url``)."""

    def __init__(
        self,
        manager: str,
        url: str,
        *,
        exchange: str = "nova",
        topics: tuple[str, ...] = ("notifications",),
        queue: str | None = None,
        durable_exchange: bool = False,
        max_queued: int = 100_000,
        batch_size: int = 1000,
        batch_s: float = 0.2,
    ) -> None:
        self.manager = manager
        self._url = "amqp://" + url.removeprefix("rabbit://") if url.startswith("rabbit://") else url
        self.exchange = kombu.Exchange(exchange, type="topic", durable=durable_exchange, auto_delete=False)
        self.queue_name = queue or f"cloudmeter-{manager}"
        self.topics = topics
        self.max_queued = max_queued
        self.batch_size = batch_size
        self.batch_s = batch_s
        self._password = kombu.Connection(self._url).password

    def __repr__(self) -> str:
        return f"NovaNotifications({self.manager!r}, queue {self.queue_name!r} on exchange {self.exchange.name!r})"

    def catch(self, deliver: Deliver, stop: threading.Event, resume_after: str | None) -> None:
        """Hand batches of events to ``deliver`` until ``stop`` is set (see the module's docstring)."""
        connection = kombu.Connection(self._url, heartbeat=HEARTBEAT_S, connect_timeout=CONNECT_TIMEOUT_S)
        where = connection.as_uri()  # the password masked
        try:
            with connection:
                connection.connect()
                channel = self._declare(connection)
                _Batches(self, connection, channel, deliver).run(stop)
        except (*connection.connection_errors, *connection.channel_errors) as exc:
            raise SourceUnavailable(self.manager, f"RabbitMQ at {where}: {self._relay(exc)}") from None

    def verify(self) -> None:
        """Log in to the broker and find Nova's exchange (passively: nothing is declared): CollectorAuthError for
        refused credentials, SourceUnavailable when unreachable, ConfigError when the exchange is not there."""
        connection = kombu.Connection(self._url, connect_timeout=CONNECT_TIMEOUT_S)
        where = connection.as_uri()
        try:
            with connection:
                connection.connect()
                self.exchange(connection.channel()).declare(passive=True)
        except AccessRefused:
            raise CollectorAuthError(self.manager, f"RabbitMQ at {where}: invalid credentials in amqp_url") from None
        except NotFound:
            raise ConfigError(
                f"manager {self.manager!r}: RabbitMQ at {where} has no exchange {self.exchange.name!r}: Nova has not "
                "notified there; check amqp_exchange and the virtual host in amqp_url (Nova's transport_url)"
            ) from None
        except (*connection.connection_errors, *connection.channel_errors) as exc:
            raise SourceUnavailable(self.manager, f"RabbitMQ at {where}: {self._relay(exc)}") from None

    def _declare(self, connection: kombu.Connection) -> Any:
        """A channel with the exchange (passively, see above), the queue, its bindings and its dead letters."""
        channel = connection.channel()
        try:
            self.exchange(channel).declare(passive=True)
        except NotFound:
            channel = connection.channel()  # the 404 closed the first
            self.exchange(channel).declare()
            log.info("manager %r: created exchange %r (Nova had not declared it yet)", self.manager, self.exchange.name)
        dead = f"{self.queue_name}.dead"
        kombu.Queue(dead, durable=True, auto_delete=False, queue_arguments={"x-max-length": DEAD_MAX})(
            channel
        ).declare()
        arguments = {"x-max-length": self.max_queued, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}
        queue = kombu.Queue(self.queue_name, durable=True, auto_delete=False, queue_arguments=arguments)(channel)
        queue.declare()
        for topic in self.topics:  # not as the queue's bindings: kombu would declare the exchange actively
            queue.bind_to(self.exchange.name, routing_key=f"{topic}.#")
        return channel

    def _relay(self, exc: BaseException) -> str:
        """What the broker or the socket said, without credentials."""
        return relay(str(exc) or type(exc).__name__, [self._password] if self._password else [])


class _Batches:
    """One connection's consumer: messages into batches, each delivered then acknowledged.

    Delivery runs in a thread of its own while this one goes on receiving and parsing the next batch (kombu's
    connection stays in this thread: every acknowledgement is sent from here). At most one batch is being
    delivered; it is acknowledged (up to its last message) once its ``deliver`` returned and before the next batch
    is handed over, so a batch is never acknowledged before it and every earlier one are committed.
    """

    def __init__(self, source: NovaNotifications, connection: kombu.Connection, channel: Any, deliver: Deliver) -> None:
        self.source = source
        self.connection = connection
        self.deliver = deliver
        self.events: list[Event] = []
        self.last: Message | None = None
        self.started = 0.0
        self.delivering: tuple[Future[None], Message] | None = None
        channel.basic_qos(0, 2 * source.batch_size, False)
        self.consumer = kombu.Consumer(
            channel, queues=[kombu.Queue(source.queue_name, no_declare=True)], on_message=self._received
        )

    def run(self, stop: threading.Event) -> None:
        with self.consumer, ThreadPoolExecutor(1, thread_name_prefix=f"deliver-{self.source.manager}") as worker:
            self.deliver([])
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    self.connection.drain_events(timeout=self._wait_s())
                self.connection.heartbeat_check()
                if self.delivering is not None and self.delivering[0].done():
                    self._acknowledge()
                if self.last is not None and (
                    len(self.events) >= self.source.batch_size or time.monotonic() - self.started >= self.source.batch_s
                ):
                    self._acknowledge()  # waits for the batch being delivered
                    self.delivering = (worker.submit(self.deliver, self.events), self.last)
                    self.events, self.last = [], None
            self._acknowledge()  # what was committed before the stop

    def _wait_s(self) -> float:
        if self.delivering is not None:
            return min(POLL_S, 0.005)  # acknowledge a finished batch promptly
        if self.last is None:
            return POLL_S
        return max(0.0, min(POLL_S, self.started + self.source.batch_s - time.monotonic()))

    def _acknowledge(self) -> None:
        """Wait for the batch being delivered, then acknowledge it; raise what its ``deliver`` raised (nothing is
        acknowledged: the broker delivers it again to the next connection)."""
        if self.delivering is None:
            return
        future, last = self.delivering
        self.delivering = None
        future.result()
        last.ack(multiple=True)

    def _received(self, message: Message) -> None:
        try:
            event = parse_notification(message.body)
        except PayloadError as exc:
            log.warning(
                "manager %r: dropped a message that is no Nova notification (dead-lettered to %s.dead): %s",
                self.source.manager,
                self.source.queue_name,
                relay(str(exc)),
            )
            message.reject(requeue=False)
            return
        if self.last is None:
            self.started = time.monotonic()
        self.events.append(event)
        self.last = message
