"""Settings: defaults, then the TOML file named by ``CLOUDMETER_CONFIG``, then ``CLOUDMETER_*`` variables.

Loaded once into a frozen ``Settings`` object that is passed down; nothing reads the environment later.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from cloudmeter.collectors.base import ManagerConfig
from cloudmeter.collectors.registry import parse_manager_config
from cloudmeter.errors import ConfigError
from cloudmeter.model import is_time_zone
from cloudmeter.storage.dsn import MASK, dsn_problem, mask_dsn
from cloudmeter.storage.writer import WriteMethod

CONFIG_ENV = "CLOUDMETER_CONFIG"
HOUR, DAY = 3600, 86400  # upper bounds: a duration of 10^15 s would pass validation and then overflow or spin


class Schedule(BaseModel):
    """Intervals of the daemon's per-manager jobs, in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    refresh_interval_s: int = Field(900, ge=10, le=7 * DAY, description="inventory refresh")
    capture_interval_s: int = Field(300, ge=10, le=DAY, description="metrics capture")
    capture_overlap_s: int = Field(600, ge=0, le=7 * DAY, description="re-read this much before the last captured time")
    maintenance_interval_s: int = Field(86400, ge=60, le=7 * DAY, description="partitions and retention")
    lease_interval_s: int = Field(15, ge=1, le=HOUR, description="how often daemons rebalance and take over managers")
    jitter_s: int = Field(10, ge=0, le=HOUR, description="random delay added to each job's runs")
    max_concurrent_jobs: int = Field(4, ge=1, le=64, description="jobs running at once in one daemon")
    initial_capture_s: int = Field(
        3600, ge=60, le=400 * DAY, description="how far back a never-captured manager starts"
    )
    max_window_s: int = Field(21600, ge=60, le=7 * DAY, description="longest window one capture step reads")
    backoff_initial_s: int = Field(60, ge=1, le=DAY, description="wait after a manager's first failure (then doubled)")
    backoff_max_s: int = Field(3600, ge=1, le=7 * DAY, description="longest wait between a failing manager's attempts")
    stale_after_intervals: int = Field(
        6, ge=1, le=10_000, description="a source that sends nothing for this many capture intervals is stale"
    )

    @model_validator(mode="after")
    def _window_longer_than_overlap(self) -> Schedule:
        if self.max_window_s <= self.capture_overlap_s:
            raise ValueError(
                f"max_window_s ({self.max_window_s}) must exceed capture_overlap_s ({self.capture_overlap_s}), "
                "or catching up would never advance"
            )
        return self


class Retention(BaseModel):
    """How long each table keeps its rows, in days."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    raw_days: int = Field(14, ge=1, le=3660)
    hourly_days: int = Field(400, ge=1, le=36600)
    daily_days: int = Field(1830, ge=1, le=36600)


class Api(BaseModel):
    """The HTTP API (``cloudmeter serve``, and ``cloudmeter run`` when ``port`` is set)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", min_length=1, description="address to listen on; expose it through a TLS proxy")
    port: int | None = Field(None, ge=0, le=65535, description="`cloudmeter run` serves the API here too")
    rates: Path | None = Field(None, description="rate card of the API's chargeback and right-sizing (default: sample)")


def default_data_dir() -> Path:
    """The user's data directory for cloudmeter (embedded database, caches)."""
    return platformdirs.user_data_path("cloudmeter")


class Settings(BaseSettings):
    """The effective configuration."""

    model_config = SettingsConfigDict(env_prefix="CLOUDMETER_", env_nested_delimiter="__", extra="forbid", frozen=True)

    dsn: SecretStr | None = Field(None, description="external PostgreSQL; unset = embedded")
    data_dir: Path = Field(default_factory=default_data_dir)
    pool_size: int = Field(4, ge=1, le=64)
    write_method: WriteMethod = Field(
        "copy", description="how rows reach the server: binary COPY, or INSERT for servers that refuse COPY FROM STDIN"
    )
    time_zones: tuple[str, ...] = Field(("UTC",), description="daily rollups; UTC is always included")
    schedule: Schedule = Schedule()
    retention: Retention = Retention()
    managers: dict[str, ManagerConfig] = Field(default_factory=dict)
    metrics_port: int | None = Field(None, ge=0, le=65535, description="serve Prometheus /metrics here (run)")
    api: Api = Api()

    @field_validator("dsn", mode="after")
    @classmethod
    def _parsable_dsn(cls, dsn: SecretStr | None) -> SecretStr | None:
        problem = dsn_problem(dsn.get_secret_value()) if dsn else None
        if problem:
            raise PydanticCustomError("dsn", problem)
        return dsn

    @field_validator("time_zones", mode="after")
    @classmethod
    def _known_zones(cls, zones: tuple[str, ...]) -> tuple[str, ...]:
        for zone in zones:
            if not is_time_zone(zone):
                raise ValueError(f"{zone!r} is not an IANA time zone (e.g. 'Europe/Berlin')")
        return ("UTC", *(z for z in dict.fromkeys(zones) if z != "UTC"))

    @field_validator("managers", mode="before")
    @classmethod
    def _manager_kinds(cls, raw: Any) -> Any:
        if not isinstance(raw, Mapping):
            return raw
        for name, table in raw.items():
            if not isinstance(table, Mapping):
                kind = type(table).__name__  # never the value: it may be a secret
                raise ValueError(
                    f"managers.{name} must be a table ([managers.{name}] with kind = ...), not a value of type {kind}"
                )
        return {name: parse_manager_config(str(name), table) for name, table in raw.items()}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)

    @property
    def dsn_value(self) -> str | None:
        """The DSN in clear, for connecting only."""
        return self.dsn.get_secret_value() if self.dsn else None


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from ``config_file`` (or ``$CLOUDMETER_CONFIG``) and the environment.

    Raises ConfigError naming the file or variable, the setting and the fix.
    """
    path = config_file or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    table = _read_toml(path) if path is not None else {}
    mistyped = _mistyped_variables()
    saved = os.environ.get(CONFIG_ENV)
    try:
        if path is not None:
            os.environ[CONFIG_ENV] = str(path)
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError("; ".join([*mistyped, _describe(exc, path, table)])) from None
    finally:
        if saved is None:
            os.environ.pop(CONFIG_ENV, None)
        else:
            os.environ[CONFIG_ENV] = saved
    if mistyped:
        raise ConfigError("; ".join(mistyped))
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    if path.is_dir():
        raise ConfigError(f"config file {path} is a directory; name the TOML file in it")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; fix {CONFIG_ENV} or create the file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None


#: How alike an unknown ``CLOUDMETER_*`` variable must be to a setting to count as its typo (pydantic-settings
#: ignores unknown top-level variables, and others may hold secrets that a manager names as ``env:VARNAME``).
TYPO_CUTOFF = 0.8


def _mistyped_variables() -> list[str]:
    """``CLOUDMETER_*`` variables that name no setting but come close to one."""
    known = [*Settings.model_fields, CONFIG_ENV.removeprefix("CLOUDMETER_").lower()]
    keys = {name: name[len("CLOUDMETER_") :].lower() for name in os.environ if name.upper().startswith("CLOUDMETER_")}
    return [
        _unknown((key,), name, from_env=True)
        for name, key in keys.items()
        if "__" not in key and key not in known and difflib.get_close_matches(key, known, n=1, cutoff=TYPO_CUTOFF)
    ]


def _describe(exc: ValidationError, path: Path | None, table: Mapping[str, Any]) -> str:
    """One line for all of ``exc``'s errors, each naming the setting, where it was given and the fix."""
    named, fields = [], []
    for err in exc.errors(include_input=False, include_url=False):
        loc = tuple(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            in_file = _in_file(loc, path, table)
            variable = None if in_file else _in_env(loc)
            named.append(_unknown(loc, in_file or variable or ".".join(loc), from_env=variable is not None))
        elif err["type"] == "dsn":
            source = _in_env(loc) or _in_file(loc, path, table) or "dsn"  # the environment wins
            named.append(f"{source} is not a valid PostgreSQL connection string: {err['msg']}")
        else:
            fields.append(f"{'.'.join(loc)} ({_env_name(loc)}): {err['msg']}")
    if fields:
        named.append(f"{f'config file {path}' if path else 'configuration'} is invalid: {'; '.join(fields)}")
    return "; ".join(named)


def _env_name(loc: tuple[str, ...]) -> str:
    return "CLOUDMETER_" + "__".join(loc).upper()


def _in_env(loc: tuple[str, ...]) -> str | None:
    """The environment variable that gave the setting at ``loc`` (or a table holding it), as written."""
    given = {name.upper(): name for name in os.environ}
    found = (given.get(_env_name(loc[:depth])) for depth in range(len(loc), 0, -1))
    return next((name for name in found if name), None)


def _in_file(loc: tuple[str, ...], path: Path | None, table: Mapping[str, Any]) -> str | None:
    """``setting in FILE`` if the config file gives the setting at ``loc``."""
    node: Any = table
    for part in loc:
        node = node.get(part) if isinstance(node, Mapping) else None
    return f"{'.'.join(loc)} in {path}" if node is not None else None


def _unknown(loc: tuple[str, ...], source: str, from_env: bool) -> str:
    """The unknown setting at ``loc``, where it was given (``source``), and the closest known one."""
    model: Any = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(part) if _is_model(model) else None
        model = field.annotation if field else None
    known = list(model.model_fields) if _is_model(model) else []
    close = difflib.get_close_matches(loc[-1], known, n=1)
    if from_env:
        hint = f"; did you mean {_env_name((*loc[:-1], close[0]))}?" if close else ""
        return f"unknown setting {source} in the environment{hint}"
    hint = f"did you mean {'.'.join((*loc[:-1], close[0]))}?" if close else f"known: {', '.join(known)}"
    return f"unknown setting {source}; {hint}"


def _is_model(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


def effective_config(settings: Settings) -> dict[str, Any]:
    """The settings as plain data with every secret masked, for printing."""
    data = settings.model_dump(mode="json")
    data["dsn"] = mask_dsn(settings.dsn_value) if settings.dsn_value else None
    data["data_dir"] = str(settings.data_dir)
    data["managers"] = {name: _masked(manager.model_dump(mode="python")) for name, manager in settings.managers.items()}
    return data


def _masked(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: (MASK if isinstance(value, SecretStr) else value if _plain(value) else str(value))
        for key, value in fields.items()
    }


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)
