"""The daemon's event side end to end: ``cloudmeter run`` consumes Nova's notifications from a real RabbitMQ under
the manager's lease, survives kill -9 between receipt and commit, a broker restart, a duplicated and a malformed
message, and ends with exactly the timeline and ``resource_history`` a plain replay of the published migrations
gives. Gnocchi is not running (nothing listens at ``gnocchi_url``): the refresh and capture jobs fail and back off,
and the event side carries on regardless.

The messages are published raw in oslo.messaging's 2.0 envelope (what oslo's Notifier sends, tests/collectors/
test_openstack_events.py) so that their ids and times are the test's: the expected periods follow from them alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from cloudmeter.model import Inventory, InventoryItem, Placement, ResourceRef
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database
from cloudmeter.storage.inventory import save_inventory
from tests.collectors.notifications import body, legacy_payload, message, publish_raw
from tests.loopback import free_port
from tests.rabbitmq_server import PASSWORD, RabbitMQServer
from tests.scheduler.test_daemon import SCHEDULE, Daemons, wait_for

T0 = datetime(2026, 12, 7, tzinfo=UTC)
VMS = [f"00000000-0000-4000-8000-{n:012d}" for n in range(12)]
HOSTS = ["compute-0", "compute-1", "compute-2"]
MIGRATED = "compute.instance.live_migration.post.dest.end"


def migration(round_: int, vm: int) -> tuple[str, datetime, str]:
    """The ``round_``-th migration of VM ``vm``: its message id, time and destination host."""
    at = T0 + timedelta(hours=1 + round_, seconds=7 * vm + 0.25)
    return str(uuid.UUID(int=round_ << 64 | vm)), at, HOSTS[1 + (vm + round_) % 2]  # never where it was


def publish(url: str, round_: int) -> list[str]:
    """Round ``round_``'s migration of every VM, as Nova's legacy notifier sends it; the message ids."""
    ids = []
    for vm, instance in enumerate(VMS):
        message_id, at, host = migration(round_, vm)
        payload = legacy_payload(instance_id=instance, host=host, node=f"{host}.example.org", display_name=f"vm-{vm}")
        publish_raw(url, body(message(MIGRATED, payload, message_id, at.strftime("%Y-%m-%d %H:%M:%S.%f"))))
        ids.append(message_id)
    return ids


def expected_periods(rounds: int) -> dict[str, list[tuple[datetime, datetime | None, str]]]:
    """Per VM, by hand: on compute-0 from T0, then on each round's host from that migration's instant."""
    periods = {}
    for vm, instance in enumerate(VMS):
        starts = [(T0, "compute-0")] + [migration(r, vm)[1:] for r in range(rounds)]
        periods[instance] = [
            (start, starts[i + 1][0] if i + 1 < len(starts) else None, host) for i, (start, host) in enumerate(starts)
        ]
    return periods


def stored(dsn: str) -> tuple[set[str], dict[str, list[tuple[datetime, datetime | None, str]]]]:
    with psycopg.connect(dsn) as conn:
        ids = {row[0] for row in conn.execute("SELECT message_id FROM events")}
        rows = conn.execute(
            """SELECT r.ems_ref, h.valid_from, h.valid_to, p.ems_ref FROM resource_history h
               JOIN resources r ON r.id = h.resource_id LEFT JOIN resources p ON p.id = h.parent_id
               WHERE r.kind = 'vm' ORDER BY r.ems_ref, h.valid_from"""
        ).fetchall()
    history: dict[str, list[tuple[datetime, datetime | None, str]]] = {}
    for ref, start, end, host in rows:
        history.setdefault(ref, []).append((start, end, host))
    return ids, history


def catcher_state(dsn: str) -> tuple[bool | None, datetime | None]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT events_connected, events_state_at FROM managers WHERE name = 'os'").fetchone()
    return (row[0], row[1]) if row else (None, None)


def queued(rabbitmq: RabbitMQServer, vhost: str) -> Callable[[], int]:
    return lambda: rabbitmq.queue_depths(vhost).get("cloudmeter-os", 0)


def test_daemon_catches_through_kill_9_broker_restart_duplicates_and_garbage(
    dsn: str, tmp_path: Path, rabbitmq: RabbitMQServer
) -> None:
    vhost = f"daemon-{uuid.uuid4().hex[:8]}"
    url = rabbitmq.vhost(vhost)
    with Database(dsn, tmp_path) as db:
        db.migrate()
        with db.connection() as conn:
            manager_id = managers.register_manager(conn, "os", "openstack", {})
            hosts = [InventoryItem(ResourceRef("host", h), h, None, vcpus=32) for h in HOSTS]
            vms = [
                InventoryItem(
                    ResourceRef("vm", ref),
                    f"vm-{n}",
                    ResourceRef("host", "compute-0"),
                    vcpus=2,
                    memory_bytes=4 << 30,
                    history=(Placement(T0, ResourceRef("host", "compute-0"), 2, 4 << 30),),
                )
                for n, ref in enumerate(VMS)
            ]
            save_inventory(conn, manager_id, Inventory(T0, (*hosts, *vms)))
    config = (
        SCHEDULE
        + f"""
[managers.os]
kind = "openstack"
auth_mode = "basic"
gnocchi_url = "http://127.0.0.1:{free_port()}/"
password = "gnocchi-password"
amqp_url = "{url}"
"""
    )
    run = Daemons(dsn, tmp_path, config)
    try:
        caught(run, dsn, url, vhost, rabbitmq)
    finally:
        run.stop_all()


def caught(run: Daemons, dsn: str, url: str, vhost: str, rabbitmq: RabbitMQServer) -> None:
    """The test's path through the daemons' lives (``run``), the broker's restart and the checks."""
    first = run.start()
    wait_for(lambda: catcher_state(dsn)[0] is True, 60, "the catcher to connect (and declare its queue)")

    published = publish(url, 0)
    wait_for(lambda: bool(stored(dsn)[0]), 30, "the first events to be committed")
    first.send_signal(signal.SIGKILL)  # whatever it had received and not committed stays on the queue, unacked
    first.wait()
    published += publish(url, 1)
    again = message(MIGRATED, legacy_payload(instance_id=VMS[0]), published[0], "2026-12-07 05:00:00.000000")
    publish_raw(url, body(again))  # the first message's id again, as a re-delivery: stored once, never applied
    publish_raw(url, b"{not json")  # dead-lettered, never stored

    second = run.start()
    wait_for(lambda: stored(dsn)[0] == set(published), 60, "the restarted daemon to commit every event")
    wait_for(lambda: queued(rabbitmq, vhost)() == 0, 30, "the queue to be drained (and acknowledged)")

    connected_at = catcher_state(dsn)[1]
    rabbitmq.restart()  # Nova's non-durable exchange goes; our durable queue stays, and the catcher binds again
    wait_for(lambda: catcher_state(dsn) != (True, connected_at) and catcher_state(dsn)[0] is True, 90, "a reconnect")
    published += publish(url, 2)
    wait_for(lambda: stored(dsn)[0] == set(published), 60, "the events after the broker restart")

    ids, history = stored(dsn)
    assert ids == set(published) and len(published) == 3 * len(VMS)
    assert history == expected_periods(3)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (3 * len(VMS),)

    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDMETER_")}
    env |= {"CLOUDMETER_DSN": dsn, "CLOUDMETER_CONFIG": str(run.config), "COLUMNS": "80"}
    status = subprocess.run(
        [sys.executable, "-m", "cloudmeter", "status"], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert "os: event catcher connected since" in status and "os: 36 events stored" in status
    timeline = subprocess.run(
        [sys.executable, "-m", "cloudmeter", "events", "--manager", "os", "--resource", VMS[3], "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert [row["kind"] for row in json.loads(timeline)] == ["migrated"] * 3
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0
    assert catcher_state(dsn)[0] is None  # a stopped daemon's catcher is shown as not running
    logs = run.log(0) + run.log(1)
    assert "gnocchi-password" not in logs and PASSWORD not in logs + status
