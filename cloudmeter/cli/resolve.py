"""A manager named on the command line, from the config file or ``managers add``: what ``managers`` and the jobs
commands share."""

from __future__ import annotations

from cloudmeter.collectors.base import ManagerConfig
from cloudmeter.config import Settings
from cloudmeter.errors import ConfigError
from cloudmeter.scheduler.fleet import fleet
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database


def configured(db: Database, settings: Settings, name: str) -> ManagerConfig:
    """Manager ``name`` from the config file or ``managers add``, or a ConfigError listing them."""
    db.migrate()
    found = fleet(db, settings.managers)
    if name in found.broken:
        raise ConfigError(found.broken[name])
    if name not in found.configs:
        known = ", ".join(sorted(found.configs)) or "none"
        raise ConfigError(
            f"manager {name!r} is not configured (configured: {known}); add [managers.{name}] or `managers add`"
        )
    return found.configs[name]


def registered(db: Database, settings: Settings, name: str) -> tuple[int, ManagerConfig]:
    """Manager ``name``'s id (a config file manager gets its row on the way) and config."""
    config = configured(db, settings, name)
    with db.connection() as conn:
        return managers.register_manager(conn, name, config.kind, config.public_fields()), config
