"""``cloudmeter events``: the timeline as an 80-column table (times to the second) and as JSON, through the real
command; bad input is one line and exit 2."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from cloudmeter.model import Event, Inventory, InventoryItem, ResourceRef
from cloudmeter.storage import events, managers
from cloudmeter.storage.database import Database
from cloudmeter.storage.inventory import save_inventory
from tests.cli.test_cli import run

VM, H1, H2 = ResourceRef("vm", "0b5e7c1a-uuid"), ResourceRef("host", "compute-1"), ResourceRef("host", "compute-2")


@pytest.fixture
def env(db: Database, dsn: str) -> dict[str, str]:
    """Manager ``os`` with VM ``web`` on compute-1, then its migration to compute-2 and a power-off recorded."""
    at = datetime(2026, 11, 2, tzinfo=UTC)
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, "os", "simulator", {})
        hosts = tuple(InventoryItem(ref, ref.ems_ref) for ref in (H1, H2))
        save_inventory(conn, manager_id, Inventory(at, (*hosts, InventoryItem(VM, "web", H1, 2, created_at=at))))
        events.record(
            conn,
            manager_id,
            [
                Event(
                    "m-1",
                    at.replace(hour=10, minute=17, second=30),
                    "migrated",
                    "compute.instance.live_migration.post.dest.end",
                    VM,
                    {"n": 1},
                    host=H2,
                ),
                Event(
                    "m-2",
                    at.replace(hour=10, minute=17, second=45),
                    "powered_off",
                    "compute.instance.power_off.end",
                    VM,
                    {"n": 2},
                ),
            ],
        )
    return {"CLOUDMETER_DSN": dsn, "COLUMNS": "80"}


def test_the_table_fits_80_columns_with_times_to_the_second(env: dict[str, str]) -> None:
    result = run("events", "--manager", "os", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, result.stdout
    rows = [line.split() for line in lines if line.lstrip().startswith("2026-")]
    assert [row[:5] for row in rows] == [
        ["2026-11-02", "10:17:30", "migrated", "os", "web"],
        ["2026-11-02", "10:17:45", "powered_off", "os", "web"],
    ]
    assert (rows[0][5], rows[1][5]) == ("compute-2", "-")
    assert "more: memory_bytes, ems_ref" in result.stdout  # the rest: --wide, JSON, CSV


def test_json_carries_every_column_and_the_filters_narrow_it(env: dict[str, str]) -> None:
    result = run("events", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["ts"], r["kind"], r["resource"], r["host"], r["ems_ref"], json.loads(r["payload"])) for r in rows] == [
        ("2026-11-02T10:17:30+00:00", "migrated", "web", "compute-2", "0b5e7c1a-uuid", {"n": 1}),
        ("2026-11-02T10:17:45+00:00", "powered_off", "web", None, "0b5e7c1a-uuid", {"n": 2}),
    ]
    narrowed = run(
        "events", "--resource", "web", "--kind", "powered_off", "--since", "2026-11-02T10:17:31", "--json", env=env
    )
    assert [r["message_id"] for r in json.loads(narrowed.stdout)] == ["m-2"]
    none = run("events", "--until", "2026-11-02T10:17:30Z", env=env)
    assert (none.returncode, none.stdout.strip()) == (0, "events: no rows")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "moved"], "--kind 'moved' is not one of created, deleted, migrated, resized, powered_on"),
        (["--since", "noon"], "--since 'noon' is not an ISO 8601 date or time"),
        (["--since", "2026-11-03", "--until", "2026-11-02"], "--until 2026-11-02T00:00:00+00:00 is not after --since"),
        (["--manager", "aws"], "--manager 'aws' is not a stored manager"),
        (["--resource", "db"], "--resource 'db' names no resource or event"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(env: dict[str, str], args: list[str], message: str) -> None:
    result = run("events", *args, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"error: {message}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
