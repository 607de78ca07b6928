"""Connection strings: what is wrong with one, and masking passwords in anything a person may see.

A DSN is a URI (``postgresql://user:password@host:port/dbname?key=value``) or libpq ``key=value`` pairs. Nothing
here quotes any part of a DSN in a message: a password written unescaped can end up in any part of it.
"""

from __future__ import annotations

import difflib
import re
from typing import Final

import psycopg

from cloudmeter.redact import MASK, dsn_secrets, mask

__all__ = ["MASK", "SCHEMES", "SECRET_KEYS", "dsn_problem", "mask_dsn", "scrub"]

SCHEMES: Final = ("postgresql://", "postgres://")
#: libpq keywords whose values are secrets.
SECRET_KEYS: Final = frozenset({"password", "sslpassword", "oauth_client_secret"})
#: The start of libpq key=value pairs: a keyword and '=', spaces allowed around both.
_FIRST_PAIR: Final = re.compile(r"[ \t\n\r\f\v]*[A-Za-z_][A-Za-z0-9_]*[ \t\n\r\f\v]*=")


def dsn_problem(dsn: str) -> str | None:
    """What is wrong with ``dsn`` and how to fix it, without quoting it; None when libpq parses it sensibly."""
    uri = dsn.startswith(SCHEMES)
    if not uri and dsn.strip() and not _FIRST_PAIR.match(dsn):
        return "scheme must be postgresql:// or postgres:// (lower case), or use key=value pairs"
    if "\x00" in dsn:
        return "a NUL character is not allowed"
    if uri and any(c.isspace() for c in dsn):
        return "a space in a URI must be written %20"
    if uri and dsn.split("://", 1)[1].split("/", 1)[0].count("@") > 1:
        return "an '@' in the user name or password must be written %40"
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        return _libpq_problem(str(exc), uri)
    except UnicodeError:
        return "it must be UTF-8, and so must what a %XX escape decodes to (write '%' itself as %25)"
    if not all(port.strip().isdigit() for port in str(params.get("port") or "0").split(",") if port.strip()):
        return "port must be a number" + (" (write '/' in the user name or password as %2F)" if uri else "")
    if uri and "@" in str(params.get("dbname", "")):
        return "an '@' after the host: write '/' in the user name or password as %2F, and '@' in dbname as %40"
    return None


def _libpq_problem(message: str, uri: bool) -> str:
    """A hint for libpq's parse error ``message`` (which may quote the password, so it is not repeated)."""
    if "invalid connection option" in message or "invalid URI query parameter" in message:
        bad = message.split('"')[1] if message.count('"') >= 2 else ""
        close = difflib.get_close_matches(bad, _keywords(), n=1)
        return "unknown parameter" + (f"; did you mean {close[0]}?" if close else " (see libpq's connection keywords)")
    if "percent-encoded" in message:
        return "a '%' must start a %XX escape (write '%' itself as %25)"
    if "URI query parameter" in message:
        return "the part after '?' must be key=value pairs joined by '&' (write '&' or '=' in a value as %26, %3D)"
    if 'matching "]"' in message:
        return "an IPv6 host must be closed with ']' (e.g. [::1]:5432)"
    if "IPv6 host address may not be empty" in message:
        return "an IPv6 host in [brackets] must not be empty"
    if uri:
        return "host or port is malformed: write host:5432, an IPv6 host as [::1]:5432"
    if "unterminated quoted string" in message:
        return "a quoted value is not closed (inside quotes write ' and \\ as \\' and \\\\)"
    return "every item must be key=value; quote a value with spaces or quotes, e.g. dbname='my db'"


def _keywords() -> list[str]:
    return [option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults()]


def mask_dsn(dsn: str) -> str:
    """The DSN with its passwords masked (URI or key=value form, parsable or not)."""
    return scrub(dsn, dsn)


def scrub(text: str, dsn: str | None = None) -> str:
    """``text`` with anything DSN-shaped masked, and the passwords of ``dsn`` (if given) wherever they appear."""
    return mask(text, _secrets(dsn) if dsn else ())


def _secrets(dsn: str) -> set[str]:
    """The secrets of ``dsn`` as written and as libpq reads them (percent-decoded, unquoted)."""
    found = dsn_secrets(dsn)
    if "://" in dsn and "@" in dsn:  # the password as meant, even if spaces or '@' keep libpq or the regex from it
        found.add(dsn.split("://", 1)[1].rsplit("@", 1)[0].partition(":")[2])
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except (psycopg.ProgrammingError, UnicodeError):
        params = {}
    found |= {str(value) for key, value in params.items() if key in SECRET_KEYS}
    return {secret for secret in found if secret}
