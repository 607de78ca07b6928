"""``/api/v1/events``: the same rows as ``cloudmeter events --json`` with the same parameters; bad ones are 422
naming the field. The events are a manager's of their own, of resources it does not know (stored only: nothing
of the shared test cloud changes)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from cloudmeter.model import Event, ResourceRef
from cloudmeter.storage import events, managers
from tests.api.conftest import Api

VM = ResourceRef("vm", "ghost-1")


@pytest.fixture(scope="module")
def recorded(api: Api) -> str:
    """Manager ``timeline`` with three events (none changes a resource: ghost-1 is unknown)."""
    with api.db.connection() as conn:
        manager_id = managers.register_manager(conn, "timeline", "simulator", {})
        events.record(
            conn,
            manager_id,
            [
                Event(
                    "e-1",
                    datetime(2026, 3, 3, 10, 17, 30, tzinfo=UTC),
                    "powered_off",
                    "compute.instance.power_off.end",
                    VM,
                    {"state": "stopped"},
                ),
                Event(
                    "e-2",
                    datetime(2026, 3, 3, 10, 20, tzinfo=UTC),
                    "powered_on",
                    "compute.instance.power_on.end",
                    VM,
                    {},
                ),
                Event("e-3", datetime(2026, 3, 3, 11, 0, tzinfo=UTC), "other", "compute.metrics.update", None, {}),
            ],
        )
    return "timeline"


@pytest.mark.parametrize(
    ("cli", "query", "ids"),
    [
        ([], {}, ["e-1", "e-2", "e-3"]),
        (["--kind", "powered_on"], {"kind": "powered_on"}, ["e-2"]),
        (["--resource", "ghost-1"], {"resource": "ghost-1"}, ["e-1", "e-2"]),
        (
            ["--since", "2026-03-03T10:18", "--until", "2026-03-03T11:00"],
            {"since": "2026-03-03T10:18", "until": "2026-03-03T11:00"},
            ["e-2"],
        ),
    ],
)
def test_the_api_answers_what_the_cli_prints(
    api: Api, viewer: httpx.Client, recorded: str, cli: list[str], query: dict[str, str], ids: list[str]
) -> None:
    code, out, err = api.cli("events", "--manager", recorded, *cli, "--json")
    assert code == 0, err
    answer = viewer.get("/api/v1/events", params={"manager": recorded, **query})
    assert answer.status_code == 200, answer.text
    assert answer.json() == json.loads(out)
    assert [row["message_id"] for row in answer.json()] == ids
    first = answer.json()[0]
    if first["message_id"] == "e-1":
        assert (first["ts"], first["kind"], first["resource"], first["resource_id"], json.loads(first["payload"])) == (
            "2026-03-03T10:17:30+00:00",
            "powered_off",
            "ghost-1",
            None,
            {"state": "stopped"},
        )


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"kind": "moved"}, "kind", "kind 'moved' is not one of created, deleted, migrated"),
        ({"since": "yesterday"}, "since", "since 'yesterday' is not an ISO 8601 date or time"),
        ({"since": "2026-03-04", "until": "2026-03-03"}, "until", "until 2026-03-03T00:00:00+00:00 is not after since"),
        ({"manager": "nope"}, "manager", "manager 'nope' is not a stored manager"),
        ({"resource": "nope"}, "resource", "resource 'nope' names no resource or event"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(
    viewer: httpx.Client, recorded: str, query: dict[str, str], field: str, message: str
) -> None:
    answer = viewer.get("/api/v1/events", params=query)
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["query", field]
    assert error["msg"].startswith(message), error["msg"]


def test_a_token_is_needed(api: Api) -> None:
    with api.client() as anonymous:
        assert anonymous.get("/api/v1/events").status_code == 401
