"""pytest plugin: a real Gnocchi 4.7.1 on loopback, set up the way Ceilometer sets it up, once per session;
and a real Keystone with a second Gnocchi that takes its tokens.

The indexers are databases on the session's embedded PostgreSQL 18 (``pg_server``); see
tests/gnocchi_server.py and tests/keystone_server.py for the virtualenvs they run from (scripts/test.sh makes
them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TypeVar

import pytest

from tests import gnocchi_server, keystone_server
from tests.gnocchi_server import GnocchiServer
from tests.keystone_server import KeystoneServer
from tests.loopback import ServerFailed

T = TypeVar("T")


def _or_fail(server: AbstractContextManager[T]) -> Iterator[T]:
    """Serve ``server`` to the tests; a server that cannot start fails them with its reason."""
    try:
        with server as running:
            yield running
    except ServerFailed as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def gnocchi(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GnocchiServer]:
    """Gnocchi with basic auth, Ceilometer's archive policies and compute resource types."""
    yield from _or_fail(gnocchi_server.running(tmp_path_factory.mktemp("gnocchi"), pg_server))


@pytest.fixture(scope="session")
def keystone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeystoneServer]:
    """Keystone with an ``admin`` user (password ``keystone_server.ADMIN_PASSWORD``) in project ``admin``."""
    yield from _or_fail(keystone_server.running(tmp_path_factory.mktemp("keystone")))


@pytest.fixture(scope="session")
def keystone_gnocchi(
    pg_server: str, keystone: KeystoneServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GnocchiServer]:
    """Gnocchi behind Keystone: the ``metric`` service of ``keystone``'s catalog, set up as Ceilometer does."""
    yield from _or_fail(gnocchi_server.running(tmp_path_factory.mktemp("gnocchi-ks"), pg_server, keystone=keystone))
