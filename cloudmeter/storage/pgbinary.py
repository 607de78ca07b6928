"""PostgreSQL binary formats <-> numpy arrays, in numba (no per-row Python).

The COPY binary stream (``encode``/``decode``) and the binary send format of a one-dimensional array
(``encode_array``, a query parameter for servers without COPY FROM STDIN). Only fixed-width columns are
handled: ``timestamptz`` (int64 microseconds since 2000-01-01 UTC), ``int4``, ``int8`` and ``float8``. NaN in a
float column and a False in an integer column's ``valid`` mask travel as SQL NULL. Format references:
PostgreSQL docs, "COPY ... Binary Format"; ``array_send`` in src/backend/utils/adt/arrayfuncs.c.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Final

import numba
import numpy as np
import numpy.typing as npt

#: Column kinds (one byte each), also the field width lookup below.
TIMESTAMPTZ: Final = 0
INT4: Final = 1
INT8: Final = 2
FLOAT8: Final = 3

HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER: Final = b"\xff\xff"
#: Element type oids of the kinds (timestamptz, int4, int8, float8) and of their array types.
ELEMENT_OID: Final = (1184, 23, 20, 701)
ARRAY_OID: Final = (1185, 1007, 1016, 1022)
#: Seconds between the Unix epoch and PostgreSQL's epoch (2000-01-01 UTC).
PG_EPOCH_S: Final = 946_684_800


@numba.njit(cache=True, inline="always")
def _put_be(buf: npt.NDArray[np.uint8], pos: int, value: int, width: int) -> None:
    for k in range(width):
        buf[pos + k] = (value >> (8 * (width - 1 - k))) & 0xFF


@numba.njit(cache=True)
def _encode(
    header: npt.NDArray[np.uint8],
    bits: npt.NDArray[np.int64],
    nulls: npt.NDArray[np.bool_],
    kinds: npt.NDArray[np.int64],
    copy_framing: bool,
) -> npt.NDArray[np.uint8]:
    """Rows of ``bits`` (each column's value as int64 bits, NULL where ``nulls``) after ``header``.

    ``copy_framing`` adds COPY's per-row field count and trailer; without it the fields simply follow each
    other, as the elements of an array do.
    """
    n, ncols = bits.shape
    width = np.empty(ncols, dtype=np.int64)
    for c in range(ncols):
        width[c] = 8 if kinds[c] != INT4 else 4
    framing = 2 if copy_framing else 0
    size = header.shape[0] + framing
    for i in range(n):
        size += framing
        for c in range(ncols):
            size += 4 if nulls[i, c] else 4 + width[c]
    buf = np.empty(size, dtype=np.uint8)
    buf[: header.shape[0]] = header
    pos = header.shape[0]
    for i in range(n):
        if copy_framing:
            _put_be(buf, pos, ncols, 2)
            pos += 2
        for c in range(ncols):
            if nulls[i, c]:
                _put_be(buf, pos, -1, 4)
                pos += 4
            else:
                _put_be(buf, pos, width[c], 4)
                _put_be(buf, pos + 4, bits[i, c], width[c])
                pos += 4 + width[c]
    if copy_framing:
        _put_be(buf, pos, -1, 2)
    return buf


@numba.njit(cache=True)
def _get_be(buf: npt.NDArray[np.uint8], pos: int, width: int) -> int:
    value = np.int64(0)
    for k in range(width):
        value = (value << 8) | np.int64(buf[pos + k])
    if width == 4 and value >= 0x80000000:
        value -= 0x100000000
    elif width == 2 and value >= 0x8000:
        value -= 0x10000
    return int(value)


@numba.njit(cache=True)
def _decode(
    buf: npt.NDArray[np.uint8], start: int, kinds: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """COPY binary body from ``start`` -> (bits, nulls) matrices of shape (rows, columns)."""
    ncols = kinds.shape[0]
    n = 0
    pos = start
    while True:
        fields = _get_be(buf, pos, 2)
        pos += 2
        if fields == -1:
            break
        for _ in range(fields):
            length = _get_be(buf, pos, 4)
            pos += 4 + max(length, 0)
        n += 1
    bits = np.zeros((n, ncols), dtype=np.int64)
    nulls = np.zeros((n, ncols), dtype=np.bool_)
    pos = start
    for i in range(n):
        pos += 2
        for c in range(ncols):
            length = _get_be(buf, pos, 4)
            pos += 4
            if length < 0:
                nulls[i, c] = True
            else:
                bits[i, c] = _get_be(buf, pos, length)
                pos += length
    return bits, nulls


@numba.njit(cache=True)
def _decode_arrays(
    buf: npt.NDArray[np.uint8], start: int, kinds: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """COPY binary body from ``start`` whose every field is a one-dimensional array (or NULL: no elements) ->
    (bits, nulls) of the elements, each column's arrays concatenated; every row's arrays have equal lengths."""
    ncols = kinds.shape[0]
    n = 0
    pos = start
    while True:  # first pass: count the elements (of the first column) and check the framing
        fields = _get_be(buf, pos, 2)
        pos += 2
        if fields == -1:
            break
        for c in range(fields):
            length = _get_be(buf, pos, 4)
            if c == 0 and length > 0 and _get_be(buf, pos + 4, 4) == 1:
                n += _get_be(buf, pos + 16, 4)
            pos += 4 + max(length, 0)
    bits = np.zeros((n, ncols), dtype=np.int64)
    nulls = np.zeros((n, ncols), dtype=np.bool_)
    pos = start
    base = 0
    while True:
        fields = _get_be(buf, pos, 2)
        pos += 2
        if fields == -1:
            break
        count = 0
        for c in range(ncols):
            length = _get_be(buf, pos, 4)
            pos += 4
            if length <= 0 or _get_be(buf, pos, 4) != 1:  # NULL or an empty array: no elements
                pos += max(length, 0)
                continue
            count = _get_be(buf, pos + 12, 4)
            at = pos + 20  # ndim, has-null flag, element oid, size, lower bound
            for i in range(count):
                width = _get_be(buf, at, 4)
                at += 4
                if width < 0:
                    nulls[base + i, c] = True
                else:
                    bits[base + i, c] = _get_be(buf, at, width)
                    at += width
            pos += length
        base += count
    return bits, nulls


@dataclass(frozen=True)
class Column:
    """One decoded column: values (int64 or float64; microseconds for timestamps) and a validity mask."""

    values: npt.NDArray[np.int64] | npt.NDArray[np.float64]
    valid: npt.NDArray[np.bool_]


Valid = npt.NDArray[np.bool_] | None


def encode(columns: list[tuple[int, npt.NDArray[Any], Valid]]) -> npt.NDArray[np.uint8]:
    """Encode parallel columns ``[(kind, array, valid), ...]`` as one COPY binary stream (header included).

    A TIMESTAMPTZ column is given as int64 epoch seconds. NULL is written where ``valid`` is False, and for
    NaN in a FLOAT8 column.
    """
    kinds, bits, nulls = _bits(columns)
    return _encode(np.frombuffer(HEADER, dtype=np.uint8), bits, nulls, kinds, True)


def encode_array(kind: int, array: npt.NDArray[Any], valid: Valid = None) -> bytes:
    """One column as a one-dimensional array in binary send format (what ``array_recv`` reads)."""
    kinds, bits, nulls = _bits([(kind, array, valid)])
    header = struct.pack(">iiiii", 1, int(nulls.any()), ELEMENT_OID[kind], len(array), 1)
    return _encode(np.frombuffer(header, dtype=np.uint8), bits, nulls, kinds, False).tobytes()


def _bits(
    columns: list[tuple[int, npt.NDArray[Any], Valid]],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """(kinds, int64 bits of every value, NULL mask) of parallel columns, as ``_encode`` takes them."""
    n = len(columns[0][1])
    kinds = np.array([kind for kind, _, _ in columns], dtype=np.int64)
    bits = np.empty((n, len(columns)), dtype=np.int64)
    nulls = np.zeros((n, len(columns)), dtype=np.bool_)
    for c, (kind, array, valid) in enumerate(columns):
        if valid is not None:
            nulls[:, c] = ~valid
        if kind == FLOAT8:
            floats = np.ascontiguousarray(array, dtype=np.float64)
            bits[:, c] = floats.view(np.int64)
            nulls[:, c] |= np.isnan(floats)
        elif kind == TIMESTAMPTZ:
            bits[:, c] = (np.asarray(array, dtype=np.int64) - PG_EPOCH_S) * 1_000_000
        else:
            bits[:, c] = np.asarray(array, dtype=np.int64)
    return kinds, bits, nulls


def decode(data: bytes | bytearray | memoryview, kinds: list[int], packed: bool = False) -> list[Column]:
    """Decode a COPY binary stream whose columns have ``kinds``; timestamps become epoch microseconds.

    ``packed``: each field is an array of the column's values (rows packed server-side, ``array_agg``), the
    rows' arrays following each other.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    if len(buf) < len(HEADER) or bytes(buf[:11]) != HEADER[:11]:
        raise ValueError("not a PostgreSQL binary COPY stream (bad signature)")
    extension = int.from_bytes(bytes(buf[15:19]), "big")
    body = _decode_arrays if packed else _decode
    bits, nulls = body(buf, 19 + extension, np.array(kinds, dtype=np.int64))
    columns = []
    for c, kind in enumerate(kinds):
        valid = ~nulls[:, c]
        raw = np.ascontiguousarray(bits[:, c])
        if kind == FLOAT8:
            floats = raw.view(np.float64).copy()
            floats[~valid] = np.nan
            columns.append(Column(floats, valid))
        elif kind == TIMESTAMPTZ:
            columns.append(Column(raw + PG_EPOCH_S * 1_000_000, valid))
        else:
            columns.append(Column(raw, valid))
    return columns
