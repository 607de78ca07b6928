"""Chaos, the short version: ``cloudmeter run`` killed -9 five times at seeded random moments on the
simulator, then every stored sample and every rollup row checked (see scripts/chaos.py for how; the long
version, with crashes of PostgreSQL too, is ``python scripts/chaos.py --kills 30 --db-kills 6``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.chaos import Chaos, Plan


@pytest.mark.slow
def test_five_kills_lose_nothing_and_rollups_equal_a_recomputation(dsn: str, tmp_path: Path) -> None:
    report = Chaos(dsn, tmp_path, Plan(kills=5, seed=5, vms=20, hours=4, timeout_s=60)).run()
    assert report.kills == 5
    assert report.expected == report.stored > 0
    assert (report.missing, report.duplicated, report.different, report.extra) == (0, 0, 0, 0)
    assert report.hours_without_rollups == 0
    assert report.hourly_rows > 0 and report.daily_rows > 0
    assert (report.hourly_wrong, report.daily_wrong) == (0, 0)
