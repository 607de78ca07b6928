"""The OpenStack collector against a Gnocchi set up the way operators run it: Ceilometer's ``ceilometer-high``
policies (1 s for an hour, 1 min for a day, 1 h for a year) beside ``ceilometer-low`` (5 min), VMs on either,
polled every 300 s at 17 s past the poll's minute, and a manager config of three lines.

Scenario (its own Gnocchi; every expected value from the rules below, never from the collector):

- ``hi`` (ceilometer-high[-rate]) on cn-1: 2 vCPUs, 4096 MiB; busy cores ``0.25 * (k % 4 + 1)`` over the poll
  interval ending at reading k; memory.usage ``1000 + k`` MiB.
- ``lo`` (ceilometer-low[-rate]) on cn-2: 1 vCPU, 2048 MiB; 0.5 cores; 2000 MiB used.
- ``resized`` (ceilometer-high) on cn-1: 1 vCPU / 1024 MiB until T0 + 1 h, then 2 / 2048 (a new flavor);
  0.5 cores; 512 MiB used.
- ``gone`` (ceilometer-high) on cn-1: 4 vCPUs / 8192 MiB, alive two hours four days ago, then deleted.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from cloudmeter.collectors.openstack import GnocchiCollector, OpenStackConfig
from cloudmeter.collectors.registry import parse_manager_config
from cloudmeter.errors import ConfigError
from cloudmeter.model import METRICS, ResourceRef, SampleBatch, Window
from tests import gnocchi_server
from tests.gnocchi_server import GnocchiServer
from tests.loopback import ServerFailed

MIB = 1 << 20
STEP_S = 300
JITTER_S = 17
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
RESIZED_AT = T0 + timedelta(hours=1)
GONE_START = T0 - timedelta(days=4)
GONE_END = GONE_START + timedelta(hours=2)
K = range(24)
HIGH = [
    {"granularity": "1 second", "timespan": "1 hour"},
    {"granularity": "1 minute", "timespan": "1 day"},
    {"granularity": "1 hour", "timespan": "365 days"},
]
HIGH_POLICIES = (
    {"name": "ceilometer-high", "aggregation_methods": ["mean"], "back_window": 0, "definition": HIGH},
    {
        "name": "ceilometer-high-rate",
        "aggregation_methods": ["mean", "rate:mean"],
        "back_window": 0,
        "definition": HIGH,
    },
)


@dataclass(frozen=True)
class VM:
    name: str
    policy: str  # the gauges'; counters are on policy + "-rate"
    host: str
    start: datetime
    cores: Callable[[int], float]
    used_mib: Callable[[int], float]
    allocation: Callable[[int], tuple[int, int]]  # vcpus and memory MiB at reading k
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def polled(self, k: int) -> datetime:
        return self.start + timedelta(seconds=STEP_S * k + JITTER_S)


HI = VM("hi", "ceilometer-high", "cn-1", T0, lambda k: 0.25 * (k % 4 + 1), lambda k: 1000 + k, lambda k: (2, 4096))
LO = VM("lo", "ceilometer-low", "cn-2", T0, lambda k: 0.5, lambda k: 2000, lambda k: (1, 2048))
RESIZED = VM(
    "resized", "ceilometer-high", "cn-1", T0, lambda k: 0.5, lambda k: 512, lambda k: (1, 1024) if k < 12 else (2, 2048)
)
GONE = VM("gone", "ceilometer-high", "cn-1", GONE_START, lambda k: 1.0, lambda k: 4000, lambda k: (4, 8192))
VMS = (HI, LO, RESIZED, GONE)


def _flavor(vm: VM, k: int) -> dict[str, str]:
    vcpus, memory = vm.allocation(k)
    return {"flavor_id": f"f-{vcpus}-{memory}", "flavor_name": f"c{vcpus}.m{memory}"}


def load(client: httpx.Client, indexer_dsn: str) -> None:
    """Create the policies, the instances and their measures; then date the revisions (Gnocchi stamps them with
    its own clock)."""
    for policy in HIGH_POLICIES:
        client.post("/v1/archive_policy", json=policy).raise_for_status()
    measures: dict[str, dict[str, list[dict[str, object]]]] = {}
    for vm in VMS:
        rate, gauge = {"archive_policy_name": f"{vm.policy}-rate"}, {"archive_policy_name": vm.policy}
        client.post(
            "/v1/resource/instance",
            json={
                "id": vm.id,
                "display_name": vm.name,
                "host": vm.host,
                "started_at": vm.start.isoformat(),
                "metrics": {"cpu": rate, "memory.usage": gauge, "vcpus": gauge, "memory": gauge},
                **_flavor(vm, 0),
            },
        ).raise_for_status()
        counter = 5e12
        series: dict[str, list[dict[str, object]]] = {"cpu": [], "memory.usage": [], "vcpus": [], "memory": []}
        for k in K:
            counter += vm.cores(k) * STEP_S * 1e9
            moment = vm.polled(k).isoformat()
            vcpus, memory = vm.allocation(k)
            for name, value in (
                ("cpu", counter),
                ("memory.usage", vm.used_mib(k)),
                ("vcpus", vcpus),
                ("memory", memory),
            ):
                series[name].append({"timestamp": moment, "value": value})
        measures[vm.id] = series
    client.post("/v1/batch/resources/metrics/measures", json=measures).raise_for_status()
    for resource in client.post("/v1/search/resource/generic", json={}).json():
        for metric_id in resource["metrics"].values():
            client.get(f"/v1/metric/{metric_id}/measures", params={"refresh": "true"}).raise_for_status()
    client.patch(f"/v1/resource/instance/{RESIZED.id}", json=_flavor(RESIZED, 12)).raise_for_status()
    client.patch(f"/v1/resource/instance/{GONE.id}", json={"ended_at": GONE_END.isoformat()}).raise_for_status()
    naive = {"resized": RESIZED_AT.replace(tzinfo=None), "gone": GONE_END.replace(tzinfo=None)}
    with psycopg.connect(indexer_dsn) as conn:
        conn.execute("UPDATE resource SET revision_start = started_at")
        conn.execute("UPDATE resource_history SET revision_start = started_at")
        for vm, when in ((RESIZED, "resized"), (GONE, "gone")):
            conn.execute(f"UPDATE resource SET revision_start = %({when})s WHERE id = %(id)s", {**naive, "id": vm.id})
            conn.execute(
                f"UPDATE resource_history SET revision_end = %({when})s WHERE id = %(id)s", {**naive, "id": vm.id}
            )


@pytest.fixture(scope="module")
def gnocchi(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GnocchiServer]:
    try:
        with gnocchi_server.running(tmp_path_factory.mktemp("gnocchi-high"), pg_server) as server:
            load(server.client, server.indexer_dsn)
            yield server
    except ServerFailed as exc:
        pytest.fail(str(exc))


def minimal(url: str, **extra: object) -> OpenStackConfig:
    """What a user writes: the kind, basic auth, the URL."""
    config = parse_manager_config("os", {"kind": "openstack", "auth_mode": "basic", "gnocchi_url": url, **extra})
    assert isinstance(config, OpenStackConfig)
    return config


def expected(vm: VM, k: int) -> dict[str, float]:
    vcpus, memory = vm.allocation(k)
    cores = math.nan if k == 0 else vm.cores(k)  # the first reading has no predecessor
    return {
        "cpu_usage_pct": 100 * cores / vcpus,
        "cpu_used_cores": cores,
        "mem_used_bytes": vm.used_mib(k) * MIB,
        "mem_usage_pct": 100 * vm.used_mib(k) / memory,
        **{name: math.nan for name in ("disk_read_bps", "disk_write_bps", "net_rx_bps", "net_tx_bps")},
    }


def rows(batches: Iterator[SampleBatch]) -> dict[tuple[str, int], dict[str, float]]:
    names = {vm.id: vm.name for vm in VMS}
    found: dict[tuple[str, int], dict[str, float]] = {}
    for batch in batches:
        assert batch.interval_s == STEP_S  # the polling interval the readings show, not a granularity
        for i in range(len(batch)):
            k, rest = divmod(int(batch.ts_s[i]) - int(T0.timestamp()), STEP_S)
            assert rest == 0  # the poll's bucket: 60 s on ceilometer-high, 300 s on ceilometer-low
            key = (names[batch.refs[batch.resource_idx[i]].ems_ref], k)
            assert key not in found
            found[key] = dict(zip(METRICS, batch.values[i].tolist(), strict=True))
    return found


def test_a_minimal_config_captures_vms_on_either_policy_exactly(gnocchi: GnocchiServer) -> None:
    captured = rows(GnocchiCollector("os", minimal(gnocchi.url)).capture(Window(T0, T0 + timedelta(hours=2))))

    wanted = {(vm.name, k): expected(vm, k) for vm in (HI, LO, RESIZED) for k in K}
    assert sorted(captured) == sorted(wanted)
    for key, values in wanted.items():
        for metric, value in values.items():
            got = captured[key][metric]
            assert (math.isnan(got) and math.isnan(value)) or got == pytest.approx(value, rel=1e-12), (key, metric)
    assert captured[("resized", 11)]["cpu_usage_pct"] == 50.0  # 0.5 of 1 vCPU before the resize
    assert captured[("resized", 12)]["cpu_usage_pct"] == 25.0  # 0.5 of 2 after it


def test_a_configured_granularity_the_policy_lacks_names_those_it_keeps(gnocchi: GnocchiServer) -> None:
    collector = GnocchiCollector("os", minimal(gnocchi.url, granularity_s=300))

    with pytest.raises(ConfigError) as caught:
        list(collector.capture(Window(T0, T0 + timedelta(hours=1))))

    assert str(caught.value) == (
        "manager 'os': granularity_s = 300 is not kept by every archive policy (ceilometer-high keeps 1 s, 60 s, "
        "3600 s and ceilometer-high-rate keeps 1 s, 60 s, 3600 s); set granularity_s to one they all keep, or "
        "remove it to read the finest each metric keeps"
    )


def test_verify_names_the_granularities_the_policies_keep(gnocchi: GnocchiServer) -> None:
    GnocchiCollector("os", minimal(gnocchi.url, granularity_s=60)).verify()  # ceilometer-high keeps it
    with pytest.raises(ConfigError) as caught:
        GnocchiCollector("os", minimal(gnocchi.url, granularity_s=120)).verify()

    # gnocchi-upgrade's low (5 min), medium (1 min, 1 h), high (1 s, 1 min, 1 h) and bool (1 s); Ceilometer's
    assert str(caught.value) == (
        "manager 'os': no archive policy keeps granularity_s = 120 (they keep 1 s, 60 s, 300 s, 3600 s); "
        "set one of those, or remove it to read the finest kept"
    )


def test_every_revision_keeps_its_own_allocation_even_long_after_deletion(gnocchi: GnocchiServer) -> None:
    items = {item.ref: item for item in GnocchiCollector("os", minimal(gnocchi.url)).inventory().items}

    hi, lo, resized, gone = (items[ResourceRef("vm", vm.id)] for vm in VMS)
    assert (hi.vcpus, hi.memory_bytes, lo.vcpus, lo.memory_bytes) == (2, 4096 * MIB, 1, 2048 * MIB)
    assert [(p.valid_from, p.vcpus, p.memory_bytes) for p in resized.history] == [
        (T0, 1, 1024 * MIB),
        (RESIZED_AT, 2, 2048 * MIB),
    ]
    assert (gone.vcpus, gone.memory_bytes, gone.retired_at) == (4, 8192 * MIB, GONE_END)  # four days later
    assert [(p.valid_from, p.vcpus) for p in gone.history] == [(GONE_START, 4)]


def test_the_cli_captures_with_the_config_a_user_writes(gnocchi: GnocchiServer, tmp_path: Path) -> None:
    from tests.cli.test_cli import run

    config = tmp_path / "cloudmeter.toml"
    config.write_text(f'[managers.os]\nkind = "openstack"\nauth_mode = "basic"\ngnocchi_url = "{gnocchi.url}"\n')
    env = {"CLOUDMETER_CONFIG": str(config)}
    window = ("--since", T0.isoformat(), "--until", (T0 + timedelta(hours=2)).isoformat())

    refreshed = run("refresh", "--manager", "os", env=env, data_dir=tmp_path)
    captured = run("capture", "--manager", "os", *window, env=env, data_dir=tmp_path)

    assert refreshed.returncode == 0, refreshed.stderr
    assert captured.returncode == 0, captured.stderr
    assert captured.stdout.startswith(f"os: {3 * len(K)} samples in ")


def test_retention_is_what_the_policies_in_use_keep_unless_configured(gnocchi: GnocchiServer) -> None:
    # hi, resized and gone are on ceilometer-high (1 h kept 365 days), lo on ceilometer-low (5 min, 30 days)
    assert GnocchiCollector("os", minimal(gnocchi.url)).retention_s == 8760 * 3600
    assert GnocchiCollector("os", minimal(gnocchi.url, retention_days=45)).retention_s == 45 * 86400


def test_backfill_beyond_what_is_kept_captures_and_says_what_may_be_missing(
    gnocchi: GnocchiServer, tmp_path: Path
) -> None:
    from tests.cli.test_cli import run

    config = tmp_path / "cloudmeter.toml"
    config.write_text(
        f'[retention]\nraw_days = 3\n\n[managers.os]\nkind = "openstack"\nauth_mode = "basic"\n'
        f'gnocchi_url = "{gnocchi.url}"\nretention_days = 2\n'
    )
    window = ("--since", GONE_START.isoformat(), "--until", GONE_END.isoformat())

    done = run("backfill", "--manager", "os", *window, env={"CLOUDMETER_CONFIG": str(config)}, data_dir=tmp_path)

    assert done.returncode == 0, done.stderr
    assert f"os: {len(K)} samples from {GONE_START:%Y-%m-%d %H:%M} to {GONE_END:%Y-%m-%d %H:%M} UTC" in done.stdout
    notes = " ".join(done.stderr.split())
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d UTC"
    assert re.search(
        rf"note: os's source keeps 2 days of live series: before {stamp} only series that stopped since \(deleted "
        r"VMs\) may still hold samples",
        notes,
    ), notes
    assert re.search(
        rf"note: samples before {stamp} are older than retention.raw_days \(3\): they are rolled up now, and the "
        r"next maintenance drops their raw rows \(hourly rows stay 400 days, daily rows 1830\); raise raw_days first "
        "to keep them",
        notes,
    ), notes


def strict_json(text: str) -> Any:
    """``text`` parsed as JSON proper: NaN and Infinity, which Python's json accepts, fail the test."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_unknown_host_capacity_is_null_with_a_note_and_a_configured_one_is_used(
    gnocchi: GnocchiServer, tmp_path: Path
) -> None:
    from tests.cli.test_cli import run

    base = f'[managers.os]\nkind = "openstack"\nauth_mode = "basic"\ngnocchi_url = "{gnocchi.url}"\n'
    configured = 'host_capacity = { "cn-2" = { vcpus = 8, memory_mib = 16384 } }\n'
    window = ("--from", T0.isoformat(), "--to", (T0 + timedelta(hours=2)).isoformat())
    found = {}
    for name, text in (("unknown", base), ("configured", base + configured)):
        config, data = tmp_path / f"{name}.toml", tmp_path / name
        config.write_text(text)
        env = {"CLOUDMETER_CONFIG": str(config)}
        for command in (("refresh", "--manager", "os"), ("capture", "--manager", "os", *window)):
            done = run(
                *(c.replace("--from", "--since").replace("--to", "--until") for c in command), env=env, data_dir=data
            )
            assert done.returncode == 0, done.stderr
        as_json = run("capacity", "utilization", "--level", "host", *window, "--json", env=env, data_dir=data)
        table = run("capacity", "utilization", "--level", "host", *window, env=env, data_dir=data)
        assert as_json.returncode == 0 and table.returncode == 0, as_json.stderr + table.stderr
        found[name] = ({row["host"]: row for row in strict_json(as_json.stdout)}, " ".join(table.stdout.split()))

    hosts, text = found["unknown"]
    for host in ("cn-1", "cn-2"):  # no Nova (basic auth), nothing configured: unknown, never 0 or Infinity
        row = hosts[host]
        assert (row["vcpus_capacity"], row["cpu_pct_avg"], row["mem_pct_peak"], row["cpu_overcommit"]) == (None,) * 4
        assert row["cpu_cores_avg"] is not None  # the usage is known all the same
    assert "note: 2 of 2 rows have no known host capacity" in text and "set host_capacity" in text

    hosts, text = found["configured"]
    cn2 = hosts["cn-2"]  # lo alone: 0.5 cores and 2000 MiB used, 1 vCPU and 2048 MiB allocated
    assert (cn2["vcpus_capacity"], cn2["mem_gb_capacity"]) == (8.0, 16.0)
    assert cn2["cpu_pct_avg"] == pytest.approx(100 * 0.5 / 8, rel=1e-12)
    assert cn2["mem_pct_avg"] == pytest.approx(100 * 2000 / 16384, rel=1e-12)
    assert cn2["cpu_overcommit"] == pytest.approx(1 / 8) and cn2["mem_overcommit"] == pytest.approx(2048 / 16384)
    assert hosts["cn-1"]["cpu_pct_avg"] is None
    assert "note: 1 of 2 rows have no known host capacity" in text
