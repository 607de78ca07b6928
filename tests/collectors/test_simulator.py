"""The simulated cloud: determinism, lifecycle, topology, sample invariants and failure modes."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cloudmeter.collectors import registry
from cloudmeter.collectors.base import Collector
from cloudmeter.collectors.simulator import SimulatorCollector, SimulatorConfig
from cloudmeter.errors import CollectorAuthError, ConfigError, SourceUnavailable
from cloudmeter.model import METRICS, InventoryItem, SampleBatch, Window, epoch_s

START = datetime(2026, 1, 1, tzinfo=UTC)
GIB = 1 << 30
COLUMN = {metric: i for i, metric in enumerate(METRICS)}


def simulator(at: datetime | None = None, **fields: Any) -> SimulatorCollector:
    """A simulator named "sim" whose clock stands at ``at`` (default: long after its horizon)."""
    moment = at or START + timedelta(days=400)
    return SimulatorCollector("sim", SimulatorConfig(**fields), clock=lambda: moment)


def window(start_s: int, end_s: int) -> Window:
    return Window(datetime.fromtimestamp(start_s, UTC), datetime.fromtimestamp(end_s, UTC))


Table = tuple[npt.NDArray[np.str_], npt.NDArray[np.int64], npt.NDArray[np.float64]]


def table(batches: Iterable[SampleBatch]) -> Table:
    """All rows as (VM ems_ref, ts, values), sorted by (ems_ref, ts)."""
    parts = [(np.array([r.ems_ref for r in b.refs])[b.resource_idx], b.ts_s, b.values) for b in batches]
    if not parts:
        return np.array([], str), np.array([], np.int64), np.empty((0, len(METRICS)))
    names, ts, values = (np.concatenate(column) for column in zip(*parts, strict=True))
    order = np.lexsort((ts, names))
    return names[order], ts[order], values[order]


def vms(collector: SimulatorCollector) -> dict[str, InventoryItem]:
    return {item.ref.ems_ref: item for item in collector.inventory().items if item.ref.kind == "vm"}


def born(item: InventoryItem) -> datetime:
    assert item.created_at is not None
    return item.created_at


def horizon(collector: SimulatorCollector) -> Window:
    return Window(START, START + timedelta(days=collector.config.horizon_days))


# ---- determinism -----------------------------------------------------------------------------------------


def test_same_seed_gives_identical_world_and_samples() -> None:
    first, second = simulator(vms=50, horizon_days=2), simulator(vms=50, horizon_days=2)
    assert first.inventory() == second.inventory()
    for a, b in zip(table(first.capture(horizon(first))), table(second.capture(horizon(second))), strict=True):
        np.testing.assert_array_equal(a, b)


def test_another_seed_gives_another_world() -> None:
    a, b = simulator(vms=50, seed=1), simulator(vms=50, seed=2)
    assert a.inventory() != b.inventory()
    day = Window(START, START + timedelta(days=1))
    assert not np.array_equal(table(a.capture(day))[2], table(b.capture(day))[2], equal_nan=True)


def test_samples_do_not_depend_on_the_clock() -> None:
    early, late = simulator(at=START - timedelta(days=5), vms=30), simulator(vms=30)
    day = Window(START, START + timedelta(days=1))
    for a, b in zip(table(early.capture(day)), table(late.capture(day)), strict=True):
        np.testing.assert_array_equal(a, b)


SPLIT_SIM = simulator(vms=20, horizon_days=1)
SPLIT_WINDOW = (epoch_s(START) - 1800, epoch_s(START) + 6 * 3600 + 17)
WHOLE = table(SPLIT_SIM.capture(window(*SPLIT_WINDOW)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(SPLIT_WINDOW[0] + 1, SPLIT_WINDOW[1] - 1), max_size=6, unique=True))
def test_any_split_of_a_window_yields_the_same_samples(cuts: list[int]) -> None:
    edges = [SPLIT_WINDOW[0], *sorted(cuts), SPLIT_WINDOW[1]]
    parts = [batch for a, b in itertools.pairwise(edges) for batch in SPLIT_SIM.capture(window(a, b))]
    for got, want in zip(table(parts), WHOLE, strict=True):
        np.testing.assert_array_equal(got, want)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 5000))
def test_batch_size_changes_batching_only(batch_rows: int) -> None:
    small = SimulatorCollector("sim", SPLIT_SIM.config, batch_rows=batch_rows)
    batches = list(small.capture(window(*SPLIT_WINDOW)))
    assert all(0 < len(b) <= batch_rows for b in batches)
    for got, want in zip(table(batches), WHOLE, strict=True):
        np.testing.assert_array_equal(got, want)


# ---- batches and samples ---------------------------------------------------------------------------------


def test_batches_are_well_formed() -> None:
    sim = simulator(vms=30, interval_s=300, horizon_days=2)
    batches = list(SimulatorCollector("sim", sim.config, batch_rows=2000).capture(horizon(sim)))
    assert len(batches) > 1
    for b in batches:
        assert b.interval_s == 300
        assert [str(a.dtype) for a in (b.resource_idx, b.ts_s, b.values)] == ["int32", "int64", "float64"]
        assert all(a.flags.c_contiguous for a in (b.resource_idx, b.ts_s, b.values))
        assert len({r.ems_ref for r in b.refs}) == len(b.refs)
        key = b.resource_idx.astype(np.int64) * 2**40 + b.ts_s
        assert np.all(np.diff(key) > 0), "rows not strictly sorted by (resource, ts)"


def test_samples_lie_on_the_grid_inside_window_and_lifetime() -> None:
    sim = simulator(vms=80, horizon_days=3)
    lo, hi = epoch_s(START) + 45, epoch_s(START) + 3 * 86400 - 30  # not grid-aligned on purpose
    names, ts, _ = table(sim.capture(window(lo, hi)))
    partial = 0
    for name, item in vms(sim).items():
        first = max(epoch_s(born(item)), lo)
        last = min(epoch_s(item.retired_at) if item.retired_at else hi, hi)
        slots = set(range(-(-first // 60) * 60, last, 60))
        got = ts[names == name].tolist()
        assert len(set(got)) == len(got) and set(got) <= slots
        assert len(got) >= 0.9 * len(slots) - 61  # gaps are rare and short
        partial += first > lo or last < hi
    assert partial >= 5, "no VM is created or deleted inside the window"


def test_start_off_the_grid_still_samples_on_the_grid() -> None:
    start = START + timedelta(seconds=30)
    sim = simulator(vms=30, interval_s=300, start=start, horizon_days=1)
    _, ts, _ = table(sim.capture(Window(START, START + timedelta(days=1))))
    assert np.all(ts % 300 == 0) and ts.min() == epoch_s(START) + 300
    assert {born(i) for i in vms(sim).values()} >= {start}


def test_a_cloud_without_vms_has_infrastructure_and_no_samples() -> None:
    sim = simulator(vms=0)
    assert [i.ref.kind for i in sim.inventory().items] == ["region", "provider"] + ["cluster"] * 2 + ["host"] * 8
    assert list(sim.capture(horizon(sim))) == []


def test_window_before_the_cloud_existed_is_empty() -> None:
    sim = simulator()
    assert list(sim.capture(Window(START - timedelta(days=2), START))) == []


def test_end_of_window_is_exclusive() -> None:
    sim = simulator(vms=40)
    _, ts, _ = table(sim.capture(Window(START + timedelta(hours=5), START + timedelta(hours=5, minutes=1))))
    assert set(ts.tolist()) == {epoch_s(START + timedelta(hours=5))}


def test_derived_metrics_are_consistent_with_inventory() -> None:
    sim = simulator(vms=200, horizon_days=1)
    items = vms(sim)
    names, _, values = table(sim.capture(horizon(sim)))
    vcpus = np.array([items[n].vcpus for n in names], np.float64)
    memory = np.array([items[n].memory_bytes for n in names], np.float64)
    cpu, cores = values[:, COLUMN["cpu_usage_pct"]], values[:, COLUMN["cpu_used_cores"]]
    used, mem_pct = values[:, COLUMN["mem_used_bytes"]], values[:, COLUMN["mem_usage_pct"]]
    np.testing.assert_array_equal(cores, cpu / 100 * vcpus)
    assert np.all((cpu >= 0) & (cpu <= 100))
    measured = ~np.isnan(used)
    np.testing.assert_array_equal(np.isnan(mem_pct), ~measured)
    np.testing.assert_array_equal(mem_pct[measured], used[measured] / memory[measured] * 100)
    assert np.all((used[measured] > 0) & (used[measured] <= memory[measured]))
    rates = values[:, [COLUMN[m] for m in ("disk_read_bps", "disk_write_bps", "net_rx_bps", "net_tx_bps")]]
    assert np.all(np.isfinite(rates) & (rates >= 0))


def per_vm(names: npt.NDArray[np.str_], values: npt.NDArray[np.float64]) -> tuple[Any, Any]:
    """Per VM: the number of rows and the sum of ``values``."""
    _, inverse = np.unique(names, return_inverse=True)
    return np.bincount(inverse), np.bincount(inverse, values)


def test_some_vms_have_no_memory_agent_and_are_all_nan() -> None:
    sim = simulator(vms=400, horizon_days=1, interval_s=300)
    names, _, values = table(sim.capture(horizon(sim)))
    rows, nan = per_vm(names, np.isnan(values[:, COLUMN["mem_used_bytes"]]))
    assert np.all((nan == 0) | (nan == rows)), "a VM mixes measured and missing memory"
    assert 0.02 * len(rows) <= np.count_nonzero(nan) <= 0.09 * len(rows)


def test_load_profiles_have_idle_and_busy_vms() -> None:
    sim = simulator(vms=400, horizon_days=1, interval_s=300)
    names, _, values = table(sim.capture(horizon(sim)))
    rows, cpu = per_vm(names, values[:, COLUMN["cpu_usage_pct"]])
    means = cpu / rows
    assert 0.05 <= np.mean(means < 5) <= 0.16
    assert 0.09 <= np.mean(means > 60) <= 0.22


def test_cpu_follows_the_time_of_day() -> None:
    sim = simulator(vms=100, horizon_days=1)
    names, ts, values = table(sim.capture(horizon(sim)))
    cpu = values[:, COLUMN["cpu_usage_pct"]]
    swings = []
    for name in np.unique(names):
        hourly = np.bincount((ts[names == name] % 86400) // 3600, cpu[names == name], minlength=24)
        counts = np.bincount((ts[names == name] % 86400) // 3600, minlength=24)
        if counts.min() > 0:
            swings.append(np.ptp(hourly / counts))
    assert np.median(swings) > 10  # points: normal VMs swing 10-40 points over a day


def test_gaps_exist_are_runs_of_5_to_30_minutes_and_are_stable() -> None:
    sim = simulator(vms=100, horizon_days=2)
    whole = horizon(sim)
    names, ts, _ = table(sim.capture(whole))
    runs: list[int] = []
    for name in np.unique(names):
        steps = np.diff(ts[names == name]) // 60 - 1
        runs.extend(steps[steps > 0].tolist())
    assert len(runs) > 10
    assert min(runs) >= 5 and max(runs) <= 61  # one gap, or two overlapping ones
    assert 0.001 < sum(runs) / (len(names) + sum(runs)) < 0.02
    again = table(simulator(vms=100, horizon_days=2).capture(whole))
    np.testing.assert_array_equal(again[1], ts)


# ---- inventory -------------------------------------------------------------------------------------------


def test_topology() -> None:
    sim = simulator(vms=60, clusters=3, hosts_per_cluster=2, region="r1")
    items = {item.ref: item for item in sim.inventory().items}
    by_kind = {kind: [i for i in items.values() if i.ref.kind == kind] for kind in ("region", "provider")}
    assert [i.ref.ems_ref for i in by_kind["region"]] == ["r1"]
    assert [(i.ref.ems_ref, i.parent) for i in by_kind["provider"]] == [("sim", by_kind["region"][0].ref)]
    clusters = {i.ref.ems_ref: i for i in items.values() if i.ref.kind == "cluster"}
    hosts = {i.ref.ems_ref: i for i in items.values() if i.ref.kind == "host"}
    assert sorted(clusters) == ["sim-cluster-0", "sim-cluster-1", "sim-cluster-2"]
    assert sorted(hosts) == [f"sim-host-{c}-{h}" for c in range(3) for h in range(2)]
    assert all(c.parent == by_kind["provider"][0].ref for c in clusters.values())
    for ref, host in hosts.items():
        assert host.parent is not None and host.parent.ems_ref == f"sim-cluster-{ref.split('-')[2]}"
        assert (host.vcpus, host.memory_bytes) == (32, 128 * GIB)


def test_vm_attributes() -> None:
    flavors = {"m1.small": (1, 2), "m1.medium": (2, 4), "m1.large": (4, 8), "m1.xlarge": (8, 16)}
    items = vms(simulator(vms=200))
    assert sorted(items) == [f"sim-vm-{k:05d}" for k in range(200)]
    for item in items.values():
        assert set(item.tags) == {"flavor", "env", "team"} and item.tags["env"] in {"prod", "dev"}
        assert (item.vcpus, item.memory_bytes) == tuple(
            n * f for n, f in zip(flavors[item.tags["flavor"]], (1, GIB), strict=True)
        )
        assert item.disk_bytes is not None and 20 * GIB <= item.disk_bytes <= 160 * GIB
        assert item.project in {f"project-{x}" for x in "abcde"}
        assert item.parent is not None and item.parent.kind == "host" and item.name
    assert len({i.tags["flavor"] for i in items.values()}) == 4
    assert len({i.project for i in items.values()}) == 5


def test_lifecycle_shares_and_grid_alignment() -> None:
    items = list(vms(simulator(vms=500)).values())
    end = START + timedelta(days=30)
    late = [born(i) for i in items if born(i) != START]
    deleted = [(born(i), i.retired_at) for i in items if i.retired_at is not None]
    assert 0.14 <= len(late) / len(items) <= 0.26
    assert 0.06 <= len(deleted) / len(items) <= 0.14
    assert all(START < created < end and epoch_s(created) % 60 == 0 for created in late)
    assert all(created < retired < end for created, retired in deleted)


def test_migrations_stay_in_the_cluster_and_are_chronological() -> None:
    items = list(vms(simulator(vms=300)).values())
    migrated = [i for i in items if len(i.history) > 1]
    assert 0.2 <= len(migrated) / len(items) <= 0.4
    assert {len(i.history) for i in migrated} == {2, 3}
    for item in items:
        times = [p.valid_from for p in item.history]
        hosts = [p.parent.ems_ref for p in item.history if p.parent and p.parent.kind == "host"]
        assert len(hosts) == len(item.history)
        assert times[0] == item.created_at and times == sorted(set(times))
        assert item.retired_at is None or times[-1] < item.retired_at
        assert len({h.rsplit("-", 1)[0] for h in hosts}) == 1, "migrated across clusters"
        assert all(a != b for a, b in itertools.pairwise(hosts))
        assert item.parent == item.history[-1].parent
        assert {(p.vcpus, p.memory_bytes, p.project) for p in item.history} == {
            (item.vcpus, item.memory_bytes, item.project)
        }


def test_single_host_clusters_never_migrate() -> None:
    assert all(len(i.history) == 1 for i in vms(simulator(vms=100, hosts_per_cluster=1)).values())


def test_inventory_shows_only_the_past() -> None:
    final = vms(simulator(vms=200))
    twice = next(i for i in final.values() if len(i.history) == 3)
    first_move, second_move = twice.history[1].valid_from, twice.history[2].valid_from
    for moment in (first_move, first_move + (second_move - first_move) / 2, second_move - timedelta(seconds=1)):
        between = vms(simulator(at=moment, vms=200))[twice.ref.ems_ref]
        assert between.history == twice.history[:2] and between.parent == twice.history[1].parent
    assert vms(simulator(at=second_move, vms=200))[twice.ref.ems_ref].history == twice.history
    assert len(vms(simulator(at=first_move - timedelta(seconds=1), vms=200))[twice.ref.ems_ref].history) == 1

    late = next(i for i in final.values() if born(i) != START)
    assert late.ref.ems_ref not in vms(simulator(at=born(late) - timedelta(seconds=1), vms=200))
    assert late.ref.ems_ref in vms(simulator(at=born(late), vms=200))

    gone, retired = next((i, i.retired_at) for i in final.values() if i.retired_at is not None)
    assert vms(simulator(at=retired - timedelta(seconds=1), vms=200))[gone.ref.ems_ref].retired_at is None
    assert vms(simulator(at=retired, vms=200))[gone.ref.ems_ref].retired_at == retired


def test_nothing_exists_before_start() -> None:
    moment = START - timedelta(seconds=1)
    inventory = simulator(at=moment).inventory()
    assert inventory.items == () and inventory.observed_at == moment


def test_inventory_at_start_lists_infrastructure_and_initial_vms() -> None:
    items = simulator(at=START, vms=100, clusters=2, hosts_per_cluster=3).inventory().items
    kinds = [i.ref.kind for i in items]
    assert (kinds.count("region"), kinds.count("provider"), kinds.count("cluster"), kinds.count("host")) == (
        1,
        1,
        2,
        6,
    )
    assert 70 <= kinds.count("vm") <= 90
    assert all(i.created_at == START for i in items)


# ---- configuration, failures, registry -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"interval_s": 7}, "interval_s"),
        ({"start": datetime(2026, 1, 1)}, "start"),  # naive on purpose
        ({"vms": -1}, "vms"),
        ({"clusters": 0}, "clusters"),
        ({"seed": -3}, "seed"),
        ({"fail": "sometimes"}, "fail"),
    ],
)
def test_bad_config_names_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SimulatorConfig(**fields)
    assert [err["loc"] for err in caught.value.errors()] == [(field,)]


def test_interval_error_says_what_is_allowed() -> None:
    with pytest.raises(ValidationError, match="must divide 3600"):
        SimulatorConfig(interval_s=7)


def test_start_is_kept_in_utc() -> None:
    config = SimulatorConfig(start=datetime(2026, 3, 1, 1, tzinfo=timezone(timedelta(hours=1))))
    assert config.start == datetime(2026, 3, 1, tzinfo=UTC) and config.start.utcoffset() == timedelta(0)


@pytest.mark.parametrize(("mode", "error"), [("auth", CollectorAuthError), ("unavailable", SourceUnavailable)])
def test_failing_manager_fails_every_call(mode: str, error: type[Exception]) -> None:
    sim = simulator(fail=mode)
    for call in (sim.verify, sim.inventory, lambda: sim.capture(horizon(sim))):
        with pytest.raises(error, match=f"'sim'.*{mode}") as caught:
            call()
        assert isinstance(caught.value, CollectorAuthError) == (mode == "auth")


def test_healthy_manager_verifies() -> None:
    simulator().verify()


def test_is_a_collector_found_through_the_registry() -> None:
    assert isinstance(simulator(), Collector)
    assert registry.collector_class("simulator") is SimulatorCollector
    config = registry.parse_manager_config("lab", {"kind": "simulator", "vms": 3})
    built = registry.build_collector("lab", config)
    assert isinstance(built, SimulatorCollector) and built.name == "lab"
    assert {i.ref.ems_ref for i in built.inventory().items if i.ref.kind == "vm"} <= {
        f"lab-vm-{k:05d}" for k in range(3)
    }


def test_registry_reports_bad_simulator_config() -> None:
    with pytest.raises(ConfigError, match="interval_s"):
        registry.parse_manager_config("lab", {"kind": "simulator", "interval_s": 7})
