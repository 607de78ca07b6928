"""Days until a cluster exhausts CPU or memory: a fit on its daily peaks against capacity x limit.

Daily peaks are the cluster's daily rollup ``cpu_used_cores_max`` / ``mem_used_bytes_max`` (days in ``tz``);
capacity is the hosts' at the window's last hour. Two methods:

- ``linear``: least squares on the peaks; days = (target - fitted peak today) / slope, continuous.
- ``seasonal``: linear trend plus a day-of-week term (needs two weeks); days = the first future day whose
  projected peak (trend + that weekday's offset) reaches the target.

Days count from the last day with data. Bounds use the slope +/- 1.96 standard errors (the lower bound is
the steeper slope, the earlier day); each is a line through the fit's value on the first day, like the fit.
``status`` is ``never`` when the slope is not positive (flat or falling), ``exhausted`` when today's fitted
peak is already at the target, ``insufficient data`` with fewer than 3 days (14 for seasonal) or no capacity.

Each row names the history it used: ``first_day`` and ``last_day`` with data, ``span_days`` between them
(inclusive), ``days_of_data``. ``extrapolation`` is days to exhaustion over ``span_days``; above
``MAX_EXTRAPOLATION`` (3) the ``note`` says "extrapolated Nx beyond a D-day history": the days are reported, but
the history does not support them. A row without a forecast has NULL days and a ``note`` saying why.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import polars as pl
import psycopg

from cloudmeter.errors import ConfigError
from cloudmeter.model import Window
from cloudmeter.reports.capacity import hourly_capacity
from cloudmeter.reports.inputs import GIB, resources
from cloudmeter.storage.readers import read_rollups

Z95 = 1.96
HORIZON_DAYS = 3650
MAX_EXTRAPOLATION: Final = 3.0
MIN_DAYS: Final = {"linear": 3, "seasonal": 14}
RESOURCES = {
    "cpu": ("cpu_used_cores_max", "capacity_vcpus", 1.0),
    "memory": ("mem_used_bytes_max", "capacity_memory_bytes", GIB),
}
UNITS: Final = {"cpu": "cores", "memory": "GB"}


def _fit(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], seasonal: bool
) -> tuple[npt.NDArray[np.float64], float]:
    """Least-squares coefficients (intercept, slope, weekday offsets...) and the slope's standard error."""
    columns = [np.ones_like(x), x]
    if seasonal:
        weekday = x.astype(np.int64) % 7
        columns += [(weekday == d).astype(np.float64) for d in range(1, 7)]
    design = np.column_stack(columns)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    dof = len(y) - design.shape[1]
    residual = y - design @ coef
    sigma2 = float(residual @ residual) / dof if dof > 0 else 0.0
    cov = sigma2 * np.linalg.pinv(design.T @ design)
    return np.asarray(coef, np.float64), float(np.sqrt(max(cov[1, 1], 0.0)))


def _projection(
    coef: npt.NDArray[np.float64], slope: float, x: npt.NDArray[np.float64], seasonal: bool
) -> npt.NDArray[np.float64]:
    """The fit with ``slope`` (its own or a bound's) at day offsets ``x``: trend plus the weekday's offset."""
    projected: npt.NDArray[np.float64] = coef[0] + slope * x
    if seasonal:
        projected += np.concatenate([[0.0], coef[2:]])[x.astype(np.int64) % 7]
    return projected


def _days(coef: npt.NDArray[np.float64], slope: float, last: float, target: float, seasonal: bool) -> float | None:
    """Days from ``last`` until the projection with ``slope`` reaches ``target`` (None: never, or not within
    ``HORIZON_DAYS``). A slope within float noise of 0 (relative to the target) is flat."""
    if slope <= 1e-9 * target:
        return None
    if not seasonal:
        days = max((target - (coef[0] + slope * last)) / slope, 0.0)
        return days if days <= HORIZON_DAYS else None
    future = last + np.arange(0, HORIZON_DAYS + 1, dtype=np.float64)
    crossed = np.flatnonzero(_projection(coef, slope, future, seasonal) >= target)
    return float(crossed[0]) if len(crossed) else None


def trend_lines(row: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """A linear forecast row's fit and bounds as (value on ``first_day``, slope per day), keyed by the column its
    crossing of ``target`` gives (``days_to_exhaustion``, ``days_lower``, ``days_upper``); empty without a fit."""
    if row["method"] != "linear":
        raise ValueError(f"trend lines are those of a linear forecast, not {row['method']!r}")
    if row["trend_per_day"] is None:
        return {}
    slope, spread = row["trend_per_day"], Z95 * row["trend_stderr"]
    start = row["fitted_peak"] - slope * (row["last_day"] - row["first_day"]).days
    return {
        "days_to_exhaustion": (start, slope),
        "days_lower": (start, slope + spread),
        "days_upper": (start, slope - spread),
    }


def daily_peaks(
    conn: psycopg.Connection, window: Window, tz: str = "UTC", info: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Per cluster, resource (cpu in cores, memory in GB) and local day of ``tz``: the daily peak (``info`` is
    ``inputs.resources``, when the caller has it)."""
    info = resources(conn) if info is None else info
    clusters = info.filter(pl.col("kind") == "cluster").select(
        pl.col("id").alias("resource_id"), pl.col("name").alias("cluster")
    )
    daily = read_rollups(conn, "daily", window, clusters["resource_id"].to_list(), tz=tz)
    parts = [
        daily.select(
            "resource_id",
            pl.lit(resource).alias("resource"),
            pl.col("ts").dt.convert_time_zone(tz).dt.date().alias("day"),
            (pl.col(column) / unit).alias("peak"),
        )
        for resource, (column, _, unit) in RESOURCES.items()
    ]
    return clusters.join(pl.concat(parts), on="resource_id").drop_nulls("peak").sort("cluster", "resource", "day")


def forecast(conn: psycopg.Connection, window: Window, limit_pct: float = 90.0, tz: str = "UTC") -> pl.DataFrame:
    """Per cluster, resource (cpu, memory) and method (linear, seasonal): capacity, target, last peak, trend
    per day, days to exhaustion with lower/upper bounds, exhaustion date, status; the history used, the fit's
    value on its last day and the slope's standard error, how far it is extrapolated and a note."""
    if not 0 < limit_pct <= 100:
        raise ConfigError(f"--limit must be in (0, 100] percent of capacity, got {limit_pct}")
    info = resources(conn)
    peaks = daily_peaks(conn, window, tz, info)
    current = hourly_capacity(conn, Window(window.end - timedelta(hours=1), window.end), "cluster", info)
    rows: list[dict[str, Any]] = []
    clusters = info.filter(pl.col("kind") == "cluster")
    for cluster_id, name in clusters.select("id", "name").iter_rows():
        cap_row = current.filter(pl.col("group_id") == cluster_id)
        for resource, (_, cap_column, unit) in RESOURCES.items():
            series = peaks.filter((pl.col("resource_id") == cluster_id) & (pl.col("resource") == resource))
            cap_value = cap_row[cap_column][0] if cap_row.height else None
            cap = None if cap_value is None else float(cap_value) / unit
            for method in ("linear", "seasonal"):
                rows.append(_one(name, resource, method, series.select("day", "peak"), cap, limit_pct))
    return pl.DataFrame(rows, schema=_SCHEMA, orient="row")


_SCHEMA = {
    "cluster": pl.String, "resource": pl.String, "method": pl.String, "days_of_data": pl.Int64,
    "capacity": pl.Float64, "target": pl.Float64, "last_peak": pl.Float64, "trend_per_day": pl.Float64,
    "days_to_exhaustion": pl.Float64, "days_lower": pl.Float64, "days_upper": pl.Float64,
    "exhaustion_date": pl.Date, "status": pl.String, "first_day": pl.Date, "last_day": pl.Date,
    "span_days": pl.Int64, "fitted_peak": pl.Float64, "trend_stderr": pl.Float64, "extrapolation": pl.Float64,
    "note": pl.String,
}  # fmt: skip


def _one(
    cluster: str, resource: str, method: str, series: pl.DataFrame, cap: float | None, limit_pct: float
) -> dict[str, Any]:
    """One forecast row: ``series`` holds (day, daily peak) in the resource's unit (cores, GB)."""
    seasonal = method == "seasonal"
    n, needed = series.height, MIN_DAYS[method]
    row: dict[str, Any] = dict.fromkeys(_SCHEMA)
    row.update(cluster=cluster, resource=resource, method=method, days_of_data=n, capacity=cap)
    if n:
        first_day, last_day = series["day"][0], series["day"][-1]
        row.update(first_day=first_day, last_day=last_day, span_days=(last_day - first_day).days + 1)
    if n < needed:
        return row | {"status": "insufficient data", "note": f"{n} days with data, {method} needs {needed}"}
    if not cap:
        return row | {"status": "insufficient data", "note": "no host capacity at the window's last hour"}
    first = row["first_day"]
    y = series["peak"].to_numpy().astype(np.float64)
    x = np.array([(d - first).days for d in series["day"]], np.float64)
    target = cap * limit_pct / 100
    coef, se = _fit(x, y, seasonal)
    slope, last = float(coef[1]), float(x[-1])
    days = _days(coef, slope, last, target, seasonal)
    status = "never" if days is None else ("exhausted" if days == 0 else "forecast")
    exhaustion = None if days is None else first + timedelta(days=int(np.ceil(last + days)))
    extrapolation = None if days is None else days / row["span_days"]
    beyond = extrapolation is not None and extrapolation > MAX_EXTRAPOLATION
    return row | {
        "target": target,
        "last_peak": float(y[-1]),
        "trend_per_day": slope,
        "days_to_exhaustion": days,
        "days_lower": _days(coef, slope + Z95 * se, last, target, seasonal),
        "days_upper": _days(coef, slope - Z95 * se, last, target, seasonal),
        "exhaustion_date": exhaustion,
        "status": status,
        "fitted_peak": float(_projection(coef, slope, x[-1:], seasonal)[0]),
        "trend_stderr": se,
        "extrapolation": extrapolation,
        "note": f"extrapolated {extrapolation:.1f}x beyond a {row['span_days']}-day history" if beyond else None,
    }
