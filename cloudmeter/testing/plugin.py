"""pytest plugin of cloudmeter (entry point ``pytest11``): the cassette option and the contract's marker.

Loaded by pytest wherever cloudmeter is installed, so it imports nothing beyond pytest and the standard
library: the kit itself (and vcrpy) is imported by the tests that use it.
"""

from __future__ import annotations

import os

import pytest

#: Kept equal to cloudmeter.testing.cassettes.RECORD_OPTION / RECORD_ENV (not imported: see above).
RECORD_OPTION = "--record-cassettes"
RECORD_ENV = "CLOUDMETER_RECORD_CASSETTES"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cloudmeter", "cloudmeter collector kit")
    group.addoption(
        RECORD_OPTION,
        action="store_true",
        dest="record_cassettes",
        default=False,
        help=(
            "record the cassettes of collector contract tests from their real peers (overwriting them) instead of "
            f"replaying them; {RECORD_ENV}=1 does the same"
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "collector_contract: a check of cloudmeter.testing.CollectorContract (the collector contract)"
    )


def pytest_report_header(config: pytest.Config) -> str | None:
    if config.getoption("record_cassettes") or os.environ.get(RECORD_ENV, "") not in ("", "0"):
        return "cloudmeter cassettes: recording from the real peers"
    return None
