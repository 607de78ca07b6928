"""Reports as JSON and CSV text, the same for the CLI (``--output json|csv``) and the HTTP API.

JSON carries the frame's own values, unrounded: floats that are not finite become null, decimals their exact
text, times ISO 8601. CSV carries every column as text. ``jsonable`` turns a command's report made of dicts and
lists (``status``) into JSON-ready values.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

import polars as pl

from cloudmeter.reports.views import ParameterError


def ordered(frame: pl.DataFrame, sort: str | None = None, top: int | None = None) -> pl.DataFrame:
    """``frame`` sorted by column ``sort`` (``-COLUMN``: descending; nulls last, ties kept in order) and cut to
    its first ``top`` rows."""
    if sort:
        column = sort.removeprefix("-")
        if column not in frame.columns:
            raise ParameterError(
                f"--sort {column!r} is not a column; choose one of: {', '.join(frame.columns)}", "sort"
            )
        frame = frame.sort(column, descending=sort.startswith("-"), nulls_last=True, maintain_order=True)
    return frame.head(top) if top else frame


def to_json(frame: pl.DataFrame) -> str:
    """``frame`` as a JSON array of objects, one per row (what ``--json`` prints)."""
    finite = [pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(c) for c, t in frame.schema.items() if t.is_float()]
    return json.dumps(frame.with_columns(finite).to_dicts(), default=_json_value, allow_nan=False)


def to_csv(frame: pl.DataFrame) -> str:
    """``frame`` as CSV with a header, every value as text (what ``--output csv`` prints)."""
    return frame.select(pl.col(c).cast(pl.String) for c in frame.columns).write_csv()


def _json_value(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def jsonable(value: object) -> object:
    """``value`` (a command's report: dicts, lists, tuples, times, decimals) as JSON-ready values: times in ISO 8601
    to the second, decimals as numbers, tuples as lists."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
