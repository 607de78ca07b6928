"""``/api/v1``: every report of the CLI with its parameters and numbers, status and managers, rollups, events."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from cloudmeter.api.auth import Viewer
from cloudmeter.api.v1 import capacity, chargeback, events, managers, rollups

router = APIRouter()
router.include_router(managers.router)
router.include_router(capacity.router)
router.include_router(chargeback.router)
router.include_router(rollups.router)
router.include_router(events.router)


@router.get("/whoami", tags=["auth"], summary="The token's name and role")
def whoami(who: Viewer) -> dict[str, str]:
    """Who the request's token is: its name and role (viewer or admin)."""
    return asdict(who)
