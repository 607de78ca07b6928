"""Contract fixtures read off a ``Scenario``: for contract classes whose fixtures were recorded (or are fixed)."""

from __future__ import annotations

import pytest

from cloudmeter.model import ResourceRef, Window
from cloudmeter.testing.cassettes import Scenario


class ScenarioFixtures:
    """``window``, ``retired_refs`` and ``missing_metric`` from a ``scenario`` fixture the subclass provides
    (a live run's, or ``cassette.scenario`` on replay). Mix it in before ``CollectorContract``."""

    @pytest.fixture
    def window(self, scenario: Scenario) -> Window:
        return scenario.window

    @pytest.fixture
    def retired_refs(self, scenario: Scenario) -> set[ResourceRef]:
        return set(scenario.retired_refs)

    @pytest.fixture
    def missing_metric(self, scenario: Scenario) -> tuple[ResourceRef, str]:
        return scenario.missing_metric
