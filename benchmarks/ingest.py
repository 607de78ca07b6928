"""Ingest: cloudmeter's idempotent writer against a bare binary COPY of the same rows, same table, same run.

    python benchmarks/ingest.py [--quick] [--json] [--runs N]

Each run writes the same batch (rows sorted by resource and time, like captured batches) into a fresh
``metric_samples`` on the embedded PostgreSQL: once with a bare ``COPY ... FROM STDIN (FORMAT binary)``
straight into the table, once with ``write_samples`` (COPY into a staging table, then upsert), and once more
with ``write_samples`` of the same batch again (a re-capture that changes nothing). Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import psycopg

from cloudmeter.model import from_epoch_s
from cloudmeter.storage import pgbinary, writer
from cloudmeter.storage.database import Database
from cloudmeter.storage.schema import SAMPLES

T0 = 1_790_000_000


def make_batch(
    rows: int, resources: int
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """``rows`` samples of ``resources`` VMs at one-minute steps, sorted by (resource, ts), 2% NULLs."""
    per = rows // resources
    rid = np.repeat(np.arange(resources, dtype=np.int32), per)
    ts = np.tile(T0 + 60 * np.arange(per, dtype=np.int64), resources)
    rng = np.random.default_rng(0)
    values = rng.random((len(rid), 8)) * 100
    values[rng.random(values.shape) < 0.02] = np.nan
    return rid, ts, values


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def one_run(
    db: Database, batch: tuple[npt.NDArray[np.int32], npt.NDArray[np.int64], npt.NDArray[np.float64]]
) -> dict[str, float]:
    rid, ts, values = batch
    with db.connection() as conn:
        conn.execute("TRUNCATE metric_samples")
        conn.commit()
        columns = writer.sample_columns(rid, ts, values)

        def bare_copy() -> None:
            payload = pgbinary.encode([(c.kind, c.values, c.valid) for c in columns])
            with conn.transaction(), conn.cursor().copy("COPY metric_samples FROM STDIN (FORMAT binary)") as copy:
                copy.write(memoryview(payload))

        bare = timed(bare_copy)
        conn.execute("TRUNCATE metric_samples")
        conn.commit()
        ours = timed(lambda: writer.write_samples(conn, rid, ts, values, db.write_target()))
        again = timed(lambda: writer.write_samples(conn, rid, ts, values, db.write_target()))
        assert_rows(conn, len(rid))
    return {"bare_copy_s": bare, "write_samples_s": ours, "recapture_s": again}


def assert_rows(conn: psycopg.Connection, expected: int) -> None:
    row = conn.execute("SELECT count(*) FROM metric_samples").fetchone()
    if not row or row[0] != expected:
        raise SystemExit(f"benchmark wrote {row} rows, expected {expected}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="200k rows instead of 2M")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows = 200_000 if args.quick else 2_000_000
    batch = make_batch(rows, 1000)
    with tempfile.TemporaryDirectory() as tmp, Database(None, Path(tmp)) as db:
        db.migrate()
        partitions = db.native_partitions()
        assert partitions is not None
        with db.connection() as conn, conn.transaction():
            partitions.ensure(conn, SAMPLES, from_epoch_s(int(batch[1].min())), from_epoch_s(int(batch[1].max())))
        one_run(db, make_batch(10_000, 100))  # warm the JIT and the server
        runs = [one_run(db, batch) for _ in range(args.runs)]
    medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    figures = {
        "rows": float(rows),
        "bare_copy_rows_per_s": rows / medians["bare_copy_s"],
        "write_samples_rows_per_s": rows / medians["write_samples_s"],
        "recapture_rows_per_s": rows / medians["recapture_s"],
        "write_vs_bare_copy": medians["bare_copy_s"] / medians["write_samples_s"],
        "recapture_vs_bare_copy": medians["bare_copy_s"] / medians["recapture_s"],
    }
    print(f"{rows:,} rows (1000 resources, sorted), medians of {args.runs} runs")
    for name in ("bare_copy", "write_samples", "recapture"):
        print(f"  {name:<14} {medians[name + '_s']:7.3f} s  {figures[name + '_rows_per_s']:>12,.0f} rows/s")
    print(f"  write_samples / bare COPY rate: {figures['write_vs_bare_copy']:.2f}")
    print(f"  re-capture / bare COPY rate:    {figures['recapture_vs_bare_copy']:.2f}")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
