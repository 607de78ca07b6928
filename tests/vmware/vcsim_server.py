"""govmomi's vCenter simulator for the tests: tests/vmware/vcsim/main.go built from Debian's govmomi source
(golang-go and golang-github-vmware-govmomi-dev, which scripts/test.sh installs) and started per fixture.

The binary is cached in tests/vmware/vcsim/.build/, keyed by the hash of main.go: a cold build takes 15-25 s,
a warm start a fraction of a second. ``VcsimServer.push`` sets the series its QueryPerf serves (by vCenter's
rules: see main.go) and the simulated vCenter's "now".
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import ssl
import subprocess
import threading
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

SOURCE: Final = Path(__file__).resolve().parent / "vcsim"
BUILD: Final = SOURCE / ".build"
GOPATH: Final = "/usr/share/gocode"
_LOCK = threading.Lock()


def build() -> Path:
    """The vcsim binary of the current main.go, built if missing (older builds removed)."""
    digest = hashlib.sha256((SOURCE / "main.go").read_bytes()).hexdigest()[:16]
    binary = BUILD / f"vcsim-{digest}"
    with _LOCK:
        if binary.exists():
            return binary
        go = shutil.which("go")
        if go is None or not Path(GOPATH, "src/github.com/vmware/govmomi/simulator").is_dir():
            raise RuntimeError(
                "vcsim needs golang-go and golang-github-vmware-govmomi-dev: apt-get install them "
                "(scripts/test.sh does)"
            )
        BUILD.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GO111MODULE": "off", "GOPATH": GOPATH, "GOCACHE": str(BUILD / "go-cache")}
        partial = binary.with_suffix(".partial")
        subprocess.run([go, "build", "-o", str(partial), "."], cwd=SOURCE, env=env, check=True, timeout=600)
        partial.rename(binary)
        for older in BUILD.glob("vcsim-*"):
            if older != binary:
                older.unlink()
        return binary


@dataclass(frozen=True)
class VcsimServer:
    url: str
    perf_url: str
    username: str
    password: str

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlparse(self.url).port or 443

    def push(self, series: Sequence[Mapping[str, Any]], *, now: int | None, reset: bool = True) -> None:
        """Serve ``series`` ({entity, counter, instance, interval, points: [[end, value]]}) from QueryPerf, with
        vCenter's clock at ``now`` (epoch seconds; None: the real clock)."""
        body = json.dumps({"reset": reset, "now": now, "series": list(series)}).encode()
        request = urllib.request.Request(self.perf_url, data=body, method="POST")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with urllib.request.urlopen(request, context=context, timeout=30) as answer:
            assert answer.status == 204, answer.read()


@contextmanager
def running(*flags: str, username: str, password: str) -> Iterator[VcsimServer]:
    """A vcsim of ``flags`` (see main.go: -dc, -cluster, -cluster-host, -host, -vms-per-host, -templates,
    -mhz, -cores) accepting only ``username`` and ``password``; stopped at the end."""
    binary = build()
    process = subprocess.Popen(
        [str(binary), *flags, "-user", username, "-password", password],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"vcsim did not start: {process.stderr.read() if process.stderr else ''}")
        started = json.loads(line)
        yield VcsimServer(started["url"], started["perf"], username, password)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
