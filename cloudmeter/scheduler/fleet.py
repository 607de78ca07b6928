"""The managers a daemon or a command works on: the config file's plus those added with ``managers add``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from cloudmeter.collectors.base import ManagerConfig
from cloudmeter.collectors.registry import collector_class, parse_manager_config
from cloudmeter.errors import ConfigError
from cloudmeter.storage import managers
from cloudmeter.storage.database import Database


@dataclass(frozen=True)
class Fleet:
    """Valid managers by name, and the added ones whose stored table no longer validates (name -> why)."""

    configs: dict[str, ManagerConfig]
    broken: dict[str, str] = field(default_factory=dict)


def fleet(db: Database, from_file: dict[str, ManagerConfig]) -> Fleet:
    """Every manager: the config file's, and the added ones (a name in the file wins)."""
    with db.connection() as conn:
        added = managers.added_managers(conn)
    configs: dict[str, ManagerConfig] = {}
    broken: dict[str, str] = {}
    for name, raw in added.items():
        try:
            configs[name] = parse_manager_config(name, raw)
        except ConfigError as exc:
            broken[name] = str(exc)
    return Fleet({**configs, **from_file}, broken)


def checked_table(name: str, kind: str, fields: dict[str, Any]) -> tuple[ManagerConfig, dict[str, Any]]:
    """Validate a manager given on the command line; secrets must be ``env:VARNAME`` (never stored in clear).

    Returns the config and the table to store.
    """
    table = {"kind": kind, **fields}
    config = parse_manager_config(name, table)
    model = collector_class(kind).config_model
    for key, value in fields.items():
        secret = key in model.model_fields and isinstance(getattr(config, key), SecretStr)
        if secret and not str(value).startswith("env:"):
            raise ConfigError(
                f"manager {name!r}: give secret field {key} as env:VARNAME (the variable holding it), so no "
                "secret is ever stored in the database"
            )
    return config, table
