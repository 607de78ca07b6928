"""Reads beside a connection: more sessions where the server runs them, none where it runs only one."""

from __future__ import annotations

import psycopg
import pytest

from cloudmeter.storage import readers
from cloudmeter.storage.database import Database


def test_companions_are_more_sessions_of_the_same_role_and_database(db: Database) -> None:
    with db.connection() as conn, readers.companions(conn, 2) as others:
        who = "SELECT current_user, current_database(), pg_backend_pid()"
        mine = conn.execute(who).fetchone()
        theirs = [other.execute(who).fetchone() for other in others]
        assert mine is not None and len(theirs) == 2
        assert [row[:2] for row in theirs if row] == [mine[:2]] * 2
        assert len({mine[2], *(row[2] for row in theirs if row)}) == 3
    assert all(other.closed for other in others)


def test_no_companions_on_a_single_session_server_and_its_next_client_gets_in(
    timescale_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PGlite runs one backend for every client: a second client would wait for the first to leave, so none is tried
    tried: list[str] = []
    monkeypatch.setattr(psycopg, "connect", lambda dsn, **_: tried.append(dsn))
    with timescale_db.connection() as conn, readers.companions(conn, 2) as others:
        assert others == []
    assert tried == []
    monkeypatch.undo()
    with timescale_db.connection() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
