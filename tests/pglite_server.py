"""Start and stop tests/pglite/server.mjs (PGlite + TimescaleDB over the PostgreSQL protocol) from Python.

Used by the test fixture (tests/fix_timescale.py) and by benchmarks/timescaledb.py. Needs Node.js 20+ and,
once per checkout, ``npm ci --legacy-peer-deps --prefix tests/pglite``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests import loopback
from tests.loopback import ServerFailed

PGLITE_DIR = Path(__file__).resolve().parent / "pglite"
START_TIMEOUT_S = 60.0


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


@contextmanager
def running(work: Path) -> Iterator[PGliteServer]:
    """The server on a free loopback port, its database in ``work``/pgdata; stopped on exit."""
    node = _node()
    # --port 0: the server binds a free port itself and reports it (no race with other processes).
    # --watch-stdin: the server exits when this process goes away, even on SIGKILL.
    command = [node, str(PGLITE_DIR / "server.mjs"), "--port", "0", "--data", str(work / "pgdata"), "--watch-stdin"]
    env = {**os.environ, "NODE_NO_WARNINGS": "1"}
    with loopback.serving(command, work, "the PGlite/TimescaleDB server", START_TIMEOUT_S, cwd=PGLITE_DIR, env=env) as (
        process,
        port,
    ):
        dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=disable connect_timeout=30"
        # PGlite loads TimescaleDB only once the extension exists (shared_preload_libraries stays empty), so it is
        # created here, as the timescale/timescaledb image creates it at init: a TimescaleDB server as users get it
        with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        yield PGliteServer(process, dsn, work / "server.err")
