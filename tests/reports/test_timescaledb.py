"""The same capacity and chargeback numbers on TimescaleDB (PGlite + TimescaleDB: hypertables, insert writes)."""

from __future__ import annotations

from cloudmeter.model import Window
from cloudmeter.reports import chargeback
from cloudmeter.storage.database import Database
from tests.reports.cloud import START, hours, load
from tests.reports.test_capacity import check_headroom, check_utilization
from tests.reports.test_chargeback import CARD, check_costs_per_vm_and_line


def test_capacity_reports_on_timescaledb(timescale_db: Database) -> None:
    assert timescale_db.mode() == "timescaledb"
    load(timescale_db)
    check_utilization(timescale_db)
    check_headroom(timescale_db)


def test_chargeback_on_timescaledb(timescale_db: Database) -> None:
    load(timescale_db)
    with timescale_db.connection() as conn:
        check_costs_per_vm_and_line(chargeback.charges(conn, Window(START, hours(48)), CARD))
