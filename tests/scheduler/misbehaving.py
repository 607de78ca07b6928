"""A Gnocchi on loopback that misbehaves on cue: hangs, trickles, 500, 429 with Retry-After, truncated JSON.

It speaks the shape of Gnocchi 4.7's API for a cloud with no instances yet (what the OpenStack collector reads
of an empty cloud): ``GET /v1/resource_type/NAME`` answers the type, ``POST /v1/search/resource/TYPE`` an empty
list, ``GET /v1/metric`` and ``/v1/archive_policy`` empty lists, ``POST /v1/aggregates`` no measures. Each
manager points its ``gnocchi_url`` at a prefix of its own (``http://127.0.0.1:PORT/NAME``) and the server answers
per prefix, so several managers share one server and one request log.

``arm(prefix, how)`` makes the instance search (``POST /v1/search/resource/instance``, the first call of both an
inventory and a capture) misbehave from then on:

    hang       read the request, never answer (until the server stops)
    trickle    send the status line and headers, then one byte of body every ``TRICKLE_S`` for ever
    500        a Gnocchi-shaped 500 error
    429        a 429 with ``Retry-After: RETRY_AFTER_S``
    truncated  a complete 200 response whose JSON body is cut short
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Literal

Misbehaviour = Literal["hang", "trickle", "500", "429", "truncated"]
MISBEHAVIOURS: Final[tuple[Misbehaviour, ...]] = ("hang", "trickle", "500", "429", "truncated")
#: The chosen call: the instance search.
CHOSEN: Final = ("POST", "/v1/search/resource/instance")
TRICKLE_S: Final = 0.2
RETRY_AFTER_S: Final = 40
#: What ``truncated`` sends: the start of a search answer.
TRUNCATED: Final = b'[{"id": "4f9f1a52-0c5e-4cc8-a1a7-b6ba8e4b0c35", "type": "instance", "flavor_na'


@dataclass(frozen=True)
class Request:
    """One request the server got: whose (prefix), what, when (``time.time()``), and how it was answered."""

    prefix: str
    method: str
    path: str
    at: float
    answer: str


class MisbehavingGnocchi:
    """The server's state: what is armed and what was asked (shared with the handler threads)."""

    def __init__(self) -> None:
        self.armed: dict[str, Misbehaviour] = {}
        self.requests: list[Request] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.port = 0

    def url(self, prefix: str) -> str:
        """The ``gnocchi_url`` of the manager using ``prefix``."""
        return f"http://127.0.0.1:{self.port}/{prefix}"

    def arm(self, prefix: str, how: Misbehaviour) -> None:
        """From now on, answer ``prefix``'s instance searches ``how``."""
        with self.lock:
            self.armed[prefix] = how

    def asked(self, prefix: str, answer: str | None = None) -> list[Request]:
        """``prefix``'s requests of the chosen call so far (those answered ``answer``, if given)."""
        with self.lock:
            return [
                r
                for r in self.requests
                if r.prefix == prefix and (r.method, r.path) == CHOSEN and answer in (None, r.answer)
            ]


def _answer(method: str, path: str) -> tuple[int, Any]:
    """What a well-behaved Gnocchi holding no instances answers."""
    if method == "GET" and path.startswith("/v1/resource_type/"):
        name = path.rsplit("/", 1)[1]
        return 200, {"name": name, "state": "active", "attributes": {}}
    if method == "POST" and path.startswith("/v1/search/resource/"):
        return 200, []
    if method == "GET" and path in ("/v1/metric", "/v1/archive_policy"):
        return 200, []
    if method == "POST" and path == "/v1/aggregates":
        return 200, {"measures": {}}
    return 404, {"code": 404, "title": "Not Found", "description": f"The resource could not be found: {path}"}


def _handler(state: MisbehavingGnocchi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            del format, args

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            prefix, _, rest = self.path.lstrip("/").partition("/")
            path = "/" + rest.partition("?")[0]
            with state.lock:
                how = state.armed.get(prefix) if (method, path) == CHOSEN else None
                state.requests.append(Request(prefix, method, path, time.time(), how or "ok"))
            if how is None:
                self._json(*_answer(method, path))
            elif how == "hang":
                state.stopping.wait()
                self.close_connection = True
            elif how == "trickle":
                self._trickle()
            elif how == "500":
                self._json(500, {"code": 500, "title": "Internal Server Error", "description": "database locked"})
            elif how == "429":
                body = {"code": 429, "title": "Too Many Requests", "description": "rate limit exceeded"}
                self._json(429, body, {"Retry-After": str(RETRY_AFTER_S)})
            else:
                self._send(200, TRUNCATED)

        def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(body).encode(), headers)

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _trickle(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(b"[")
            self.wfile.flush()
            self.close_connection = True
            while not state.stopping.wait(TRICKLE_S):
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:  # the client gave up
                    return

    return Handler


@contextmanager
def misbehaving_gnocchi() -> Iterator[MisbehavingGnocchi]:
    """The server, on a free loopback port, until the block ends (hanging and trickling answers end with it)."""
    state = MisbehavingGnocchi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="misbehaving gnocchi", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
