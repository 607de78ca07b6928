"""Every captured value against one computed here from world.py's raw scrapes with Prometheus' own rules, and the
cases that matter spelled out by hand: steady rates, the counter reset, the restart, a pod's first step, the gap,
the sandbox's network, percentages over requests and NULL where there is none.

Prometheus 2.42's rules (promql/functions.go, ``extrapolatedRate`` and ``avg_over_time``): a range ``[t - r, t]``
holds the samples with both ends included; rate needs two of them; the increase is last - first plus every value
before a drop (a counter reset); it is extrapolated to the range's ends where the first or last sample is less than
1.1 average intervals from them (else by half an interval), toward the start no further than where the counter
would have been 0; then divided by ``r``. The collector evaluates at ``ts + step`` over ``step`` seconds.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Final

import numpy as np
import pytest

from cloudmeter.model import METRICS, ResourceRef, Window, from_epoch_s
from tests.kubernetes import world
from tests.kubernetes.conftest import Prom

STEP: Final = 60
MIB: Final = world.MIB
Samples = Sequence[tuple[int, float]]
Row = dict[str, float]


def prom_rate(samples: Samples, at: int, range_s: int) -> float:
    """Prometheus 2.42's ``rate(x[range_s])`` at ``at`` over one series' raw samples; NaN under two samples."""
    inside = [(t, v) for t, v in samples if at - range_s <= t <= at]
    if len(inside) < 2:
        return math.nan
    increase = inside[-1][1] - inside[0][1]
    previous = 0.0
    for _, v in inside:
        if v < previous:
            increase += previous
        previous = v
    to_start, to_end = float(inside[0][0] - (at - range_s)), float(at - inside[-1][0])
    sampled = float(inside[-1][0] - inside[0][0])
    average = sampled / (len(inside) - 1)
    if increase > 0 and inside[0][1] >= 0:
        to_start = min(to_start, sampled * (inside[0][1] / increase))
    threshold = average * 1.1
    interval = sampled + (to_start if to_start < threshold else average / 2)
    interval += to_end if to_end < threshold else average / 2
    return increase * (interval / sampled) / range_s


def prom_avg(samples: Samples, at: int, range_s: int) -> float:
    inside = [v for t, v in samples if at - range_s <= t <= at]
    return sum(inside) / len(inside) if inside else math.nan


def _add(a: float, b: float) -> float:
    return b if math.isnan(a) else a if math.isnan(b) else a + b


def _max(a: float, b: float) -> float:
    return b if math.isnan(a) else a if math.isnan(b) else max(a, b)


def expected() -> dict[tuple[ResourceRef, int], Row]:
    """Every (container, ts) of cluster prod in [START, END) with a value, from the world's raw samples."""
    rows: dict[tuple[ResourceRef, int], Row] = {}
    for p in world.PODS:
        if p.cluster != world.CLUSTER:
            continue
        for c in p.containers:
            series: dict[str, list[Samples]] = defaultdict(list)
            for metric, _, samples, _ in world.container_series(p, c):
                series[metric].append(samples)
            for ts in range(world.START, world.END, STEP):
                row = {m: math.nan for m in METRICS}
                for name, column in (("container_cpu_usage_seconds_total", "cpu_used_cores"),
                                     ("container_fs_reads_bytes_total", "disk_read_bps"),
                                     ("container_fs_writes_bytes_total", "disk_write_bps")):  # fmt: skip
                    for one in series.get(name, []):
                        row[column] = _add(row[column], prom_rate(one, ts + STEP, STEP))
                for one in series["container_memory_working_set_bytes"]:
                    row["mem_used_bytes"] = _max(row["mem_used_bytes"], prom_avg(one, ts + STEP, STEP))
                if c.cpu_request:
                    row["cpu_usage_pct"] = 100 * row["cpu_used_cores"] / c.cpu_request
                if c.memory_request:
                    row["mem_usage_pct"] = 100 * row["mem_used_bytes"] / c.memory_request
                if any(not math.isnan(v) for v in row.values()):
                    rows[ResourceRef("container", f"{p.uid}/{c.name}"), ts] = row
        for ts in range(world.START, world.END, STEP):
            row = {m: math.nan for m in METRICS}
            for metric, _, samples in world.network_series(p):
                column = "net_rx_bps" if "receive" in metric else "net_tx_bps"
                row[column] = _add(row[column], prom_rate(samples, ts + STEP, STEP))
            if any(not math.isnan(v) for v in row.values()):
                rows[ResourceRef("container", f"{p.uid}/POD"), ts] = row
    return rows


@pytest.fixture(scope="module")
def captured(prometheus: Prom) -> dict[tuple[ResourceRef, int], Row]:
    rows: dict[tuple[ResourceRef, int], Row] = {}
    window = Window(from_epoch_s(world.START), from_epoch_s(world.END))
    for batch in prometheus.collector().capture(window):
        assert batch.interval_s == STEP
        for k in range(len(batch)):
            key = (batch.refs[batch.resource_idx[k]], int(batch.ts_s[k]))
            assert key not in rows, f"{key} captured twice"
            rows[key] = dict(zip(METRICS, (float(v) for v in batch.values[k]), strict=True))
    return rows


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def test_every_value_is_prometheus_rules_applied_to_the_world(captured: dict[tuple[ResourceRef, int], Row]) -> None:
    want = expected()
    assert sorted(captured.keys() - want.keys()) == []
    assert sorted(want.keys() - captured.keys()) == []
    wrong = [
        (ref.ems_ref, ts - world.START, m, captured[ref, ts][m], row[m])
        for (ref, ts), row in sorted(want.items())
        for m in METRICS
        if not _same(captured[ref, ts][m], row[m])
    ]
    assert wrong == []


def at(captured: dict[tuple[ResourceRef, int], Row], uid: str, container: str, minute: float) -> Row | None:
    return captured.get((ResourceRef("container", f"{uid}/{container}"), world.START + int(minute * 60)))


def test_steady_rates_are_the_counters_slopes(captured: dict[tuple[ResourceRef, int], Row]) -> None:
    app = at(captured, world.U_WEB1, "app", 10)
    assert app is not None
    assert app["cpu_used_cores"] == pytest.approx(0.25, rel=1e-12)
    assert app["cpu_usage_pct"] == pytest.approx(50.0, rel=1e-12)  # over the 0.5-core request
    assert app["mem_used_bytes"] == 200 * MIB
    assert app["mem_usage_pct"] == pytest.approx(100 * 200 / 256, rel=1e-12)  # over the 256 MiB request
    assert app["disk_read_bps"] == pytest.approx(4096.0) and app["disk_write_bps"] == pytest.approx(1024.0)
    assert math.isnan(app["net_rx_bps"]) and math.isnan(app["net_tx_bps"])  # the pod's network is on POD


def test_without_requests_the_percentages_are_null(captured: dict[tuple[ResourceRef, int], Row]) -> None:
    sidecar = at(captured, world.U_WEB1, "sidecar", 10)
    assert sidecar is not None
    assert sidecar["cpu_used_cores"] == pytest.approx(0.05, rel=1e-12)
    assert sidecar["mem_used_bytes"] == 30 * MIB
    assert math.isnan(sidecar["cpu_usage_pct"]) and math.isnan(sidecar["mem_usage_pct"])
    assert math.isnan(sidecar["disk_read_bps"])  # cAdvisor has no filesystem series for it: NULL, not 0


def test_above_its_request_a_container_is_over_100_percent(captured: dict[tuple[ResourceRef, int], Row]) -> None:
    worker = at(captured, world.U_JOB, "worker", 30)
    assert worker is not None
    assert worker["cpu_usage_pct"] == pytest.approx(150.0, rel=1e-12)


def test_the_pod_network_is_on_the_sandbox_summed_over_interfaces(
    captured: dict[tuple[ResourceRef, int], Row],
) -> None:
    sandbox = at(captured, world.U_WEB1, "POD", 10)
    assert sandbox is not None
    assert sandbox["net_rx_bps"] == pytest.approx(1000.0) and sandbox["net_tx_bps"] == pytest.approx(500.0)
    assert all(math.isnan(sandbox[m]) for m in METRICS if not m.startswith("net_"))


def test_an_idle_container_is_zero_not_null(captured: dict[tuple[ResourceRef, int], Row]) -> None:
    idle = at(captured, world.U_IDLE, "idle", 10)
    sandbox = at(captured, world.U_IDLE, "POD", 10)
    assert idle is not None and sandbox is not None
    assert (idle["cpu_used_cores"], idle["cpu_usage_pct"], idle["disk_read_bps"]) == (0.0, 0.0, 0.0)
    assert idle["mem_used_bytes"] == 10 * MIB
    assert (sandbox["net_rx_bps"], sandbox["net_tx_bps"]) == (0.0, 0.0)


def test_a_counter_reset_inside_a_step(captured: dict[tuple[ResourceRef, int], Row]) -> None:
    """job-1's worker counts 1.5 cores/s from 1200 s; at 3630 s its counter restarts from 0. Step [3600, 3660]
    holds the scrapes at 3605 (3607.5), 3620 (3630), 3635 (7.5) and 3650 (30): the increase is 30 - 3607.5 + 3630
    (the value before the drop) = 52.5 over 45 s of samples, extrapolated by 5 s and 10 s to 60 s: 52.5 * 60/45 / 60."""
    worker = at(captured, world.U_JOB, "worker", 60)
    assert worker is not None
    assert worker["cpu_used_cores"] == pytest.approx(52.5 * 60 / 45 / 60, rel=1e-12)
    after = at(captured, world.U_JOB, "worker", 61)
    assert after is not None and after["cpu_used_cores"] == pytest.approx(1.5, rel=1e-12)


def test_a_restart_is_two_series_added(captured: dict[tuple[ResourceRef, int], Row]) -> None:
    """web-1's app restarts at 5430 s. Step [5400, 5460]: the old series has 5405 and 5420 (3.75 apart), 5 s from
    the start, 40 s from the end (more than 1.1 intervals: half an interval, 7.5 s), so 3.75 * 27.5/15 / 60; the new
    one has 5435 (1.25) and 5450 (5.0), 35 s from the start but 0 at 5430 (5 s before), 10 s from the end:
    3.75 * 30/15 / 60. Memory: the larger average, the old container's 200 MiB."""
    app = at(captured, world.U_WEB1, "app", 90)
    assert app is not None
    assert app["cpu_used_cores"] == pytest.approx(3.75 * 27.5 / 15 / 60 + 3.75 * 30 / 15 / 60, rel=1e-12)
    assert app["mem_used_bytes"] == 200 * MIB
    later = at(captured, world.U_WEB1, "app", 100)
    assert later is not None and later["mem_used_bytes"] == 150 * MIB


def test_a_new_pods_first_step_is_extrapolated_no_further_than_zero(
    captured: dict[tuple[ResourceRef, int], Row],
) -> None:
    """db-0's second uid starts at 2770 s (0 there, 0.2 cores); step [2760, 2820] has 2780 (2.0), 2795 (5.0) and
    2810 (8.0): 6.0 over 30 s, extrapolated toward the start only to where it was 0 (10 s, not 20), 10 s to the
    end: 6.0 * 50/30 / 60 (1/6 core, where the pod used 0.2 for the 40 s of the step it lived)."""
    db = at(captured, world.U_DB_NEW, "db", 46)
    assert db is not None
    assert db["cpu_used_cores"] == pytest.approx(6.0 * 50 / 30 / 60, rel=1e-12)
    assert at(captured, world.U_DB_NEW, "db", 45) is None
    assert at(captured, world.U_DB_OLD, "db", 44) is not None and at(captured, world.U_DB_OLD, "db", 45) is None


def test_the_gap_is_null_never_zero(captured: dict[tuple[ResourceRef, int], Row]) -> None:
    """web-2's kubelet misses the scrapes after 3590 s up to 4505 s: steps from 3600 to 4440 s have no sample."""
    minutes = [m for m in range(55, 80) if at(captured, world.U_WEB2, "app", m) is None]
    assert minutes == list(range(60, 75))
    assert [m for m in range(55, 80) if at(captured, world.U_WEB2, "POD", m) is None] == list(range(60, 75))
    before = at(captured, world.U_WEB2, "app", 59)
    assert before is not None and before["cpu_used_cores"] == pytest.approx(0.1, rel=1e-12)


def test_a_deleted_pod_stops_at_its_last_scrape(captured: dict[tuple[ResourceRef, int], Row]) -> None:
    """job-1's last scrape is at 5990 s: step [5940, 6000] is its last."""
    assert at(captured, world.U_JOB, "worker", 99) is not None
    assert at(captured, world.U_JOB, "worker", 100) is None


def test_the_other_cluster_is_not_captured(captured: dict[tuple[ResourceRef, int], Row]) -> None:
    assert not any(ref.ems_ref.startswith(world.U_STAGING) for ref, _ in captured)


def test_capture_batches_by_namespace(prometheus: Prom) -> None:
    window = Window(from_epoch_s(world.START), from_epoch_s(world.START + 3600))
    spaces = []
    for batch in prometheus.collector().capture(window):
        pods = {ref.ems_ref.split("/")[0] for ref in batch.refs}
        spaces.append({world.pod(uid).namespace for uid in pods})
        assert np.all(np.diff(batch.ts_s[batch.resource_idx == 0]) > 0)
    assert spaces == [{"batch"}, {"shop"}]
