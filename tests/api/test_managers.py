"""``/status`` and ``/managers`` equal ``status --json`` and ``managers list --json``; an admin adds, disables,
enables and refreshes a manager (the simulator kind) and the CLI sees it; refusals are one line each."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.api.conftest import Api


def _steady(report: dict[str, Any]) -> dict[str, Any]:
    """A status report without what changes from one second to the next (lag, table sizes)."""
    for manager in report["managers"]:
        manager.pop("lag_s")
    for table in report["tables"]:
        table.pop("total_bytes")
    return report


def test_status_equals_the_clis_json(api: Api, viewer: httpx.Client) -> None:
    code, out, err = api.cli("status", "--json")
    assert code == 0, err
    answer = viewer.get("/api/v1/status")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert _steady(answer.json()) == _steady(json.loads(out))
    assert {m["name"] for m in answer.json()["managers"]} >= {"demo", "lab"}


def test_managers_list_equals_the_clis_json(api: Api, viewer: httpx.Client) -> None:
    code, out, err = api.cli("managers", "list", "--json")
    assert code == 0, err
    answer = viewer.get("/api/v1/managers")
    assert answer.status_code == 200
    assert answer.text == out.rstrip("\n")
    code, out, _ = api.cli("managers", "list", "--output", "csv")
    assert viewer.get("/api/v1/managers", params={"format": "csv"}).text == out


def _listed(client: httpx.Client) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in client.get("/api/v1/managers").json()}


def test_an_admin_adds_disables_enables_and_refreshes_a_manager(api: Api, admin: httpx.Client) -> None:
    new = {"name": "sim", "kind": "simulator", "config": {"vms": 6, "hosts_per_cluster": 2}}
    answer = admin.post("/api/v1/managers", json=new)
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"name": "sim", "kind": "simulator", "source": "cli", "enabled": True}
    assert _listed(admin)["sim"]["enabled"] is True
    code, out, _ = api.cli("managers", "show", "sim", "--json")
    assert code == 0 and json.loads(out)["config"]["vms"] == 6

    assert admin.post("/api/v1/managers/sim/disable").json() == {"name": "sim", "enabled": False}
    code, out, _ = api.cli("managers", "list", "--json")
    assert {row["name"]: row["enabled"] for row in json.loads(out)}["sim"] is False
    assert admin.post("/api/v1/managers/sim/enable").json() == {"name": "sim", "enabled": True}
    assert _listed(admin)["sim"]["enabled"] is True

    answer = admin.post("/api/v1/managers/sim/refresh")
    assert answer.status_code == 200, answer.text
    refreshed = answer.json()
    assert refreshed["name"] == "sim" and refreshed["resources"] > 6 and refreshed["retired"] == 0
    with api.db.connection() as conn:
        row = conn.execute(
            "SELECT count(*) FROM resources r JOIN managers m ON m.id = r.manager_id WHERE m.name = 'sim' "
            "AND r.kind = 'vm'"
        ).fetchone()
    assert row is not None and row[0] == 6
    assert _listed(admin)["sim"]["last_refresh_at"] is not None

    answer = admin.post("/api/v1/managers", json=new)
    assert answer.status_code == 409 and answer.json()["detail"] == (
        "a manager named 'sim' exists already; remove it first or pick another name"
    )


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"name": "x", "kind": "openstack", "config": {"auth_url": "http://127.0.0.1:9/v3", "username": "u",
          "password": "hunter2", "project_name": "p"}}, "config", "give secret field password as env:VARNAME"),
        ({"name": "x", "kind": "nosuchkind"}, "config", "nosuchkind"),
        ({"name": "x", "kind": "simulator", "config": {"vms": -1}}, "config", "vms"),
        ({"name": "x", "kind": "simulator", "config": {"vms": 2}, "colour": "red"}, "colour", "Extra inputs"),
        ({"kind": "simulator"}, "name", "Field required"),
    ],
)  # fmt: skip
def test_a_bad_manager_is_422_naming_the_field(
    admin: httpx.Client, body: dict[str, Any], field: str, says: str
) -> None:
    answer = admin.post("/api/v1/managers", json=body)
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", field] and says in error["msg"]
    assert "hunter2" not in answer.text


def test_a_manager_that_fails_verify_is_not_saved(admin: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CM_TEST_OS_PASSWORD", "not-used")
    config = {"auth_url": "http://127.0.0.1:9/v3", "username": "u", "password": "env:CM_TEST_OS_PASSWORD",
              "project_name": "p", "timeout_s": 2}  # fmt: skip
    answer = admin.post("/api/v1/managers", json={"name": "unreachable", "kind": "openstack", "config": config})
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "verify"] and error["msg"].startswith("not saved: SourceUnavailable")
    assert "unreachable" not in _listed(admin)
    body = {"name": "unreachable", "kind": "openstack", "config": config, "verify": False}
    assert admin.post("/api/v1/managers", json=body).status_code == 201
    answer = admin.post("/api/v1/managers/unreachable/refresh")
    assert answer.status_code == 502 and answer.json()["detail"].startswith("refresh failed: SourceUnavailable")


def test_an_unknown_manager_is_404(admin: httpx.Client) -> None:
    for action in ("enable", "disable", "refresh"):
        answer = admin.post(f"/api/v1/managers/nobody/{action}")
        assert answer.status_code == 404
        assert answer.json()["detail"].startswith("manager 'nobody' is not configured (configured: ")
