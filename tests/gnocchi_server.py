"""Start and stop a real Gnocchi 4.7.1 (served by tests/wsgi_serve.py) from Python, set up the way Ceilometer does.

Gnocchi runs from its own virtualenv (its dependencies pin an older stack), made once per checkout by
scripts/test.sh::

    python3 -m venv tests/gnocchi/.venv && tests/gnocchi/.venv/bin/pip install -r tests/gnocchi/requirements.lock

Its indexer is a database on a PostgreSQL server the caller provides, its storage and incoming measures are
files under ``work``, and it takes HTTP basic auth (user ``admin`` is the admin) or, given a running Keystone
(tests/keystone_server.py), Keystone tokens. Used by the test fixtures
(tests/fix_gnocchi.py) and by benchmarks/gnocchi.py.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.conninfo import conninfo_to_dict

from tests import loopback
from tests.keystone_server import KeystoneServer
from tests.loopback import ServerFailed

GNOCCHI_DIR = Path(__file__).resolve().parent / "gnocchi"
GNOCCHI_PYTHON = GNOCCHI_DIR / ".venv" / "bin" / "python"
WSGI_SERVE = Path(__file__).resolve().parent / "wsgi_serve.py"
ADMIN = httpx.BasicAuth("admin", "")

_ATTR = {"type": "string", "min_length": 0, "max_length": 255}
#: Ceilometer's resource types for compute (ceilometer/gnocchi_client.py, after its update operations).
CEILOMETER_RESOURCE_TYPES: dict[str, dict[str, Any]] = {
    "instance": {
        "flavor_id": {**_ATTR, "required": True},
        "display_name": {**_ATTR, "required": True},
        "flavor_name": {**_ATTR, "required": True},
        "host": {**_ATTR, "required": False},
        "image_ref": {**_ATTR, "required": False},
        "server_group": {**_ATTR, "required": False},
        "availability_zone": {**_ATTR, "required": False},
        "launched_at": {"type": "datetime", "required": False},
        "created_at": {"type": "datetime", "required": False},
        "deleted_at": {"type": "datetime", "required": False},
    },
    "instance_disk": {"name": {**_ATTR, "required": True}, "instance_id": {"type": "uuid", "required": True}},
    "instance_network_interface": {
        "name": {**_ATTR, "required": True},
        "instance_id": {"type": "uuid", "required": True},
    },
}
#: Ceilometer's archive policies (ceilometer/publisher/data/gnocchi_resources.yaml): 5-minute means for 30 days.
CEILOMETER_ARCHIVE_POLICIES: tuple[dict[str, Any], ...] = tuple(
    {
        "name": name,
        "aggregation_methods": methods,
        "back_window": 0,
        "definition": [{"granularity": "5 minutes", "timespan": "30 days"}],
    }
    for name, methods in (("ceilometer-low", ["mean"]), ("ceilometer-low-rate", ["mean", "rate:mean"]))
)


@dataclass(frozen=True)
class GnocchiServer:
    """A running Gnocchi: its base URL (``http://127.0.0.1:PORT``) and an admin client."""

    url: str
    client: httpx.Client
    indexer_dsn: str


def _python() -> str:
    if not GNOCCHI_PYTHON.exists():
        raise ServerFailed(
            f"{GNOCCHI_PYTHON} is missing; make it once with: python3 -m venv tests/gnocchi/.venv && "
            "tests/gnocchi/.venv/bin/pip install -r tests/gnocchi/requirements.lock"
        )
    return str(GNOCCHI_PYTHON)


def _indexer_url(pg_uri: str, dbname: str) -> tuple[str, str]:
    """SQLAlchemy URL and psycopg DSN of a new database ``dbname`` on the server of ``pg_uri``."""
    params = conninfo_to_dict(pg_uri)
    with psycopg.connect(pg_uri, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{dbname}"')
    user, host, port = params.get("user", "postgres"), params.get("host", "127.0.0.1"), params.get("port", "5432")
    url = f"postgresql://{user}@/{dbname}?host={host}&port={port}"
    return url, psycopg.conninfo.make_conninfo(pg_uri, dbname=dbname)


def _keystone_sections(work: Path, config: Path, keystone: KeystoneServer) -> str:
    """``paste_config`` and ``[keystone_authtoken]``: Gnocchi's paste file makes keystonemiddleware read only the
    default config files (/etc/gnocchi/...), so a copy of it names this one."""
    original = next((GNOCCHI_DIR / ".venv" / "lib").glob("python3*/site-packages/gnocchi/rest/api-paste.ini"))
    paste = work / "api-paste.ini"
    project = "oslo_config_project = gnocchi"
    paste.write_text(original.read_text().replace(project, f"{project}\noslo_config_file = {config}"))
    return f"paste_config = {paste}\n{keystone.authtoken_section()}"


def _config(work: Path, indexer_url: str, keystone: KeystoneServer | None) -> Path:
    (work / "storage").mkdir(parents=True, exist_ok=True)
    path = work / "gnocchi.conf"
    path.write_text(
        f"""[DEFAULT]
debug = false
[api]
auth_mode = {"basic" if keystone is None else "keystone"}
{_keystone_sections(work, path, keystone) if keystone else ""}
[indexer]
url = {indexer_url}
[storage]
driver = file
file_basepath = {work / "storage"}
[incoming]
driver = file
file_basepath = {work / "storage"}
"""
    )
    return path


def set_up_ceilometer(client: httpx.Client) -> None:
    """Create Ceilometer's archive policies and compute resource types, as ``ceilometer-upgrade`` does."""
    for policy in CEILOMETER_ARCHIVE_POLICIES:
        client.post("/v1/archive_policy", json=policy).raise_for_status()
    for name, attributes in CEILOMETER_RESOURCE_TYPES.items():
        client.post("/v1/resource_type", json={"name": name, "attributes": attributes}).raise_for_status()


@contextmanager
def running(
    work: Path, pg_uri: str, *, ceilometer: bool = True, keystone: KeystoneServer | None = None
) -> Iterator[GnocchiServer]:
    """Gnocchi on a free loopback port, its indexer a new database on ``pg_uri``'s server; stopped on exit.

    With ``ceilometer`` it is set up as Ceilometer sets it up; without, it is a bare Gnocchi. With ``keystone``
    it takes Keystone tokens (and is that Keystone's ``metric`` service) instead of basic auth.
    """
    python = _python()
    work.mkdir(parents=True, exist_ok=True)
    indexer_url, indexer_dsn = _indexer_url(pg_uri, f"gnocchi_{os.getpid()}_{work.name}")
    config = _config(work, indexer_url, keystone)
    upgrade = subprocess.run(
        [str(GNOCCHI_DIR / ".venv" / "bin" / "gnocchi-upgrade"), "--config-file", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    if upgrade.returncode:
        raise ServerFailed(f"gnocchi-upgrade failed:\n{upgrade.stderr[-4000:]}")
    with loopback.serving([python, str(WSGI_SERVE), "gnocchi", str(config)], work, "Gnocchi") as (_, port):
        url = f"http://127.0.0.1:{port}"
        auth: httpx.Auth = ADMIN if keystone is None else keystone.admin_auth()
        with httpx.Client(base_url=url, auth=auth, headers={"Accept": "application/json"}, timeout=60) as client:
            if keystone is not None:
                keystone.register_service("metric", "gnocchi", url)
            if ceilometer:
                set_up_ceilometer(client)
            yield GnocchiServer(url, client, indexer_dsn)
