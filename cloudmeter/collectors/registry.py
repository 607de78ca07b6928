"""Find collector kinds through the ``cloudmeter.collectors`` entry-point group (built-ins included)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import ValidationError

from cloudmeter.collectors.base import Collector, ManagerConfig
from cloudmeter.errors import ConfigError

GROUP = "cloudmeter.collectors"


@cache
def collector_kinds() -> dict[str, EntryPoint]:
    """Every installed collector kind by name (not imported until used)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


@cache
def collector_class(kind: str) -> type[Collector]:
    """The collector class of ``kind``, or a ConfigError listing the kinds that exist.

    Only this kind's module is imported, so one broken plugin does not take the other kinds down with it.
    """
    kinds = collector_kinds()
    if kind not in kinds:
        known = ", ".join(sorted(kinds)) or "none (is cloudmeter installed with pip?)"
        raise ConfigError(f"unknown manager kind {kind!r}; installed kinds: {known}")
    try:
        cls: type[Collector] = kinds[kind].load()
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"manager kind {kind!r} is installed ({kinds[kind].value}) but does not load: {exc}; reinstall its package"
        ) from exc
    return cls


def parse_manager_config(name: str, raw: Mapping[str, Any]) -> ManagerConfig:
    """Validate one ``[managers.NAME]`` table against its kind's schema."""
    kind = raw.get("kind")
    if not isinstance(kind, str):
        raise ConfigError(f"manager {name!r} has no 'kind'; set kind = one of {sorted(collector_kinds())}")
    model = collector_class(kind).config_model
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        problems = "; ".join(  # a check of the whole table (a model validator) has no field to name
            ": ".join([*([".".join(str(p) for p in err["loc"])] if err["loc"] else []), err["msg"]])
            for err in exc.errors(include_input=False)
        )
        raise ConfigError(f"manager {name!r} (kind {kind!r}) is invalid: {problems}") from exc


def build_collector(name: str, config: ManagerConfig) -> Collector:
    """Instantiate the collector of ``config.kind`` for manager ``name``."""
    cls: Any = collector_class(config.kind)
    collector: Collector = cls(name, config)
    return collector
