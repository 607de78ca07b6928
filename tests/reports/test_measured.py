"""The ``host_measured`` view of capacity utilization on the test cloud, whose hosts never measure themselves
(tests/reports/cloud.py: the VMs' samples only): measured figures are NULL, never 0, and the VMs' sum is the
``vms`` view's figures."""

from __future__ import annotations

import json
from datetime import timedelta

import polars as pl
import pytest

from cloudmeter.errors import ConfigError
from cloudmeter.reports import capacity, measured, views
from cloudmeter.storage.database import Database
from tests.reports.cloud import START, hours
from tests.reports.test_capacity import WINDOW
from tests.reports.test_cli_reports import WINDOW as CLI_WINDOW
from tests.reports.test_cli_reports import env, invoke

__all__ = ["env"]  # the fixture, used by name

MEASURED = [
    "measured_cpu_cores_avg", "measured_cpu_cores_p95", "measured_cpu_cores_peak", "overhead_cpu_cores_avg",
    "overhead_cpu_cores_p95", "measured_mem_gb_avg", "measured_mem_gb_p95", "measured_mem_gb_peak",
    "overhead_mem_gb_avg", "overhead_mem_gb_p95", "data_from", "data_to",
]  # fmt: skip
SUMMED = ("cpu_cores_avg", "cpu_cores_p95", "cpu_cores_peak", "mem_gb_avg", "mem_gb_p95", "mem_gb_peak")


@pytest.mark.parametrize("level", ["host", "cluster"])
def test_hosts_without_own_samples_have_null_measured_columns_and_the_vms_sum(
    cloud: Database, level: capacity.Level
) -> None:
    with cloud.connection() as conn:
        got = measured.host_measured(conn, WINDOW, level)
        vms = capacity.utilization(conn, WINDOW, level)
    assert got[level].to_list() == (["h1", "h2", "h3"] if level == "host" else ["c1", "c2"])
    assert got["measured_hours"].to_list() == [0] * got.height
    assert got["measured_coverage_pct"].to_list() == [0.0] * got.height  # a count: 0 of 48 hours, not unknown
    assert got["hours"].to_list() == [48] * got.height
    for column in MEASURED:
        assert got[column].null_count() == got.height, column
    for column in SUMMED:
        assert got[f"vms_{column}"].to_list() == vms[column].to_list(), column
    # by hand: h1 = vm-a (2 cores) + vm-d (1 core in its 20 hours with data) over 48 hours
    if level == "host":
        h1 = got.row(0, named=True)
        assert h1["vms_cpu_cores_avg"] == pytest.approx((48 * 2 + 20 * 1) / 48)
        assert (h1["vms_cpu_cores_p95"], h1["vms_cpu_cores_peak"]) == (3.0, 3.0)


def test_notes_say_only_vmware_measures_and_the_raw_retention(cloud: Database) -> None:
    with cloud.connection() as conn:
        got = measured.host_measured(conn, WINDOW, "host")
    inside = measured.notes(got, WINDOW, "host", 14, now=hours(48) + timedelta(days=1))
    assert inside == [
        "3 of 3 hosts have no measured samples (-): only vmware managers measure hosts; others (OpenStack, AWS, "
        "simulator) have the sum of their VMs only",
        "measured figures are read from raw samples, kept retention.raw_days (14 days): this view covers at most "
        "the last 14 days",
    ]
    past = measured.notes(got, WINDOW, "host", 1, now=hours(48) + timedelta(minutes=30))
    assert past[1] == (
        "measured figures are read from raw samples, kept retention.raw_days (1 days): the window starts before "
        f"{START + timedelta(days=1):%Y-%m-%d %H:%M} UTC, so its earlier hours have none"
    )


@pytest.mark.parametrize(
    ("params", "parameter", "message"),
    [
        (views.Utilization("provider", view="host_measured"), "level", "give --level host or --level cluster"),
        (views.Utilization("host", view="hosts"), "view", "--view 'hosts' is not one of vms, host_measured"),
    ],
)
def test_bad_view_and_level_are_parameter_errors(params: views.Utilization, parameter: str, message: str) -> None:
    with pytest.raises(views.ParameterError) as caught:
        params.check()
    assert caught.value.parameter == parameter and message in str(caught.value)
    with pytest.raises(ConfigError):
        measured.check_level("region")


def test_cli_json_is_the_python_view_and_the_table_prints_the_notes(env: dict[str, str], cloud: Database) -> None:
    code, out, err = invoke(env, "capacity", "utilization", "--level", "cluster", "--view", "host_measured",
                            *CLI_WINDOW, "--json")  # fmt: skip
    assert code == 0, err
    with cloud.connection() as conn:
        frame = measured.host_measured(conn, WINDOW, "cluster").drop("resource_id")
    assert json.loads(out) == json.loads(frame.write_json())
    code, out, err = invoke(env, "capacity", "utilization", "--level", "host", "--view", "host_measured", *CLI_WINDOW)
    assert code == 0, err
    text = " ".join(out.split())
    assert "only vmware managers measure hosts" in text and "retention.raw_days (14 days)" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--level", "provider", "--view", "host_measured"], "--view host_measured is per host or cluster, not"),
        (["--view", "measured"], "--view 'measured' is not one of vms, host_measured"),
    ],
)
def test_bad_view_exits_2_in_one_line(env: dict[str, str], args: list[str], message: str) -> None:
    code, _, err = invoke(env, "capacity", "utilization", *args, *CLI_WINDOW)
    assert code == 2
    assert message in " ".join(err.split())
    assert len([line for line in err.splitlines() if line.strip()]) == 1


def test_measured_frame_has_the_view_columns(cloud: Database) -> None:
    with cloud.connection() as conn:
        got = measured.host_measured(conn, WINDOW, "cluster")
    assert got.schema["measured_hours"] == pl.Int64
    assert got.columns[:6] == [
        "cluster", "manager", "measured_coverage_pct", "measured_cpu_cores_avg", "vms_cpu_cores_avg",
        "overhead_cpu_cores_avg",
    ]  # fmt: skip
    assert len(got.columns) == len(set(got.columns)) == 24
