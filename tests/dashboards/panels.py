"""Running a dashboard's queries as Grafana would: find a panel or variable, expand its SQL (grafana.py) for a
time range and variable values, run it on PostgreSQL, and return the rows as a polars DataFrame.

``covers(board, title)`` marks a test as the one that checks that panel's (or ``var:NAME``'s) SQL;
``test_dashboard_json.py`` fails for any panel or variable query no test covers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TypeVar

import polars as pl
import psycopg

from cloudmeter.model import Window
from tests.dashboards.grafana import ALL_VALUE, Variable, expand

ROOT: Final = Path(__file__).resolve().parents[2]
BOARD_FILES: Final = {"capacity": "cluster-capacity.json", "vm": "vm-drilldown.json", "chargeback": "chargeback.json"}
COVERED: set[tuple[str, str]] = set()
_F = TypeVar("_F", bound=Callable[..., Any])


def covers(*keys: tuple[str, str]) -> Callable[[_F], _F]:
    """Record that the decorated test checks the SQL of these (board, panel title or ``var:NAME``)."""
    COVERED.update(keys)

    def mark(test: _F) -> _F:
        return test

    return mark


def board(name: str) -> dict[str, Any]:
    """A dashboard's JSON, as users import it."""
    loaded: dict[str, Any] = json.loads((ROOT / "dashboards" / BOARD_FILES[name]).read_text(encoding="utf-8"))
    return loaded


def panel_sql(name: str, title: str) -> tuple[str, str]:
    """The raw SQL and format of the panel titled ``title``."""
    found = [p for p in board(name)["panels"] if p["title"] == title]
    assert len(found) == 1, f"{name}: {len(found)} panels titled {title!r}"
    (query,) = found[0]["targets"]
    return query["rawSql"], query["format"]


def variable_sql(name: str, variable: str) -> str:
    (found,) = [v for v in board(name)["templating"]["list"] if v["name"] == variable]
    sql: str = found["query"]
    return sql


def grafana_range(window: Window) -> tuple[datetime, datetime]:
    """The range Grafana sends for these whole hours: its absolute ranges end on the last millisecond."""
    return window.start, window.end - timedelta(milliseconds=1)


def choice(name: str, values: Iterable[str] | str, options: Iterable[str] = ()) -> Variable:
    """A multi-value variable set to ``values`` (``ALL_VALUE``: every one of ``options``)."""
    value = values if isinstance(values, str) else list(values)
    return Variable(name, value, multi=True, include_all=True, options=tuple(options))


def single(name: str, value: str) -> Variable:
    return Variable(name, value)


def _cell(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return value


def run(
    conn: psycopg.Connection,
    sql: str,
    window: Window,
    variables: Mapping[str, Variable],
    interval: timedelta = timedelta(hours=1),
    timescaledb: bool = False,
) -> pl.DataFrame:
    """The rows PostgreSQL returns for ``sql`` as Grafana expands it (``timescaledb``: with the data source's
    TimescaleDB option on); a numeric ``time`` column (epoch seconds, from ``$__timeGroup``) becomes a UTC
    datetime, as Grafana reads it."""
    start, end = grafana_range(window)
    expanded = expand(sql, start, end, variables, interval, timescaledb)
    cursor = conn.execute(expanded.encode())
    names = [d.name for d in cursor.description or ()]
    rows = [[_cell(v) for v in row] for row in cursor.fetchall()]
    columns: dict[str, list[Any]] = {n: [r[i] for r in rows] for i, n in enumerate(names)}
    if "time" in columns and any(isinstance(v, float) for v in columns["time"]):
        columns["time"] = [datetime.fromtimestamp(v, UTC) for v in columns["time"]]
    return pl.DataFrame(columns, strict=False, infer_schema_length=None)


def ids(conn: psycopg.Connection, sql: str, *params: Any) -> list[str]:
    """Resource or manager ids as Grafana's options hold them (text)."""
    return [str(row[0]) for row in conn.execute(sql.encode(), params).fetchall()]


def all_managers(conn: psycopg.Connection) -> Variable:
    return choice("manager", ALL_VALUE, ids(conn, "SELECT id FROM managers ORDER BY name"))


def all_clusters(conn: psycopg.Connection) -> Variable:
    return choice("cluster", ALL_VALUE, ids(conn, "SELECT id FROM resources WHERE kind = 'cluster' ORDER BY name"))


def equal(a: Any, b: Any, rel: float = 1e-9) -> bool:
    """Values equal, floats to ``rel`` (sums and percentiles in another order), NULL and NaN alike (polars says
    NaN for 0/0 where PostgreSQL says NULL)."""
    if isinstance(a, float) and math.isnan(a):
        a = None
    if isinstance(b, float) and math.isnan(b):
        b = None
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-12)
    return bool(a == b)


def assert_frames_equal(
    got: pl.DataFrame, want: pl.DataFrame, keys: list[str], columns: Mapping[str, str], rel: float = 1e-9
) -> None:
    """Every row of ``want`` in ``got`` and no other, matched on ``keys``; ``columns`` maps got's column names to
    want's; values compared with ``equal``."""
    got_rows = {tuple(r[k] for k in keys): r for r in got.iter_rows(named=True)}
    want_rows = {tuple(r[k] for k in keys): r for r in want.iter_rows(named=True)}
    assert got.height == len(got_rows), "the panel returned a key twice"
    assert set(got_rows) == set(want_rows), (
        f"keys only in the panel: {sorted(set(got_rows) - set(want_rows), key=str)[:5]}, "
        f"only in the reference: {sorted(set(want_rows) - set(got_rows), key=str)[:5]}"
    )
    bad = [
        (key, mine, theirs, got_rows[key][mine], want_rows[key][theirs])
        for key in want_rows
        for mine, theirs in columns.items()
        if not equal(got_rows[key][mine], want_rows[key][theirs], rel)
    ]
    assert not bad, f"{len(bad)} values differ, e.g. {bad[:5]}"
