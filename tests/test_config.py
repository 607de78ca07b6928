"""Configuration: file, environment precedence, validation errors that name the field, masked secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cloudmeter.config import effective_config, load_settings
from cloudmeter.errors import ConfigError
from cloudmeter.storage.dsn import mask_dsn, scrub


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("CLOUDMETER_CONFIG", "CLOUDMETER_DSN", "CLOUDMETER_DATA_DIR", "CLOUDMETER_POOL_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDMETER_DATA_DIR", str(tmp_path / "data"))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cloudmeter.toml"
    path.write_text(text)
    return path


def test_file_then_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(
        tmp_path,
        """
pool_size = 3
time_zones = ["Europe/Berlin", "UTC", "America/New_York"]
[schedule]
capture_interval_s = 120
[managers.lab]
kind = "simulator"
vms = 5
""",
    )
    monkeypatch.setenv("CLOUDMETER_CONFIG", str(path))
    monkeypatch.setenv("CLOUDMETER_POOL_SIZE", "7")
    settings = load_settings()
    assert settings.pool_size == 7
    assert settings.schedule.capture_interval_s == 120
    assert settings.schedule.refresh_interval_s == 900
    assert settings.time_zones == ("UTC", "Europe/Berlin", "America/New_York")
    assert settings.managers["lab"].kind == "simulator"
    assert settings.managers["lab"].vms == 5  # type: ignore[attr-defined]
    assert settings.data_dir == tmp_path / "data"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pool_size = 0", r"pool_size \(CLOUDMETER_POOL_SIZE\): Input should be greater than or equal to 1"),
        ('time_zones = ["Mars/Olympus"]', r"'Mars/Olympus' is not an IANA time zone"),
        ("colour = 'blue'", r"unknown setting colour in .*cloudmeter.toml; known: dsn, data_dir, pool_size"),
        ("[managers.x]\nvms = 3", r"manager 'x' has no 'kind'"),
        ('[managers.x]\nkind = "hyperv"', r"unknown manager kind 'hyperv'; installed kinds: .*simulator, vmware"),
        (
            '[managers.x]\nkind = "simulator"\ninterval_s = "often"',
            r"manager 'x' \(kind 'simulator'\) is invalid: interval_s",
        ),
        ("pool_size = ", r"is not valid TOML"),
    ],
)
def test_bad_config_names_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(_write(tmp_path, text))


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere.toml does not exist; fix CLOUDMETER_CONFIG"):
        load_settings(tmp_path / "nowhere.toml")


def test_effective_config_masks_the_dsn_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDMETER_DSN", "postgresql://meter:s3cr3t-pw@db.example:5432/cm")
    shown = effective_config(load_settings())
    assert shown["dsn"] == "postgresql://meter:********@db.example:5432/cm"
    assert "s3cr3t-pw" not in repr(shown)


def test_mask_and_scrub_key_value_dsn() -> None:
    dsn = "host=db user=meter password=hunter2 dbname=cm"
    assert mask_dsn(dsn) == "host=db user=meter password=******** dbname=cm"
    assert scrub("FATAL: password hunter2 rejected", dsn) == "FATAL: password ******** rejected"
    assert mask_dsn("postgresql://meter@db/cm") == "postgresql://meter@db/cm"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pool_sise = 4", "unknown setting pool_sise in {path}; did you mean pool_size?"),
        (
            "[schedule]\ncapture_intervl_s = 60",
            "unknown setting schedule.capture_intervl_s in {path}; did you mean schedule.capture_interval_s?",
        ),
        ("[retention]\nraw_dayz = 3", "unknown setting retention.raw_dayz in {path}; did you mean retention.raw_days?"),
    ],
)
def test_a_mistyped_key_in_the_file_is_named_with_the_closest_setting(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value) == message.format(path=path)


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        (
            "CLOUDMETER_POOL_SISE",
            "unknown setting CLOUDMETER_POOL_SISE in the environment; did you mean CLOUDMETER_POOL_SIZE?",
        ),
        (
            "cloudmeter_pool_sise",
            "unknown setting cloudmeter_pool_sise in the environment; did you mean CLOUDMETER_POOL_SIZE?",
        ),
        (
            "CLOUDMETER_SCHEDULE__JITTR_S",
            "unknown setting CLOUDMETER_SCHEDULE__JITTR_S in the environment; did you mean "
            "CLOUDMETER_SCHEDULE__JITTER_S?",
        ),
    ],
)
def test_a_mistyped_variable_is_named_with_the_closest_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, message: str
) -> None:
    monkeypatch.setenv(variable, "4")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == message


def test_other_cloudmeter_variables_may_hold_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDMETER_OS_PASSWORD", "for env:CLOUDMETER_OS_PASSWORD in a manager")
    assert load_settings().pool_size == 4


@pytest.mark.parametrize(
    ("dsn", "problem"),
    [
        ("postgres//meter:PW-s3cr3t@db.example:5432/cm", "scheme must be postgresql:// or postgres://"),
        (
            "postgresql://meter:PW-s3cr3t@Pass-7z@127.0.0.1:1/cm",
            "an '@' in the user name or password must be written %40",
        ),
        ("host=db password=PW-s3cr3t Pass-7z", "every item must be key=value"),
    ],
)
def test_a_malformed_dsn_is_rejected_at_load_without_the_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dsn: str, problem: str
) -> None:
    monkeypatch.setenv("CLOUDMETER_DSN", dsn)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"CLOUDMETER_DSN is not a valid PostgreSQL connection string: {problem}")
    assert "PW-s3cr3t" not in message
    assert "Pass-7z" not in message
    assert "\n" not in message
    monkeypatch.delenv("CLOUDMETER_DSN")
    path = _write(tmp_path, f"dsn = {dsn!r}")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value).startswith(f"dsn in {path} is not a valid PostgreSQL connection string: {problem}")
    assert "PW-s3cr3t" not in str(caught.value)


def test_effective_config_masks_every_secret_of_the_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDMETER_DSN", "host=db user=meter password='s3cr3t pw' sslpassword=k3y-pw dbname=cm")
    shown = effective_config(load_settings())
    assert shown["dsn"] == "host=db user=meter password=******** sslpassword=******** dbname=cm"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"pool_size = 4\n# caf\xe9\n", "is not UTF-8 text (byte 0xe9 at offset 19); save it as UTF-8"),
        (b'time_zones = ["America"]\n', "'America' is not an IANA time zone"),
        (
            b"[managers]\nlab = 5\n",
            "managers.lab must be a table ([managers.lab] with kind = ...), not a value of type int",
        ),
        (b"[schedule]\ncapture_interval_s = 1000000000000000\n", "less than or equal to 86400"),
        (b"[retention]\nraw_days = 1000000000000000\n", "less than or equal to 3660"),
    ],
)
def test_inputs_that_crashed_are_config_errors(tmp_path: Path, text: bytes, message: str) -> None:
    path = tmp_path / "cloudmeter.toml"
    path.write_bytes(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(path)


def test_a_directory_as_the_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory; name the TOML file in it"):
        load_settings(tmp_path)


@pytest.mark.parametrize(
    "table",
    [
        'kind = "simulator"\nvms = 1000000000000000',
        'kind = "simulator"\nhorizon_days = 1000000000000000',
        'kind = "openstack"\nauth_mode = "basic"\ngnocchi_url = "http://g"\nusername = "u"\npassword = "p"\n'
        "granularity_s = 1000000000000000",
    ],
)
def test_manager_sizes_and_durations_are_bounded(tmp_path: Path, table: str) -> None:
    with pytest.raises(ConfigError, match="less than or equal to"):
        load_settings(_write(tmp_path, f"[managers.lab]\n{table}\n"))
