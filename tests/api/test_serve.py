"""``cloudmeter serve`` and ``cloudmeter run`` with ``[api] port`` as processes: the API listens on 127.0.0.1 by
default (read back from the kernel's socket table), answers, and stops cleanly on SIGTERM; a taken port is one
line."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from cloudmeter.storage import tokens
from cloudmeter.storage.database import Database
from tests.loopback import free_port

CLOUDMETER = str(Path(sys.executable).parent / "cloudmeter")


def listening(port: int) -> list[str]:
    """The local addresses (hex, as /proc/net/tcp{,6} write them) of sockets listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.append(address)
    return found


@contextmanager
def started(args: list[str], env: dict[str, str], ready: str) -> Iterator[tuple[subprocess.Popen[str], re.Match[str]]]:
    """Run ``cloudmeter ARGS`` until a line of its output matches ``ready``; kill it if the test did not stop it."""
    process = subprocess.Popen(
        [CLOUDMETER, *args], env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    found: list[re.Match[str]] = []
    seen = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            match = re.search(ready, line)
            if match and not found:
                found.append(match)
                seen.set()
        seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert seen.wait(60) and found, "".join(lines)
        yield process, found[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(5)
        process.output = "".join(lines)  # type: ignore[attr-defined]


def _env(dsn: str, tmp_path: Path) -> dict[str, str]:
    return {"CLOUDMETER_DSN": dsn, "CLOUDMETER_DATA_DIR": str(tmp_path), "COLUMNS": "80"}


def test_serve_binds_loopback_by_default_and_stops_on_sigterm(db: Database, dsn: str, tmp_path: Path) -> None:
    with db.connection() as conn:
        token = tokens.create_token(conn, "me", "viewer")
    port = free_port()
    with started(["serve", "--port", str(port)], _env(dsn, tmp_path), r"cloudmeter at (http://\S+)/ \(web page\)") as (
        process,
        match,
    ):
        assert match.group(1) == f"http://127.0.0.1:{port}"
        assert listening(port) == ["0100007F"]  # 127.0.0.1, nothing else
        with httpx.Client(base_url=match.group(1)) as client:
            assert client.get("/api/v1/whoami").status_code == 401
            answer = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
            assert answer.json() == {"name": "me", "role": "viewer"}
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        assert time.monotonic() - began < 10
    output: str = process.output  # type: ignore[attr-defined]
    assert "listening on this machine only (the default)" in output
    assert "Traceback" not in output and listening(port) == []


def test_a_taken_port_is_one_line(db: Database, dsn: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [CLOUDMETER, "serve", "--port", str(port)],
            env={**os.environ, **_env(dsn, tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    message = " ".join(done.stderr.split())
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use; pick another --port" in message
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_run_serves_the_api_beside_the_daemon(db: Database, dsn: str, tmp_path: Path) -> None:
    with db.connection() as conn:
        token = tokens.create_token(conn, "ops", "admin")
    port = free_port()
    env = {**_env(dsn, tmp_path), "CLOUDMETER_API__PORT": str(port)}
    with started(["run"], env, r"HTTP API at (http://\S+)/api/v1") as (process, match):
        assert match.group(1) == f"http://127.0.0.1:{port}" and listening(port) == ["0100007F"]
        with httpx.Client(base_url=match.group(1), headers={"Authorization": f"Bearer {token}"}) as client:
            assert client.get("/api/v1/whoami").json() == {"name": "ops", "role": "admin"}
            assert client.get("/api/v1/status").json()["schema_version"] > 0
            assert "cloudmeter_managers_leased" in client.get("/metrics").text  # the daemon's own gauges
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    output: str = process.output  # type: ignore[attr-defined]
    assert "stopped" in output and "Traceback" not in output and listening(port) == []
