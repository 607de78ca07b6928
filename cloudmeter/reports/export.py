"""Rendering report frames to files: CSV, Parquet (pyarrow), XLSX (xlsxwriter) and FOCUS (CSV or Parquet).

Times are written as UTC instants (ISO 8601 with ``Z`` in CSV); money keeps its exact decimals in CSV and
Parquet (decimal128), and becomes a number formatted to the cent in XLSX, where Excel has only doubles.
Quantities are doubles. Unit prices, text as written in the rate card, stay text in CSV and become exact
decimals in Parquet and numbers in XLSX.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Final

import polars as pl

from cloudmeter.errors import ConfigError
from cloudmeter.reports.paths import unwritable

FORMATS: Final[tuple[str, ...]] = ("csv", "parquet", "xlsx", "focus")
#: Text columns holding exact decimal numbers (chargeback's unit prices, as written in the rate card).
DECIMAL_TEXT: Final[tuple[str, ...]] = ("unit_price",)
MONEY_SCALE: Final = 9
PRICE_FORMAT: Final = "#,##0.00##########"  # XLSX: unit prices to 12 decimals, not rounded to the cent


def check_format(fmt: str) -> str:
    """``fmt`` if known, else a ConfigError listing the formats."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    return fmt


def exact_decimals(text: pl.Series) -> pl.Series:
    """Decimal numbers written as text (None stays null) as an exact decimal column: scale 9 like money, or
    more when a number has more digits after the point (``0.0000166667``); polars' cast would round them."""
    values = [None if v is None else Decimal(v) for v in text.to_list()]
    places = [-int(v.as_tuple().exponent) for v in values if v is not None]
    return pl.Series(text.name, values, dtype=pl.Decimal(38, max([MONEY_SCALE, *places])))


def _numeric(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its DECIMAL_TEXT columns as exact decimals."""
    text = [name for name in DECIMAL_TEXT if frame.schema.get(name) == pl.String]
    return frame.with_columns(exact_decimals(frame[name]) for name in text)


def _iso_times(frame: pl.DataFrame) -> pl.DataFrame:
    times = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.Datetime)]
    return frame.with_columns(pl.col(times).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))


def write_csv(frame: pl.DataFrame, path: Path) -> None:
    """CSV with ISO 8601 UTC times and exact decimals."""
    _iso_times(frame).write_csv(path)


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    """Parquet through pyarrow (timestamps in UTC, money as decimal128(38, 9), unit prices as decimal128)."""
    _numeric(frame).write_parquet(path, use_pyarrow=True)


def write_xlsx(frame: pl.DataFrame, path: Path, sheet: str = "report") -> None:
    """One worksheet; times as UTC without zone (Excel has none), decimals as numbers: money shown to the
    cent, unit prices to 12 decimals."""
    numeric = _numeric(frame)
    decimals = [name for name, dtype in numeric.schema.items() if isinstance(dtype, pl.Decimal)]
    times = [name for name, dtype in numeric.schema.items() if isinstance(dtype, pl.Datetime)]
    plain = numeric.with_columns(
        pl.col(decimals).cast(pl.Float64), pl.col(times).dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    )
    plain.write_excel(
        path,
        worksheet=sheet,
        autofit=True,
        column_formats={name: PRICE_FORMAT if name in DECIMAL_TEXT else "#,##0.00" for name in decimals},
        dtype_formats={pl.Datetime: "yyyy-mm-dd hh:mm"},
    )


def write(frame: pl.DataFrame, path: Path, fmt: str) -> None:
    """Write ``frame`` as ``fmt``: csv, parquet, xlsx, or focus (a FOCUS frame: Parquet if ``path`` ends in
    .parquet, else CSV)."""
    check_format(fmt)
    try:
        if fmt == "parquet" or (fmt == "focus" and path.suffix == ".parquet"):
            write_parquet(frame, path)
        elif fmt == "xlsx":
            write_xlsx(frame, path)
        else:
            write_csv(frame, path)
    except OSError as exc:  # pyarrow's and polars' own OSErrors carry no strerror
        raise unwritable(path, "export", exc.strerror or str(exc)) from None
