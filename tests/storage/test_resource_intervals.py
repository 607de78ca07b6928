"""``resource_intervals`` on a real PostgreSQL: what each batch records, and the rolled-up hours it marks."""

from __future__ import annotations

import numpy as np

from cloudmeter.model import METRICS
from cloudmeter.storage import managers, readers, writer
from cloudmeter.storage.database import Database

H = 3600
T = 1_780_000_000 - 1_780_000_000 % H


def _two_vms(db: Database) -> tuple[int, list[int]]:
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, "lab", "simulator", {})
        ids = [
            conn.execute(
                "INSERT INTO resources (manager_id, kind, ems_ref, name, first_seen, last_seen) "
                "VALUES (%s, 'vm', %s, %s, now(), now()) RETURNING id",
                [manager_id, name, name],
            ).fetchone()[0]  # type: ignore[index]
            for name in ("a", "b")
        ]
        conn.commit()
    return manager_id, ids


def _write(
    db: Database, rid: int, ts: list[int], interval_s: int, before_s: int | None = None, manager: int = 0
) -> None:
    dirty = writer.DirtyMarks(manager, before_s) if before_s is not None else None
    with db.connection() as conn, conn.transaction():
        values = np.ones((len(ts), len(METRICS)))
        rids = np.full(len(ts), rid, np.int32)
        writer.write_samples(
            conn, rids, np.array(ts, np.int64), values, db.write_target(), dirty=dirty, interval_s=interval_s
        )


def _rows(db: Database, rid: int) -> list[tuple[int, int, int]]:
    with db.connection() as conn:
        return [
            (int(a), int(b), int(c))
            for a, b, c in conn.execute(
                "SELECT extract(epoch FROM valid_from)::int8, extract(epoch FROM valid_to)::int8, interval_s "
                "FROM resource_intervals WHERE resource_id = %s ORDER BY valid_from",
                [rid],
            ).fetchall()
        ]


def test_batches_record_each_resources_interval_over_their_hours(db: Database) -> None:
    manager_id, (a, b) = _two_vms(db)
    _write(db, a, [T + 60 * k for k in range(60)], 60)
    _write(db, b, [T + 300 * k for k in range(12)], 300)
    assert _rows(db, a) == [(T, T + H, 60)] and _rows(db, b) == [(T, T + H, 300)]
    _write(db, a, [T + 2 * H + 60 * k for k in range(30)], 60)  # the usual next batch: one row grows
    assert _rows(db, a) == [(T, T + 3 * H, 60)]
    _write(db, a, [T - 20 * H + 300 * k for k in range(24)], 300)  # old data, served at 300 s
    assert _rows(db, a) == [(T - 20 * H, T - 18 * H, 300), (T, T + 3 * H, 60)]
    with db.connection() as conn:
        intervals = readers.read_intervals(conn, manager_id)
    hours = np.array([T - 20 * H, T - 10 * H, T, T + 9 * H], np.int64)
    assert intervals.grid(np.array([a, b], np.int32), hours).tolist() == [[300, 0, 60, 60], [0, 0, 300, 300]]


def test_a_change_to_rolled_up_hours_marks_them(db: Database) -> None:
    manager_id, (a, _) = _two_vms(db)
    _write(db, a, [T + 60 * k for k in range(60)], 60, before_s=T, manager=manager_id)
    # monitoring switched to basic at 02:00; the rollups have gone to 05:00 (the VM's hours 1-4 carried 60)
    _write(db, a, [T + 2 * H + 300 * k for k in range(12)], 300, before_s=T + 5 * H, manager=manager_id)
    assert _rows(db, a) == [(T, T + 2 * H, 60), (T + 2 * H, T + 3 * H, 300)]
    with db.connection() as conn:
        marked = [int(h.timestamp()) for h in managers.dirty_hours(conn, manager_id)]
    assert marked == [T + 2 * H, T + 3 * H, T + 4 * H]  # the hour of the new samples, and those after it
