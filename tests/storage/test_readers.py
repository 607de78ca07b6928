"""read_arrays packs rows into arrays server-side: the same values, NULLs and order as reading the rows one by one."""

from __future__ import annotations

import numpy as np
import pytest
from psycopg import sql

from cloudmeter.storage import pgbinary, readers
from cloudmeter.storage.database import Database

KINDS = [
    ("ts", pgbinary.TIMESTAMPTZ),
    ("small", pgbinary.INT4),
    ("big", pgbinary.INT8),
    ("value", pgbinary.FLOAT8),
]
# every kind NULL now and then, negative numbers, rows out of generation order (sorted by a hash)
ROWS = sql.SQL(
    """SELECT CASE WHEN g %% 5 = 0 THEN NULL ELSE timestamptz '2026-01-01 00:00+00' + g * interval '1.5 second' END,
              CASE WHEN g %% 7 = 0 THEN NULL ELSE (g - 10)::int4 END,
              CASE WHEN g %% 4 = 0 THEN NULL ELSE g::int8 * -3000000000 END,
              CASE WHEN g %% 3 = 0 THEN NULL ELSE g / 7.0 END::float8
       FROM generate_series(1, %s) g ORDER BY md5(g::text)"""
)


@pytest.mark.parametrize("rows", [0, 1, 3, 10, 31])
def test_packed_rows_read_as_the_rows_themselves(db: Database, rows: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "PACK_ROWS", 3)  # several packs, the last one short
    with db.connection() as conn:
        plain = pgbinary.decode(readers.copy_out(conn, ROWS, [rows]), [kind for _, kind in KINDS])
        packed = readers.read_arrays(conn, ROWS, [rows], KINDS)
        expected = conn.execute(ROWS, [rows]).fetchall()
    assert len(packed["ts"]) == rows
    for (name, _), column in zip(KINDS, plain, strict=True):
        np.testing.assert_array_equal(packed.columns[name].valid, column.valid, err_msg=name)
        np.testing.assert_array_equal(packed[name], column.values, err_msg=name)
    # and both are what PostgreSQL returns row by row
    values = [row[3] for row in expected]
    assert [None if np.isnan(v) else v for v in packed["value"].tolist()] == values
    small = zip(packed["small"].tolist(), packed.columns["small"].valid, strict=True)
    assert [v if ok else None for v, ok in small] == [row[1] for row in expected]
