"""A deterministic synthetic cloud (manager kind ``simulator``)."""

from cloudmeter.collectors.simulator.collector import SimulatorCollector
from cloudmeter.collectors.simulator.config import SimulatorConfig

__all__ = ["SimulatorCollector", "SimulatorConfig"]
