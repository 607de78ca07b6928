"""Rate cards: the sample card, the TOML and YAML formats, and errors that name the field and the fix."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from cloudmeter.errors import ConfigError
from cloudmeter.reports.ratecard import Tier, load_rate_card, sample_rate_card
from tests.reports.rates import CARD_TOML


def test_sample_card_ships_with_the_package() -> None:
    card = sample_rate_card()
    assert card.currency == "EUR"
    assert {line.measure for line in card.lines} == {
        "vcpu_allocated", "cpu_cores_used", "memory_gb_allocated", "disk_gb_allocated", "network_gb",
    }  # fmt: skip
    memory = next(line for line in card.lines if line.name == "memory")
    assert memory.tiers == (Tier(Decimal(16), Decimal("3.00")), Tier(None, Decimal("2.50")))


def test_toml_and_yaml_cards_read_the_same(tmp_path: Path) -> None:
    toml = tmp_path / "rates.toml"
    toml.write_text(CARD_TOML)
    yaml_file = tmp_path / "rates.yaml"
    yaml_file.write_text(
        "currency: EUR\ntime_zone: Europe/Berlin\nrate:\n"
        "  - {name: cpu, version: '1', measure: vcpu_allocated, variable: '0.01', effective_from: 2026-01-01}\n"
    )
    card = load_rate_card(toml)
    assert [(line.name, line.version) for line in card.lines][:3] == [
        ("compute", "v1"),
        ("compute", "v2"),
        ("compute-dev", "v1"),
    ]
    assert card.lines[0].effective_to == datetime(2027, 1, 1, tzinfo=UTC)
    yaml_card = load_rate_card(yaml_file)
    assert yaml_card.lines[0].effective_from == datetime(2025, 12, 31, 23, tzinfo=UTC)  # Berlin midnight
    assert yaml_card.lines[0].unit_price == Decimal("0.01")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('currency = "euro"', "currency 'euro' must be an ISO 4217 code"),
        ('currency = "EUR"', "no rate lines; add \\[\\[rate\\]\\] tables"),
        (
            'currency = "EUR"\n[[rate]]\nname = "x"\nversion = "1"\nmeasure = "gpus"\neffective_from = 2026-01-01',
            "rate\\[0\\].measure: 'gpus' is not one of vcpu_allocated",
        ),
        (
            'currency = "EUR"\n[[rate]]\nname = "x"\nversion = "1"\nmeasure = "network_gb"\nper_time = "daily"\n'
            "effective_from = 2026-01-01",
            "network_gb is priced per GB transferred; remove per_time",
        ),
        (
            'currency = "EUR"\n[[rate]]\nname = "x"\nversion = "1"\nmeasure = "vcpu_allocated"\n'
            "tiers = [{ rate = 1 }, { up_to = 2, rate = 1 }]\neffective_from = 2026-01-01",
            "every tier but the last needs up_to",
        ),
        (
            'currency = "EUR"\n[[rate]]\nname = "x"\nversion = "1"\nmeasure = "vcpu_allocated"\nvariable = -1\n'
            "effective_from = 2026-01-01",
            "rate\\[0\\].variable: -1 must be a finite number >= 0",
        ),
        (
            'currency = "EUR"\n[[rate]]\nname = "x"\nmeasure = "vcpu_allocated"\neffective_from = 2026-01-01',
            "rate\\[0\\]: version is required",
        ),
        (
            'currency = "EUR"\n[[rate]]\nname = "x"\nversion = "1"\nmeasure = "vcpu_allocated"\nprice = 1\n'
            "effective_from = 2026-01-01",
            "unknown keys \\['price'\\]",
        ),
        ("currency = ", "is not valid TOML"),
    ],
)
def test_bad_cards_name_the_field(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message):
        load_rate_card(path)


def test_missing_card_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="give an existing file with --rates"):
        load_rate_card(tmp_path / "nope.toml")
