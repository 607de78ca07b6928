"""``/api/v1``: every report of the CLI with its parameters and numbers, managers, rollups (one module each)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from cloudmeter.api.auth import Viewer

router = APIRouter()


@router.get("/whoami", tags=["auth"], summary="The token's name and role")
def whoami(who: Viewer) -> dict[str, str]:
    """Who the request's token is: its name and role (viewer or admin)."""
    return asdict(who)
