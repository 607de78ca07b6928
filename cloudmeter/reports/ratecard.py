"""Rate cards: what each unit of allocation or usage costs, from a TOML (or YAML) file.

A card has a ``currency`` (ISO 4217), an optional ``time_zone`` for its effective dates (default UTC), and
``[[rate]]`` lines. A line prices one measure with a ``variable`` rate per unit per ``per_time`` (or graduated
``tiers``) and/or a ``fixed`` rate per ``per_time`` for each resource it applies to; it is effective from
``effective_from`` (inclusive) to ``effective_to`` (exclusive), carries a ``version``, and is assigned by
``provider`` (manager name), ``project`` and ``tags`` (all given selectors must match; the most specific
matching line wins: tags, then project, then provider).
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from importlib import resources as package_files
from pathlib import Path
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from cloudmeter.errors import ConfigError
from cloudmeter.model import LEAVES

PerTime = Literal["hourly", "daily", "weekly", "monthly"]
PER_TIMES: Final[tuple[str, ...]] = ("hourly", "daily", "weekly", "monthly")


_VM: Final = ("vm",)
_CONTAINER: Final = ("container",)
#: Containers, and Kubernetes nodes for their idle capacity (``reports.idle``): what allocation is priced on.
_ALLOCATION: Final = ("container", "host")


@dataclass(frozen=True)
class Measure:
    """A priced quantity: its unit, whether it is allocated or used, its FOCUS service category, and the kinds
    of resources it prices (VMs, Kubernetes containers or both)."""

    unit: str
    basis: Literal["allocated", "used"]
    category: str
    kinds: tuple[str, ...] = _VM
    volume: bool = False  # a quantity per hour (GB transferred), not a level held over time


MEASURES: Final[dict[str, Measure]] = {
    "vcpu_allocated": Measure("vCPU", "allocated", "Compute"),
    "cpu_cores_used": Measure("Core", "used", "Compute", LEAVES),
    "memory_gb_allocated": Measure("GB", "allocated", "Compute"),
    "memory_gb_used": Measure("GB", "used", "Compute", LEAVES),
    "disk_gb_allocated": Measure("GB", "allocated", "Storage"),
    "network_gb": Measure("GB", "used", "Networking", LEAVES, volume=True),
    # Kubernetes: what a container requests (no request: 0), and OpenCost's allocation, max(request, usage)
    "cpu_request_cores": Measure("Core", "allocated", "Compute", _CONTAINER),
    "memory_request_gb": Measure("GB", "allocated", "Compute", _CONTAINER),
    "cpu_allocated_cores": Measure("Core", "used", "Compute", _ALLOCATION),
    "memory_allocated_gb": Measure("GB", "used", "Compute", _ALLOCATION),
}


@dataclass(frozen=True)
class Tier:
    """Units up to ``up_to`` (None: no limit) of one resource in one hour cost ``rate`` each."""

    up_to: Decimal | None
    rate: Decimal


@dataclass(frozen=True)
class RateLine:
    """One priced measure with its selectors and effective period."""

    name: str
    version: str
    measure: str
    per_time: PerTime
    tiers: tuple[Tier, ...]
    fixed: Decimal
    effective_from: datetime
    effective_to: datetime | None
    provider: str | None = None
    project: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def specificity(self) -> int:
        """How specific the selectors are: tags outrank a project, which outranks a provider."""
        return 4 * bool(self.tags) + 2 * (self.project is not None) + (self.provider is not None)

    @property
    def unit_price(self) -> Decimal | None:
        """The variable rate when it has a single tier, else None (graduated)."""
        return self.tiers[0].rate if len(self.tiers) == 1 else None

    def tier_floats(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Per tier as floats: the units below it, how many it holds (inf: no limit) and its rate."""
        lowers, widths, rates = [], [], []
        lower = Decimal(0)
        for tier in self.tiers:
            lowers.append(float(lower))
            widths.append(math.inf if tier.up_to is None else float(tier.up_to - lower))
            rates.append(float(tier.rate))
            lower = lower if tier.up_to is None else tier.up_to
        return np.array(lowers), np.array(widths), np.array(rates)

    def price(self, quantity: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The graduated variable price of each quantity (units of one resource in one hour, or GB transferred):
        each tier's rate on the units within it; NaN for an unknown quantity."""
        total = np.zeros(len(quantity))
        for lower, width, rate in zip(*self.tier_floats(), strict=True):
            total = total + np.maximum(np.minimum(quantity - lower, width), 0.0) * rate
        return total

    def matches(self, provider: str | None, project: str | None, tags: Mapping[str, str]) -> bool:
        """Whether the line's selectors all match a resource's provider, project and tags."""
        return (
            (self.provider is None or self.provider == provider)
            and (self.project is None or self.project == project)
            and all(tags.get(k) == v for k, v in self.tags.items())
        )


@dataclass(frozen=True)
class RateCard:
    """A currency and its rate lines; ``source`` names the file for messages."""

    currency: str
    lines: tuple[RateLine, ...]
    source: str


def _decimal(value: Any, where: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f'{where}: {value!r} is not a number; write e.g. 0.012 or "0.012"') from None
    if not result.is_finite() or result < 0:
        raise ConfigError(f"{where}: {value!r} must be a finite number >= 0")
    return result


def _moment(value: Any, zone: ZoneInfo, where: str) -> datetime:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=zone).astimezone(UTC)
    if isinstance(value, str):
        try:
            return _moment(datetime.fromisoformat(value), zone, where)
        except ValueError:
            pass
    raise ConfigError(f"{where}: {value!r} is not a date; write e.g. 2026-01-01 or 2026-01-01T00:00:00Z")


def _tiers(raw: Mapping[str, Any], where: str) -> tuple[Tier, ...]:
    if "tiers" in raw and "variable" in raw:
        raise ConfigError(f"{where}: give either variable or tiers, not both")
    if "tiers" not in raw:
        return (Tier(None, _decimal(raw.get("variable", 0), f"{where}.variable")),)
    tiers = []
    for i, tier in enumerate(raw["tiers"]):
        at = f"{where}.tiers[{i}]"
        if not isinstance(tier, Mapping) or "rate" not in tier:
            raise ConfigError(f"{at}: each tier is a table with rate (and up_to, except the last)")
        tiers.append(
            Tier(_decimal(tier["up_to"], f"{at}.up_to") if "up_to" in tier else None, _decimal(tier["rate"], at))
        )
    limits = [t.up_to for t in tiers]
    if not tiers or limits[-1] is not None or None in limits[:-1]:
        raise ConfigError(f"{where}.tiers: every tier but the last needs up_to, and the last must have none")
    bounded = [u for u in limits if u is not None]
    if any(b <= a for a, b in itertools.pairwise(bounded)):
        raise ConfigError(f"{where}.tiers: up_to must increase from tier to tier")
    return tuple(tiers)


_LINE_KEYS: Final = {"name", "version", "measure", "per_time", "variable", "tiers", "fixed", "effective_from",
                     "effective_to", "provider", "project", "tags"}  # fmt: skip


def _line(raw: Any, index: int, zone: ZoneInfo) -> RateLine:
    where = f"rate[{index}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a rate line is a table ([[rate]])")
    unknown = set(raw) - _LINE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(_LINE_KEYS)}")
    measure = raw.get("measure")
    if measure not in MEASURES:
        raise ConfigError(f"{where}.measure: {measure!r} is not one of {', '.join(MEASURES)}")
    per_time = raw.get("per_time", "hourly")
    if per_time not in PER_TIMES:
        raise ConfigError(f"{where}.per_time: {per_time!r} is not one of {', '.join(PER_TIMES)}")
    if MEASURES[measure].volume and per_time != "hourly":
        raise ConfigError(f"{where}: {measure} is priced per GB transferred; remove per_time")
    for key in ("name", "version", "effective_from"):
        if key not in raw:
            raise ConfigError(f"{where}: {key} is required")
    tags = raw.get("tags", {})
    if not isinstance(tags, Mapping):
        raise ConfigError(f'{where}.tags: write a table, e.g. tags = {{ env = "prod" }}')
    start = _moment(raw["effective_from"], zone, f"{where}.effective_from")
    end = _moment(raw["effective_to"], zone, f"{where}.effective_to") if "effective_to" in raw else None
    if end is not None and end <= start:
        raise ConfigError(f"{where}: effective_to must be after effective_from")
    return RateLine(
        name=str(raw["name"]),
        version=str(raw["version"]),
        measure=measure,
        per_time=per_time,
        tiers=_tiers(raw, where),
        fixed=_decimal(raw.get("fixed", 0), f"{where}.fixed"),
        effective_from=start,
        effective_to=end,
        provider=raw.get("provider"),
        project=raw.get("project"),
        tags={str(k): str(v) for k, v in tags.items()},
    )


def _overlap(a: RateLine, b: RateLine) -> bool:
    far = datetime.max.replace(tzinfo=UTC)
    return a.effective_from < (b.effective_to or far) and b.effective_from < (a.effective_to or far)


def parse_rate_card(data: Mapping[str, Any], source: str) -> RateCard:
    """A rate card from its parsed TOML/YAML document; ``ConfigError`` names the bad field and the fix."""
    currency = data.get("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isupper():
        raise ConfigError(f'{source}: currency {currency!r} must be an ISO 4217 code such as "EUR"')
    try:
        zone = ZoneInfo(str(data.get("time_zone", "UTC")))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{source}: time_zone {data.get('time_zone')!r} is not an IANA zone") from None
    raw_lines = data.get("rate", [])
    if not isinstance(raw_lines, list) or not raw_lines:
        raise ConfigError(f"{source}: no rate lines; add [[rate]] tables")
    try:
        lines = tuple(_line(raw, i, zone) for i, raw in enumerate(raw_lines))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    for i, a in enumerate(lines):
        for b in lines[i + 1 :]:
            same = (a.measure, a.provider, a.project, dict(a.tags)) == (b.measure, b.provider, b.project, dict(b.tags))
            if same and _overlap(a, b):
                raise ConfigError(
                    f"{source}: rate lines {a.name!r} ({a.version}) and {b.name!r} ({b.version}) price {a.measure} "
                    "for the same resources in overlapping periods; end one with effective_to"
                )
    return RateCard(currency, lines, source)


def load_rate_card(path: Path) -> RateCard:
    """Read a rate card from a ``.toml`` file (or ``.yaml``/``.yml`` when PyYAML is installed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"rate card {path}: {exc.strerror}; give an existing file with --rates") from None
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"rate card {path}: YAML needs PyYAML (pip install pyyaml), or use TOML") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"rate card {path} is not valid YAML: {exc}") from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"rate card {path} is not valid TOML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"rate card {path}: expected a table at the top level")
    return parse_rate_card(data, str(path))


def sample_rate_card() -> RateCard:
    """The sample card shipped with cloudmeter (used when no --rates is given)."""
    text = package_files.files("cloudmeter.reports").joinpath("sample_rates.toml").read_text(encoding="utf-8")
    return parse_rate_card(tomllib.loads(text), "sample_rates.toml")
