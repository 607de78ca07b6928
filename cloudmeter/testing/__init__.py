"""The collector kit's test side: the contract every collector meets and cassettes to run it without a peer.

``CollectorContract`` (contract.py) is a pytest class to subclass; ``CollectorCassette`` (cassettes.py) records
a contract run against a real peer and replays it. Cassettes need vcrpy (``pip install 'cloudmeter[testing]'``),
imported only when one is opened. The pytest plugin (plugin.py, registered as entry point ``pytest11``) adds
``--record-cassettes`` and the ``collector_contract`` marker. ``ScenarioFixtures`` reads ``window``,
``retired_refs`` and ``missing_metric`` off a recorded ``Scenario``.
"""

from cloudmeter.testing.cassettes import (
    RECORD_ENV,
    RECORD_OPTION,
    CollectorCassette,
    Redactor,
    Scenario,
    leaks,
    recording,
    secret_forms,
)
from cloudmeter.testing.checks import SLACK
from cloudmeter.testing.contract import CollectorContract
from cloudmeter.testing.scenario_fixtures import ScenarioFixtures

__all__ = [
    "RECORD_ENV",
    "RECORD_OPTION",
    "SLACK",
    "CollectorCassette",
    "CollectorContract",
    "Redactor",
    "Scenario",
    "ScenarioFixtures",
    "leaks",
    "recording",
    "secret_forms",
]
