"""Leases through PostgreSQL advisory locks: which daemon runs which manager's jobs.

Each daemon holds, on one dedicated connection, a lock on a daemon slot (so daemons can count each other in
``pg_locks``) and a lock per manager it runs. Locks live as long as the session: a daemon that dies, is killed
or loses its connection lets go of everything at once, and the others take its managers over at their next
sweep. Keys are two int4: a class (below, all under 2**31) and the manager id or slot number.
"""

from __future__ import annotations

from typing import Final

import psycopg

DAEMON_SLOT: Final = 0x636D0001
MANAGER: Final = 0x636D0002
MAINTENANCE: Final = 0x636D0003
MAX_DAEMONS: Final = 1024


class Leases:
    """One daemon's leases, on its own autocommit connection (``Database.dedicated_connection``)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.slot: int | None = None

    def join(self) -> int:
        """Take the first free daemon slot; return it."""
        for slot in range(MAX_DAEMONS):
            if self._try(DAEMON_SLOT, slot):
                self.slot = slot
                return slot
        raise RuntimeError(f"more than {MAX_DAEMONS} daemons on one database")

    def daemons(self) -> int:
        """How many daemons hold a slot on this database now (this one included)."""
        row = self.conn.execute(
            """SELECT count(*) FROM pg_locks
               WHERE locktype = 'advisory' AND classid = %s::bigint::oid AND objsubid = 2 AND granted
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())""",
            (DAEMON_SLOT,),
        ).fetchone()
        return max(int(row[0]) if row else 1, 1)

    def try_acquire(self, manager_id: int) -> bool:
        """Lease manager ``manager_id`` if no other daemon holds it."""
        return self._try(MANAGER, manager_id)

    def release(self, manager_id: int) -> None:
        """Give manager ``manager_id`` back."""
        self.conn.execute("SELECT pg_advisory_unlock(%s, %s)", (MANAGER, manager_id))

    def try_maintenance(self) -> bool:
        """Whether this daemon is the one that runs database maintenance (held until it exits)."""
        return self._try(MAINTENANCE, 0)

    def _try(self, kind: int, key: int) -> bool:
        row = self.conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (kind, key)).fetchone()
        return bool(row and row[0])
