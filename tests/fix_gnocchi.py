"""pytest plugin: a real Gnocchi 4.7.1 on loopback, set up the way Ceilometer sets it up, once per session.

Its indexer is a database on the session's embedded PostgreSQL 18 (``pg_server``); see tests/gnocchi_server.py
for the one-time virtualenv it runs from (scripts/test.sh makes it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import gnocchi_server
from tests.gnocchi_server import GnocchiServer, ServerFailed


@pytest.fixture(scope="session")
def gnocchi(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GnocchiServer]:
    """The running Gnocchi, with Ceilometer's archive policies and compute resource types."""
    work: Path = tmp_path_factory.mktemp("gnocchi")
    try:
        with gnocchi_server.running(work, pg_server) as server:
            yield server
    except ServerFailed as exc:
        pytest.fail(str(exc))
