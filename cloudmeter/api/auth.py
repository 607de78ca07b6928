"""Bearer tokens: who a request is (``Principal``) and what it may do (``require_role``).

A token comes as ``Authorization: Bearer <token>`` or, from the web page's login, as the cookie
``cloudmeter_token``. No token, or one that is unknown or revoked: 401 with ``WWW-Authenticate: Bearer`` and how
to get one. A viewer's token on an admin route: 403, and so is a change (POST) signed in with the cookie alone,
without the web page's ``X-Cloudmeter-Action`` header (cross-site request forgery). Roles are ranked: an admin may
do what a viewer may.

    Viewer = Annotated[Principal, Depends(require_role("viewer"))]

    @router.get("/thing")
    def thing(who: Viewer) -> ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from cloudmeter.storage import tokens
from cloudmeter.storage.database import Database
from cloudmeter.storage.tokens import Role

COOKIE = "cloudmeter_token"
#: A change (POST) authenticated by the cookie needs this header: the web page's scripts send it, and no form or
#: other site can (a cross-origin request with it needs a CORS preflight, which the API never grants).
ACTION_HEADER = "X-Cloudmeter-Action"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_RANK: dict[str, int] = {"viewer": 0, "admin": 1}

_bearer = HTTPBearer(auto_error=False, description="A token from `cloudmeter tokens create NAME --role viewer`.")
_cookie = APIKeyCookie(name=COOKIE, auto_error=False, description="The token, as the web page's login keeps it.")


@dataclass(frozen=True)
class Principal:
    """Who a request is: the token's name and its role."""

    name: str
    role: Role


def database(request: Request) -> Database:
    """The app's open database (``create_app`` puts it on ``app.state``)."""
    db: Database = request.app.state.db
    return db


def principal_for(request: Request, token: str) -> Principal | None:
    """The principal a token names, or None when it is unknown or revoked (the web page's login form uses this)."""
    if not token:
        return None
    with database(request).connection() as conn:
        found = tokens.lookup(conn, token)
    if found is None:
        return None
    role: Role = "admin" if found.role == "admin" else "viewer"
    return Principal(found.name, role)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def require_role(role: Role) -> Callable[..., Principal]:
    """A dependency: the request's principal if its token is live and its role is at least ``role``."""

    def check(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        cookie: Annotated[str | None, Depends(_cookie)],
    ) -> Principal:
        token = bearer.credentials if bearer is not None else cookie
        if not token:
            raise _unauthorized(
                "no token: send `Authorization: Bearer <token>`; an administrator makes one with "
                "`cloudmeter tokens create NAME --role viewer`"
            )
        who = principal_for(request, token)
        if who is None:
            raise _unauthorized(
                "unknown or revoked token; `cloudmeter tokens list` shows the live ones, "
                "`cloudmeter tokens create NAME --role viewer` makes a new one"
            )
        if bearer is None and request.method not in _SAFE_METHODS and ACTION_HEADER.lower() not in request.headers:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"a change signed in with the cookie needs the header {ACTION_HEADER} (the web page sends it); "
                "API clients send `Authorization: Bearer <token>`",
            )
        if _RANK[who.role] < _RANK[role]:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"token {who.name!r} has role {who.role}; this needs role {role} "
                "(`cloudmeter tokens create NAME --role admin`)",
            )
        return who

    return check


Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]
