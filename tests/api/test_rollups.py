"""``/api/v1/rollups``: the rows of a resource or a level, hourly or daily, each exactly once across pages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import polars as pl
import pytest

from cloudmeter.model import Window
from cloudmeter.storage.readers import read_rollups
from tests.api.conftest import Api

WINDOW = Window(datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 5, 6, tzinfo=UTC))
PARAMS = {"from": "2026-03-02", "to": "2026-03-05T06:00Z"}


def _stored(api: Api, kind: str, interval: str = "hourly", tz: str = "UTC") -> list[tuple[int, str]]:
    """(resource_id, ts) of the stored rows of every resource of ``kind`` in the window."""
    with api.db.connection() as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM resources WHERE kind = %s", (kind,)).fetchall()]
        frame = read_rollups(conn, interval, WINDOW, ids, tz)  # type: ignore[arg-type]
    return [(rid, ts.isoformat()) for rid, ts in frame.select("resource_id", "ts").iter_rows()]


def _pages(client: httpx.Client, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """Every row, following ``next`` from the first page; and how many pages there were."""
    rows: list[dict[str, Any]] = []
    answer = client.get("/api/v1/rollups", params=params)
    pages = 0
    while True:
        assert answer.status_code == 200, answer.text
        page = answer.json()
        pages += 1
        assert len(page["rows"]) <= params["limit"]
        rows += page["rows"]
        if page["next"] is None:
            assert page["cursor"] is None and "link" not in answer.headers
            return rows, pages
        assert answer.headers["link"] == f'<{page["next"]}>; rel="next"'
        answer = client.get(page["next"])


@pytest.mark.parametrize(("kind", "limit"), [("vm", 997), ("host", 50), ("cluster", 1)])
def test_paging_returns_every_row_exactly_once(api: Api, viewer: httpx.Client, kind: str, limit: int) -> None:
    want = _stored(api, kind)
    rows, pages = _pages(viewer, {**PARAMS, "level": kind, "limit": limit})
    got = [(row["resource_id"], row["ts"]) for row in rows]
    assert got == want  # every row once, in (resource, time) order
    assert pages == -(-len(want) // limit) and len(want) > limit  # no empty last page
    assert {row["kind"] for row in rows} == {kind}


def test_daily_rows_of_a_zone_and_one_manager(api: Api, viewer: httpx.Client) -> None:
    with api.db.connection() as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT r.id FROM resources r JOIN managers m ON m.id = r.manager_id "
                "WHERE m.name = 'demo' AND r.kind = 'host'"
            ).fetchall()
        ]
        berlin = Window(datetime(2026, 3, 1, 23, tzinfo=UTC), WINDOW.end)  # from=2026-03-02: Berlin's midnight
        want = read_rollups(conn, "daily", berlin, ids, "Europe/Berlin")
    params: dict[str, str | int] = {
        "interval": "daily", "level": "host", "manager": "demo", "tz": "Europe/Berlin", "limit": 10_000,
    }  # fmt: skip
    page = viewer.get("/api/v1/rollups", params={**PARAMS, **params}).json()
    assert page["next"] is None and len(page["rows"]) == want.height > 0
    assert {row["tz"] for row in page["rows"]} == {"Europe/Berlin"}
    assert [row["cpu_used_cores_avg"] for row in page["rows"]] == want["cpu_used_cores_avg"].to_list()


def test_one_resource_by_id_or_by_manager_and_ems_ref(api: Api, viewer: httpx.Client) -> None:
    by_ref = viewer.get("/api/v1/rollups", params={**PARAMS, "manager": "lab", "ems_ref": "vm-c"}).json()["rows"]
    assert {row["name"] for row in by_ref} == {"vm-c"} and len(by_ref) == 48  # two days of hours
    by_id = viewer.get("/api/v1/rollups", params={**PARAMS, "resource_id": by_ref[0]["resource_id"]}).json()["rows"]
    assert by_id == by_ref
    assert [row["cpu_used_cores_avg"] for row in by_id[:3]] == [0.0, 0.25, 0.5]  # (hour of day) / 4


def test_csv_pages_link_to_the_next(api: Api, viewer: httpx.Client) -> None:
    answer = viewer.get("/api/v1/rollups", params={**PARAMS, "level": "cluster", "limit": 5, "format": "csv"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "text/csv; charset=utf-8"
    frame = pl.read_csv(answer.content.decode().encode())
    assert frame.height == 5 and frame.columns[:5] == ["ts", "resource_id", "kind", "ems_ref", "name"]
    assert answer.headers["link"].startswith("</api/v1/rollups?") and "cursor=" in answer.headers["link"]


@pytest.mark.parametrize(
    ("params", "field", "says"),
    [
        ({}, "level", "give one of resource_id, manager and ems_ref, or level"),
        ({"level": "galaxy"}, "level", "'vm', 'host', 'cluster', 'provider', 'region', 'pod' or 'container'"),
        ({"level": "vm", "resource_id": 1}, "level", "give one of"),
        ({"resource_id": 999_999}, "resource_id", "resource_id 999999 is not a resource"),
        ({"ems_ref": "vm-a"}, "manager", "ems_ref needs manager"),
        ({"manager": "lab", "ems_ref": "vm-z"}, "ems_ref", "manager 'lab' has no resource 'vm-z'"),
        ({"level": "vm", "manager": "nobody"}, "manager", "manager 'nobody' is not a stored manager"),
        ({"level": "vm", "limit": 10_001}, "limit", "less than or equal to 10000"),
        ({"level": "vm", "limit": 0}, "limit", "greater than or equal to 1"),
        ({"level": "vm", "cursor": "not-a-cursor"}, "cursor", "is not one this server gave"),
        ({"level": "vm", "interval": "weekly"}, "interval", "'hourly' or 'daily'"),
        ({"level": "vm", "from": "yesterday"}, "from", "from 'yesterday' is not an ISO 8601"),
    ],
)
def test_bad_rollup_parameters_are_422_naming_the_field(
    viewer: httpx.Client, params: dict[str, Any], field: str, says: str
) -> None:
    answer = viewer.get("/api/v1/rollups", params={**PARAMS, **params})
    assert answer.status_code == 422, answer.text
    errors = answer.json()["detail"]
    assert [error["loc"] for error in errors] == [["query", field]] and says in errors[0]["msg"]
