"""Signing in to the web page: a form takes an API token, checks it with ``auth.principal_for`` and keeps it in the
cookie ``cloudmeter_token`` (HttpOnly: no script reads it; SameSite=Strict: no other site's request carries it;
Secure when the page came over https; Path=/). The API reads the same cookie, so the page's scripts call it as
the signed-in user. Logging out clears the cookie.

Cross-site requests: the login and logout forms accept a POST only from this origin (its ``Origin`` header, when
the browser sends one, must name this host: ``Host``, or ``X-Forwarded-Host`` behind a proxy). The admin actions
are API calls authenticated by the cookie, which SameSite=Strict keeps off every request another site starts; the
page's script also sends the header ``X-Cloudmeter-Action``, which no form can send and no other origin can add
without a CORS preflight (the API grants none), so the API can refuse a cookie-authenticated change without it.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cloudmeter.api.auth import COOKIE, Principal, principal_for
from cloudmeter.api.web.render import SECURITY_HEADERS, page

router = APIRouter(include_in_schema=False)

#: The longest login form accepted (a token is 43 characters; a form is a few hundred bytes).
MAX_FORM_BYTES: Final = 4096
WRONG_TOKEN: Final = "That token is unknown or revoked; ask an administrator for a live one (cloudmeter tokens list)."
#: A year: the cookie lives as long as the browser keeps it; revoking the token ends the session anyway.
COOKIE_MAX_AGE_S: Final = 365 * 86400


def signed_in(request: Request) -> Principal | None:
    """Who the request's cookie names, or None (no cookie, or an unknown or revoked token)."""
    token = request.cookies.get(COOKIE)
    return principal_for(request, token) if token else None


def to_login(request: Request) -> RedirectResponse:
    """A redirect to the login form that comes back to this page afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    query = "" if target == "/" else "?" + urlencode({"next": target})
    return _redirect(f"/login{query}")


def _redirect(location: str) -> RedirectResponse:
    response = RedirectResponse(location, status.HTTP_303_SEE_OTHER)
    response.headers.update(SECURITY_HEADERS)
    return response


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this server, never another site (``//evil``, ``https://...``)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def same_origin(request: Request) -> bool:
    """Whether a POST comes from a page of this server: its Origin header (browsers send one with a form POST)
    names this host (as the client asked for it: ``Host``, or ``X-Forwarded-Host`` behind a proxy), or there is
    none (a client that is not a browser, which has no cookie to abuse)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    hosts = {request.headers.get("host"), *_forwarded(request, "x-forwarded-host")}
    return urlsplit(origin).netloc in hosts - {None, ""}


def over_https(request: Request) -> bool:
    """Whether the browser reached the page over https: directly, or through a TLS proxy that says so
    (``X-Forwarded-Proto``). Trusting the header can only make the cookie Secure, never less safe."""
    return request.url.scheme == "https" or "https" in _forwarded(request, "x-forwarded-proto")[:1]


def _forwarded(request: Request, header: str) -> list[str]:
    """A proxy header's values, the client's first."""
    return [part.strip().lower() for part in request.headers.get(header, "").split(",") if part.strip()]


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    """The login form (a signed-in user goes straight on)."""
    if signed_in(request) is not None:
        return _redirect(safe_next(next))
    return page(request, "login.html", {"title": "Log in", "next": safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the posted token; a live one sets the cookie and goes on, anything else shows the form again."""
    if not same_origin(request):
        return Response("cross-site login refused", status.HTTP_403_FORBIDDEN, headers=SECURITY_HEADERS)
    body = await request.body()
    fields = parse_qs(body[:MAX_FORM_BYTES].decode("utf-8", "replace")) if len(body) <= MAX_FORM_BYTES else {}
    token = (fields.get("token") or [""])[0].strip()
    target = safe_next((fields.get("next") or ["/"])[0])
    who = await anyio.to_thread.run_sync(principal_for, request, token) if token else None
    if who is None:
        context = {"title": "Log in", "next": target, "error": WRONG_TOKEN if token else "Paste a token."}
        return page(request, "login.html", context)  # the form again (a 401 would need an HTTP auth scheme)
    response = _redirect(target)
    response.set_cookie(
        COOKIE,
        token,
        max_age=COOKIE_MAX_AGE_S,
        path="/",
        secure=over_https(request),
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    """Clear the cookie and show the login form."""
    if not same_origin(request):
        return Response("cross-site logout refused", status.HTTP_403_FORBIDDEN, headers=SECURITY_HEADERS)
    response = _redirect("/login")
    response.delete_cookie(COOKIE, path="/", secure=over_https(request), httponly=True, samesite="strict")
    return response
