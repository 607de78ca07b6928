"""Running the app with uvicorn, in the foreground (``cloudmeter serve``) or in a thread beside the daemon
(``cloudmeter run`` with ``[api] port``), on a socket bound first so that a taken port is one clear error."""

from __future__ import annotations

import signal
import socket
import threading
from dataclasses import dataclass, field
from types import FrameType

import uvicorn
from fastapi import FastAPI

from cloudmeter.errors import ConfigError


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port), or a ConfigError naming both and why."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port (or [api] port)"
        ) from None
    sock.set_inheritable(True)
    return sock


def url(sock: socket.socket) -> str:
    """The base URL of the app listening on ``sock``."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def server(app: FastAPI) -> uvicorn.Server:
    """A uvicorn server for ``app``: logging as cloudmeter's (access lines with ``--debug``), no server header."""
    config = uvicorn.Config(app, log_config=None, server_header=False, proxy_headers=False, timeout_graceful_shutdown=5)
    return uvicorn.Server(config)


def run(app: FastAPI, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` in this (main) thread until SIGTERM or SIGINT, then let requests in flight finish
    and return, so that the caller closes what it opened (uvicorn raises the signal again once it has stopped: here
    it finds a handler that ignores it, instead of the default that would end the process on the spot)."""
    handled = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.signal(signum, _stopped) for signum in handled}
    try:
        server(app).run(sockets=[sock])
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stopped(signum: int, frame: FrameType | None) -> None:
    """Uvicorn's signal, raised again after it stopped: nothing left to do."""


@dataclass
class Background:
    """``app`` served on ``sock`` in a daemon thread, until ``stop``."""

    app: FastAPI
    sock: socket.socket
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        self._server = server(self.app)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self.sock]}, name="cloudmeter-api", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout_s)
        self.sock.close()
