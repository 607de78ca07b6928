"""Nothing secret in any answer: canaries planted as the DSN's password and as a manager's ``env:`` password never
appear in a response (bodies, headers, errors) or in the API's log; a database that cannot be reached is 503 in
one line, without a traceback or a DSN."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from cloudmeter.api.app import create_app
from cloudmeter.api.server import Background, listen, url
from cloudmeter.config import load_settings
from cloudmeter.storage import tokens
from cloudmeter.storage.database import Database
from tests.reports.cloud import load

DSN_CANARY = "dsnpw-" + secrets.token_hex(8)
OS_CANARY = "ospw-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def planted(pg_server: str) -> Iterator[tuple[str, str]]:
    """The app on a database whose DSN carries a password canary (the server trusts local users, so it is never
    asked for), with the test cloud; its URL and an admin token."""
    name = f"apisecret{os.getpid()}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    work = Path(tempfile.mkdtemp(prefix="cloudmeter-api-secrets-"))
    dsn = make_conninfo(pg_server, dbname=name, password=DSN_CANARY)
    try:
        with Database(dsn, work) as db:
            db.migrate()
            load(db)
            with db.connection() as conn:
                token = tokens.create_token(conn, "admin", "admin")
            sock = listen("127.0.0.1", 0)
            server = Background(create_app(load_settings(None, dsn=dsn, data_dir=work), db), sock)
            server.start()
            try:
                yield url(sock), token
            finally:
                server.stop()
    finally:
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


def _clean(answer: httpx.Response) -> httpx.Response:
    text = answer.text + str(answer.headers)
    assert DSN_CANARY not in text and OS_CANARY not in text, answer.request.url
    assert "Traceback" not in text
    return answer


def test_no_canary_in_any_answer(
    planted: tuple[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    base, token = planted
    monkeypatch.setenv("CM_TEST_CANARY_PW", OS_CANARY)
    caplog.set_level(logging.DEBUG)
    config = {"auth_url": "http://127.0.0.1:9/v3", "username": "u", "password": "env:CM_TEST_CANARY_PW",
              "project_name": "p", "timeout_s": 2}  # fmt: skip
    window: dict[str, str | int] = {"from": "2026-03-02", "to": "2026-03-04"}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        failed = _clean(client.post("/api/v1/managers", json={"name": "os", "kind": "openstack", "config": config}))
        assert failed.status_code == 422  # verify failed: the source is unreachable
        added = {"name": "os", "kind": "openstack", "config": config, "verify": False}
        assert _clean(client.post("/api/v1/managers", json=added)).status_code == 201
        leaked = {**added, "name": "os2", "config": {**config, "password": OS_CANARY}}  # a secret in clear
        assert _clean(client.post("/api/v1/managers", json=leaked)).status_code == 422
        assert _clean(client.post("/api/v1/managers/os/refresh")).status_code == 502
        for path in ("/api/v1/managers/os/disable", "/api/v1/managers/os/enable"):
            assert _clean(client.post(path)).status_code == 200
        status = _clean(client.get("/api/v1/status")).json()
        assert status["database"].count("*") >= 3  # the DSN, its password masked
        listed = _clean(client.get("/api/v1/managers")).json()
        assert {row["name"] for row in listed} == {"os"}
        requests: list[tuple[str, dict[str, str | int]]] = [
            ("/api/v1/capacity/utilization", window),
            ("/api/v1/capacity/headroom", {**window, "vcpus": 2, "memory_gb": 4}),
            ("/api/v1/capacity/forecast", window),
            ("/api/v1/capacity/rightsize", window),
            ("/api/v1/chargeback", window),
            ("/api/v1/chargeback/export", {**window, "format": "focus"}),
            ("/api/v1/rollups", {**window, "level": "vm"}),
            ("/api/v1/rollups", {**window, "level": "vm", "from": "yesterday"}),
            ("/api/v1/openapi.json", {}),
            ("/metrics", {}),
            ("/api/v1/whoami", {}),
        ]
        for path, params in requests:
            answer = _clean(client.get(path, params=params))
            assert answer.status_code in (200, 422), (path, answer.text)
    logged = caplog.text
    assert DSN_CANARY not in logged and OS_CANARY not in logged


def test_an_unreachable_database_is_503_in_one_line(pg_server: str, tmp_path: Path) -> None:
    dsn = make_conninfo(pg_server, password=DSN_CANARY)
    db = Database(dsn, tmp_path)
    with db:  # opened and closed: every request now finds it closed
        db.migrate()
    sock = listen("127.0.0.1", 0)
    server = Background(create_app(load_settings(None, dsn=dsn, data_dir=tmp_path), db), sock)
    server.start()
    try:
        with httpx.Client(base_url=url(sock), headers={"Authorization": "Bearer cm_whatever"}) as client:
            answer = _clean(client.get("/api/v1/capacity/utilization"))
    finally:
        server.stop()
    assert answer.status_code == 503
    detail = answer.json()["detail"]
    assert detail == "the database is unavailable: the database is not open; use `with Database(...) as db:`"
