"""The ``api_tokens`` table: bearer tokens of the HTTP API, each a name, a role and the token's SHA-256.

A token is ``cm_`` and 32 random bytes (``secrets.token_urlsafe(32)``): 256 bits nobody can guess, so a plain
SHA-256 of it is as good as a slow password hash and lets a request find its token by one index lookup. The
token itself is shown once, when it is made, and never stored.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

import psycopg
from psycopg.rows import class_row

Role = Literal["viewer", "admin"]
ROLES: Final[tuple[Role, ...]] = ("viewer", "admin")
PREFIX: Final = "cm_"
#: ``last_used_at`` is written at most this often per token (a busy client does not write on every request).
TOUCH_INTERVAL: Final = "1 minute"


@dataclass(frozen=True)
class TokenRow:
    """A stored token, without the token or its hash."""

    id: int
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


_COLUMNS = "id, name, role, created_at, last_used_at, revoked_at"


def token_hash(token: str) -> str:
    """The SHA-256 of ``token``, in hex: what the table keeps."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(conn: psycopg.Connection, name: str, role: Role) -> str:
    """Store a new token named ``name`` with ``role`` and return it (the only time it is seen).

    Raises LookupError when a token of that name exists (revoked ones too: their names stay taken).
    """
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    token = PREFIX + secrets.token_urlsafe(32)
    with conn.transaction():
        row = conn.execute(
            """INSERT INTO api_tokens (name, role, token_hash) VALUES (%s, %s, %s)
               ON CONFLICT (name) DO NOTHING RETURNING id""",
            (name, role, token_hash(token)),
        ).fetchone()
    if row is None:
        raise LookupError(f"a token named {name!r} exists already")
    return token


def list_tokens(conn: psycopg.Connection) -> list[TokenRow]:
    """Every token, revoked ones included, by name."""
    with conn.cursor(row_factory=class_row(TokenRow)) as cur:
        return cur.execute(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY name").fetchall()


def revoke_token(conn: psycopg.Connection, name: str) -> bool:
    """Revoke token ``name`` (it stops working at once); False if there is no such token. Revoking twice keeps
    the first time."""
    with conn.transaction():
        done = conn.execute(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE name = %s", (name,)
        ).rowcount
    return done == 1


def lookup(conn: psycopg.Connection, token: str) -> TokenRow | None:
    """The live (not revoked) token ``token``, or None; notes its use (at most once a ``TOUCH_INTERVAL``)."""
    with conn.transaction(), conn.cursor(row_factory=class_row(TokenRow)) as cur:
        found = cur.execute(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE token_hash = %s AND revoked_at IS NULL", (token_hash(token),)
        ).fetchone()
        if found is not None:
            cur.execute(
                f"""UPDATE api_tokens SET last_used_at = now() WHERE id = %s
                    AND (last_used_at IS NULL OR last_used_at < now() - interval '{TOUCH_INTERVAL}')""",
                (found.id,),
            )
    return found
