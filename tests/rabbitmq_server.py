"""Start, stop and restart a private RabbitMQ 3.10 (Debian's ``rabbitmq-server``) from Python, without systemd.

scripts/test.sh installs the package (``apt-get install -y rabbitmq-server``; no service is started). The broker
runs from ``/usr/lib/rabbitmq/bin`` (the ``/usr/sbin`` wrappers switch to the ``rabbitmq`` user, with the wrong
HOME and cookie) in an environment of its own: a private node name, ports below 32768 (the AMQP port, the
distribution port, a private epmd and the CLI's distribution ports), and HOME, config, data, logs and pid file
under ``work``. Used by the test fixtures (tests/fix_rabbitmq.py).
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.loopback import ServerFailed

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
USER, PASSWORD = "cloudmeter", "s3cret-amqp-Pa55"
START_TIMEOUT_S = 60
#: The CLI tools' distribution ports (rabbitmqctl listens on one while it runs).
CTL_PORTS = 10


def _free_low_ports(count: int) -> int:
    """The first of ``count`` consecutive loopback ports below 32768 (the kernel's ephemeral range starts there,
    so a port handed out to some client is never taken from a broker) that are free right now."""
    for _ in range(200):
        first = random.randrange(20000, 32768 - count)
        try:
            for port in range(first, first + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise ServerFailed(f"no {count} consecutive free loopback ports below 32768")


@dataclass
class RabbitMQServer:
    """A private broker: ``url`` (amqp://USER:PASSWORD@127.0.0.1:PORT/) and how to stop and restart it."""

    work: Path
    node: str
    port: int
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"amqp://{USER}:{PASSWORD}@127.0.0.1:{self.port}/"

    def ctl(self, *args: str, timeout_s: float = 60) -> str:
        """``rabbitmqctl -n NODE ARGS``: its output; a failure raises ServerFailed with it."""
        done = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if done.returncode != 0:
            raise ServerFailed(f"rabbitmqctl {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done.stdout

    def vhost(self, name: str) -> str:
        """The URL of a new virtual host ``name`` (a separate set of exchanges and queues) for ``USER``."""
        self.ctl("add_vhost", name)
        self.ctl("set_permissions", "-p", name, USER, ".*", ".*", ".*")
        return f"{self.url}{name}"

    def start(self) -> None:
        """Start the node and wait until it serves (3.5-10 s)."""
        with (self.work / "server.out").open("ab") as out:
            subprocess.Popen(
                [str(RABBITMQ_BIN / "rabbitmq-server")],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # setsid: the broker outlives no test run's terminal signals
            )
        try:
            self.ctl("wait", "--timeout", str(START_TIMEOUT_S), self.env["RABBITMQ_PID_FILE"], timeout_s=90)
        except (ServerFailed, subprocess.TimeoutExpired) as exc:
            log = (self.work / "server.out").read_text(errors="replace")[-3000:]
            raise ServerFailed(f"RabbitMQ node {self.node} did not start: {exc}\n{log}") from exc

    def stop(self) -> None:
        """Stop the node (2-4 s); its durable queues and their persistent messages stay in ``work``."""
        self.ctl("stop", self.env["RABBITMQ_PID_FILE"])

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill_epmd(self) -> None:
        subprocess.run(["epmd", "-kill"], env=self.env, capture_output=True, check=False)

    def queue_depths(self, vhost: str = "/") -> dict[str, int]:
        """Messages ready in each queue of ``vhost`` (not those delivered and unacknowledged)."""
        listed = self.ctl("list_queues", "-p", vhost, "name", "messages_ready", "--quiet", "--no-table-headers")
        return {name: int(count) for name, count in (line.split("\t") for line in listed.splitlines() if line)}


def _environment(work: Path, node: str, port: int) -> dict[str, str]:
    (work / "home").mkdir(parents=True, exist_ok=True)
    config = work / "rabbitmq.conf"
    config.write_text("disk_free_limit.absolute = 50MB\nloopback_users = none\n")
    plugins = work / "enabled_plugins"
    plugins.write_text("[].\n")
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work / "home"),
        "LANG": "C.UTF-8",
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(port + 1),
        "ERL_EPMD_PORT": str(port + 2),
        "RABBITMQ_CTL_DIST_PORT_MIN": str(port + 3),
        "RABBITMQ_CTL_DIST_PORT_MAX": str(port + 3 + CTL_PORTS - 1),
        "RABBITMQ_CONFIG_FILE": str(config),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
        "RABBITMQ_MNESIA_BASE": str(work / "mnesia"),
        "RABBITMQ_LOG_BASE": str(work / "log"),
        "RABBITMQ_PID_FILE": str(work / "rabbitmq.pid"),
    }


@contextmanager
def running(work: Path) -> Iterator[RabbitMQServer]:
    """A private broker with user ``USER`` (password ``PASSWORD``, all rights on ``/``), stopped on exit."""
    if not (RABBITMQ_BIN / "rabbitmq-server").exists() or shutil.which("epmd") is None:
        raise ServerFailed("RabbitMQ is not installed: apt-get install -y rabbitmq-server (scripts/test.sh does)")
    port = _free_low_ports(3 + CTL_PORTS)
    node = f"cloudmeter-test-{port}@localhost"
    server = RabbitMQServer(work, node, port, _environment(work, node, port))
    try:
        server.start()
        server.ctl("add_user", USER, PASSWORD)
        server.ctl("set_permissions", "-p", "/", USER, ".*", ".*", ".*")
        yield server
    finally:
        try:
            server.stop()
        except (ServerFailed, subprocess.TimeoutExpired):
            pidfile = Path(server.env["RABBITMQ_PID_FILE"])
            if pidfile.exists():
                subprocess.run(["kill", "-9", pidfile.read_text().strip()], check=False)
        server.kill_epmd()
        time.sleep(0.1)
