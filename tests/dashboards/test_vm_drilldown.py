"""The VM drill-down dashboard, for every VM of both managers: hourly rows against numpy over the VM's raw
``metric_samples``; allocation, coverage and placements against what the sources declared (the simulator's
world, the hand-written cloud); the window summary against ``rightsize``; the variables' option lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import psycopg
import pytest

from cloudmeter.collectors.simulator.world import FLAVORS, GIB, build_world
from cloudmeter.model import METRICS, Window
from cloudmeter.reports import rightsize
from cloudmeter.reports.ratecard import sample_rate_card
from tests.dashboards.conftest import SIM, WINDOW, Loaded
from tests.dashboards.grafana import ALL_VALUE, Variable
from tests.dashboards.panels import (
    all_clusters,
    all_managers,
    assert_frames_equal,
    choice,
    covers,
    equal,
    ids,
    panel_sql,
    run,
    single,
    variable_sql,
)
from tests.reports import cloud

BOARD = "vm"
HOUR = timedelta(hours=1)
#: panel -> {column: (metric, statistic)}; a statistic of the hour's samples, "alloc" the VM's allocation
METRIC_PANELS = {
    "CPU: cores used and vCPUs allocated": {
        "avg": ("cpu_used_cores", "avg"), "min": ("cpu_used_cores", "min"), "max": ("cpu_used_cores", "max"),
        "p95": ("cpu_used_cores", "p95"), "vCPUs allocated": ("vcpus", "alloc"),
    },
    "Memory: used and allocated": {
        "avg": ("mem_used_bytes", "avg"), "min": ("mem_used_bytes", "min"), "max": ("mem_used_bytes", "max"),
        "p95": ("mem_used_bytes", "p95"), "allocated": ("memory_bytes", "alloc"),
    },
    "CPU and memory, % of the VM's allocation": {
        "CPU avg": ("cpu_usage_pct", "avg"), "CPU p95": ("cpu_usage_pct", "p95"), "CPU max": ("cpu_usage_pct", "max"),
        "memory avg": ("mem_usage_pct", "avg"), "memory p95": ("mem_usage_pct", "p95"),
        "memory max": ("mem_usage_pct", "max"),
    },
    "Disk read and write": {
        "read avg": ("disk_read_bps", "avg"), "read p95": ("disk_read_bps", "p95"),
        "read max": ("disk_read_bps", "max"),
        "write avg": ("disk_write_bps", "avg"), "write p95": ("disk_write_bps", "p95"),
        "write max": ("disk_write_bps", "max"),
    },
    "Network in and out": {
        "in avg": ("net_rx_bps", "avg"), "in p95": ("net_rx_bps", "p95"), "in max": ("net_rx_bps", "max"),
        "out avg": ("net_tx_bps", "avg"), "out p95": ("net_tx_bps", "p95"), "out max": ("net_tx_bps", "max"),
    },
}  # fmt: skip
COVERAGE = "Coverage: samples received, % of those promised"
SUMMARY = "The VM over the time range"
HISTORY = "Placement history"
TIMELINE = "Host over time"


@dataclass(frozen=True)
class Truth:
    """What the source declared about a VM: its life, where it was from when, its size and sampling interval."""

    name: str
    created: datetime
    retired: datetime | None
    hosts: tuple[tuple[datetime, str], ...]  # (from, host name)
    vcpus: int
    memory_bytes: int
    interval_s: int

    def pieces(self, hour: datetime) -> list[float]:
        """Seconds of ``hour`` the VM spent on each host it was on then."""
        end = min(self.retired or datetime.max.replace(tzinfo=UTC), hour + HOUR)
        starts = [max(f, hour) for f, _ in self.hosts]
        stops = [f for f, _ in self.hosts[1:]] + [end]
        return [(min(b, end) - a).total_seconds() for a, b in zip(starts, stops, strict=True) if min(b, end) > a]


def truths(loaded: Loaded) -> dict[str, Truth]:
    """Every VM of both managers, by ems_ref, from its source's own description."""
    found = {}
    for name, (host, vcpus, mem, _, _, _, created, retired) in cloud.VMS.items():
        found[name] = Truth(name, created, retired, ((created, host.ems_ref),), vcpus, mem * GIB, cloud.INTERVAL_S)
    world = build_world(SIM)
    end = int(WINDOW.end.timestamp())
    for k in range(SIM.vms):
        if world.created_s[k] > end:
            continue
        moves = [int(t) for t in world.migrated_s[k] if t <= end]
        starts = [int(world.created_s[k]), *moves]
        hosts = tuple(
            (datetime.fromtimestamp(t, UTC), f"sim-host-{h // SIM.hosts_per_cluster}-{h % SIM.hosts_per_cluster}")
            for t, h in zip(starts, world.host[k], strict=False)
        )
        deleted = int(world.retired_s[k])
        found[f"sim-vm-{k:05d}"] = Truth(
            f"sim-vm-{k:05d}",
            hosts[0][0],
            datetime.fromtimestamp(deleted, UTC) if deleted <= end else None,
            hosts,
            FLAVORS[int(world.flavor[k])][1],
            FLAVORS[int(world.flavor[k])][2] * GIB,
            loaded.sim.interval_of(k),
        )
    return found


def vms(loaded: Loaded) -> list[tuple[int, str]]:
    with loaded.db.connection() as conn:
        rows = conn.execute("SELECT id, ems_ref FROM resources WHERE kind = 'vm' ORDER BY id").fetchall()
    return [(int(i), str(ref)) for i, ref in rows]


def reference_hours(samples: pl.DataFrame, truth: Truth) -> pl.DataFrame:
    """Per hour of ``WINDOW`` the VM existed or sent samples: numpy's avg, min, max and p95 (linear) of each
    metric's non-NULL samples, the allocation averaged over the part of the hour it existed, the sample count and
    the coverage: samples (split by time at a migration) over what its interval promises, at most 100 %."""
    rows = []
    by_hour = samples.with_columns(pl.col("ts").dt.convert_time_zone("UTC").dt.truncate("1h").alias("hour"))
    parts = {key[0]: part for key, part in by_hour.partition_by("hour", as_dict=True).items()}
    hour = WINDOW.start
    while hour < WINDOW.end:
        pieces = truth.pieces(hour)
        inside = parts.get(hour, by_hour.clear())
        if pieces or inside.height:
            row: dict[str, object] = {"time": hour, "samples": inside.height or None}
            for metric in METRICS:
                values = inside[metric].drop_nulls().to_numpy()
                stats = (
                    (values.mean(), values.min(), values.max(), np.percentile(values, 95))
                    if len(values)
                    else (None,) * 4
                )
                row.update(dict(zip([f"{metric}_{s}" for s in ("avg", "min", "max", "p95")], stats, strict=True)))
            row["vcpus_alloc"] = truth.vcpus if pieces else None
            row["memory_bytes_alloc"] = truth.memory_bytes if pieces else None
            total = sum(pieces)
            received = sum(min(inside.height * s / total, s / truth.interval_s) for s in pieces)
            row["coverage"] = 100 * received / (total / truth.interval_s) if pieces else None
            rows.append(row)
        hour += HOUR
    return pl.DataFrame(rows, infer_schema_length=None)


def vm_variables(conn: psycopg.Connection, vm_id: int) -> dict[str, Variable]:
    return {"manager": all_managers(conn), "vm": single("vm", str(vm_id))}


@covers(*((BOARD, title) for title in METRIC_PANELS), (BOARD, COVERAGE))
def test_hourly_panels_are_the_vms_samples_hour_by_hour(loaded: Loaded) -> None:
    truth = truths(loaded)
    nulls = 0
    with loaded.db.connection() as conn:
        variables = {"manager": all_managers(conn)}
        for vm_id, ref in vms(loaded):
            cursor = conn.execute(
                f"SELECT ts, {', '.join(METRICS)} FROM metric_samples WHERE resource_id = %s ORDER BY ts", (vm_id,)
            )
            raw = pl.DataFrame(cursor.fetchall(), schema=["ts", *METRICS], orient="row", infer_schema_length=None)
            want = reference_hours(raw, truth[ref])
            chosen = {**variables, "vm": single("vm", str(vm_id))}
            for title, columns in METRIC_PANELS.items():
                got = run(conn, panel_sql(BOARD, title)[0], WINDOW, chosen)
                assert got.columns == ["time", *columns], title
                mapping = {c: f"{m}_{s}" for c, (m, s) in columns.items()}
                assert_frames_equal(got, want, ["time"], mapping, rel=1e-12)
                nulls += sum(got[c].null_count() for c in columns)
            got = run(conn, panel_sql(BOARD, COVERAGE)[0], WINDOW, chosen)
            assert_frames_equal(got, want, ["time"], {"coverage %": "coverage", "samples": "samples"}, rel=1e-12)
    assert nulls > 0  # silent hours and VMs without a memory meter are NULL in the panels, not 0


@covers((BOARD, SUMMARY))
def test_the_summary_is_what_rightsize_sees(loaded: Loaded) -> None:
    with loaded.db.connection() as conn:
        want = rightsize.rightsize(conn, WINDOW, sample_rate_card())
        got = pl.concat(
            [run(conn, panel_sql(BOARD, SUMMARY)[0], WINDOW, vm_variables(conn, i)) for i, _ in vms(loaded)],
            how="diagonal_relaxed",
        )
    want = want.with_columns(pl.col("name").alias("vm"))
    columns = {"vcpus": "vcpus", "memory_gb": "memory_gb", "hours_alive": "hours_alive", "coverage_pct": "coverage_pct",
               "cpu_cores_p95": "cpu_cores_pctl", "memory_gb_p95": "memory_gb_pctl", "manager": "manager"}  # fmt: skip
    assert_frames_equal(got, want, ["vm"], columns)
    retired = sum(t.retired is not None for t in truths(loaded).values())
    assert got.filter(pl.col("retired_at").is_not_null()).height == retired > 1  # vm-d and the simulator's


def placements_of(truth: Truth) -> list[tuple[datetime, datetime | None, str]]:
    """(from, to, host) of each placement; the last ends when the VM was deleted (NULL while it lives)."""
    return [
        (start, truth.hosts[i + 1][0] if i + 1 < len(truth.hosts) else truth.retired, host)
        for i, (start, host) in enumerate(truth.hosts)
    ]


@covers((BOARD, HISTORY))
def test_placement_history_is_where_the_source_put_the_vm(loaded: Loaded) -> None:
    truth = truths(loaded)
    moved = 0
    with loaded.db.connection() as conn:
        for vm_id, ref in vms(loaded):
            got = run(conn, panel_sql(BOARD, HISTORY)[0], WINDOW, vm_variables(conn, vm_id))
            rows = [(r["valid_from"], r["valid_to"], r["placed_under"]) for r in got.iter_rows(named=True)]
            assert rows == placements_of(truth[ref]), ref
            assert set(got["parent_kind"]) == {"host"} and set(got["vcpus"]) == {truth[ref].vcpus}
            assert got["cluster"].to_list() == [h.rsplit("-", 1)[0].replace("host", "cluster") if h.startswith(
                "sim") else {"h1": "c1", "h2": "c1", "h3": "c2"}[h] for _, _, h in rows]  # fmt: skip
            moved += len(rows) > 1
    assert moved >= 5  # live migrations are in the data


@covers((BOARD, TIMELINE))
@pytest.mark.parametrize("shift", [timedelta(0), timedelta(hours=13, minutes=30)], ids=["whole", "from mid-day"])
def test_host_over_time_steps_at_each_move_and_ends_at_deletion(loaded: Loaded, shift: timedelta) -> None:
    truth = truths(loaded)
    window = Window(WINDOW.start + shift, WINDOW.end)
    with loaded.db.connection() as conn:
        for vm_id, ref in vms(loaded):
            got = run(conn, panel_sql(BOARD, TIMELINE)[0], window, vm_variables(conn, vm_id))
            want: list[tuple[datetime, str | None]] = [
                (max(start, window.start), host)
                for start, stop, host in placements_of(truth[ref])
                if start < window.end and (stop is None or stop > window.start)
            ]
            retired = truth[ref].retired
            if retired is not None and window.start <= retired < window.end:
                want.append((retired, None))
            assert list(zip(got["time"].to_list(), got["host"].to_list(), strict=True)) == want, ref


@covers(("vm", "var:manager"), ("vm", "var:cluster"), ("vm", "var:host"), ("vm", "var:vm"))
@covers(("capacity", "var:manager"), ("capacity", "var:cluster"), ("chargeback", "var:manager"))
def test_variables_list_managers_clusters_hosts_and_vms(loaded: Loaded) -> None:
    for name, var in (("capacity", "manager"), ("capacity", "cluster"), ("chargeback", "manager")):
        assert variable_sql(name, var) == variable_sql(BOARD, var)  # the other boards' are these, checked here
    with loaded.db.connection() as conn:

        def options(var: str, **chosen: Variable) -> dict[str, str]:
            frame = run(conn, variable_sql(BOARD, var), WINDOW, chosen)
            assert frame.columns == ["__text", "__value"] and frame["__text"].is_unique().all()
            return dict(zip(frame["__text"], frame["__value"], strict=True))

        managers = options("manager")
        assert managers == {"lab": str(loaded.lab_id), "sim": str(loaded.sim_id)}
        lab = choice("manager", [str(loaded.lab_id)])
        clusters = options("cluster", manager=all_managers(conn))
        assert set(clusters) == {"c1", "c2", "sim-cluster-0", "sim-cluster-1"}
        assert set(options("cluster", manager=lab)) == {"c1", "c2"}
        c1 = choice("cluster", [clusters["c1"]])
        hosts = options("host", manager=lab, cluster=c1)
        assert set(hosts) == {"h0", "h1", "h2"}  # a retired host stays choosable: its VMs' history
        h1 = choice("host", [hosts["h1"]])
        assert set(options("vm", manager=lab, cluster=c1, host=h1)) == {"vm-a", "vm-d"}
        every_host = choice("host", ALL_VALUE, ids(conn, "SELECT id FROM resources WHERE kind = 'host'"))
        sim_vms = options("vm", manager=all_managers(conn), cluster=all_clusters(conn), host=every_host)
        assert len(sim_vms) == len(vms(loaded))
        no_hosts = choice("host", ALL_VALUE, [])  # a cluster without hosts (AWS): the list is empty, not an error
        assert options("vm", manager=lab, cluster=c1, host=no_hosts) == {}
        with conn.transaction(force_rollback=True):  # two VMs of one name: Grafana would drop one of the options
            conn.execute(
                "INSERT INTO resources (manager_id, kind, ems_ref, name, parent_id, first_seen, last_seen) "
                "SELECT manager_id, kind, 'vm-a-again', name, parent_id, first_seen, last_seen FROM resources "
                "WHERE ems_ref = 'vm-a'"
            )
            twice = options("vm", manager=lab, cluster=c1, host=h1)
        assert len(twice) == 3 and {t.split(" #")[0] for t in twice} == {"vm-a", "vm-d"}
        assert all(equal(v, v) for v in twice.values())
