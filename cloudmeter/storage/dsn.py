"""Connection strings: what is wrong with one, and masking passwords in anything a person may see.

A DSN is a URI (``postgresql://user:password@host:port/dbname?key=value``) or libpq ``key=value`` pairs. Nothing
here quotes any part of a DSN in a message: a password written unescaped can end up in any part of it.
"""

from __future__ import annotations

import difflib
import re
from typing import Final
from urllib.parse import unquote

import psycopg

MASK: Final = "********"
SCHEMES: Final = ("postgresql://", "postgres://")
#: libpq keywords whose values are secrets.
SECRET_KEYS: Final = frozenset({"password", "sslpassword", "oauth_client_secret"})

_SECRET_KEY = r"(?:ssl)?password|oauth_client_secret"
_MASKED = re.escape(MASK) + r"""(?![^\s)\]}"',;&#])"""
#: ``user:password@`` (after ``scheme://``, or alone as in a mistyped ``postgres//user:pw@host``) up to the last
#: ``@`` before whitespace; ``password=value`` in a URI query (to ``&``) or in key=value pairs (quoted or to
#: whitespace). A value already masked stays as it is, so what follows it survives scrubbing twice.
_SECRETS_IN_TEXT: Final = re.compile(
    rf"""(?P<userinfo>\b[A-Za-z][A-Za-z0-9+.-]*:/+[^\s:/@"']*:|(?<![^\s"'(=,/])[^\s:/@"']*:(?!/))\S+@
    |(?P<query>[?&](?:{_SECRET_KEY})=)(?:{_MASKED}|[^&\s#]*)
    |(?P<pair>\b(?:{_SECRET_KEY})\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|{_MASKED}|\S*)""",
    re.VERBOSE | re.IGNORECASE,
)


def dsn_problem(dsn: str) -> str | None:
    """What is wrong with ``dsn`` and how to fix it, without quoting it; None when libpq parses it sensibly."""
    uri = dsn.startswith(SCHEMES)
    first_key = dsn.split(maxsplit=1)[0].split("=", 1) if dsn.strip() else ["", ""]
    if not uri and (len(first_key) == 1 or "://" in first_key[0]):
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
    if uri:
        return "host or port is malformed (postgresql://user:password@host:5432/dbname; an IPv6 host in [brackets])"
    if "unterminated quoted string" in message:
        return "a quoted value is not closed (inside quotes write ' and \\ as \\' and \\\\)"
    return "every item must be key=value; quote a value with spaces or quotes, e.g. password='a b'"


def _keywords() -> list[str]:
    return [option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults()]


def mask_dsn(dsn: str) -> str:
    """The DSN with its passwords masked (URI or key=value form, parsable or not)."""
    return scrub(dsn, dsn)


def scrub(text: str, dsn: str | None = None) -> str:
    """``text`` with anything DSN-shaped masked, and the passwords of ``dsn`` (if given) wherever they appear."""
    text = _SECRETS_IN_TEXT.sub(_mask_match, text)
    for secret in sorted(_secrets(dsn), key=len, reverse=True) if dsn else ():
        text = text.replace(secret, MASK)
    return text


def _mask_match(match: re.Match[str]) -> str:
    return (match["userinfo"] or match["query"] or match["pair"]) + MASK + ("@" if match["userinfo"] else "")


def _secrets(dsn: str) -> set[str]:
    """The secrets of ``dsn`` as written and as libpq reads them (percent-decoded, unquoted)."""
    found: set[str] = set()
    if "://" in dsn and "@" in dsn:  # the password as meant, even if spaces or '@' keep libpq or the regex from it
        userinfo = dsn.split("://", 1)[1].rsplit("@", 1)[0]
        found.add(userinfo.partition(":")[2])
    for match in _SECRETS_IN_TEXT.finditer(dsn):
        value = match[0][len(match["userinfo"] or match["query"] or match["pair"]) :].removesuffix("@")
        found |= {value, unquote(value), value.strip("'").replace("\\'", "'").replace("\\\\", "\\")}
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except (psycopg.ProgrammingError, UnicodeError):
        params = {}
    found |= {str(value) for key, value in params.items() if key in SECRET_KEYS}
    return {secret for secret in found if secret}
