"""What a PostgreSQL server is and offers, found once at connect time."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class ServerInfo:
    """The server's version and its TimescaleDB extension: installed in this database, or only available."""

    version: str
    version_num: int
    timescaledb_installed: str | None
    timescaledb_available: str | None

    @property
    def timescaledb(self) -> str:
        """TimescaleDB in words, e.g. ``2.17.2 (installed)``, ``2.17.2 (available)`` or ``not available``."""
        if self.timescaledb_installed:
            return f"{self.timescaledb_installed} (installed)"
        if self.timescaledb_available:
            return f"{self.timescaledb_available} (available)"
        return "not available"


def probe(conn: psycopg.Connection) -> ServerInfo:
    """Ask the server its version and whether the timescaledb extension is installed or can be."""
    row = conn.execute(
        """SELECT current_setting('server_version'), current_setting('server_version_num')::int,
                  (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'),
                  (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb')"""
    ).fetchone()
    assert row is not None
    return ServerInfo(str(row[0]), int(row[1]), row[2], row[3])
