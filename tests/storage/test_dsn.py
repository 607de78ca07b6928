"""DSNs: what is wrong with a malformed one (without quoting it), and no password in any message or log."""

from __future__ import annotations

import logging
import re
import string
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudmeter.errors import ConfigError, StorageUnavailable
from cloudmeter.storage.database import Database
from cloudmeter.storage.dsn import MASK, dsn_problem, mask_dsn, scrub

PASSWORD = "S3cret-Pw9"


@pytest.mark.parametrize(
    ("dsn", "problem"),
    [
        (f"postgres//meter:{PASSWORD}@db.example:5432/cm", "scheme must be postgresql:// or postgres://"),
        (f"mysql://meter:{PASSWORD}@db.example/cm", "scheme must be postgresql:// or postgres://"),
        (f"POSTGRESQL://meter:{PASSWORD}@db.example/cm", "scheme must be postgresql:// or postgres://"),
        (
            f"postgresql://meter:{PASSWORD}@Pass@127.0.0.1:1/cm",
            "an '@' in the user name or password must be written %40",
        ),
        (
            f"postgresql://meter:{PASSWORD}/x@db/cm",
            "port must be a number (write '/' in the user name or password as %2F",
        ),
        (f"postgresql://meter:/{PASSWORD}@db/cm", "write '/' in the user name or password as %2F"),
        (f"postgresql://meter:{PASSWORD} x@db/cm", "a space in a URI must be written %20"),
        (f"postgresql://meter:{PASSWORD}%zz@db/cm", "a '%' must start a %XX escape"),
        (f"postgresql://db/cm?password={PASSWORD}&x", "the part after '?' must be key=value pairs"),
        (f"postgresql://db/cm?password={PASSWORD}&sslmdoe=require", "unknown parameter; did you mean sslmode?"),
        (f"host=db password={PASSWORD} x", "every item must be key=value; quote a value with spaces"),
        (f"host=db password='{PASSWORD}", "a quoted value is not closed"),
        (f"host=db hots=x password={PASSWORD}", "unknown parameter; did you mean host?"),
        (f"host=db port=5x password={PASSWORD}", "port must be a number"),
        (f"postgresql://meter:{PASSWORD}%80@db/cm", "must be UTF-8"),
        (f"host=db\x00 password={PASSWORD}", "a NUL character is not allowed"),
        (f"postgresql://meter:{PASSWORD}@[::1:5432/cm", "an IPv6 host must be closed with ']'"),
        (f"postgresql://meter:{PASSWORD}@[::1", "an IPv6 host must be closed with ']'"),
        (f"postgresql://meter:{PASSWORD}@[]:5432/cm", "an IPv6 host in [brackets] must not be empty"),
        (f"postgresql://meter:{PASSWORD}@[::1]x/cm", "host or port is malformed: write host:5432"),
    ],
)
def test_a_malformed_dsn_is_named_without_quoting_it(dsn: str, problem: str) -> None:
    found = dsn_problem(dsn)
    assert found is not None
    assert problem in found
    assert PASSWORD not in found
    assert PASSWORD not in mask_dsn(dsn)


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://meter:{PASSWORD}@db.example:5432/cm",
        f"postgres://meter:{quote('p@ss:/?#&= w', safe='')}@db/cm?sslmode=require",
        f"postgresql://meter:{PASSWORD}@h1:5432,h2:5433/cm",
        f"host=db user=meter password='a b\\'c' dbname=cm sslpassword={PASSWORD}",
        "postgresql://meter@db/cm",
        "",
        f"password = {PASSWORD} host = db",
        f" \thost =db\npassword=\t{PASSWORD}",
        "postgresql://meter@[::1]:5432/cm",
    ],
)
def test_a_good_dsn_passes(dsn: str) -> None:
    assert dsn_problem(dsn) is None


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        (f"postgresql://meter:{PASSWORD}@db:5432/cm", "postgresql://meter:********@db:5432/cm"),
        (
            f"postgresql://db/cm?password={PASSWORD}&sslmode=require",
            "postgresql://db/cm?password=********&sslmode=require",
        ),
        (f"host=db password='{PASSWORD} x' dbname=cm", "host=db password=******** dbname=cm"),
        (
            f"host=db sslpassword={PASSWORD} oauth_client_secret=tok3n",
            f"host=db sslpassword={MASK} oauth_client_secret={MASK}",
        ),
        (f"postgres//meter:{PASSWORD}@db:5432/cm", "postgres//meter:********@db:5432/cm"),
        (f"postgresql://meter:{PASSWORD}@Pass@127.0.0.1:1/cm", "postgresql://meter:********@127.0.0.1:1/cm"),
        (f"postgresql://meter:{PASSWORD} x@db/cm", "postgresql://meter:********@db/cm"),
        ("postgresql://meter@db/cm", "postgresql://meter@db/cm"),
        (f"host=db password = {PASSWORD} dbname=cm", f"host=db password = {MASK} dbname=cm"),
        (f"host=db password\t=\n'{PASSWORD} x' dbname=cm", f"host=db password\t=\n{MASK} dbname=cm"),
        (f"host=db password=a\\ {PASSWORD} dbname=cm", f"host=db password={MASK} dbname=cm"),
        (f"host=db password=a\xa0{PASSWORD} dbname=cm", f"host=db password={MASK} dbname=cm"),
        (f"host=db password='a'{PASSWORD} dbname=cm", f"host=db password={MASK} dbname=cm"),
        (f"postgresql://meter:{PASSWORD}@[::1:5432/cm", f"postgresql://meter:{MASK}@[::1:5432/cm"),
    ],
)
def test_mask_dsn(dsn: str, shown: str) -> None:
    assert mask_dsn(dsn) == shown


@pytest.mark.parametrize(
    "text",
    [
        f'missing "=" after "postgres//meter:{PASSWORD}@db.example:5432/cm" in connection info string',
        f"cannot connect to postgresql://meter:{PASSWORD}@db/cm: refused",
        f"options host=db password={PASSWORD} dbname=cm",
        f"url 'https://bot:{PASSWORD}@hooks.example/x'",
    ],
)
def test_scrub_masks_dsn_shaped_text_without_knowing_the_dsn(text: str) -> None:
    assert PASSWORD not in scrub(text)
    assert MASK in scrub(text)


def test_scrub_leaves_ordinary_text_alone() -> None:
    text = 'FATAL: password authentication failed for user "meter" at 12:30 (see https://example.org/a)'
    assert scrub(text) == text


def _passwords(specials: str) -> st.SearchStrategy[str]:
    """Letters and digits around one to four of ``specials``."""
    plain = st.text(string.ascii_letters + string.digits, min_size=4, max_size=10)
    return st.builds(
        lambda head, special, tail: head + special + tail, plain, st.text(specials, min_size=1, max_size=4), plain
    )


#: Passwords with the characters that break a DSN written by hand ('*' is the mask's own character).
passwords = _passwords(" @:/?#&='\"\\%+,;[]$!~é")


def _quoted(password: str) -> str:
    """``password`` as a quoted libpq value."""
    return "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _key_value(password: str) -> str:
    return f"host=db.example port=5432 user=meter password={_quoted(password)} dbname=cm"


def _outputs(dsn: str, password: str) -> list[str]:
    """Everything cloudmeter may show about ``dsn``, given messages that quote it and its password."""
    libpq = f'FATAL: password "{password}" rejected; missing "=" after "{dsn}" in connection info string'
    return [mask_dsn(dsn), scrub(libpq, dsn), dsn_problem(dsn) or ""]


@given(password=passwords)
def test_no_output_carries_a_password(password: str) -> None:
    encoded = quote(password, safe="")
    forms = {
        f"postgresql://meter:{encoded}@db.example:5432/cm": {password, encoded},
        _key_value(password): {password},
        f"postgresql://meter:{password}@db.example:5432/cm": {password},  # written unescaped
        f"postgres://db.example/cm?password={encoded}": {password, encoded},
    }
    for dsn, secrets in forms.items():
        for output in _outputs(dsn, password):
            assert not any(secret in output for secret in secrets), (dsn, output)


@given(password=passwords)
def test_scrub_alone_masks_well_formed_dsns(password: str) -> None:
    encoded = quote(password, safe="")
    for dsn in (f"postgresql://meter:{encoded}@db.example:5432/cm", _key_value(password)):
        assert dsn_problem(dsn) is None
        shown = scrub(f"connecting to {dsn} failed")
        assert encoded not in shown
        assert password not in shown


#: What libpq skips around '=' and between pairs.
spacing = st.text(" \t\n\r\f\v", max_size=3)


def _escaped(password: str) -> str:
    """``password`` as an unquoted libpq value: libpq's whitespace, quotes and backslashes escaped with a backslash
    (a no-break space is a character of the value)."""
    return re.sub(r"([ \t\n\r\f\v'\\])", r"\\\1", password)


@given(password=_passwords(" \t\n\xa0\u2028'\"\\="), spaces=st.lists(spacing, min_size=5, max_size=5))
def test_any_spacing_and_quoting_of_key_value_pairs_is_masked(password: str, spaces: list[str]) -> None:
    for value in (_quoted(password), _escaped(password)):
        a, b, c, d, e = spaces
        dsn = f"{a}host{b}={c}db {d}password{e}={a}{value}{b} dbname=cm{c}"
        assert psycopg.conninfo.conninfo_to_dict(dsn)["password"] == password
        assert dsn_problem(dsn) is None
        for output in [*_outputs(dsn, password), scrub(f"connecting to {dsn} failed")]:
            assert password not in output, (dsn, output)


def _open(dsn: str, tmp_path: Path) -> str:
    with pytest.raises((ConfigError, StorageUnavailable)) as caught, Database(dsn, tmp_path):
        pass
    return str(caught.value)


@pytest.mark.parametrize(
    ("dsn", "secrets"),
    [
        (f"postgresql://meter@127.0.0.1:1/cm?password={PASSWORD}", [PASSWORD]),
        (f"host=127.0.0.1 port=1 user=meter password='{PASSWORD} Tail7x' dbname=cm", [PASSWORD, "Tail7x"]),
        (f"host=127.0.0.1 port=1 user=meter sslpassword={PASSWORD}", [PASSWORD]),
        (f"postgresql://meter:{PASSWORD}@Tail7x@127.0.0.1:1/cm", [PASSWORD, "Tail7x"]),
        (f"postgres//meter:{PASSWORD}@127.0.0.1:1/cm", [PASSWORD]),
    ],
)
def test_a_failed_connection_logs_and_raises_no_password(
    dsn: str, secrets: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="psycopg")
    message = _open(dsn, tmp_path)
    assert "CLOUDMETER_DSN" in message
    for secret in secrets:
        assert secret not in message
        assert secret not in caplog.text


def test_psycopg_log_records_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="psycopg")
    for name in ("psycopg", "psycopg.pool"):
        logging.getLogger(name).debug("connection failed: %s", f'missing "=" after "postgres//meter:{PASSWORD}@db/cm"')
    assert len(caplog.records) == 2
    assert PASSWORD not in caplog.text
