"""The OpenStack event catcher on a real RabbitMQ 3.10, fed by oslo.messaging's own Notifier publishing exactly
what Nova publishes (legacy on ``notifications``, versioned on ``versioned_notifications``)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kombu
import oslo_messaging
import pytest
from oslo_config import cfg
from oslo_context.context import RequestContext

from cloudmeter.collectors.openstack import GnocchiCollector, OpenStackConfig
from cloudmeter.collectors.openstack.events import NovaNotifications
from cloudmeter.collectors.registry import parse_manager_config
from cloudmeter.errors import CollectorAuthError, ConfigError, SourceUnavailable, StorageUnavailable
from cloudmeter.model import Event, ResourceRef
from cloudmeter.scheduler import metrics
from cloudmeter.scheduler.catchers import Catcher
from tests.collectors import ceilometer_cloud as cloud
from tests.collectors.notifications import AUTH_TOKEN, body, legacy_payload, message, publish_raw, versioned
from tests.gnocchi_server import GnocchiServer
from tests.loopback import free_port
from tests.rabbitmq_server import PASSWORD, USER, RabbitMQServer

MIB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]
TOPICS = ("notifications", "versioned_notifications")


def wait_for(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class Store:
    """A deliver that records each committed batch; ``failures`` batches raise first (a database down)."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.batches: list[list[Event]] = []
        self.failed: list[list[Event]] = []

    def __call__(self, events: list[Event]) -> None:
        if self.failures:
            self.failures -= 1
            self.failed.append(list(events))
            raise StorageUnavailable("the database is down")
        self.batches.append(list(events))

    @property
    def events(self) -> list[Event]:
        return [event for batch in self.batches for event in batch]


class Nova:
    """oslo.messaging's Notifier set up as Nova sets it up: legacy and versioned notifiers on ``rabbitmq``."""

    def __init__(self, url: str, *, durable: bool = False) -> None:
        conf = cfg.ConfigOpts()
        conf([])
        oslo_messaging.set_transport_defaults("nova")
        self.transport = oslo_messaging.get_notification_transport(conf, url=url.replace("amqp://", "rabbit://", 1))
        if durable:  # the driver registers its options as it loads; it reads them on its first connection
            conf.set_override("amqp_durable_queues", True, group="oslo_messaging_rabbit")
        self.legacy = oslo_messaging.Notifier(
            self.transport, publisher_id="compute.compute-1", driver="messagingv2", topics=["notifications"]
        )
        self.versioned = oslo_messaging.Notifier(
            self.transport,
            publisher_id="nova-compute:compute",
            driver="messagingv2",
            topics=["versioned_notifications"],
        )
        self.context = RequestContext(auth_token=AUTH_TOKEN, request_id="req-0f0e5c5e-1bfe-4a40-9d1b-7c0b7f0a0d11")

    def legacy_event(self, event_type: str, **changes: Any) -> None:
        self.legacy.info(self.context, event_type, legacy_payload(**changes))

    def sample(self, name: str) -> None:
        sample = versioned(name)
        self.versioned.info(self.context, sample["event_type"], sample["payload"])

    def close(self) -> None:
        self.transport.cleanup()


@pytest.fixture
def nova(rabbitmq: RabbitMQServer) -> Iterator[Nova]:
    publisher = Nova(rabbitmq.url)
    yield publisher
    publisher.close()


@pytest.fixture
def manager() -> str:
    """A manager name of its own per test: its own queue, ``cloudmeter-<name>``."""
    return f"os-{uuid.uuid4().hex[:8]}"


def catcher(source: NovaNotifications, store: Store) -> Catcher:
    running = Catcher(source.manager, source, store, lambda: None, backoff_initial_s=0.05, backoff_max_s=0.5)
    running.start()
    wait_for(lambda: running.connected)
    return running


def test_legacy_and_versioned_notifications_become_events(rabbitmq: RabbitMQServer, nova: Nova, manager: str) -> None:
    store = Store()
    running = catcher(NovaNotifications(manager, rabbitmq.url, topics=TOPICS), store)
    before = datetime.now(UTC)
    nova.legacy_event("compute.instance.create.end")
    nova.sample("instance-live_migration_post_dest-end")
    nova.sample("instance-resize_finish-end")
    nova.sample("service-update")
    wait_for(lambda: running.received == 4)
    after = datetime.now(UTC)
    assert metrics.EVENTS_CONNECTED.labels(manager)._value.get() == 1
    assert 0 <= metrics.EVENT_LAG.labels(manager)._value.get() <= (after - before).total_seconds()
    assert running.stop(5)

    by_type = {event.source_type: event for event in store.events}
    assert set(by_type) == {
        "compute.instance.create.end",
        "instance.live_migration_post_dest.end",
        "instance.resize_finish.end",
        "service.update",
    }
    created = by_type["compute.instance.create.end"]
    assert (created.kind, created.resource, created.host, created.vcpus, created.memory_bytes, created.name) == (
        "created",
        ResourceRef("vm", "178b0921-8f85-4257-88b6-2e743b5a975c"),
        ResourceRef("host", "compute-1"),
        2,
        4096 * MIB,
        "web-1",
    )
    migrated = by_type["instance.live_migration_post_dest.end"]
    assert (migrated.kind, migrated.host) == ("migrated", ResourceRef("host", "host2"))
    resized = by_type["instance.resize_finish.end"]
    assert (resized.kind, resized.vcpus, resized.memory_bytes) == ("resized", 1, 256 * MIB)
    assert by_type["service.update"].kind == "other"
    for event in store.events:
        assert before <= event.ts <= after
        assert event.message_id == event.payload["message_id"]
        assert event.payload["_context_request_id"] == "req-0f0e5c5e-1bfe-4a40-9d1b-7c0b7f0a0d11"
        assert AUTH_TOKEN not in json.dumps(event.payload)
    assert running.last_event_ts == max(event.ts for event in store.events)
    assert metrics.EVENTS.labels(manager)._value.get() == 4
    assert metrics.EVENTS_CONNECTED.labels(manager)._value.get() == 0  # stopped
    assert rabbitmq.queue_depths()[f"cloudmeter-{manager}"] == 0  # all acknowledged


def test_a_batch_not_committed_is_delivered_again(rabbitmq: RabbitMQServer, nova: Nova, manager: str) -> None:
    store = Store(failures=2)
    running = catcher(NovaNotifications(manager, rabbitmq.url, batch_s=0.5), store)
    for instance in ("a", "b", "c"):
        nova.legacy_event("compute.instance.power_off.end", instance_id=instance)
    wait_for(lambda: running.received == 3)
    assert running.stop(5)
    sent = {event.message_id for event in store.events}
    assert len(sent) == 3 and [event.resource for event in store.events] == [
        ResourceRef("vm", name) for name in ("a", "b", "c")
    ]
    assert [{event.message_id for event in batch} for batch in store.failed] == [sent, sent]
    assert running.last_error == "the database is down"
    assert rabbitmq.queue_depths()[f"cloudmeter-{manager}"] == 0


def test_a_duplicated_message_is_delivered_again(rabbitmq: RabbitMQServer, nova: Nova, manager: str) -> None:
    store = Store()
    running = catcher(NovaNotifications(manager, rabbitmq.url), store)
    raw = body(message("compute.instance.delete.end", legacy_payload(), "dup-1", "2026-12-07 10:00:00.000000"))
    publish_raw(rabbitmq.url, raw)
    publish_raw(rabbitmq.url, raw)
    wait_for(lambda: running.received == 2)
    assert running.stop(5)
    assert [(event.message_id, event.kind) for event in store.events] == [("dup-1", "deleted"), ("dup-1", "deleted")]


def test_a_malformed_message_is_dead_lettered_and_the_catcher_goes_on(
    rabbitmq: RabbitMQServer, nova: Nova, manager: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store()
    running = catcher(NovaNotifications(manager, rabbitmq.url), store)
    with caplog.at_level(logging.WARNING):
        publish_raw(rabbitmq.url, b"{not json")
        publish_raw(rabbitmq.url, body({"event_type": "compute.instance.create.end"}))  # no message_id
        nova.legacy_event("compute.instance.power_on.end")
        wait_for(lambda: running.received == 1)
        wait_for(lambda: rabbitmq.queue_depths().get(f"cloudmeter-{manager}.dead") == 2)
    assert running.connected
    assert running.stop(5)
    assert [event.kind for event in store.events] == ["powered_on"]
    dropped = [record.getMessage() for record in caplog.records if "dead-lettered" in record.getMessage()]
    assert len(dropped) == 2
    assert "message body is not JSON" in dropped[0] and "message_id is missing" in dropped[1]


def test_a_broker_restart_loses_nothing_acknowledged_or_queued(
    rabbitmq: RabbitMQServer, manager: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Nova with durable queues: its exchange and our queue's binding survive the restart, its messages are
    persistent. A batch whose commit is in flight when the broker stops is not acknowledged, so it comes back.
    (A virtual host of its own: oslo's queue ``notifications.info`` is non-durable in the others.)"""
    url = rabbitmq.vhost(f"durable-{manager}")
    nova = Nova(url, durable=True)
    committing, release = threading.Event(), threading.Event()
    store = Store()

    def slow(events: list[Event]) -> None:
        committing.set()
        release.wait(30)
        store(events)

    source = NovaNotifications(manager, url, durable_exchange=True)
    with caplog.at_level(logging.DEBUG):
        running = Catcher(manager, source, slow, lambda: None, backoff_initial_s=0.2, backoff_max_s=1.0)
        running.start()
        wait_for(lambda: running.connected)
        nova.legacy_event("compute.instance.power_off.end", instance_id="before")
        wait_for(committing.is_set)
        rabbitmq.stop()
        release.set()  # the commit ends; its acknowledgement cannot reach the broker
        wait_for(lambda: not running.connected)
        rabbitmq.start()
        wait_for(lambda: running.connected, 30)
        nova.legacy_event("compute.instance.power_on.end", instance_id="after")
        wait_for(
            lambda: {e.resource for e in store.events} >= {ResourceRef("vm", "before"), ResourceRef("vm", "after")}
        )
        assert running.stop(5)
    nova.close()
    ids = [event.message_id for event in store.events]
    assert [event.resource.ems_ref for event in store.events if event.resource] == ["before", "before", "after"]
    assert ids[0] == ids[1]  # the same message again: the store keeps it once
    assert running.last_error is not None and "RabbitMQ at amqp://cloudmeter:**@127.0.0.1" in running.last_error
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "event catcher disconnected" in logged and "event catcher connected" in logged
    assert PASSWORD not in logged and PASSWORD not in running.last_error


#: A consumer that takes a batch and never commits it, until killed.
_STUCK = """
import sys, threading, time
from cloudmeter.collectors.openstack.events import NovaNotifications
def deliver(events):
    print(" ".join(event.message_id for event in events), flush=True)
    if events:
        time.sleep(3600)
NovaNotifications(sys.argv[1], sys.argv[2]).catch(deliver, threading.Event(), None)
"""


def test_a_consumer_killed_before_its_commit_loses_nothing(rabbitmq: RabbitMQServer, nova: Nova, manager: str) -> None:
    stuck = subprocess.Popen(
        [sys.executable, "-c", _STUCK, manager, rabbitmq.url], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert stuck.stdout is not None
        assert stuck.stdout.readline() == "\n"  # connected: deliver([])
        nova.legacy_event("compute.instance.delete.end")
        taken = stuck.stdout.readline().split()
    finally:
        stuck.kill()  # SIGKILL: no clean close, no acknowledgement
        stuck.wait()
    store = Store()
    running = catcher(NovaNotifications(manager, rabbitmq.url), store)
    wait_for(lambda: running.received == 1)
    assert running.stop(5)
    assert len(taken) == 1 and [(event.message_id, event.kind) for event in store.events] == [(taken[0], "deleted")]


@pytest.mark.parametrize("wrong", ["port", "password"])
def test_connection_failures_never_show_the_password(
    rabbitmq: RabbitMQServer, manager: str, wrong: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = (
        rabbitmq.url.replace(str(rabbitmq.port), "1")
        if wrong == "port"
        else rabbitmq.url.replace(PASSWORD, "x" + PASSWORD)
    )
    secret = PASSWORD if wrong == "port" else "x" + PASSWORD
    source = NovaNotifications(manager, url)
    with pytest.raises(SourceUnavailable) as caught:
        source.catch(Store(), threading.Event(), None)
    assert str(caught.value).startswith(f"manager {manager!r}: RabbitMQ at amqp://cloudmeter:**@127.0.0.1:")
    assert secret not in str(caught.value) and caught.value.__cause__ is None
    with caplog.at_level(logging.DEBUG):
        running = Catcher(manager, source, Store(), lambda: None, backoff_initial_s=0.05, backoff_max_s=0.1)
        running.start()
        wait_for(lambda: running.last_error is not None)
        assert running.stop(5)
    assert not running.connected and secret not in (running.last_error or "")
    assert all(secret not in record.getMessage() for record in caplog.records)


def test_the_exchange_is_created_with_novas_settings_when_absent(rabbitmq: RabbitMQServer, manager: str) -> None:
    """Created by the catcher before Nova ever notified, Nova's (non-durable) declaration still matches."""
    with kombu.Connection(rabbitmq.url) as connection:
        connection.default_channel.exchange_delete("nova")
    store = Store()
    running = catcher(NovaNotifications(manager, rabbitmq.url), store)
    nova = Nova(rabbitmq.url)
    nova.legacy_event("compute.instance.power_off.end")
    wait_for(lambda: running.received == 1)
    assert running.stop(5)
    nova.close()
    assert [event.kind for event in store.events] == ["powered_off"]


def test_stop_is_prompt(rabbitmq: RabbitMQServer, manager: str) -> None:
    running = catcher(NovaNotifications(manager, rabbitmq.url), Store())
    started = time.monotonic()
    assert running.stop(5)
    assert time.monotonic() - started < 1.0


# --- config and the collector ------------------------------------------------------------------------------


def _config(**extra: object) -> OpenStackConfig:
    config = parse_manager_config(
        "lab", {"kind": "openstack", "auth_mode": "basic", "gnocchi_url": "http://g", **extra}
    )
    assert isinstance(config, OpenStackConfig)
    return config


def test_events_need_amqp_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert GnocchiCollector("lab", _config()).events() is None
    monkeypatch.setenv("NOVA_AMQP", f"rabbit://nova:{PASSWORD}@mq.example:5672/")
    source = GnocchiCollector(
        "lab", _config(amqp_url="env:NOVA_AMQP", amqp_topics=["versioned_notifications"])
    ).events()
    assert isinstance(source, NovaNotifications)
    assert (source.queue_name, source.exchange.name, source.exchange.durable, source.topics) == (
        "cloudmeter-lab",
        "nova",
        False,
        ("versioned_notifications",),
    )
    assert PASSWORD not in repr(source)


def test_a_bad_amqp_url_is_refused_without_quoting_it() -> None:
    with pytest.raises(ConfigError) as caught:
        _config(amqp_url=f"http://nova:{PASSWORD}@mq.example/")
    assert "amqp_url must start with amqp://, amqps://, rabbit://" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    # a check of the whole table names no field before its message (not "is invalid: : Value error")
    assert str(caught.value) == (
        "manager 'lab' (kind 'openstack') is invalid: Value error, amqp_url must start with amqp://, amqps://, rabbit://"
    )


@pytest.fixture(scope="module")
def ceilometer(gnocchi: GnocchiServer) -> GnocchiServer:
    if gnocchi.client.get(f"/v1/resource/instance/{cloud.WEB.id}").status_code == 404:
        cloud.load(gnocchi.client, gnocchi.indexer_dsn)
    return gnocchi


def test_inventory_of_refreshes_just_those_instances(ceilometer: GnocchiServer) -> None:
    config = _config(gnocchi_url=ceilometer.url, region="RegionTest", host_clusters=cloud.HOST_CLUSTERS)
    collector = GnocchiCollector("os", config)
    found = collector.inventory_of([ResourceRef("vm", cloud.DB.id), ResourceRef("vm", "no-such-instance")])
    items = {item.ref: item for item in found.items}
    assert set(items) == {
        ResourceRef("vm", cloud.DB.id),
        ResourceRef("host", "compute-1"),
        ResourceRef("host", "compute-2"),
        ResourceRef("cluster", "agg-a"),
        ResourceRef("cluster", "az-2"),
        ResourceRef("provider", "os"),
        ResourceRef("region", "RegionTest"),
    }
    assert [(p.valid_from, p.parent) for p in items[ResourceRef("vm", cloud.DB.id)].history] == [
        (cloud.T0, ResourceRef("host", "compute-1")),
        (cloud.MIGRATED_AT, ResourceRef("host", "compute-2")),
    ]
    nothing = collector.inventory_of([])
    assert [item.ref for item in nothing.items] == [ResourceRef("region", "RegionTest"), ResourceRef("provider", "os")]


def test_verify_checks_the_broker_credentials_and_novas_exchange(rabbitmq: RabbitMQServer, manager: str) -> None:
    url = rabbitmq.vhost(f"verify-{manager}")
    with pytest.raises(ConfigError, match=r"no exchange 'nova'.*amqp_exchange"):
        NovaNotifications(manager, url).verify()  # Nova has not notified in this virtual host
    with kombu.Connection(url) as connection:  # as Nova's notifier declares it
        kombu.Exchange("nova", type="topic", durable=False, auto_delete=False)(connection.channel()).declare()
    NovaNotifications(manager, url).verify()
    wrong = url.replace(PASSWORD, "not-the-password")
    with pytest.raises(CollectorAuthError, match="invalid credentials in amqp_url") as refused:
        NovaNotifications(manager, wrong).verify()
    assert "not-the-password" not in str(refused.value)
    with pytest.raises(CollectorAuthError, match="amqp_url"):  # `managers verify`, before Gnocchi is asked
        GnocchiCollector("lab", _config(amqp_url=wrong)).verify()
    closed = f"amqp://{USER}:{PASSWORD}@127.0.0.1:{free_port()}/"
    with pytest.raises(SourceUnavailable) as unreachable:
        NovaNotifications(manager, closed).verify()
    assert PASSWORD not in str(unreachable.value)
