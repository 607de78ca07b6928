"""Fixtures: the hand-computable cloud of tests/reports/cloud.py, captured into a fresh database."""

from __future__ import annotations

import pytest

from cloudmeter.storage.database import Database
from tests.reports.cloud import load


@pytest.fixture
def cloud(db: Database) -> Database:
    """Two days of the test cloud on PostgreSQL 18 (native partitions)."""
    load(db)
    return db
