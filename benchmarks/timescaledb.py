"""TimescaleDB mode: what compression saves and costs, on real TimescaleDB SQL (PGlite + TimescaleDB).

    python benchmarks/timescaledb.py [--quick] [--json] [--runs N] [--vms N] [--days N]

The demo (simulated VMs, one sample a minute, captured and rolled up in-stream) runs once into PGlite +
TimescaleDB (hypertables; writes by INSERT, PGlite has no COPY FROM STDIN) and once into the embedded
PostgreSQL (native partitions). Then every chunk is compressed with the schema's settings (segment by
resource_id, order by ts; metric_daily too, which has no compression policy, to show why), and the script
prints per table: rows, native size, hypertable size before and after compression and the ratio, and the
median time of two typical reads before and after compression.
PGlite is PostgreSQL compiled to WebAssembly: its times are not a production server's, its sizes are.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from cloudmeter.demo import run_demo
from cloudmeter.storage.database import Database
from cloudmeter.storage.schema import TIME_SERIES_TABLES

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests import pglite_server  # the test suite's server launcher

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
ZONES = ("UTC", "Europe/Berlin")
READS = {
    "one VM's raw samples": "SELECT ts, cpu_usage_pct, mem_used_bytes FROM metric_samples WHERE resource_id = {vm}",
    "hourly p95 peak per resource": "SELECT resource_id, max(cpu_usage_pct_p95) FROM metric_hourly GROUP BY 1",
}


def table_sizes(conn: psycopg.Connection, timescaledb: bool) -> dict[str, tuple[int, int]]:
    """Rows and total bytes (heap, indexes, TOAST; all partitions or chunks) of each time-series table."""
    sizes = {}
    for table in TIME_SERIES_TABLES:
        rows = conn.execute(f"SELECT count(*) FROM {table.name}").fetchone()
        size_sql = (
            "SELECT sum(total_bytes) FROM hypertable_detailed_size(%s::text::regclass)"
            if timescaledb
            else "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(%s::text::regclass)"
        )
        size = conn.execute(size_sql, (table.name,)).fetchone()
        assert rows is not None and size is not None
        sizes[table.name] = (int(rows[0]), int(size[0]))
    return sizes


def read_times(conn: psycopg.Connection, vm: int, runs: int) -> dict[str, float]:
    """Median seconds of each read in READS."""
    times = {}
    for name, query in READS.items():
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            conn.execute(query.format(vm=vm)).fetchall()
            samples.append(time.perf_counter() - start)
        times[name] = statistics.median(samples)
    return times


def compress_all(conn: psycopg.Connection) -> None:
    for table in TIME_SERIES_TABLES:
        conn.execute(
            "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks(%s::text::regclass) c", (table.name,)
        )
    conn.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="40 VMs for 2 days instead of 200 for 7")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--vms", type=int)
    parser.add_argument("--days", type=int)
    args = parser.parse_args()
    vms = args.vms or (40 if args.quick else 200)
    days = args.days or (2 if args.quick else 7)
    with tempfile.TemporaryDirectory() as tmp:
        with Database(None, Path(tmp) / "native") as native:
            run_demo(native, ZONES, vms, days, now=NOW)
            with native.connection() as conn:
                native_sizes = table_sizes(conn, timescaledb=False)
        with (
            pglite_server.running(Path(tmp)) as server,
            Database(server.dsn, Path(tmp), pool_size=1, write_method="insert") as db,
        ):
            started = time.perf_counter()
            run_demo(db, ZONES, vms, days, now=NOW)
            demo_s = time.perf_counter() - started
            with db.connection() as conn:
                vm = conn.execute("SELECT min(id) FROM resources WHERE kind = 'vm'").fetchone()
                assert vm is not None
                before = table_sizes(conn, timescaledb=True)
                reads_before = read_times(conn, vm[0], args.runs)
                compress_all(conn)
                after = table_sizes(conn, timescaledb=True)
                reads_after = read_times(conn, vm[0], args.runs)
    figures: dict[str, float] = {"vms": vms, "days": days, "pglite_demo_s": demo_s}
    print(f"demo of {vms} VMs over {days} days (capture and rollups) into PGlite + TimescaleDB: {demo_s:.1f} s")
    print(f"  {'table':<16}{'rows':>11}{'native':>12}{'hypertable':>12}{'compressed':>12}{'ratio':>8}")
    for table in TIME_SERIES_TABLES:
        rows, native_bytes = native_sizes[table.name]
        plain, packed = before[table.name][1], after[table.name][1]
        assert before[table.name][0] == after[table.name][0] == rows, "compression or the modes changed the rows"
        figures[f"{table.name}_rows"] = rows
        figures[f"{table.name}_native_mib"] = native_bytes / 2**20
        figures[f"{table.name}_hypertable_mib"] = plain / 2**20
        figures[f"{table.name}_compressed_mib"] = packed / 2**20
        figures[f"{table.name}_compression_ratio"] = plain / packed
        print(
            f"  {table.name:<16}{rows:>11,}{native_bytes / 2**20:>9.1f} MiB{plain / 2**20:>8.1f} MiB"
            f"{packed / 2**20:>8.1f} MiB{plain / packed:>7.1f}x"
        )
    print(f"  reads, median of {args.runs} (PGlite is WebAssembly: compare the two columns, not to a server)")
    for name in READS:
        key = name.replace(" ", "_").replace("'", "")
        figures[f"{key}_s"] = reads_before[name]
        figures[f"{key}_compressed_s"] = reads_after[name]
        print(f"  {name:<30}{reads_before[name] * 1000:>9.1f} ms{reads_after[name] * 1000:>9.1f} ms compressed")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
