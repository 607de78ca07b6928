"""What Grafana does to a panel's SQL before PostgreSQL sees it, in three steps, each ported from Grafana's source.

Grafana is not installable here, so the dashboard tests expand every query the way Grafana would, then run it.
A query goes through, in this order:

1. **The browser's template variables** (``SqlDatasource.applyTemplateVariables``): ``templateSrv.replace(rawSql,
   scopedVars, this.interpolateVariable)`` with ``$__interval`` and ``$__interval_ms`` among the scoped
   variables. ``public/app/features/variables/utils.ts``::

       export const variableRegex =
         /\\$(\\w+)|\\[\\[(\\w+?)(?::(\\w+))?\\]\\]|\\${(\\w+)(?:\\.([^:^\\}]+))?(?::([^\\}]+))?}/g;

   A name that is no variable (``$__timeFilter``) stays as written. A variable whose value is All becomes the
   values of all its options, or its ``allValue`` unformatted. With an explicit format (``${var:sqlstring}``)
   the format registry formats it (``public/app/features/templating/formatRegistry.ts``)::

       id: FormatRegistryID.sqlString,
       formatter: ({ value }) => {
         // escape single quotes by pairing them
         const regExp = new RegExp(`'`, 'g');
         if (isArray(value)) {
           return map(value, (v) => `'${replace(v, regExp, "''")}'`).join(',');
         }
         return `'${replace(value, regExp, "''")}'`;
       },

   (``raw`` keeps the value, ``csv`` joins with commas); without one, the SQL data source's own
   (``public/app/features/plugins/sql/datasource/SqlDatasource.ts``)::

       interpolateVariable = (value: string | string[] | number, variable: VariableWithMultiSupport) => {
         if (typeof value === 'string') {
           if (variable.multi || variable.includeAll) {
             return this.getQueryModel().quoteLiteral(value);
           } else {
             return String(value).replace(/'/g, "''");
           }
         }
         if (typeof value === 'number') {
           return value;
         }
         if (Array.isArray(value)) {
           const quotedValues = value.map((v) => this.getQueryModel().quoteLiteral(v));
           return quotedValues.join(',');
         }
         return value;
       };

   where PostgreSQL's ``quoteLiteral(value)`` is ``"'" + value.replace(/'/g, "''") + "'"``.

2. **The server's global macros** (``pkg/tsdb/grafana-postgresql-datasource/sqleng/sql_engine.go``)::

       var Interpolate = func(query backend.DataQuery, timeRange backend.TimeRange, timeInterval string,
                              sql string) string {
           interval := query.Interval
           sql = strings.ReplaceAll(sql, "$__interval_ms", strconv.FormatInt(interval.Milliseconds(), 10))
           sql = strings.ReplaceAll(sql, "$__interval", gtime.FormatInterval(interval))
           sql = strings.ReplaceAll(sql, "$__unixEpochFrom()", fmt.Sprintf("%d", timeRange.From.UTC().Unix()))
           sql = strings.ReplaceAll(sql, "$__unixEpochTo()", fmt.Sprintf("%d", timeRange.To.UTC().Unix()))
           return sql
       }

   ``gtime.FormatInterval`` (grafana-plugin-sdk-go ``backend/gtime/gtime.go``) writes the largest whole unit:
   ``%dy`` from 365 days, ``%dd``, ``%dh``, ``%dm``, ``%ds``, ``%dms``, else ``1ms``.

3. **The PostgreSQL macro engine** (``pkg/tsdb/grafana-postgresql-datasource/macros.go``): every match of
   ``\\$([_a-zA-Z0-9]+)\\(([^\\)]*)\\)``, its arguments split on ``,`` and trimmed of spaces, becomes::

       case "__time":         fmt.Sprintf("%s AS \\"time\\"", args[0])
       case "__timeEpoch":    fmt.Sprintf("extract(epoch from %s) as \\"time\\"", args[0])
       case "__timeFilter":   fmt.Sprintf("%s BETWEEN '%s' AND '%s'", args[0],
                                  timeRange.From.UTC().Format(time.RFC3339Nano),
                                  timeRange.To.UTC().Format(time.RFC3339Nano))
       case "__timeFrom":     fmt.Sprintf("'%s'", timeRange.From.UTC().Format(time.RFC3339Nano))
       case "__timeTo":       fmt.Sprintf("'%s'", timeRange.To.UTC().Format(time.RFC3339Nano))
       case "__timeGroup":    interval, err := gtime.ParseInterval(strings.Trim(args[1], `'`))
                              if m.timescaledb {
                                  return fmt.Sprintf("time_bucket('%.3fs',%s)", interval.Seconds(), args[0]), nil
                              }
                              fmt.Sprintf("floor(extract(epoch from %s)/%v)*%v", args[0],
                                  interval.Seconds(), interval.Seconds())
       case "__timeGroupAlias":  tg + " AS \\"time\\""
       case "__unixEpochFilter": fmt.Sprintf("%s >= %d AND %s <= %d", args[0], timeRange.From.UTC().Unix(),
                                     args[0], timeRange.To.UTC().Unix())
       case "__unixEpochNanoFilter", "__unixEpochNanoFrom", "__unixEpochNanoTo": the same in nanoseconds
       case "__unixEpochGroup":  fmt.Sprintf("floor((%s)/%v)*%v", args[0], interval.Seconds(), interval.Seconds())
       case "__unixEpochGroupAlias": tg + " AS \\"time\\""

   and ``$__timeGroup(...)`` directly followed by ``,`` is read as ``$__timeGroupAlias`` (pre-5.3 dashboards).
   An unknown macro is an error. A third ``$__timeGroup`` argument (fill mode) only changes what Grafana does
   with the rows afterwards, not the SQL.

Go's ``%v`` of a float64 is its shortest representation (``300``, ``0.02``, ``1.0368e+06``), and RFC3339Nano
drops trailing zeros of the fraction (``2018-04-12T18:00:00Z``, ``1960-02-01T07:00:00.5Z``); both are ported
below. ``tests/dashboards/test_grafana_macros.py`` checks this port against Grafana's own test cases
(``macros_test.go``, ``gtime_test.go``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final

#: public/app/features/variables/utils.ts
VARIABLE_REGEX: Final = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}")
#: pkg/tsdb/grafana-postgresql-datasource/macros.go: sExpr
MACRO_REGEX: Final = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")
ALL_VALUE: Final = "$__all"


class MacroError(ValueError):
    """What Grafana's macro engine answers with an error (``macro_error()`` in the SQL)."""


@dataclass(frozen=True)
class Variable:
    """A dashboard variable as the browser holds it: its current value(s) and, for All, its options' values."""

    name: str
    value: str | Sequence[str]
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None
    options: tuple[str, ...] = field(default=())


def _quote_literal(value: str) -> str:
    """PostgreSQL's ``quoteLiteral`` in the query model."""
    return "'" + value.replace("'", "''") + "'"


def _interpolate_variable(value: str | Sequence[str], variable: Variable) -> str:
    """``SqlDatasource.interpolateVariable``."""
    if isinstance(value, str):
        if variable.multi or variable.include_all:
            return _quote_literal(value)
        return value.replace("'", "''")
    return ",".join(_quote_literal(v) for v in value)


def _format(value: str | Sequence[str], fmt: str | None, variable: Variable) -> str:
    """The format registry's formatter ``fmt`` (those the dashboards use), or the data source's own."""
    if fmt is None:
        return _interpolate_variable(value, variable)
    if fmt == "sqlstring":
        if isinstance(value, str):
            return "'" + value.replace("'", "''") + "'"
        return ",".join("'" + v.replace("'", "''") + "'" for v in value)
    if fmt == "raw":
        return value if isinstance(value, str) else ",".join(value)  # an array's toString()
    if fmt == "csv":
        return value if isinstance(value, str) else ",".join(value)
    raise NotImplementedError(f"format {fmt!r} is not ported; the dashboards use sqlstring, raw, csv or none")


def replace_variables(sql: str, variables: Mapping[str, Variable], scoped: Mapping[str, str] | None = None) -> str:
    """``templateSrv.replace(sql, scopedVars, interpolateVariable)``: scoped variables (``__interval``) first,
    then the dashboard's; a name that is neither stays as written."""
    scoped = scoped or {}

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        if name in scoped:
            return _format(scoped[name], fmt, Variable(name, scoped[name]))
        variable = variables.get(name)
        if variable is None:
            return match.group(0)
        value = variable.value
        if value == ALL_VALUE or (not isinstance(value, str) and value and value[0] == ALL_VALUE):
            if variable.all_value is not None:  # a custom all value is not formatted
                return replace_variables(variable.all_value, variables)
            value = list(variable.options)
        return _format(value, fmt, variable)

    return VARIABLE_REGEX.sub(one, sql)


def format_interval(interval: timedelta) -> str:
    """``gtime.FormatInterval``."""
    ms = interval // timedelta(milliseconds=1)
    for unit, size in (("y", 365 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size:
            return f"{ms // size}{unit}"
    return f"{ms}ms" if ms >= 1 else "1ms"


_GO_UNITS: Final = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DATE_UNIT: Final = re.compile(r"^(\d+)([dwMy])$")


def parse_interval(text: str, now: datetime | None = None) -> timedelta:
    """``gtime.ParseInterval``: Go's ``time.ParseDuration`` (``5m``, ``1h30m``, ``20ms``), or a calendar ``Nd``,
    ``Nw``, ``NM`` or ``Ny`` from now in UTC (Go's ``AddDate``, which rolls a day past a month's end over)."""
    found = _DATE_UNIT.match(text)
    if found:
        num, period = int(found.group(1)), found.group(2)
        if period in "dw":
            return timedelta(days=num * (7 if period == "w" else 1))
        start = (now or datetime.now(UTC)).astimezone(UTC)
        months = start.month - 1 + (num if period == "M" else 12 * num)
        first = start.replace(year=start.year + months // 12, month=months % 12 + 1, day=1)
        return first + timedelta(days=start.day - 1) - start
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise MacroError(f"error parsing interval {text}")
    return timedelta(seconds=sum(float(n) * _GO_UNITS[u] for n, u in parts))


def go_float(value: float) -> str:
    """Go's ``%v`` of a float64 (``strconv`` ``'g'``, shortest): the shortest digits that read back as the value,
    in ``%e`` form when the decimal exponent is below -4 or at least 6 (``1e+06``, ``1.0368e+06``), else plain."""
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    power = len(text) + exponent - 1
    minus = "-" if sign else ""
    if power < -4 or power >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{minus}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    return minus + format(Decimal(repr(abs(value))).normalize(), "f")


def rfc3339_nano(moment: datetime) -> str:
    """Go's ``time.RFC3339Nano`` of a UTC time: trailing zeros of the fraction dropped, ``Z`` for UTC."""
    moment = moment.astimezone(UTC)
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def interpolate_global(sql: str, interval: timedelta, time_from: datetime, time_to: datetime) -> str:
    """``sqleng.Interpolate``."""
    sql = sql.replace("$__interval_ms", str(interval // timedelta(milliseconds=1)))
    sql = sql.replace("$__interval", format_interval(interval))
    sql = sql.replace("$__unixEpochFrom()", str(int(time_from.timestamp())))
    return sql.replace("$__unixEpochTo()", str(int(time_to.timestamp())))


def _unix(moment: datetime) -> int:
    return math.floor(moment.timestamp())


def _unix_nano(moment: datetime) -> int:
    return int(_unix(moment)) * 1_000_000_000 + moment.microsecond * 1000


def _evaluate(name: str, args: list[str], time_from: datetime, time_to: datetime, timescaledb: bool) -> str:
    """``postgresMacroEngine.evaluateMacro``."""
    if name in ("__time", "__timeEpoch", "__timeFilter", "__unixEpochFilter", "__unixEpochNanoFilter") and not args:
        raise MacroError(f"missing time column argument for macro {name}")
    if name == "__time":
        return f'{args[0]} AS "time"'
    if name == "__timeEpoch":
        return f'extract(epoch from {args[0]}) as "time"'
    if name == "__timeFilter":
        return f"{args[0]} BETWEEN '{rfc3339_nano(time_from)}' AND '{rfc3339_nano(time_to)}'"
    if name == "__timeFrom":
        return f"'{rfc3339_nano(time_from)}'"
    if name == "__timeTo":
        return f"'{rfc3339_nano(time_to)}'"
    if name in ("__timeGroup", "__unixEpochGroup"):
        if len(args) < 2:
            raise MacroError(f"macro {name} needs time column and interval and optional fill value")
        seconds = parse_interval(args[1].strip("'")).total_seconds()
        if name == "__timeGroup" and timescaledb:
            return f"time_bucket('{seconds:.3f}s',{args[0]})"
        if name == "__timeGroup":
            return f"floor(extract(epoch from {args[0]})/{go_float(seconds)})*{go_float(seconds)}"
        return f"floor(({args[0]})/{go_float(seconds)})*{go_float(seconds)}"
    if name in ("__timeGroupAlias", "__unixEpochGroupAlias"):
        return _evaluate(name.removesuffix("Alias"), args, time_from, time_to, timescaledb) + ' AS "time"'
    if name == "__unixEpochFilter":
        return f"{args[0]} >= {_unix(time_from)} AND {args[0]} <= {_unix(time_to)}"
    if name == "__unixEpochNanoFilter":
        return f"{args[0]} >= {_unix_nano(time_from)} AND {args[0]} <= {_unix_nano(time_to)}"
    if name == "__unixEpochNanoFrom":
        return str(_unix_nano(time_from))
    if name == "__unixEpochNanoTo":
        return str(_unix_nano(time_to))
    raise MacroError(f'unknown macro "{name}"')


def interpolate_macros(sql: str, time_from: datetime, time_to: datetime, timescaledb: bool = False) -> str:
    """``postgresMacroEngine.Interpolate``: each macro call replaced, left to right, in one pass."""
    out, last = [], 0
    for match in MACRO_REGEX.finditer(sql):
        name, raw = match.group(1), match.group(2)
        if name == "__timeGroup":  # sql.Index finds the first occurrence of the same text, as Go does
            after = sql.find(match.group(0)) + len(match.group(0))
            if after < len(sql) and sql[after] == ",":
                name = "__timeGroupAlias"
        args = [arg.strip(" ") for arg in raw.split(",")]
        out += [sql[last : match.start()], _evaluate(name, args, time_from, time_to, timescaledb)]
        last = match.end()
    return "".join(out) + sql[last:]


def expand(
    sql: str,
    time_from: datetime,
    time_to: datetime,
    variables: Mapping[str, Variable] | None = None,
    interval: timedelta = timedelta(hours=1),
    timescaledb: bool = False,
) -> str:
    """A panel's ``rawSql`` as PostgreSQL receives it from Grafana for this time range, interval and variables."""
    scoped = {"__interval": format_interval(interval), "__interval_ms": str(interval // timedelta(milliseconds=1))}
    sql = replace_variables(sql, variables or {}, scoped)
    sql = interpolate_global(sql, interval, time_from, time_to)
    return interpolate_macros(sql, time_from, time_to, timescaledb)
