"""Connection strings: masking passwords for anything a person may see."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit, urlunsplit

MASK: Final = "********"


def mask_dsn(dsn: str) -> str:
    """The DSN with any password replaced by a mask (URI or key=value form)."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        if not parts.password:
            return dsn
        netloc = parts.netloc.replace(f":{parts.password}@", f":{MASK}@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    return " ".join(f"password={MASK}" if item.lower().startswith("password=") else item for item in dsn.split())


def scrub(text: str, dsn: str) -> str:
    """``text`` with the DSN's password (if any) masked wherever it appears."""
    parts = urlsplit(dsn) if "://" in dsn else None
    secrets = (
        [parts.password]
        if parts and parts.password
        else [item.split("=", 1)[1] for item in dsn.split() if item.lower().startswith("password=")]
    )
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text
