"""pytest plugin: a private RabbitMQ 3.10 on loopback (tests/rabbitmq_server.py), once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import rabbitmq_server
from tests.fix_gnocchi import _or_fail
from tests.rabbitmq_server import RabbitMQServer


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQServer]:
    """A broker with user ``rabbitmq_server.USER``; tests that restart it leave it running."""
    yield from _or_fail(rabbitmq_server.running(tmp_path_factory.mktemp("rabbitmq")))
