"""The port of Grafana's query interpolation (tests/dashboards/grafana.py) against Grafana's own test cases:
``pkg/tsdb/grafana-postgresql-datasource/macros_test.go``, grafana-plugin-sdk-go ``backend/gtime/gtime_test.go``,
and the SQL data sources' ``interpolateVariable`` tests (``datasource.test.ts``), plus the format registry's
``sqlstring``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.dashboards.grafana import (
    ALL_VALUE,
    MacroError,
    Variable,
    expand,
    format_interval,
    go_float,
    interpolate_global,
    interpolate_macros,
    parse_interval,
    replace_variables,
    rfc3339_nano,
)

FROM = datetime(2018, 4, 12, 18, 0, tzinfo=UTC)
TO = FROM + timedelta(minutes=5)
GROUP_5M = "floor(extract(epoch from time_column)/300)*300"


@pytest.mark.parametrize(
    ("sql", "expanded"),
    [
        ("select $__time(time_column)", 'select time_column AS "time"'),
        ("select min($__time(time_column))", 'select min(time_column AS "time")'),
        (
            "WHERE $__timeFilter(time_column)",
            "WHERE time_column BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z'",
        ),
        ("select $__timeFrom()", "select '2018-04-12T18:00:00Z'"),
        ("select $__timeTo()", "select '2018-04-12T18:05:00Z'"),
        ("SELECT $__timeGroup(time_column,'5m'), value", f'SELECT {GROUP_5M} AS "time", value'),  # pre-5.3
        ("SELECT $__timeGroup(time_column,'5m') as time, value", f"SELECT {GROUP_5M} as time, value"),
        ("SELECT $__timeGroup(time_column,'5m')", f"SELECT {GROUP_5M}"),
        ("SELECT $__timeGroupAlias(time_column,'5m')", f'SELECT {GROUP_5M} AS "time"'),
        ("$__timeGroup(time_column , '5m')", GROUP_5M),
        ("$__timeGroupAlias(time_column , '5m')", f'{GROUP_5M} AS "time"'),
        (
            "select $__unixEpochFilter(time)",
            f"select time >= {int(FROM.timestamp())} AND time <= {int(TO.timestamp())}",
        ),
        (
            "select $__unixEpochNanoFilter(time)",
            f"select time >= {int(FROM.timestamp()) * 10**9} AND time <= {int(TO.timestamp()) * 10**9}",
        ),
        ("select $__unixEpochNanoFrom()", f"select {int(FROM.timestamp()) * 10**9}"),
        ("select $__unixEpochNanoTo()", f"select {int(TO.timestamp()) * 10**9}"),
        (
            "SELECT $__unixEpochGroup(time_column+time_adjustment,'5m')",
            "SELECT floor((time_column+time_adjustment)/300)*300",
        ),
        (
            "SELECT $__unixEpochGroupAlias(time_column+time_adjustment,'5m')",
            'SELECT floor((time_column+time_adjustment)/300)*300 AS "time"',
        ),
    ],
)
def test_macros_expand_as_in_grafanas_macros_test(sql: str, expanded: str) -> None:
    assert interpolate_macros(sql, FROM, TO) == expanded


@pytest.mark.parametrize(
    ("sql", "expanded"),
    [
        ("GROUP BY $__timeGroup(time_column,'5m')", "GROUP BY time_bucket('300.000s',time_column)"),
        ("GROUP BY $__timeGroup(time_column , '5m')", "GROUP BY time_bucket('300.000s',time_column)"),
        ("GROUP BY $__timeGroup(time_column , '12d')", "GROUP BY time_bucket('1036800.000s',time_column)"),
        ("GROUP BY $__timeGroup(time_column , '20ms')", "GROUP BY time_bucket('0.020s',time_column)"),
    ],
)
def test_time_group_with_timescaledb_as_in_grafanas_macros_test(sql: str, expanded: str) -> None:
    assert interpolate_macros(sql, FROM, TO, timescaledb=True) == expanded


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(1960, 2, 1, 7, tzinfo=UTC), datetime(1965, 2, 3, 8, tzinfo=UTC)),
        (datetime(1960, 2, 1, 7, tzinfo=UTC), datetime(1980, 2, 3, 8, tzinfo=UTC)),
    ],
)
def test_ranges_before_1970_as_in_grafanas_macros_test(start: datetime, end: datetime) -> None:
    got = interpolate_macros("WHERE $__timeFilter(time_column)", start, end)
    assert got == f"WHERE time_column BETWEEN '{rfc3339_nano(start)}' AND '{rfc3339_nano(end)}'"
    assert interpolate_macros("select $__unixEpochFilter(time)", start, end) == (
        f"select time >= {int(start.timestamp())} AND time <= {int(end.timestamp())}"
    )
    nano = interpolate_macros("select $__unixEpochNanoFilter(time)", start, end)
    assert nano == f"select time >= {int(start.timestamp()) * 10**9} AND time <= {int(end.timestamp()) * 10**9}"


def test_fractional_seconds_print_as_rfc3339_nano() -> None:
    start = datetime(1960, 2, 1, 7, 0, 0, 500_000, tzinfo=UTC)
    end = datetime(1980, 2, 3, 8, 0, 0, 500_000, tzinfo=UTC)
    assert (rfc3339_nano(start), rfc3339_nano(end)) == ("1960-02-01T07:00:00.5Z", "1980-02-03T08:00:00.5Z")
    assert (
        interpolate_macros("select $__unixEpochNanoFrom()", start, end) == "select -312915599500000000"
    )  # -312915600 s + 0.5 s
    last_ms = datetime(2026, 3, 3, 23, 59, 59, 999_000, tzinfo=UTC)  # Grafana's "to" of a whole day
    assert rfc3339_nano(last_ms) == "2026-03-03T23:59:59.999Z"


def test_unknown_macros_and_missing_arguments_are_errors() -> None:
    with pytest.raises(MacroError, match='unknown macro "__nope"'):
        interpolate_macros("select $__nope(x)", FROM, TO)
    with pytest.raises(MacroError, match="needs time column and interval"):
        interpolate_macros("select $__timeGroup(x)", FROM, TO)
    with pytest.raises(MacroError, match="error parsing interval"):
        interpolate_macros("select $__timeGroup(x, 'soon')", FROM, TO)


@pytest.mark.parametrize(
    ("interval", "text"),
    [
        (timedelta(seconds=61), "1m"),
        (timedelta(milliseconds=30), "30ms"),
        (timedelta(hours=23), "23h"),
        (timedelta(hours=24), "1d"),
        (timedelta(days=367), "1y"),
    ],
)
def test_format_interval_as_in_gtime_test(interval: timedelta, text: str) -> None:
    assert format_interval(interval) == text


def test_parse_interval_as_in_gtime_test() -> None:
    now = datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert parse_interval("1d") == timedelta(days=1)
    assert parse_interval("2w") == timedelta(days=14)
    assert parse_interval("1m30s") == timedelta(seconds=90)
    assert parse_interval("1h30m") == timedelta(minutes=90)
    assert parse_interval("1M", now) == timedelta(days=31)  # Jan 31 + 1 month is Mar 3 in Go's AddDate
    assert parse_interval("1y", now) == timedelta(days=365)
    with pytest.raises(MacroError):
        parse_interval("invalid-duration")


@pytest.mark.parametrize(
    ("value", "text"),
    [(300.0, "300"), (3600.0, "3600"), (86400.0, "86400"), (604800.0, "604800"), (1036800.0, "1.0368e+06"),
     (1e6, "1e+06"), (0.02, "0.02"), (0.0001, "0.0001"), (0.00002, "2e-05"), (21600.0, "21600")],
)  # fmt: skip
def test_go_float_prints_as_fmt_v(value: float, text: str) -> None:
    assert go_float(value) == text


def test_global_macros_and_interval() -> None:
    sql = "$__interval_ms $__interval $__unixEpochFrom() $__unixEpochTo()"
    assert interpolate_global(sql, timedelta(hours=1), FROM, TO) == (
        f"3600000 1h {int(FROM.timestamp())} {int(TO.timestamp())}"
    )


def test_variables_interpolate_as_the_sql_data_sources_do() -> None:
    plain = Variable("v", "abc")
    assert replace_variables("$v", {"v": plain}) == "abc"
    assert replace_variables("$v", {"v": Variable("v", "a'b")}) == "a''b"
    assert replace_variables("$v", {"v": Variable("v", ["a", "b", "c"], multi=True)}) == "'a','b','c'"
    assert replace_variables("$v", {"v": Variable("v", "abc", multi=True)}) == "'abc'"
    assert replace_variables("$v", {"v": Variable("v", "abc", include_all=True)}) == "'abc'"
    assert replace_variables("${v:sqlstring}", {"v": Variable("v", ["a'x", "b"], multi=True)}) == "'a''x','b'"
    assert replace_variables("${v:sqlstring}", {"v": plain}) == "'abc'"
    assert replace_variables("${v:raw} [[v]] ${v}", {"v": plain}) == "abc abc abc"


def test_all_expands_to_every_option_unless_a_custom_all_value_is_set() -> None:
    every = Variable("c", ALL_VALUE, multi=True, include_all=True, options=("1", "2"))
    assert replace_variables("IN (${c:sqlstring})", {"c": every}) == "IN ('1','2')"
    assert replace_variables("IN ($c)", {"c": every}) == "IN ('1','2')"
    custom = Variable("c", [ALL_VALUE], multi=True, include_all=True, all_value="SELECT id FROM t", options=("1",))
    assert replace_variables("IN (${c:sqlstring})", {"c": custom}) == "IN (SELECT id FROM t)"


def test_unknown_names_and_macros_pass_through_the_browser_untouched() -> None:
    sql = "WHERE $__timeFilter(ts) AND x IN ($nothing) GROUP BY $__timeGroup(ts, $__interval)"
    assert replace_variables(sql, {}, {"__interval": "1h"}) == sql.replace("$__interval)", "1h)")


def test_expand_runs_the_three_steps_in_grafanas_order() -> None:
    sql = "SELECT $__timeGroupAlias(ts, $__interval), x FROM t WHERE $__timeFilter(ts) AND m IN (${m:sqlstring})"
    got = expand(sql, FROM, TO, {"m": Variable("m", ["7"], multi=True)}, timedelta(hours=6))
    assert got == (
        'SELECT floor(extract(epoch from ts)/21600)*21600 AS "time", x FROM t '
        "WHERE ts BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z' AND m IN ('7')"
    )
