"""Start and stop tests/pglite/server.mjs (PGlite + TimescaleDB over the PostgreSQL protocol) from Python.

Used by the test fixture (tests/fix_timescale.py) and by benchmarks/timescaledb.py. Needs Node.js 20+ and,
once per checkout, ``npm ci --legacy-peer-deps --prefix tests/pglite``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PGLITE_DIR = Path(__file__).resolve().parent / "pglite"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class ServerFailed(RuntimeError):
    """The server could not be started, or died; the message says why and how to fix it."""


@dataclass(frozen=True)
class PGliteServer:
    """A running server process."""

    process: subprocess.Popen[bytes]
    dsn: str
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def check_alive(self) -> None:
        """Raise ServerFailed (with the server's stderr) if the process has exited."""
        code = self.process.poll()
        if code is not None:
            raise ServerFailed(f"the PGlite/TimescaleDB server exited with code {code}; its stderr:\n{self.stderr()}")


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise ServerFailed("node (Node.js 20+) is not on PATH; the TimescaleDB server runs tests/pglite/server.mjs")
    if not (PGLITE_DIR / "node_modules" / "@unni-craftsman" / "pglite").is_dir():
        raise ServerFailed(
            f"{PGLITE_DIR / 'node_modules'} is missing; install it once with: "
            "npm ci --legacy-peer-deps --prefix tests/pglite"
        )
    return node


def _wait_ready(process: subprocess.Popen[bytes], stdout_path: Path, stderr_path: Path) -> int:
    """The port from the server's ``READY <port>`` line."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        for line in stdout_path.read_text(errors="replace").splitlines():
            if line.startswith("READY "):
                return int(line.split()[1])
        code = process.poll()
        if code is not None or time.monotonic() > deadline:
            why = f"exited with code {code}" if code is not None else f"not ready after {START_TIMEOUT_S:.0f} s"
            stderr = stderr_path.read_text(errors="replace")[-4000:]
            raise ServerFailed(f"the PGlite/TimescaleDB server {why}; its stderr:\n{stderr}")
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
def running(work: Path) -> Iterator[PGliteServer]:
    """The server on a free loopback port, its database in ``work``/pgdata; stopped on exit."""
    node = _node()
    stdout_path, stderr_path = work / "server.out", work / "server.err"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        # --port 0: the server binds a free port itself and reports it (no race with other processes).
        # --watch-stdin: the server exits when this process goes away, even on SIGKILL.
        process = subprocess.Popen(
            [node, str(PGLITE_DIR / "server.mjs"), "--port", "0", "--data", str(work / "pgdata"), "--watch-stdin"],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
            cwd=PGLITE_DIR,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
    try:
        port = _wait_ready(process, stdout_path, stderr_path)
        dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=disable connect_timeout=30"
        yield PGliteServer(process, dsn, stderr_path)
    finally:
        _stop(process)
