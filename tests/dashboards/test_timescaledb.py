"""The dashboards on TimescaleDB (PGlite + TimescaleDB: hypertables), with the Grafana data source's TimescaleDB
option on, which turns ``$__timeGroup`` into ``time_bucket``: every query runs and gives what it gives without the
option, and the cluster series are still the report's."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
from polars.testing import assert_frame_equal

from cloudmeter.model import Window
from cloudmeter.reports import capacity
from cloudmeter.storage.database import Database
from tests.dashboards.grafana import Variable
from tests.dashboards.panels import (
    BOARD_FILES,
    all_clusters,
    all_managers,
    assert_frames_equal,
    board,
    choice,
    ids,
    run,
)
from tests.dashboards.test_cluster_capacity import CPU, SERIES
from tests.dashboards.test_dashboard_json import queries
from tests.reports.cloud import START, hours, load

WINDOW = Window(START, hours(48))


def utc(frame: pl.DataFrame) -> pl.DataFrame:
    """Times in UTC (psycopg reads timestamptz in the session's zone, Etc/UTC; floor's epochs are UTC)."""
    return frame.with_columns(pl.col(pl.Datetime).dt.convert_time_zone("UTC"))


def test_every_query_runs_on_timescaledb_and_time_bucket_groups_as_floor_does(timescale_db: Database) -> None:
    assert timescale_db.mode() == "timescaledb"
    load(timescale_db)
    with timescale_db.connection() as conn:
        (vm,) = ids(conn, "SELECT id FROM resources WHERE ems_ref = 'vm-d'")
        every_host = choice("host", ids(conn, "SELECT id FROM resources WHERE kind = 'host'"))
        chosen: dict[str, Variable] = {
            "manager": all_managers(conn), "cluster": all_clusters(conn), "host": every_host, "vm": Variable("vm", vm),
        }  # fmt: skip
        for name in BOARD_FILES:
            boxes = {v["name"]: Variable(v["name"], v["query"]) for v in board(name)["templating"]["list"]
                     if v["type"] == "textbox"}  # fmt: skip
            for key, sql in queries(board(name)):
                for interval in (timedelta(hours=1), timedelta(days=1))[: 2 if "$__interval" in sql else 1]:
                    plain = run(conn, sql, WINDOW, {**chosen, **boxes}, interval)
                    bucketed = run(conn, sql, WINDOW, {**chosen, **boxes}, interval, timescaledb=True)
                    assert plain.height > 0, key
                    assert_frame_equal(utc(bucketed), utc(plain), check_exact=False, rel_tol=1e-12)
        hourly = capacity.hourly_series(conn, WINDOW, "cluster").rename({"ts": "time"})
        got = run(conn, board("capacity")["panels"][0]["targets"][0]["rawSql"], WINDOW, chosen, timescaledb=True)
    assert board("capacity")["panels"][0]["title"] == CPU
    assert_frames_equal(got, hourly, ["time", "cluster"], SERIES[CPU])
