"""Reports: cloudmeter's capacity and chargeback API against the nearest plain SQL in PostgreSQL, same data, same run.

    python benchmarks/reports.py [--quick] [--json] [--runs N] [--vms N] [--days N] [--data-dir DIR]

Fills the embedded PostgreSQL with the demo (``--vms`` simulated VMs, ``--days`` days of 1-minute samples,
rolled up), or with ``--data-dir`` reuses (or loads once) ``benchmarks/api.py``'s world there (one sample per
VM-hour: 10,000 VMs x 90 days is 21M hourly rows), then times over the whole window:

- utilization: ``capacity.utilization(conn, window, "cluster")`` (usage stats, coverage, capacity and
  allocation hour by hour from the placement history, overcommit)
- sql utilization: one SQL query with the cluster rows' avg, p95 (percentile_cont) and peak of CPU and memory
  and coverage; it does less (no capacity, allocation or overcommit), so it is a floor, not a twin
- headroom: ``headroom.headroom`` for a 4-vCPU, 8-GB flavor (every host's p95 over the window)
- forecast: ``forecast.forecast`` (daily peaks, both methods, capacity at the last hour)
- chargeback: ``chargeback.charges`` under the sample rate card then ``summarise`` by project and day, over the
  window's last 30 days (or the whole window if shorter)
- sql chargeback: allocated vCPU-hours, used core-hours and memory GB-hours per project and day from
  ``metric_hourly`` at flat prices (no rate lines, lifetimes, tiers or exact money), again a floor

Prints medians of ``--runs`` runs and each time's ratio to its SQL floor. ``--json`` names the figures with the
size, as ``headroom_s_10k_90d``.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import api  # benchmarks/api.py: its world of hourly samples
import harness  # benchmarks/harness.py, beside this script

from cloudmeter.demo import run_demo
from cloudmeter.model import Window
from cloudmeter.reports import capacity, chargeback, forecast, headroom
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
    parser.add_argument("--data-dir", type=Path, help="keep benchmarks/api.py's world here and reuse it")
    args = parser.parse_args()
    vms, days = (50, 2) if args.quick else (args.vms, args.days)
    card = sample_rate_card()

    with contextlib.ExitStack() as stack:
        data_dir = args.data_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        data_dir.mkdir(parents=True, exist_ok=True)
        db = stack.enter_context(Database(None, data_dir))
        began = time.perf_counter()
        if args.data_dir:
            world = api.World(vms, days, api.SEED)
            loaded = api.ensure_world(db, world, data_dir)
            window, samples, hourly_rows = world.window, loaded.samples, loaded.hourly_rows
        else:
            demo = run_demo(db, ("UTC",), vms, days, now=datetime(2026, 11, 2, 12, tzinfo=UTC))
            window, samples, hourly_rows = demo.window, demo.samples, demo.hourly_rows
        fill_s = time.perf_counter() - began
        month = Window(max(window.start, window.end - timedelta(days=30)), window.end)
        params = {"start": window.start, "end": window.end}
        month_params = {"start": month.start, "end": month.end}
        flavor = headroom.Flavor(api.FLAVOR_VCPUS, api.FLAVOR_MEMORY_GB)
        with db.connection() as conn:

            def sql(query: str, bounds: dict[str, datetime] = params) -> Callable[[], object]:
                return lambda: conn.execute(query, bounds).fetchall()

            def ours_chargeback() -> object:
                return chargeback.summarise(chargeback.charges(conn, month, card), "project", "daily", "UTC", "EUR")

            times = {
                "utilization": harness.median_time(
                    lambda: capacity.utilization(conn, window, "cluster"), args.runs, warm=True
                ),
                "sql utilization": harness.median_time(sql(SQL_UTILIZATION), args.runs, warm=True),
                "headroom": harness.median_time(lambda: headroom.headroom(conn, window, flavor), args.runs, warm=True),
                "forecast": harness.median_time(lambda: forecast.forecast(conn, window), args.runs, warm=True),
                "chargeback": harness.median_time(ours_chargeback, args.runs, warm=True),
                "sql chargeback": harness.median_time(sql(SQL_CHARGEBACK, month_params), args.runs, warm=True),
            }

    print(f"{vms} VMs x {days} days: {samples:,} samples, {hourly_rows:,} hourly rows (filled in {fill_s:.0f} s)")
    print(f"{'':<18}{'median s':>10}{'vs SQL floor':>14}")
    size = f"{vms / 1000:g}k_{days}d"
    figures: dict[str, float] = {"vms": vms, "days": days, "hourly_rows": hourly_rows}
    for name, seconds in times.items():
        floor = times.get(name if name.startswith("sql") else f"sql {name}")
        print(f"{name:<18}{seconds:>10.3f}{'' if floor is None else f'{seconds / floor:.2f}':>14}")
        key = "chargeback_month" if name == "chargeback" else name.replace(" ", "_")
        figures[f"{key}_s_{size}"] = round(seconds, 4)
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
