"""Reports: cloudmeter's capacity and chargeback API against the nearest plain SQL in PostgreSQL, same data, same run.

    python benchmarks/reports.py [--quick] [--json] [--runs N] [--vms N] [--days N]

Fills the embedded PostgreSQL with the demo (``--vms`` simulated VMs, ``--days`` days of 1-minute samples,
rolled up), then times over the whole window:

- utilization: ``capacity.utilization(conn, window, "cluster")`` (usage stats, coverage, capacity and
  allocation hour by hour from the placement history, overcommit)
- sql utilization: one SQL query with the cluster rows' avg, p95 (percentile_cont) and peak of CPU and memory
  and coverage; it does less (no capacity, allocation or overcommit), so it is a floor, not a twin
- chargeback: ``chargeback.charges`` under the sample rate card then ``summarise`` by project and day
- sql chargeback: allocated vCPU-hours, used core-hours and memory GB-hours per project and day from
  ``metric_hourly`` at flat prices (no rate lines, lifetimes, tiers or exact money), again a floor

Prints medians of ``--runs`` runs and each time's ratio to its SQL floor.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import harness  # benchmarks/harness.py, beside this script

from cloudmeter.demo import run_demo
from cloudmeter.reports import capacity, chargeback
from cloudmeter.reports.ratecard import sample_rate_card
from cloudmeter.storage.database import Database

SQL_UTILIZATION = """
SELECT c.name, avg(h.cpu_used_cores_avg), percentile_cont(0.95) WITHIN GROUP (ORDER BY h.cpu_used_cores_avg),
       max(h.cpu_used_cores_max), avg(h.mem_used_bytes_avg),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY h.mem_used_bytes_avg), max(h.mem_used_bytes_max),
       100.0 * sum(h.sample_count) / nullif(sum(h.expected_count), 0)
FROM metric_hourly h JOIN resources c ON c.id = h.resource_id AND c.kind = 'cluster'
WHERE h.ts >= %(start)s AND h.ts < %(end)s
GROUP BY c.name
"""
SQL_CHARGEBACK = """
SELECT r.project, date_trunc('day', h.ts), sum(h.vcpus) * 0.01 + sum(h.cpu_used_cores_avg) * 0.02
       + sum(h.memory_bytes) / 2^30 * 0.001
FROM metric_hourly h JOIN resources r ON r.id = h.resource_id AND r.kind = 'vm'
WHERE h.ts >= %(start)s AND h.ts < %(end)s
GROUP BY r.project, date_trunc('day', h.ts)
"""


def main() -> None:
    parser = harness.parser(__doc__, "50 VMs, 2 days", 200)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()
    vms, days = (50, 2) if args.quick else (args.vms, args.days)
    card = sample_rate_card()

    with tempfile.TemporaryDirectory() as tmp, Database(None, Path(tmp)) as db:
        began = time.perf_counter()
        demo = run_demo(db, ("UTC",), vms, days, now=datetime(2026, 11, 2, 12, tzinfo=UTC))
        fill_s = time.perf_counter() - began
        window = demo.window
        params = {"start": window.start, "end": window.end}
        with db.connection() as conn:

            def sql(query: str) -> Callable[[], object]:
                return lambda: conn.execute(query, params).fetchall()

            def ours_chargeback() -> object:
                return chargeback.summarise(chargeback.charges(conn, window, card), "project", "daily", "UTC", "EUR")

            times = {
                "utilization": harness.median_time(
                    lambda: capacity.utilization(conn, window, "cluster"), args.runs, warm=True
                ),
                "sql utilization": harness.median_time(sql(SQL_UTILIZATION), args.runs, warm=True),
                "chargeback": harness.median_time(ours_chargeback, args.runs, warm=True),
                "sql chargeback": harness.median_time(sql(SQL_CHARGEBACK), args.runs, warm=True),
            }

    print(
        f"{vms} VMs x {days} days: {demo.samples:,} samples, {demo.hourly_rows:,} hourly rows "
        f"(filled in {fill_s:.0f} s)"
    )
    print(f"{'':<18}{'median s':>10}{'vs SQL floor':>14}")
    figures: dict[str, float] = {"vms": vms, "days": days, "hourly_rows": demo.hourly_rows}
    for name, seconds in times.items():
        floor = times[name if name.startswith("sql") else f"sql {name}"]
        print(f"{name:<18}{seconds:>10.3f}{seconds / floor:>14.2f}")
        figures[f"{name.replace(' ', '_')}_s"] = round(seconds, 4)
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
