"""What ``status``, ``managers list`` and the HTTP API show of the daemon's world, computed once for both: the
status report, the managers' listing, and a manager named by a user (from the config file or ``managers add``)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

import polars as pl

from cloudmeter.collectors.base import ManagerConfig
from cloudmeter.config import Settings
from cloudmeter.errors import ConfigError
from cloudmeter.scheduler.fleet import fleet
from cloudmeter.scheduler.windows import stale_after_s
from cloudmeter.storage import managers, schema, status
from cloudmeter.storage.database import Database


def status_report(db: Database, settings: Settings) -> dict[str, Any]:
    """The database (server, mode, storage per table, policies, notes) and every manager's progress, as
    ``cloudmeter status --json`` prints it (before ``serialize.jsonable``)."""
    with db.connection() as conn:
        report = status.database_status(conn, db.server, db.display_dsn, settings.retention.model_dump())
        version = report["schema_version"]
        if 0 < version < schema.LATEST:
            report["notes"].append(
                f"the schema is at version {version}, this cloudmeter's is {schema.LATEST}: run `cloudmeter db "
                "migrate` (the daemon migrates when it starts) to see the managers' progress"
            )
        found = status.manager_status(conn, stale_after_s(settings.schedule)) if version == schema.LATEST else []
    report["managers"] = [
        asdict(m) | {key: [{"start": a, "end": b} for a, b in getattr(m, key)] for key in ("skipped", "holes")}
        for m in found
    ]
    report["stale_after_s"] = stale_after_s(settings.schedule)
    return report


def managers_listing(db: Database, settings: Settings) -> pl.DataFrame:
    """Every manager (config file and ``managers add``) with its source, whether it runs, its last refresh,
    how far it is captured and its last error; an added one whose config does not load here says why. Never a
    secret: no config field is listed."""
    found = fleet(db, settings.managers)
    configs, broken = found.configs, found.broken
    with db.connection() as conn:
        stored = {m.name: m for m in managers.list_managers(conn)}
    rows = [
        {
            "name": name,
            "kind": cfg.kind,
            "source": stored[name].source if name in stored else "config",
            "enabled": cfg.enabled and (stored[name].enabled if name in stored else True),
            "last_refresh_at": _seconds(stored[name].last_refresh_at) if name in stored else None,
            "captured_until": _seconds(stored[name].captured_until) if name in stored else None,
            "last_error": stored[name].last_error if name in stored else None,
        }
        for name, cfg in configs.items()
    ]
    rows += [  # added managers whose stored config does not load here (an env: variable not set)
        {
            "name": name,
            "kind": stored[name].kind,
            "source": stored[name].source,
            "enabled": stored[name].enabled,
            "last_refresh_at": _seconds(stored[name].last_refresh_at),
            "captured_until": _seconds(stored[name].captured_until),
            "last_error": f"config: {why}",
        }
        for name, why in broken.items()
        if name in stored
    ]
    return pl.DataFrame(sorted(rows, key=lambda row: row["name"]), infer_schema_length=None)


def _seconds(moment: datetime | None) -> datetime | None:
    """``moment`` without its microseconds (a listing's times are to the second)."""
    return moment.replace(microsecond=0) if moment else None


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
