"""What a vmware manager that cannot work says, and the session's life: reused, renewed when vCenter ends it,
logged out on close. Each failure is one line naming what is wrong and how to fix it, without the password."""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyVim.connect import Disconnect

from cloudmeter.collectors import usage
from cloudmeter.collectors.vmware import VmwareConfig, VsphereCollector
from cloudmeter.errors import CollectorAuthError, ConfigError
from tests.vmware import world
from tests.vmware.conftest import World, connect


def collector(host: str, port: int, **fields: object) -> VsphereCollector:
    raw = {"host": host, "port": port, "username": world.USERNAME, "password": world.PASSWORD, **fields}
    return VsphereCollector("vc", VmwareConfig.model_validate(raw))


def test_an_untrusted_certificate_names_verify_tls(vsphere: World) -> None:
    with pytest.raises(ConfigError) as caught:
        vsphere.collector(verify_tls=True).verify()
    message = str(caught.value)
    assert message.startswith("manager 'vc': the TLS certificate of 127.0.0.1:")
    assert "is not trusted (" in message  # vcsim's certificate is self-signed, with a 1024-bit key
    assert message.endswith("or set verify_tls = false (tests only)")
    assert world.PASSWORD not in message


def test_wrong_credentials_are_invalid_credentials(vsphere: World) -> None:
    with pytest.raises(CollectorAuthError) as caught:
        vsphere.collector(password=world.WRONG_PASSWORD).verify()
    assert str(caught.value) == (
        f"manager 'vc': invalid credentials: vSphere at 127.0.0.1:{vsphere.server.port} refused user "
        f"'{world.USERNAME}'; check username and password"
    )


@pytest.fixture
def plain_http() -> Iterator[int]:
    """An HTTP server that speaks no TLS (a wrong port)."""
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_a_port_without_tls_is_a_config_error(plain_http: int) -> None:
    with pytest.raises(ConfigError, match=r"did not complete a TLS handshake \(.*\); give the vCenter's HTTPS port"):
        collector("127.0.0.1", plain_http, verify_tls=False).verify()


class NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html>nothing here</html>")

    def do_POST(self) -> None:
        self.do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def other_https(tmp_path: Path) -> Iterator[int]:
    """An HTTPS server that is not vSphere (404 for everything)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_an_https_server_that_is_not_vsphere_says_so(other_https: int) -> None:
    with pytest.raises(ConfigError) as caught:
        collector("127.0.0.1", other_https, verify_tls=False).verify()
    assert str(caught.value) == (
        f"manager 'vc': 127.0.0.1:{other_https} answers, but is not a vCenter or ESXi endpoint (no vSphere API at "
        "/sdk); check host and port"
    )


def sessions_of(vsphere: World, admin: object) -> list[str]:
    manager = admin.content.sessionManager  # type: ignore[attr-defined]
    mine = manager.currentSession.key
    return [s.key for s in manager.sessionList if s.key != mine]


def test_the_session_is_reused_renewed_after_vcenter_ends_it_and_logged_out_on_close(vsphere: World) -> None:
    usage.METER.take("vc")
    admin = connect(vsphere.server)
    try:
        before = set(sessions_of(vsphere, admin))
        vc = vsphere.collector()
        vc.verify()
        vc.inventory()
        first = set(sessions_of(vsphere, admin)) - before
        assert len(first) == 1  # one session for both jobs
        assert usage.METER.take("vc").requests["vsphere:Login"] == 1
        admin.content.sessionManager.TerminateSession(sessionId=list(first))
        assert len(vc.inventory().items) == 13  # logged in again
        second = set(sessions_of(vsphere, admin)) - before
        assert len(second) == 1 and second != first
        assert usage.METER.take("vc").requests["vsphere:Login"] == 1
        vc.close()
        assert set(sessions_of(vsphere, admin)) - before == set()
    finally:
        Disconnect(admin)
