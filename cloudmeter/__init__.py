"""cloudmeter: metrics collection and rollups for clouds, on PostgreSQL.

The Python API: open the database, run the per-manager jobs, read the tables as polars DataFrames.

    from cloudmeter import Database, load_settings, read_rollups

Names are imported on first use, so importing one submodule (a collector, say) stays light.

numba's compiled-kernel cache goes to the user's cache directory (``NUMBA_CACHE_DIR``, unless already set),
never next to the installed sources: files written there outlive ``pip uninstall`` and a leftover
``cloudmeter/`` directory in site-packages shadows a later editable install.
"""

from __future__ import annotations

import os
import sys
from importlib import import_module
from typing import Any

import platformdirs


def _numba_cache_outside_the_package() -> None:
    if "NUMBA_CACHE_DIR" in os.environ:
        return
    cache = str(platformdirs.user_cache_path("cloudmeter") / "numba")
    os.environ["NUMBA_CACHE_DIR"] = cache
    numba = sys.modules.get("numba")
    if numba is not None:  # imported before us: its config already read the environment
        numba.config.CACHE_DIR = cache


_numba_cache_outside_the_package()

_API = {
    "METRICS": "cloudmeter.model",
    "ResourceRef": "cloudmeter.model",
    "SampleBatch": "cloudmeter.model",
    "Window": "cloudmeter.model",
    "Settings": "cloudmeter.config",
    "load_settings": "cloudmeter.config",
    "Database": "cloudmeter.storage.database",
    "read_resources": "cloudmeter.storage.readers",
    "read_rollups": "cloudmeter.storage.readers",
    "read_samples": "cloudmeter.storage.readers",
    "timeline": "cloudmeter.storage.events",
    "refresh_inventory": "cloudmeter.scheduler.jobs",
    "capture": "cloudmeter.scheduler.jobs",
    "rollup": "cloudmeter.scheduler.jobs",
}
__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'cloudmeter' has no attribute {name!r}")
    return getattr(import_module(_API[name]), name)
