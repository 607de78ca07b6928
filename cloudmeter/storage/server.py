"""What a PostgreSQL server is and offers, found once at connect time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import psycopg

#: The oldest server cloudmeter runs on (DESIGN: PostgreSQL 15 to 18 are supported and tested).
MIN_VERSION_NUM: Final = 150000


@dataclass(frozen=True)
class ServerInfo:
    """The server's version and its TimescaleDB extension: installed in this database, or only available.

    TimescaleDB's library must be in ``shared_preload_libraries`` before ``CREATE EXTENSION timescaledb`` can
    work: its loader ends the session otherwise. ``shared_preload_libraries`` is the setting as written, None
    when this user may not read it (superusers and members of pg_read_all_settings may);
    ``timescaledb_loader`` says whether the loader's own setting (``timescaledb.disable_load``) exists in
    this session, which it does only when the server preloaded the library.
    """

    version: str
    version_num: int
    timescaledb_installed: str | None
    timescaledb_available: str | None
    shared_preload_libraries: str | None = None
    timescaledb_loader: bool = False

    @property
    def timescaledb_preloaded(self) -> bool:
        """Whether the server preloads the timescaledb library."""
        listed = self.shared_preload_libraries is not None and "timescaledb" in preloaded_libraries(
            self.shared_preload_libraries
        )
        return listed or self.timescaledb_loader

    @property
    def timescaledb_usable(self) -> bool:
        """Whether this database can have hypertables: the extension exists here, or is offered and preloaded."""
        return self.timescaledb_installed is not None or (
            self.timescaledb_available is not None and self.timescaledb_preloaded
        )

    @property
    def timescaledb(self) -> str:
        """TimescaleDB in words, e.g. ``2.17.2 (installed)``, ``2.17.2 (available)`` or ``not available``."""
        if self.timescaledb_installed:
            return f"{self.timescaledb_installed} (installed)"
        if self.timescaledb_available and not self.timescaledb_preloaded:
            return f"{self.timescaledb_available} (available, not preloaded)"
        if self.timescaledb_available:
            return f"{self.timescaledb_available} (available)"
        return "not available"


def preloaded_libraries(setting: str) -> set[str]:
    """The library names in a ``shared_preload_libraries`` value: ``'"$libdir/timescaledb.so", pg_cron'`` gives
    ``{"timescaledb", "pg_cron"}`` (items may be quoted, carry a directory or a file suffix)."""
    names = set()
    for item in setting.split(","):
        name = item.strip().strip('"').rsplit("/", 1)[-1]
        for suffix in (".so", ".dll", ".dylib"):
            name = name.removesuffix(suffix)
        if name:
            names.add(name.lower())
    return names


def probe(conn: psycopg.Connection) -> ServerInfo:
    """Ask the server its version, whether the timescaledb extension is installed or can be, and what it preloads."""
    row = conn.execute(
        """SELECT current_setting('server_version'), current_setting('server_version_num')::int,
                  (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'),
                  (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'),
                  CASE WHEN pg_has_role('pg_read_all_settings', 'USAGE')
                       THEN current_setting('shared_preload_libraries') END,
                  current_setting('timescaledb.disable_load', true) IS NOT NULL"""
    ).fetchone()
    assert row is not None
    return ServerInfo(str(row[0]), int(row[1]), row[2], row[3], row[4], bool(row[5]))
