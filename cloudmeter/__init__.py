"""cloudmeter: metrics collection and rollups for clouds, on PostgreSQL.

The Python API: open the database, run the per-manager jobs, read the tables as polars DataFrames.

    from cloudmeter import Database, load_settings, read_rollups
"""

from cloudmeter.config import Settings, load_settings
from cloudmeter.model import METRICS, ResourceRef, SampleBatch, Window
from cloudmeter.storage.database import Database
from cloudmeter.storage.readers import read_resources, read_rollups, read_samples

__all__ = [
    "METRICS",
    "Database",
    "ResourceRef",
    "SampleBatch",
    "Settings",
    "Window",
    "load_settings",
    "read_resources",
    "read_rollups",
    "read_samples",
]
