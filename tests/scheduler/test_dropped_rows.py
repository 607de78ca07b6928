"""The rollup's warning about raw rows it left out names only resources not in the inventory: a parent's own
rows (a vSphere host's measurement of itself) are kept raw by design and logged at debug level only."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from cloudmeter.model import METRICS
from cloudmeter.rollups.engine import Roller
from cloudmeter.scheduler import pipeline
from tests.rollups.test_engine import JUNE_18H, Scenario, two_level


def rolled(rows: list[tuple[int, int]]) -> Roller:
    s = two_level(8.0, 2.0**35)
    s = Scenario(s.kinds, s.periods, s.interval_s, s.start_s, s.end_s, np.array([r for r, _ in rows], np.int32),
                 np.array([t for _, t in rows], np.int64), np.ones((len(rows), len(METRICS))))  # fmt: skip
    topology = s.topology()
    roller = Roller(topology, s.intervals(), ("UTC",))
    list(roller.roll(s.start_s, s.end_s, s.leaves(topology)))
    return roller


def test_a_parents_own_rows_are_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    roller = rolled([(2, JUNE_18H), (1, JUNE_18H), (1, JUNE_18H + 300)])
    with caplog.at_level(logging.DEBUG, logger=pipeline.log.name):
        pipeline._warn_dropped(roller, 7)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "manager 7: 2 raw rows of parents kept raw (their rollups come from their children)")
    ]


def test_rows_of_resources_not_in_the_inventory_are_counted_and_named(caplog: pytest.LogCaptureFixture) -> None:
    unknown = [(rid, JUNE_18H + k * 300) for rid in (40, 41, 42, 43, 44, 45, 46) for k in range(2)]
    roller = rolled([(2, JUNE_18H), (1, JUNE_18H), *unknown])
    with caplog.at_level(logging.WARNING, logger=pipeline.log.name):
        pipeline._warn_dropped(roller, 7)
    assert [r.getMessage() for r in caplog.records] == [
        "manager 7: 14 raw rows not rolled up: their resources (ids 40, 41, 42, 43, 44 and 2 more) are not in the "
        "inventory; refresh the inventory if resources are missing"
    ]
    assert (roller.dropped_rows, roller.dropped_ids, roller.parent_rows) == (0, set(), 0)  # reported once
