"""Masking secrets in text a person may see: messages, logs, and what libraries and servers answer.

Anything DSN-shaped is masked without knowing the secret: ``user:password@`` in a URL, ``password=...`` in a
URI query or in libpq key=value pairs (any spacing around ``=``, quoted or unquoted, backslash escapes
included). The secrets a caller knows are masked wherever they appear, in the forms a message may quote them.
Text relayed from a server or library (``relay``) and the records of library loggers that log credentials
(``mask_logs``) also lose long opaque tokens; relayed text is cut to one short line.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote, quote_plus, unquote

MASK: Final = "********"
#: The longest text ``relay`` passes on from a server or library.
RELAY_LIMIT: Final = 300

_SECRET_KEY = r"(?:ssl)?password|oauth_client_secret"
#: libpq's isspace(): an unquoted value ends at these and nowhere else (not at a no-break space).
_SPACE = r"[ \t\n\r\f\v]"
_MASKED = re.escape(MASK) + r"""(?![^\s)\]}"',;&#])"""
#: A libpq value: quoted parts (to the closing quote, else to the end), backslash escapes, other non-spaces.
_VALUE = r"""(?:'(?:[^'\\]|\\[\s\S])*'?|\\[\s\S]?|[^ \t\n\r\f\v'\\])*"""
#: ``user:password@`` (after ``scheme://``, or alone as in a mistyped ``postgres//user:pw@host``) up to the last
#: ``@`` before whitespace; ``password=value`` in a URI query (to ``&``) or in key=value pairs. A value already
#: masked stays as it is, so what follows it survives masking twice.
_DSN_SECRET: Final = re.compile(
    rf"""(?P<userinfo>\b[A-Za-z][A-Za-z0-9+.-]*:/+[^\s:/@"']*:|(?<![^\s"'(=,/])[^\s:/@"']*:(?!/))\S+@
    |(?P<query>[?&](?:{_SECRET_KEY})=)(?:{_MASKED}|[^&\s#]*)
    |(?P<pair>\b(?:{_SECRET_KEY}){_SPACE}*={_SPACE}*)(?:{_MASKED}|{_VALUE})""",
    re.VERBOSE | re.IGNORECASE,
)
#: 40 or more base64 characters with digits and both cases: an AWS secret key or session token, a Fernet token.
_OPAQUE_TOKEN: Final = re.compile(
    r"(?<![A-Za-z0-9+/=_-])(?=[A-Za-z0-9+/=_-]*\d)(?=[A-Za-z0-9+/=_-]*[a-z])(?=[A-Za-z0-9+/=_-]*[A-Z])"
    r"[A-Za-z0-9+/=_-]{40,}"
)
_ESCAPE_OR_QUOTE: Final = re.compile(r"\\([\s\S])|'")
#: Where Python's pretty-printer split a long string into literals on consecutive lines.
_SPLIT_LITERAL: Final = re.compile(r"""['"]\n[ \t]*['"]""")


def dsn_secrets(text: str) -> set[str]:
    """The values of the DSN-shaped secrets in ``text``: as written, percent-decoded, and as libpq reads them."""
    found: set[str] = set()
    for match in _DSN_SECRET.finditer(text):
        value = match[0][len(_prefix(match)) :].removesuffix("@")
        found |= {value, unquote(value), _ESCAPE_OR_QUOTE.sub(lambda m: m[1] or "", value)}
    return {value for value in found if value and value != MASK}


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with anything DSN-shaped masked, and each of ``secrets`` in every form it may be quoted in."""
    text = _DSN_SECRET.sub(lambda match: _prefix(match) + MASK + ("@" if match["userinfo"] else ""), text)
    for form in sorted(_forms(secrets), key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


def relay(text: str, secrets: Iterable[str] = (), limit: int = RELAY_LIMIT) -> str:
    """What a server or library said, fit for a message: masked (long opaque tokens too), one line, at most
    ``limit`` characters. A server may quote the request back, credentials and all (pretty-printed, as Python
    servers do, a long one split into literals: they are joined first)."""
    shown = " ".join(_OPAQUE_TOKEN.sub(MASK, mask(_SPLIT_LITERAL.sub("", text), secrets)).split())
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


class _MaskRecords(logging.Filter):
    """Masks DSN-shaped text and long opaque tokens in a record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = _OPAQUE_TOKEN.sub(MASK, mask(record.getMessage())), None
        return True


def mask_logs(*names: str) -> None:
    """Mask the records of the loggers ``names`` (a filter applies to its own logger's records only, so each
    logger that logs credentials, e.g. headers at DEBUG, is named)."""
    for name in names:
        logging.getLogger(name).addFilter(_MaskRecords())


def _prefix(match: re.Match[str]) -> str:
    return match["userinfo"] or match["query"] or match["pair"]


def _forms(secrets: Iterable[str]) -> set[str]:
    """Each secret as is and escaped the ways a message quotes it (Python, JSON, URLs)."""
    forms: set[str] = set()
    for secret in filter(None, secrets):
        forms |= {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
        forms |= {quote(secret, safe=""), quote_plus(secret)}
    return forms


def one_line(text: str) -> str:
    """``text`` on one line: libpq's messages carry hints on further lines (tab-indented)."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())
