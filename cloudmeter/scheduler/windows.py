"""Which window a capture step reads next: resume from the last captured time, never past the source's
retention, never more than ``max_s`` at once; what that skips; and when a quiet source counts as stale."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cloudmeter.config import Schedule
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


def gone_at_source(captured_until: datetime | None, now: datetime, plan: CapturePlan) -> Window | None:
    """What ``next_window`` leaves out because the source no longer keeps it: from ``captured_until`` to
    ``now - retention_s``, when that lies after it; else None (a first capture skips nothing: nothing was due)."""
    if captured_until is None or plan.retention_s is None:
        return None
    kept_from = now - timedelta(seconds=plan.retention_s)
    return Window(captured_until, kept_from) if kept_from > captured_until else None


def duration(seconds: float) -> str:
    """A retention or a quiet spell as people say it: ``30 days``, ``1 day 12 hours``, ``2 hours 5 minutes``,
    ``1 minute 30 s`` (seconds only under an hour, minutes only under a day)."""
    whole = round(seconds)
    if whole < 60 or (whole < 3600 and whole % 60):
        minutes = whole // 60
        return f"{whole} s" if whole < 60 else f"{minutes} minute{'' if minutes == 1 else 's'} {whole % 60} s"
    parts: list[str] = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        count, whole = divmod(whole, size)
        if count and (unit != "minute" or not parts or parts[0].endswith(("hour", "hours"))):
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return " ".join(parts)


def stale_after_s(schedule: Schedule) -> int:
    """How much captured time without a sample makes a source stale: that many capture intervals."""
    return schedule.stale_after_intervals * schedule.capture_interval_s
