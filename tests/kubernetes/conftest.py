"""A real Prometheus 2.42 holding world.py's series (written by promtool once per session), and a bearer-token proxy
in front of it, as OpenShift's Thanos querier sits behind kube-rbac-proxy."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPConnection  # by name: vcrpy's cassettes patch http.client's, not this one
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from cloudmeter.collectors.kubernetes import KubernetesCollector, KubernetesConfig
from cloudmeter.model import from_epoch_s
from tests.kubernetes import world
from tests.loopback import free_port, in_thread

PROMTOOL: Final = "/usr/bin/promtool"
PROMETHEUS: Final = "/usr/bin/prometheus"
TOKEN: Final = "sha256~k8s-contract-token-3f9a1c"
WRONG_TOKEN: Final = "sha256~wrong-token-77b2e0d4"


@dataclass(frozen=True)
class Prom:
    url: str  # Prometheus itself (no authentication)
    proxy_url: str  # the same behind a proxy that wants ``Authorization: Bearer TOKEN``

    def collector(self, *, url: str | None = None, **fields: Any) -> KubernetesCollector:
        raw = {"prometheus_url": url or self.url, "cluster": world.CLUSTER, "lookback_h": 6} | fields
        return KubernetesCollector("k8s", KubernetesConfig.model_validate(raw), clock=lambda: from_epoch_s(world.END))


@pytest.fixture(scope="session")
def prometheus_blocks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """world.py's series as TSDB blocks (promtool, once per session)."""
    if not Path(PROMTOOL).exists():
        pytest.fail(f"{PROMTOOL} is missing: run scripts/test.sh (it installs Debian's prometheus package)")
    where = tmp_path_factory.mktemp("prometheus")
    source = where / "world.om"
    world.write_openmetrics(source)
    blocks = where / "blocks"
    done = subprocess.run(
        [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=72h", str(source), str(blocks)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"promtool could not write the blocks: {done.stderr[-2000:]}")
    return blocks


@pytest.fixture(scope="session")
def prometheus(prometheus_blocks: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prom]:
    """Prometheus on a free loopback port over a copy of the blocks (it compacts its data directory)."""
    where = tmp_path_factory.mktemp("prometheus-run")
    data = where / "data"
    shutil.copytree(prometheus_blocks, data)
    config = where / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\n")  # no scrape_configs: it only serves the blocks
    port = free_port()
    log = (where / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={data}", "--storage.tsdb.retention.time=100y",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prometheus did not start: {(where / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.05)
        with bearer_proxy(url) as proxy_url:
            yield Prom(url, proxy_url)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class _Proxy(http.server.BaseHTTPRequestHandler):
    """Forwards with http.client's connection class as imported here: a cassette playing in this process records
    (and on replay answers) the collectors' requests to the proxy, never the proxy's own to Prometheus."""

    upstream: tuple[str, int] = ("", 0)

    def _forward(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_response(401 if "Authorization" not in self.headers else 403)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"Unauthorized")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type",)}
        upstream = HTTPConnection(*self.upstream, timeout=30)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            content = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.getheader("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def bearer_proxy(upstream: str) -> Iterator[str]:
    """A loopback proxy to ``upstream`` that answers 401 without a bearer token and 403 with a wrong one."""
    address = httpx.URL(upstream)
    with in_thread(type("Handler", (_Proxy,), {"upstream": (address.host, address.port)})) as url:
        yield url
