"""The OpenStack collector against a real Gnocchi 4.7.1 holding Ceilometer-shaped data (ceilometer_cloud.py).

Every expected value below comes from the scenario's rules (per-interval growth, flavors, hosts), not from the
collector.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from cloudmeter.collectors.openstack import GnocchiCollector, OpenStackConfig
from cloudmeter.collectors.openstack.inventory import Topology, infrastructure, revisions, vm_item
from cloudmeter.collectors.registry import parse_manager_config
from cloudmeter.errors import CollectorError, ConfigError, SourceUnavailable
from cloudmeter.model import METRICS, ResourceRef, SampleBatch, Window
from cloudmeter.scheduler import jobs
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database
from tests import gnocchi_server
from tests.collectors import ceilometer_cloud as cloud
from tests.collectors.ceilometer_cloud import DB, MIGRATED_AT, STEP_S, T0, VMS, WEB, at
from tests.gnocchi_server import GnocchiServer
from tests.loopback import free_port

MIB = 1 << 20
NAN = math.nan


@pytest.fixture(scope="module")
def loaded(gnocchi: GnocchiServer) -> GnocchiServer:
    cloud.load(gnocchi.client, gnocchi.indexer_dsn)
    return gnocchi


def _config(url: str, **extra: object) -> OpenStackConfig:
    raw = {
        "kind": "openstack",
        "auth_mode": "basic",
        "gnocchi_url": url,
        "region": "RegionTest",
        "host_clusters": cloud.HOST_CLUSTERS,
        "flavors": cloud.FLAVORS,
        **extra,
    }
    config = parse_manager_config("os", raw)
    assert isinstance(config, OpenStackConfig)
    return config


@pytest.fixture
def collector(loaded: GnocchiServer) -> GnocchiCollector:
    return GnocchiCollector("os", _config(loaded.url))


# --- expected values, from the scenario's rules -----------------------------------------------------------


def _rate(vm: cloud.VM, k: int, per_interval: float) -> float:
    """A counter's expected rate at reading k: unknown at the first reading, after a gap and at a restart."""
    readings = vm.readings
    if k == readings[0] or k - 1 not in readings or k == vm.reset_at:
        return NAN
    return per_interval / STEP_S


def _device_sum(vm: cloud.VM, k: int, kind: str, which: int) -> float:
    present = [d for d in vm.devices if d.kind == kind and d.first_k <= k]
    if not present:
        return NAN
    total = 0.0
    for device in present:
        if k == device.first_k or k - 1 not in vm.readings:
            return NAN
        total += device.growth[which] / STEP_S
    return total


def expected_row(vm: cloud.VM, k: int) -> dict[str, float]:
    vcpus, memory_mib = vm.allocation_meters or (
        cloud.FLAVORS[vm.flavor]["vcpus"],
        cloud.FLAVORS[vm.flavor]["memory_mib"],
    )
    cores = _rate(vm, k, vm.cores(k) * STEP_S)
    used_mib = vm.memory_mib(k) if vm.memory_mib else NAN
    return {
        "cpu_usage_pct": 100 * cores / vcpus,
        "cpu_used_cores": cores,
        "mem_used_bytes": used_mib * MIB,
        "mem_usage_pct": 100 * used_mib / memory_mib,
        "disk_read_bps": _device_sum(vm, k, "instance_disk", 0),
        "disk_write_bps": _device_sum(vm, k, "instance_disk", 1),
        "net_rx_bps": _device_sum(vm, k, "instance_network_interface", 0),
        "net_tx_bps": _device_sum(vm, k, "instance_network_interface", 1),
    }


def rows(batches: Iterator[SampleBatch]) -> dict[tuple[str, int], dict[str, float]]:
    """(VM name, reading k) -> metric values, from captured batches."""
    names = {vm.id: vm.name for vm in VMS}
    found: dict[tuple[str, int], dict[str, float]] = {}
    for batch in batches:
        assert batch.interval_s == STEP_S
        for i in range(len(batch)):
            ref = batch.refs[batch.resource_idx[i]]
            k, rest = divmod(int(batch.ts_s[i]) - int(T0.timestamp()), STEP_S)
            assert rest == 0
            key = (names[ref.ems_ref], k)
            assert key not in found, f"{key} captured twice"
            found[key] = dict(zip(METRICS, batch.values[i].tolist(), strict=True))
    return found


def assert_rows_equal(actual: dict[tuple[str, int], dict[str, float]], ks: range) -> None:
    wanted = {(vm.name, k): expected_row(vm, k) for vm in VMS for k in vm.readings if k in ks}
    assert sorted(actual) == sorted(wanted)
    for key, values in wanted.items():
        for metric, value in values.items():
            got = actual[key][metric]
            assert (math.isnan(got) and math.isnan(value)) or got == pytest.approx(value, rel=1e-12), (key, metric)


# --- capture ----------------------------------------------------------------------------------------------


def test_capture_gives_exact_rates_gauges_and_nulls(collector: GnocchiCollector) -> None:
    captured = rows(collector.capture(Window(T0, at(24))))

    assert_rows_equal(captured, range(24))
    # spot checks of the rules, by hand
    assert captured[("web-1", 3)]["cpu_used_cores"] == pytest.approx(0.4)
    assert math.isnan(captured[("web-1", 12)]["cpu_used_cores"])  # counter restart: unknown, not negative
    assert captured[("web-1", 13)]["disk_read_bps"] == pytest.approx(10 + 20)  # vda + vdb
    assert captured[("web-1", 13)]["disk_write_bps"] == 5.0  # vdb's writes are a true zero
    assert math.isnan(captured[("db-1", 11)]["cpu_used_cores"])  # the first reading after the gap
    assert captured[("db-1", 12)]["cpu_usage_pct"] == pytest.approx(62.5)  # 2.5 cores of the 4 the flavor has
    assert ("db-1", 8) not in captured  # no reading, no row: never a made-up zero
    assert math.isnan(captured[("batch-1", 5)]["mem_used_bytes"])  # no memory.usage meter
    assert ("batch-1", 18) not in captured  # deleted


def test_incremental_capture_uses_the_reading_before_the_window(collector: GnocchiCollector) -> None:
    first = rows(collector.capture(Window(T0, at(13))))
    second = rows(collector.capture(Window(at(13), at(24))))

    assert not set(first) & set(second)
    assert_rows_equal({**first, **second}, range(24))
    assert second[("web-1", 13)]["cpu_used_cores"] == pytest.approx(0.4)  # from reading 12, before the window


def test_a_window_without_readings_yields_no_rows(collector: GnocchiCollector) -> None:
    assert rows(collector.capture(Window(at(-20), at(-2)))) == {}


def test_batches_hold_whole_vms_and_split_long_windows(loaded: GnocchiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudmeter.collectors.openstack import collector as module

    monkeypatch.setattr(module, "METRICS_PER_REQUEST", 4)  # smaller than one VM's metrics: one VM per request
    monkeypatch.setattr(module, "CHUNK_S", 3600)
    batches = list(GnocchiCollector("os", _config(loaded.url)).capture(Window(T0, at(24))))

    assert len(batches) == 2 * len(VMS)
    assert all(len(b.refs) == 1 for b in batches)
    assert_rows_equal(rows(iter(batches)), range(24))


# --- inventory --------------------------------------------------------------------------------------------


def test_inventory_vms_hosts_clusters_history(collector: GnocchiCollector) -> None:
    inventory = collector.inventory()
    items = {item.ref: item for item in inventory.items}

    web, db, batch = (items[ResourceRef("vm", vm.id)] for vm in VMS)
    assert (web.name, web.vcpus, web.memory_bytes, web.parent) == (
        "web-1",
        1,
        2048 * MIB,
        ResourceRef("host", "compute-1"),
    )
    assert web.project == WEB.project and web.created_at == T0 and web.retired_at is None
    assert web.tags == {"flavor_name": "m1.small", "flavor_id": "id-m1.small"}
    assert (db.vcpus, db.memory_bytes) == (4, 8192 * MIB)  # from the configured flavor
    assert [(p.valid_from, p.parent) for p in db.history] == [
        (T0, ResourceRef("host", "compute-1")),
        (MIGRATED_AT, ResourceRef("host", "compute-2")),
    ]
    assert batch.retired_at == cloud.DELETED_AT
    assert [(p.valid_from, p.parent) for p in batch.history] == [(T0, ResourceRef("host", "compute-2"))]

    region, provider = ResourceRef("region", "RegionTest"), ResourceRef("provider", "os")
    assert items[provider].parent == region
    assert items[ResourceRef("host", "compute-1")].parent == ResourceRef("cluster", "agg-a")  # configured
    assert items[ResourceRef("host", "compute-2")].parent == ResourceRef("cluster", "az-2")  # db-1's zone
    assert items[ResourceRef("cluster", "agg-a")].parent == provider
    assert {ref.kind for ref in items} == {"region", "provider", "cluster", "host", "vm"}
    assert len(items) == 2 + 2 + 2 + 3


def test_zones_place_hosts_when_no_cluster_is_configured(loaded: GnocchiServer) -> None:
    inventory = GnocchiCollector("os", _config(loaded.url, host_clusters={})).inventory()
    parents = {item.ref: item.parent for item in inventory.items}

    # db-1 (zone az-2) ran on both hosts
    assert parents[ResourceRef("host", "compute-1")] == ResourceRef("cluster", "az-2")
    assert parents[ResourceRef("host", "compute-2")] == ResourceRef("cluster", "az-2")


def test_a_host_without_cluster_or_zone_sits_under_the_provider() -> None:
    revision = {"id": "vm-1", "started_at": T0.isoformat(), "revision_start": T0.isoformat(), "host": "lonely"}
    vm = vm_item(revisions([revision], [])["vm-1"], {})
    topology = Topology(ResourceRef("provider", "os"), ResourceRef("region", "r"), {})

    parents = {item.ref: item.parent for item in infrastructure([vm], [revision], topology)}

    assert parents == {
        ResourceRef("region", "r"): None,
        ResourceRef("provider", "os"): ResourceRef("region", "r"),
        ResourceRef("host", "lonely"): ResourceRef("provider", "os"),
    }
    assert (vm.vcpus, vm.memory_bytes, vm.name) == (None, None, "vm-1")  # no meter, no flavor: unknown


def test_refresh_and_capture_into_the_database(collector: GnocchiCollector, db: Database) -> None:
    with db.connection() as conn:
        manager_id = managers.register_manager(conn, "os", "openstack", collector.config.public_fields())
    jobs.refresh_inventory(db, manager_id, collector)
    result = jobs.capture(db, manager_id, collector, Window(T0, at(24)))

    assert result.rows == sum(len(vm.readings) for vm in VMS)
    with db.connection() as conn:
        history = conn.execute(
            """SELECT h.valid_from, h.valid_to, p.ems_ref FROM resource_history h
               JOIN resources r ON r.id = h.resource_id JOIN resources p ON p.id = h.parent_id
               WHERE r.ems_ref = %s ORDER BY h.valid_from""",
            (DB.id,),
        ).fetchall()
        cores = conn.execute(
            """SELECT h.ts, h.cpu_used_cores_avg, h.sample_count FROM metric_hourly h
               JOIN resources r ON r.id = h.resource_id WHERE r.kind = 'host' AND r.ems_ref = 'compute-2'
               ORDER BY h.ts""",
        ).fetchall()
        null_zero = conn.execute(
            """SELECT count(*) FILTER (WHERE s.cpu_used_cores IS NULL), count(*) FILTER (WHERE s.cpu_used_cores = 0)
               FROM metric_samples s JOIN resources r ON r.id = s.resource_id WHERE r.ems_ref = %s""",
            (WEB.id,),
        ).fetchone()
    assert history == [(T0, MIGRATED_AT, "compute-1"), (MIGRATED_AT, None, "compute-2")]
    # compute-2 hosts batch-1 (1 core, until 90 min) and, from T0 + 1 h, db-1 (2.5 cores): in hour 1 six
    # readings sum both and six only db-1
    assert [ts for ts, _, _ in cores] == [T0, T0 + timedelta(hours=1)]
    assert cores[0][1] == pytest.approx(1.0)
    assert cores[1][1] == pytest.approx((6 * 3.5 + 6 * 2.5) / 12)
    assert null_zero == (2, 0)  # web-1's first reading and restart are NULL, nothing is a made-up 0


# --- verify and configuration -----------------------------------------------------------------------------


def test_verify_accepts_a_working_endpoint(collector: GnocchiCollector) -> None:
    collector.verify()


def test_verify_says_unreachable() -> None:
    dead = GnocchiCollector("os", _config(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(SourceUnavailable, match=r"manager 'os': Gnocchi at http://127.0.0.1:\d+ is unreachable"):
        dead.verify()


def test_verify_says_when_ceilometer_does_not_publish_there(pg_server: str, tmp_path: Path) -> None:
    with (
        gnocchi_server.running(tmp_path / "bare", pg_server, ceilometer=False) as bare,
        pytest.raises(CollectorError, match=r"has no 'instance' resource type, so Ceilometer does not publish"),
    ):
        GnocchiCollector("os", _config(bare.url)).verify()


def test_config_errors_name_the_fix() -> None:
    with pytest.raises(ConfigError, match="auth_mode 'basic' needs gnocchi_url"):
        parse_manager_config("os", {"kind": "openstack", "auth_mode": "basic"})
    with pytest.raises(ConfigError, match="auth_mode 'keystone' needs auth_url, password, project_name"):
        parse_manager_config("os", {"kind": "openstack"})
    with pytest.raises(ConfigError, match=r"flavors\.m1\.tiny\.vcpus"):
        parse_manager_config(
            "os",
            {
                "kind": "openstack",
                "auth_mode": "basic",
                "gnocchi_url": "http://x",
                "flavors": {"m1.tiny": {"vcpus": 0, "memory_mib": 1}},
            },
        )


def test_counter_rates_match_a_plain_reference() -> None:
    from cloudmeter.collectors.counters import counter_rates

    ts = np.array([0, 300, 600, 900, 2700, 3000, 0, 300, 600], dtype=np.int64)
    values = np.array([10.0, 310, 20, 320, 620, 920, 5, np.nan, 605])
    starts = np.array([0, 6, 9], dtype=np.int64)

    rates = counter_rates(starts, ts, values, 600)

    # by hand: first reading, +300/300 s, restart, +300/300 s, gap of 1800 s > 600, +300/300 s; next series:
    # first, NaN reading, after a NaN reading
    expected = [NAN, 1.0, NAN, 1.0, NAN, 1.0, NAN, NAN, NAN]
    assert np.array_equal(rates, np.array(expected), equal_nan=True)


def test_cli_managers_verify(loaded: GnocchiServer, tmp_path: Path) -> None:
    from tests.cli.test_cli import run

    config = tmp_path / "c.toml"
    config.write_text(
        f"""[managers.good]
kind = "openstack"
auth_mode = "basic"
gnocchi_url = "{loaded.url}"
password = "env:GNOCCHI_PASSWORD"

[managers.dead]
kind = "openstack"
auth_mode = "basic"
gnocchi_url = "http://127.0.0.1:{free_port()}"
"""
    )
    env = {"CLOUDMETER_CONFIG": str(config), "GNOCCHI_PASSWORD": "hunter2"}

    each = run("managers", "verify", "--json", env=env, data_dir=tmp_path)
    one = run("managers", "verify", "good", env=env, data_dir=tmp_path)
    unknown = run("managers", "verify", "nope", env=env, data_dir=tmp_path)

    assert each.returncode == 1, each.stderr
    results = {row["name"]: row["result"] for row in json.loads(each.stdout)}
    assert results["good"] == "ok"
    assert results["dead"].startswith("SourceUnavailable: manager 'dead': Gnocchi at http://127.0.0.1:")
    assert "is unreachable" in results["dead"]
    assert one.returncode == 0 and "ok" in one.stdout
    assert unknown.returncode == 2 and "manager 'nope' is not configured (configured: dead, good)" in unknown.stderr
    assert "add [managers.nope] or `managers add`" in " ".join(unknown.stderr.split())  # not eaten as markup
    assert "hunter2" not in each.stdout + each.stderr + one.stdout


@pytest.mark.parametrize(
    ("header", "wanted"),
    [("40", 40.0), ("in a while", 60.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 1.0), ("HTTP-DATE+120", 120.0)],
)
def test_retry_after_in_seconds_or_as_an_http_date(header: str, wanted: float) -> None:
    from email.utils import format_datetime

    from cloudmeter.collectors.openstack.api import raise_for_status
    from cloudmeter.errors import Throttled

    when = datetime.now(UTC) + timedelta(seconds=120)
    value = format_datetime(when, usegmt=True) if header == "HTTP-DATE+120" else header
    response = httpx.Response(429, headers={"Retry-After": value}, request=httpx.Request("GET", "http://g/v1"))

    with pytest.raises(Throttled) as caught:
        raise_for_status("os", response, "Gnocchi GET /v1")

    assert caught.value.retry_after == pytest.approx(wanted, abs=1.5)  # the date is read a moment later


def test_a_nova_fault_body_is_relayed_by_its_message() -> None:
    from cloudmeter.collectors.openstack.api import raise_for_status
    from cloudmeter.errors import BadPayload

    # Nova's fault shape (api-ref "Faults"): the fault's name, then code and message
    body = {"badRequest": {"code": 400, "message": "Invalid input for field/attribute limit."}}
    response = httpx.Response(400, json=body, request=httpx.Request("GET", "http://nova/v2.1/flavors/detail"))

    with pytest.raises(BadPayload) as caught:
        raise_for_status("os", response, "Nova GET /flavors/detail")

    assert str(caught.value) == (
        "manager 'os': Nova GET /flavors/detail was rejected (400 Invalid input for field/attribute limit.)"
    )
