"""Start and stop a real Keystone (served by tests/wsgi_serve.py): SQLite, Fernet tokens, bootstrapped with an admin.

Keystone runs from its own virtualenv, made once per checkout by scripts/test.sh::

    python3 -m venv tests/keystone/.venv && tests/keystone/.venv/bin/pip install -r tests/keystone/requirements.lock
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests import loopback
from tests.loopback import ServerFailed

KEYSTONE_DIR = Path(__file__).resolve().parent / "keystone"
KEYSTONE_BIN = KEYSTONE_DIR / ".venv" / "bin"
ADMIN_PASSWORD = "keystone-admin-secret"
REGION = "RegionOne"


class _TokenAuth(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["X-Auth-Token"] = self.token
        yield request


@dataclass
class KeystoneServer:
    """A running Keystone; ``url`` is its v3 API (what a manager's ``auth_url`` names)."""

    url: str
    _token: str | None = field(default=None, repr=False)

    def _admin_password_body(self) -> dict[str, object]:
        user = {"name": "admin", "domain": {"name": "Default"}, "password": ADMIN_PASSWORD}
        project = {"name": "admin", "domain": {"name": "Default"}}
        return {
            "auth": {"identity": {"methods": ["password"], "password": {"user": user}}, "scope": {"project": project}}
        }

    def admin_auth(self) -> httpx.Auth:
        """Authentication with an admin token, fetched once."""
        if self._token is None:
            response = httpx.post(f"{self.url}/auth/tokens", json=self._admin_password_body(), timeout=60)
            response.raise_for_status()
            self._token = response.headers["X-Subject-Token"]
        return _TokenAuth(self._token)

    def register_service(self, service_type: str, name: str, url: str) -> str:
        """Put a service with a public endpoint in ``REGION`` into the catalog; its id."""
        with httpx.Client(base_url=self.url, auth=self.admin_auth(), timeout=60) as client:
            service = client.post("/services", json={"service": {"type": service_type, "name": name}})
            service.raise_for_status()
            endpoint = {"service_id": service.json()["service"]["id"], "interface": "public", "url": url}
            client.post("/endpoints", json={"endpoint": {**endpoint, "region_id": REGION}}).raise_for_status()
            return str(service.json()["service"]["id"])

    def remove_service(self, service_id: str) -> None:
        """Take a registered service (and its endpoints) out of the catalog."""
        with httpx.Client(base_url=self.url, auth=self.admin_auth(), timeout=60) as client:
            client.delete(f"/services/{service_id}").raise_for_status()

    def authtoken_section(self) -> str:
        """The ``[keystone_authtoken]`` section of a service validating tokens against this Keystone."""
        return f"""[keystone_authtoken]
www_authenticate_uri = {self.url}
auth_url = {self.url}
auth_type = password
username = admin
password = {ADMIN_PASSWORD}
user_domain_name = Default
project_name = admin
project_domain_name = Default
interface = public
"""


def _manage(config: Path, *args: str) -> None:
    done = subprocess.run(
        [str(KEYSTONE_BIN / "keystone-manage"), "--config-file", str(config), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise ServerFailed(f"keystone-manage {args[0]} failed:\n{done.stderr[-4000:]}")


@contextmanager
def running(work: Path) -> Iterator[KeystoneServer]:
    """Keystone on a free loopback port, its database and keys under ``work``; stopped on exit."""
    if not (KEYSTONE_BIN / "python").exists():
        raise ServerFailed(
            f"{KEYSTONE_BIN} is missing; make it once with: python3 -m venv tests/keystone/.venv && "
            "tests/keystone/.venv/bin/pip install -r tests/keystone/requirements.lock"
        )
    work.mkdir(parents=True, exist_ok=True)
    (work / "fernet").mkdir(exist_ok=True)
    config = work / "keystone.conf"
    config.write_text(
        f"""[DEFAULT]
debug = false
[database]
connection = sqlite:///{work / "keystone.db"}
[token]
provider = fernet
[fernet_tokens]
key_repository = {work / "fernet"}
[fernet_receipts]
key_repository = {work / "fernet"}
"""
    )
    _manage(config, "db_sync")
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    _manage(config, "fernet_setup", "--keystone-user", user, "--keystone-group", group)
    _manage(config, "bootstrap", "--bootstrap-password", ADMIN_PASSWORD, "--bootstrap-region-id", REGION)
    command = [
        str(KEYSTONE_BIN / "python"),
        str(Path(__file__).resolve().parent / "wsgi_serve.py"),
        "keystone",
        str(config),
    ]
    with loopback.serving(command, work, "Keystone") as (_, port):
        server = KeystoneServer(f"http://127.0.0.1:{port}/v3")
        server.register_service("identity", "keystone", server.url)  # services validating tokens look it up
        yield server
