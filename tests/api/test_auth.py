"""Bearer tokens: made, listed and revoked with the CLI; a live token works (header or cookie), none, an unknown or
a revoked one gets 401 saying how to get one, a viewer on an admin route 403; only the token's hash is stored."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from cloudmeter.storage import tokens
from tests.api.conftest import Api


def test_tokens_create_list_revoke_through_the_cli(api: Api) -> None:
    code, out, err = api.cli("tokens", "create", "grafana", "--role", "viewer")
    assert code == 0, err
    token = out.strip()
    assert token.startswith("cm_") and len(token) > 40 and "\n" not in token
    assert "shown this once" in err and "grafana" in err
    with api.client(token) as client:
        assert client.get("/api/v1/whoami").json() == {"name": "grafana", "role": "viewer"}
        assert client.get("/api/v1/capacity/utilization", params={"days": 1}).status_code == 200

    code, out, err = api.cli("tokens", "list", "--json")
    assert code == 0, err
    listed = {row["name"]: row for row in json.loads(out)}
    assert listed["grafana"]["role"] == "viewer" and listed["grafana"]["state"] == "live"
    assert listed["grafana"]["last_used_at"] is not None
    assert set(listed["grafana"]) == {"name", "role", "state", "created_at", "last_used_at", "revoked_at"}
    code, table, _ = api.cli("tokens", "list")
    assert code == 0 and "grafana" in table
    code, csv, _ = api.cli("tokens", "list", "--output", "csv")
    digest = hashlib.sha256(token.encode()).hexdigest()
    for shown in (out, table, csv):
        assert token not in shown and digest not in shown

    code, out, err = api.cli("tokens", "create", "grafana", "--role", "admin")
    assert code == 2 and "a token named 'grafana' exists already" in err and "Traceback" not in err

    code, out, err = api.cli("tokens", "revoke", "grafana")
    assert code == 0 and "revoked token grafana" in out
    with api.client(token) as client:
        answer = client.get("/api/v1/whoami")
    assert answer.status_code == 401 and "unknown or revoked token" in answer.json()["detail"]
    code, out, _ = api.cli("tokens", "list", "--json")
    assert {row["name"]: row["state"] for row in json.loads(out)}["grafana"] == "revoked"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["tokens", "revoke", "nobody"], "there is no token 'nobody'"),
        (["tokens", "create", "bad name", "--role", "viewer"], "token name 'bad name'"),
        (["tokens", "create", "x", "--role", "root"], "'root' is not one of"),
    ],
)
def test_token_commands_refuse_in_one_line(api: Api, args: list[str], says: str) -> None:
    code, _, err = api.cli(*args)
    assert code == 2 and says in " ".join(err.split()) and "Traceback" not in err


def test_only_the_hash_is_stored(api: Api) -> None:
    code, out, _ = api.cli("tokens", "create", "stored", "--role", "viewer")
    assert code == 0
    token = out.strip()
    with api.db.connection() as conn:
        rows = conn.execute("SELECT name, role, token_hash FROM api_tokens WHERE name = 'stored'").fetchall()
        dump = str(conn.execute("SELECT * FROM api_tokens").fetchall())
    assert rows == [("stored", "viewer", hashlib.sha256(token.encode()).hexdigest())]
    assert token not in dump


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({}, "no token"),
        ({"Authorization": "Bearer cm_not-a-token"}, "unknown or revoked token"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "no token"),
        ({"Cookie": "cloudmeter_token=cm_nope"}, "unknown or revoked token"),
    ],
)
def test_no_or_a_wrong_token_is_401_saying_how_to_get_one(api: Api, headers: dict[str, str], says: str) -> None:
    with api.client(**headers) as client:
        for path in ("/api/v1/status", "/api/v1/capacity/utilization", "/api/v1/rollups?level=vm"):
            answer = client.get(path)
            assert answer.status_code == 401, path
            assert answer.headers["www-authenticate"] == "Bearer"
            assert says in answer.json()["detail"]
            assert "cloudmeter tokens create NAME --role viewer" in answer.json()["detail"]
        assert client.post("/api/v1/managers/demo/refresh").status_code == 401


def test_the_web_pages_cookie_is_a_token_too(api: Api) -> None:
    with httpx.Client(base_url=api.url, cookies={"cloudmeter_token": api.viewer}) as client:
        assert client.get("/api/v1/whoami").json() == {"name": "api-viewer", "role": "viewer"}


def test_a_change_signed_in_with_the_cookie_needs_the_web_pages_header(api: Api) -> None:
    with httpx.Client(base_url=api.url, cookies={"cloudmeter_token": api.admin}) as client:
        forged = client.post("/api/v1/managers/demo/disable")  # what a form on another site could send
        assert forged.status_code == 403
        assert "needs the header X-Cloudmeter-Action" in forged.json()["detail"]
        answer = client.post("/api/v1/managers/demo/disable", headers={"X-Cloudmeter-Action": "1"})
        assert answer.status_code == 200 and answer.json() == {"name": "demo", "enabled": False}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/managers", {"name": "x", "kind": "simulator"}),
        ("POST", "/api/v1/managers/demo/enable", None),
        ("POST", "/api/v1/managers/demo/disable", None),
        ("POST", "/api/v1/managers/demo/refresh", None),
    ],
)
def test_a_viewer_on_an_admin_route_is_403(
    viewer: httpx.Client, method: str, path: str, body: dict[str, str] | None
) -> None:
    answer = viewer.request(method, path, json=body)
    assert answer.status_code == 403
    assert answer.json()["detail"] == (
        "token 'api-viewer' has role viewer; this needs role admin (`cloudmeter tokens create NAME --role admin`)"
    )


def test_an_admin_may_read_too(admin: httpx.Client) -> None:
    assert admin.get("/api/v1/whoami").json() == {"name": "api-admin", "role": "admin"}
    assert admin.get("/api/v1/managers").status_code == 200


def test_last_use_is_written_at_most_once_a_minute(api: Api) -> None:
    with api.db.connection() as conn:
        token = tokens.create_token(conn, "touched", "viewer")
    with api.client(token) as client:
        client.get("/api/v1/whoami")
        with api.db.connection() as conn:
            first = conn.execute("SELECT last_used_at FROM api_tokens WHERE name = 'touched'").fetchone()
        client.get("/api/v1/whoami")
        with api.db.connection() as conn:
            again = conn.execute("SELECT last_used_at FROM api_tokens WHERE name = 'touched'").fetchone()
            conn.execute("UPDATE api_tokens SET last_used_at = now() - interval '2 minutes' WHERE name = 'touched'")
        client.get("/api/v1/whoami")
        with api.db.connection() as conn:
            later = conn.execute("SELECT last_used_at FROM api_tokens WHERE name = 'touched'").fetchone()
    assert first is not None and again is not None and later is not None
    assert first[0] is not None and again[0] == first[0] and later[0] > first[0]
