"""Helper processes that serve on a free loopback port: start them, wait for ``READY <port>``, stop them.

Each server script binds port 0 itself and prints ``READY <port>`` on stdout (no race with other processes for
a port), and exits when its stdin closes, so it never outlives the process that started it, even on SIGKILL.
"""

from __future__ import annotations

import http.server
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

STOP_TIMEOUT_S = 10.0


class ServerFailed(RuntimeError):
    """A helper server could not be set up or started; the message says why and how to fix it."""


def free_port() -> int:
    """A loopback port free right now (for servers that must be told their port rather than report it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(process: subprocess.Popen[bytes], stdout: Path, stderr: Path, what: str, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        for line in stdout.read_text(errors="replace").splitlines():
            if line.startswith("READY "):
                return int(line.split()[1])
        code = process.poll()
        if code is not None or time.monotonic() > deadline:
            why = f"exited with code {code}" if code is not None else f"was not ready after {timeout_s:.0f} s"
            raise ServerFailed(f"{what} {why}; its stderr:\n{stderr.read_text(errors='replace')[-4000:]}")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdin is not None:
        process.stdin.close()


@contextmanager
def serving(
    command: Sequence[str], work: Path, what: str, timeout_s: float = 60.0, **popen: object
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Run ``command`` (its output in ``work``/server.out and .err) until it reports its port; stop it on exit."""
    stdout, stderr = work / "server.out", work / "server.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=out, stderr=err, **popen)  # type: ignore[call-overload]
    try:
        yield process, _wait_ready(process, stdout, stderr, what, timeout_s)
    finally:
        _stop(process)


@contextmanager
def in_thread(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served from a thread of this process on a free loopback port: its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
