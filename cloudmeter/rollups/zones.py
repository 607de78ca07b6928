"""Bucket edges in epoch seconds: UTC hours, and local days in an IANA time zone (23- and 25-hour days)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

HOUR_S = 3600


def hour_edges(start_s: int, end_s: int) -> npt.NDArray[np.int64]:
    """Edges of every UTC hour overlapping ``[start_s, end_s)``."""
    first = start_s - start_s % HOUR_S
    last = end_s + (-end_s) % HOUR_S
    return np.arange(first, last + 1, HOUR_S, dtype=np.int64)


def day_edges(tz: str, start_s: int, end_s: int) -> npt.NDArray[np.int64]:
    """Local midnights in ``tz`` bounding every local day that overlaps ``[start_s, end_s)``."""
    zone = ZoneInfo(tz)
    day = datetime.fromtimestamp(start_s, UTC).astimezone(zone).date()
    edges = []
    while True:
        midnight = int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())
        edges.append(midnight)
        if midnight >= end_s:
            return np.array(edges, dtype=np.int64)
        day += timedelta(days=1)
