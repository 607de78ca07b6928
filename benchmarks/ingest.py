"""Ingest: cloudmeter's idempotent writer against a bare binary COPY of the same rows, same table, same run.

    python benchmarks/ingest.py [--quick] [--json] [--runs N] [--pglite]

Each run writes the same batch (rows sorted by resource and time, like captured batches) into an empty
``metric_samples`` on the embedded PostgreSQL, with each write method (``copy``: binary COPY; ``insert``:
INSERT ... SELECT FROM unnest of binary array parameters, for servers without COPY FROM STDIN):

- bare: the rows loaded straight into the table (for ``copy``, a bare ``COPY ... FROM STDIN (FORMAT binary)``)
- append: ``write_samples`` of rows past the captured mark (what a capture does: load, no upsert)
- upsert: ``write_samples`` of the same rows into the empty table through the staging table and upsert
- recapture: ``write_samples`` of the same batch again (a re-capture that changes nothing)

``--pglite`` adds the ``insert`` method on PGlite + TimescaleDB (a hypertable; tests/pglite, needs Node.js),
with a tenth of the rows. Prints medians and each rate's ratio to the bare COPY.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt
import psycopg

from cloudmeter.model import from_epoch_s
from cloudmeter.storage import writer
from cloudmeter.storage.database import Database
from cloudmeter.storage.schema import SAMPLES

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests import pglite_server  # the test suite's server launcher

T0 = 1_790_000_000
Batch = tuple[npt.NDArray[np.int32], npt.NDArray[np.int64], npt.NDArray[np.float64]]


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


def one_run(db: Database, batch: Batch) -> dict[str, float]:
    """Seconds of each operation (bare load, append, upsert, recapture) for one write method."""
    rid, ts, values = batch
    target = db.write_target()
    columns = writer.sample_columns(rid, ts, values)
    times = {}
    with db.connection() as conn:
        for name, action in (
            ("bare", lambda: writer.load(conn, SAMPLES.name, columns, target.method)),
            ("append", lambda: writer.write_samples(conn, rid, ts, values, target, append_from_s=T0)),
            ("upsert", lambda: writer.write_samples(conn, rid, ts, values, target)),
        ):
            conn.execute("TRUNCATE metric_samples")
            conn.commit()
            times[name] = timed(partial(committed, conn, action))
        times["recapture"] = timed(lambda: writer.write_samples(conn, rid, ts, values, target))
        assert_rows(conn, len(rid))
    return times


def committed(conn: psycopg.Connection, action: Callable[[], object]) -> None:
    action()
    conn.commit()


def assert_rows(conn: psycopg.Connection, expected: int) -> None:
    row = conn.execute("SELECT count(*) FROM metric_samples").fetchone()
    if not row or row[0] != expected:
        raise SystemExit(f"benchmark wrote {row} rows, expected {expected}")


@contextmanager
def embedded(method: writer.WriteMethod, batch: Batch) -> Iterator[Database]:
    """The embedded PostgreSQL (native partitions made ahead), writing with ``method``."""
    with tempfile.TemporaryDirectory() as tmp, Database(None, Path(tmp), write_method=method) as db:
        db.migrate()
        partitions = db.native_partitions()
        assert partitions is not None
        with db.connection() as conn, conn.transaction():
            partitions.ensure(conn, SAMPLES, from_epoch_s(int(batch[1].min())), from_epoch_s(int(batch[1].max())))
        yield db


@contextmanager
def pglite(method: writer.WriteMethod, batch: Batch) -> Iterator[Database]:
    """PGlite + TimescaleDB (``metric_samples`` a hypertable), writing with ``method``."""
    del batch  # chunks are made as rows arrive
    with (
        tempfile.TemporaryDirectory() as tmp,
        pglite_server.running(Path(tmp)) as server,
        Database(server.dsn, Path(tmp), pool_size=1, write_method=method) as db,
    ):
        db.migrate()
        yield db


def measure(
    servers: Callable[[writer.WriteMethod, Batch], contextlib.AbstractContextManager[Database]],
    method: writer.WriteMethod,
    batch: Batch,
    runs: int,
) -> dict[str, float]:
    """Median seconds of each operation over ``runs`` runs, after a warm-up run."""
    with servers(method, batch) as db:
        one_run(db, make_batch(10_000, 100))  # warm the JIT and the server
        results = [one_run(db, batch) for _ in range(runs)]
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="200k rows instead of 2M")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pglite", action="store_true", help="also the insert method on PGlite + TimescaleDB")
    args = parser.parse_args()
    rows = 200_000 if args.quick else 2_000_000
    cases: list[tuple[str, Callable[..., contextlib.AbstractContextManager[Database]], writer.WriteMethod, int]] = [
        ("postgresql", embedded, "copy", rows),
        ("postgresql", embedded, "insert", rows),
    ]
    if args.pglite:
        cases.append(("pglite_timescaledb", pglite, "insert", rows // 10))
    medians = {}
    for server, servers, method, n in cases:
        seconds = measure(servers, method, make_batch(n, 1000), args.runs)
        medians[(server, method)] = {op: n / s for op, s in seconds.items()}  # rows per second
    bare_copy = medians[("postgresql", "copy")]["bare"]
    figures: dict[str, float] = {"rows": float(rows)}
    print(f"{rows:,} rows (1000 resources, sorted; PGlite a tenth), medians of {args.runs} runs, rows/s")
    print(f"  {'server':<20} {'method':<7}" + "".join(f"{op:>12}" for op in OPERATIONS) + "   ratio to bare COPY")
    for (server, method), rates in medians.items():
        for op in OPERATIONS:
            figures[f"{server}_{method}_{op}_rows_per_s"] = rates[op]
            figures[f"{server}_{method}_{op}_vs_bare_copy"] = rates[op] / bare_copy
        cells = "".join(f"{rates[op]:>12,.0f}" for op in OPERATIONS)
        ratios = " ".join(f"{rates[op] / bare_copy:.2f}" for op in OPERATIONS)
        print(f"  {server:<20} {method:<7}{cells}   {ratios}")
    if args.json:
        print(json.dumps(figures))


OPERATIONS = ("bare", "append", "upsert", "recapture")


if __name__ == "__main__":
    main()
