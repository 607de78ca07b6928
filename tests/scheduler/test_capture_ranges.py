"""``captured_until`` means everything before it is stored: a capture that does not reach it leaves it, and the
ranges captured beyond it show as holes until they are filled (issue: a manual capture skipped months for good).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from cloudmeter.storage import managers
from tests.cli.test_cli import run

START = datetime(2026, 1, 1, tzinfo=UTC)


def _at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


def _capture(env: dict[str, str], since: float, until: float) -> None:
    done = run(
        "capture", "--manager", "lab", "--since", _at(since).isoformat(), "--until", _at(until).isoformat(), env=env
    )
    assert done.returncode == 0, done.stderr


def _state(dsn: str) -> tuple[datetime | None, list[tuple[datetime, datetime]]]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT id, captured_until FROM managers WHERE name = 'lab'").fetchone()
        assert row is not None
        return row[1], managers.capture_holes(conn, row[0])


def test_a_capture_beyond_the_mark_leaves_it_and_its_hole_shows_until_filled(dsn: str, tmp_path: Path) -> None:
    env = {"CLOUDMETER_DSN": dsn}
    added = run("managers", "add", "lab", "--kind", "simulator", "--set", "vms=2", "--set", f"start={START}", env=env)
    assert added.returncode == 0, added.stderr

    _capture(env, 1, 2)
    assert _state(dsn) == (_at(2), [])  # the first capture starts the record

    _capture(env, 30, 31)  # a day later: the hours between are not stored
    assert _state(dsn) == (_at(2), [(_at(2), _at(30))])

    _capture(env, 0, 1)  # before the first: a hole there is none, the mark stays
    assert _state(dsn) == (_at(2), [(_at(2), _at(30))])

    _capture(env, 2, 20)  # part of the hole
    assert _state(dsn) == (_at(20), [(_at(20), _at(30))])

    _capture(env, 19, 30)  # the rest, overlapping both sides: the mark runs on to the end of the run it joins
    assert _state(dsn) == (_at(31), [])
