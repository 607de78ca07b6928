"""Cumulative counters to per-second rates, honestly: a rate is known only between two close readings.

The rate at reading ``k`` covers ``(t[k-1], t[k]]``: ``(v[k] - v[k-1]) / (t[k] - t[k-1])``. It is NaN (unknown,
stored as NULL) at a series' first reading, after a counter reset (the value went down: a reboot or a migration
restarted it), across a gap longer than ``max_span_s`` and wherever either reading is NaN. Never negative, never
guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

_F = TypeVar("_F", bound=Callable[..., Any])


def _jit(fn: _F) -> _F:
    return cast(_F, numba.njit(cache=True)(fn))


@_jit
def counter_rates(
    starts: npt.NDArray[np.int64], ts: npt.NDArray[np.int64], values: npt.NDArray[np.float64], max_span_s: int
) -> npt.NDArray[np.float64]:
    """Per-second rates of concatenated counter series.

    Series ``i`` is ``ts[starts[i]:starts[i + 1]]`` (strictly increasing) and its readings ``values``.
    """
    rates = np.full(len(ts), np.nan)
    for series in range(len(starts) - 1):
        for k in range(starts[series] + 1, starts[series + 1]):
            span = ts[k] - ts[k - 1]
            change = values[k] - values[k - 1]
            if 0 < span <= max_span_s and change >= 0.0:  # False for NaN readings too
                rates[k] = change / span
    return rates
