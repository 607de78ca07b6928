"""Which window a capture step reads next: resume from the last captured time, never past the source's
retention, never more than ``max_s`` at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cloudmeter.model import Window


@dataclass(frozen=True)
class CapturePlan:
    """The rules for choosing windows (seconds)."""

    overlap_s: int
    initial_s: int
    max_s: int
    retention_s: int | None


def next_window(captured_until: datetime | None, now: datetime, plan: CapturePlan) -> Window | None:
    """The next window to capture, or None when there is nothing new.

    From ``captured_until - overlap`` (re-reading late data), or ``initial_s`` before ``now`` the first time;
    not before ``now - retention_s`` (older data is gone at the source); at most ``max_s`` long.
    """
    if captured_until is not None and captured_until >= now:
        return None
    start = now - timedelta(seconds=plan.initial_s) if captured_until is None else captured_until
    start -= timedelta(seconds=plan.overlap_s if captured_until is not None else 0)
    if plan.retention_s is not None:
        start = max(start, now - timedelta(seconds=plan.retention_s))
    end = min(now, start + timedelta(seconds=plan.max_s))
    return Window(start, end) if end > start else None
