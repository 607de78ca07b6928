"""Events: Nova's notifications through the catcher and the handler into PostgreSQL, on a real RabbitMQ.

    python benchmarks/events.py [--quick] [--json] [--runs N] [--vms N] [--events N] [--rate R]

A private RabbitMQ 3.10 (tests/rabbitmq_server.py) and the embedded PostgreSQL holding ``--vms`` VMs on hosts of
40 (``--quick``: 1,000 VMs, 2,000 events, 5 s of delay). The notifications are legacy live migrations
(``compute.instance.live_migration.post.dest.end``) in oslo.messaging's envelope, each VM moved to another host,
published to Nova's exchange with kombu (oslo's own Notifier publishes about 500/s here: the publisher would be
the bottleneck). Every hour the migrations fall in is rolled up already, so each change marks hours to rebuild,
as in a running cloudmeter. Medians of ``--runs`` runs:

- events/s: ``--events`` notifications queued, then the daemon's event side started (``catchers.Catcher`` on
  ``NovaNotifications``, each batch through ``handler.Handler.deliver``: stored, applied to ``resource_history``
  and dirty marks in one transaction, then acknowledged), timed until the last batch is committed; beside it the
  same catcher with a ``deliver`` that stores nothing (the broker and the decoding alone). Goal: 5,000/s (a
  100k-VM cloud's evacuation storm absorbed in under a minute).
- delay: notifications published at ``--rate`` per second for ``--seconds`` while the catcher runs; per event the
  time from its publication (its notification's timestamp) to the commit of its batch: median and p95 (goal:
  p95 under 2 s).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import harness  # benchmarks/harness.py, beside this script
import kombu

from cloudmeter.collectors.openstack.events import NovaNotifications
from cloudmeter.model import Event, Inventory, InventoryItem, Placement, ResourceRef
from cloudmeter.scheduler.catchers import Catcher
from cloudmeter.scheduler.handler import Handler
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database
from cloudmeter.storage.inventory import save_inventory

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests import rabbitmq_server
from tests.collectors.notifications import body, legacy_payload, message

VMS_PER_HOST = 40
MIGRATED = "compute.instance.live_migration.post.dest.end"
START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)


class World:
    """The VMs, where each is now, and the notifications that move them."""

    def __init__(self, vms: int) -> None:
        self.vms = [str(uuid.UUID(int=n + 1)) for n in range(vms)]
        self.hosts = [f"compute-{n}" for n in range(max(2, -(-vms // VMS_PER_HOST)))]
        self.on = [n // VMS_PER_HOST for n in range(vms)]
        self.sent = 0

    def inventory(self) -> Inventory:
        hosts = [InventoryItem(ResourceRef("host", h), h, None, vcpus=64) for h in self.hosts]
        vms = [
            InventoryItem(
                ResourceRef("vm", ref),
                f"vm-{n}",
                ResourceRef("host", self.hosts[self.on[n]]),
                vcpus=2,
                memory_bytes=4 << 30,
                history=(Placement(START, ResourceRef("host", self.hosts[self.on[n]]), 2, 4 << 30),),
            )
            for n, ref in enumerate(self.vms)
        ]
        return Inventory(START, (*hosts, *vms))

    def next_body(self, at: datetime) -> bytes:
        """The next VM's live migration to the next host, at ``at``."""
        n = self.sent % len(self.vms)
        self.on[n] = (self.on[n] + 1) % len(self.hosts)
        self.sent += 1
        host = self.hosts[self.on[n]]
        payload = legacy_payload(instance_id=self.vms[n], host=host, node=f"{host}.example.org", display_name=f"vm-{n}")
        return body(message(MIGRATED, payload, str(uuid.uuid4()), at.strftime("%Y-%m-%d %H:%M:%S.%f")))


class Publisher:
    """Nova's exchange on the broker, published to with kombu."""

    def __init__(self, url: str) -> None:
        self.connection = kombu.Connection(url)
        self.producer = self.connection.Producer()
        self.exchange = kombu.Exchange("nova", type="topic", durable=False, auto_delete=False)

    def send(self, raw: bytes) -> None:
        self.producer.publish(
            raw, exchange=self.exchange, routing_key="notifications.info", content_type="application/json"
        )

    def close(self) -> None:
        self.connection.release()


def run_catcher(
    source: NovaNotifications, deliver: Callable[[list[Event]], None], until: Callable[[Catcher], bool]
) -> None:
    """Run a catcher on ``source`` until ``until(catcher)`` holds (checked every 10 ms), then stop it."""
    catcher = Catcher("bench", source, deliver, lambda: None)
    catcher.start()
    try:
        while not until(catcher):
            time.sleep(0.01)
    finally:
        catcher.stop(30)


def queue_up(source: NovaNotifications) -> None:
    """Let ``source`` declare its queue and bind it (a catcher until connected), so that what follows is kept."""
    run_catcher(source, lambda events: None, lambda catcher: catcher.connected)


def throughput(url: str, world: World, count: int, deliver: Callable[[list[Event]], None]) -> float:
    """Events per second through a catcher delivering to ``deliver``, from ``count`` queued notifications."""
    source = NovaNotifications("bench", url)
    queue_up(source)
    publisher = Publisher(url)
    now = datetime.now(UTC) - timedelta(hours=1)
    for _ in range(count):
        publisher.send(world.next_body(now))
    publisher.close()
    done = [0]

    def counted(events: list[Event]) -> None:
        deliver(events)
        done[0] += len(events)

    began = time.perf_counter()
    run_catcher(source, counted, lambda _: done[0] >= count)
    return count / (time.perf_counter() - began)


def delays(url: str, world: World, deliver: Callable[[list[Event]], None], rate: float, seconds: float) -> list[float]:
    """Seconds from each notification's publication to the commit of its batch, ``rate`` a second."""
    source = NovaNotifications("bench", url)
    queue_up(source)
    found: list[float] = []
    total = int(rate * seconds)

    def timed(events: list[Event]) -> None:
        deliver(events)
        committed = datetime.now(UTC)
        found.extend((committed - event.ts).total_seconds() for event in events if event.kind == "migrated")

    def publish() -> None:
        publisher = Publisher(url)
        began = time.perf_counter()
        for k in range(total):
            time.sleep(max(0.0, began + k / rate - time.perf_counter()))
            publisher.send(world.next_body(datetime.now(UTC)))
        publisher.close()

    sender = threading.Thread(target=publish)
    sender.start()
    run_catcher(source, timed, lambda _: len(found) >= total)
    sender.join()
    return found


def measure(args: argparse.Namespace, world: World, tmp: Path) -> tuple[list[float], list[float], list[float]]:
    """Events/s of the bare catcher and of catcher + handler (``--runs`` each), then the delays (sorted)."""
    with rabbitmq_server.running(tmp / "rabbitmq") as broker, Database(None, tmp) as db:
        db.migrate()
        with db.connection() as conn:
            manager_id = managers.register_manager(conn, "bench", "openstack", {})
            save_inventory(conn, manager_id, world.inventory())
            conn.execute("UPDATE managers SET rolled_until = now() WHERE id = %s", (manager_id,))
        handler = Handler(db, "bench", manager_id, collector=None)  # type: ignore[arg-type]  # never refreshes
        url = broker.url
        bare = [throughput(url, world, args.events, lambda events: None) for _ in range(args.runs)]
        stored = [throughput(url, world, args.events, handler.deliver) for _ in range(args.runs)]
        return bare, stored, sorted(delays(url, world, handler.deliver, args.rate, args.seconds))


def main() -> None:
    parser = harness.parser(__doc__, "1,000 VMs, 2,000 events, 5 s of delay at 200/s", vms=20_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="notifications a second for the delay")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the delay is measured")
    args = parser.parse_args()
    if args.quick:
        args.vms, args.events, args.rate, args.seconds, args.runs = 1000, 2000, 200.0, 5.0, min(args.runs, 3)
    with tempfile.TemporaryDirectory(prefix="cloudmeter-bench-events-") as tmp:
        bare, stored, waits = measure(args, World(args.vms), Path(tmp))
    p95 = waits[min(len(waits) - 1, int(0.95 * len(waits)))]
    figures = {
        "events_per_s": statistics.median(stored),
        "bare_catcher_events_per_s": statistics.median(bare),
        "stored_vs_bare": statistics.median(stored) / statistics.median(bare),
        "delay_median_s": statistics.median(waits),
        "delay_p95_s": p95,
    }
    print(f"{args.vms:,} VMs, {args.events:,} live migrations queued, medians of {args.runs} runs")
    print(f"catcher + handler into PostgreSQL: {figures['events_per_s']:>9,.0f} events/s   (goal 5,000)")
    print(f"catcher alone (deliver stores nothing): {figures['bare_catcher_events_per_s']:>9,.0f} events/s")
    print(f"stored / bare: {figures['stored_vs_bare']:.2f}")
    print(
        f"publish -> commit at {args.rate:,.0f}/s for {args.seconds:.0f} s: median {figures['delay_median_s']:.3f} s, "
        f"p95 {p95:.3f} s   (goal p95 < 2 s)"
    )
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
