"""Charts read back from their figures: what they draw is what the tables say, with units, from 0, and readable."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import matplotlib.dates as mdates
import numpy as np
import polars as pl
import pytest
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from cloudmeter.errors import ConfigError
from cloudmeter.model import Window
from cloudmeter.reports import capacity, charts, forecast
from cloudmeter.storage.database import Database
from tests.reports import test_cli_reports as cli
from tests.reports.cloud import START, load
from tests.reports.test_capacity import C1_CORES, C2_CORES, WINDOW

env = cli.env  # the CLI tests' fixture: the test cloud and its DSN


def x(day: date, offset: float = 0.0) -> float:
    """Where midnight of ``day`` plus ``offset`` days sits on a date axis."""
    return float(mdates.date2num(datetime(day.year, day.month, day.day))) + offset  # type: ignore[no-untyped-call]


def panel(figure: Figure, title: str) -> Axes:
    (found,) = [ax for ax in figure.axes if ax.get_title().startswith(title)]
    return found


def values(line: Line2D) -> list[float]:
    return list(np.asarray(line.get_ydata(), float))


def drawn(ax: Axes, gid: str) -> tuple[list[float], list[float]]:
    (line,) = [line for line in ax.lines if line.get_gid() == gid]
    return list(np.asarray(line.get_xdata(), float)), values(line)


def legend_of(ax: Axes) -> Legend:
    legend = ax.get_legend()
    assert legend is not None
    return legend


def colour(handle: Artist | None) -> tuple[float, ...]:
    """A legend entry's colour, without alpha."""
    if isinstance(handle, Line2D):
        return to_rgba(handle.get_color())[:3]
    assert isinstance(handle, Patch)
    return to_rgba(handle.get_facecolor())[:3]


def test_forecast_chart_draws_the_tables_fit_and_bounds_to_the_crossing(db: Database, tmp_path: Path) -> None:
    load(db, days=4, growth=0.3)  # c2's daily CPU peak: vm-c's 23/4 + 0.3 x day; c1 loses vm-d at hour 36
    window = Window(START, START + timedelta(days=4))
    with db.connection() as conn:
        utc = forecast.forecast(conn, window)
        peaks = forecast.daily_peaks(conn, window)
        berlin = forecast.forecast(conn, window, tz="Europe/Berlin")
        berlin_peaks = forecast.daily_peaks(conn, window, "Europe/Berlin")
    figure = Figure()
    assert charts.plot_forecast(peaks, utc, tmp_path / "f.png", figure=figure) == tmp_path / "f.png"
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # peaks 5.75, 6.05, 6.35, 6.65 on 2026-03-02..05: slope 0.3; 90 % of 16 = 14.4 is reached (14.4 - 5.75) / 0.3 =
    # 28.83 days after 2026-03-02, 25.83 after the last day; the first whole day after: 2026-03-02 + 29 = 03-31
    c2 = panel(figure, "c2 cpu: ")
    assert c2.get_title() == "c2 cpu: limit reached 2026-03-31; extrapolated 6.5x beyond a 4-day history"
    crossing = (14.4 - 5.75) / 0.3
    for gid in ("days_to_exhaustion", "days_lower", "days_upper"):  # an exact fit: no spread
        xs, ys = drawn(c2, gid)
        assert xs == pytest.approx([x(START), x(START, crossing)]) and ys == pytest.approx([5.75, 14.4])
    assert drawn(c2, "exhaustion_date")[0] == [x(date(2026, 3, 31))] * 2
    assert [t.get_text() for t in c2.texts] == ["2026-03-31"]
    (peaks_line,) = [line for line in c2.lines if line.get_label() == "daily peak"]
    assert values(peaks_line) == pytest.approx([5.75, 6.05, 6.35, 6.65])
    assert c2.get_ylim()[0] == 0 and c2.get_ylabel() == "daily peak (cores)"
    assert panel(figure, "c2 memory: ").get_ylabel() == "daily peak (GB)"
    assert panel(figure, "c1 cpu: ").get_title() == "c1 cpu: does not reach the limit"
    assert [t.get_text() for t in figure.legends[0].get_texts()] == [
        "daily peak", "limit (90% of capacity)", "linear fit (least squares)", "95% bounds (slope ± 1.96 SE)",
        "limit reached",
    ]  # fmt: skip

    # Berlin days 03-03..05 (03-02 began before the window): c1 peaks 3.0625 (vm-d until 12:00 UTC), 2.0625, 2.0625
    figure = Figure()
    charts.plot_forecast(berlin_peaks, berlin, tmp_path / "b.png", figure=figure)
    y = np.array([3.0625, 2.0625, 2.0625])
    slope = (y[2] - y[0]) / 2  # x = 0, 1, 2: Sxy / Sxx with Sxx = 2
    start = y.mean() - slope  # the fit on 03-03
    residual = y - (start + slope * np.arange(3))
    steep = slope + 1.96 * np.sqrt(residual @ residual / (3 - 2) / 2)  # + 1.96 x s / sqrt(Sxx)
    days_lower = (28.8 - (start + steep * 2)) / steep  # a falling fit whose steeper bound still rises
    c1 = panel(figure, "c1 cpu: ")
    row = berlin.filter((pl.col("cluster") == "c1") & (pl.col("resource") == "cpu") & (pl.col("method") == "linear"))
    assert row["days_lower"][0] == pytest.approx(days_lower)
    xs, ys = drawn(c1, "days_lower")  # to where it reaches 90 % of 32 cores
    assert xs == pytest.approx([x(date(2026, 3, 3)), x(date(2026, 3, 5), days_lower)])
    assert ys == pytest.approx([start, 28.8])
    xs, ys = drawn(c1, "days_to_exhaustion")  # the fit, falling, as far as the chart goes
    assert xs == pytest.approx([x(date(2026, 3, 3)), x(date(2026, 3, 5), days_lower)])
    assert ys == pytest.approx([start, start + slope * (2 + days_lower)])
    assert not [line for line in c1.lines if line.get_gid() == "exhaustion_date"]


def test_trend_chart_shows_the_top_8_and_the_others_as_one_band_beside_the_axes(tmp_path: Path) -> None:
    ts = [datetime(2026, 3, 2, h, tzinfo=UTC) for h in range(3)]
    series = pl.DataFrame(
        {
            "ts": ts * 24,
            "host": [f"h{i:02}" for i in range(24) for _ in ts],
            "cpu_pct": [float(i) for i in range(24) for _ in ts],
        }
    )  # h00 at 0 % ... h23 at 23 %
    figure = Figure()
    charts.plot_trend(series, "host", "cpu_pct", tmp_path / "u.png", "CPU", figure=figure)
    (ax,) = figure.axes
    legend = legend_of(ax)
    assert [t.get_text() for t in legend.get_texts()] == [
        *(f"h{i}" for i in range(23, 15, -1)),
        "16 other hosts (min to max)",
    ]
    assert legend.get_title().get_text() == "top 8 of 24 by mean"
    assert len({colour(handle) for handle in legend.legend_handles}) == 9
    (band,) = ax.collections
    heights = np.asarray(band.get_paths()[0].vertices)[:, 1]
    assert (heights.min(), heights.max()) == (0, 15)  # h00 to h15
    figure.draw_without_rendering()
    assert legend.get_window_extent().x0 > ax.get_window_extent().x1  # beside the axes, over no tick


def test_trend_chart_of_the_test_cloud_and_of_an_empty_window(cloud: Database, tmp_path: Path) -> None:
    before = Window(START - timedelta(days=9), START - timedelta(days=2))
    with cloud.connection() as conn:
        series = capacity.hourly_series(conn, WINDOW, "cluster")
        empty = capacity.hourly_series(conn, before, "host")
        no_peaks, no_forecast = forecast.daily_peaks(conn, before), forecast.forecast(conn, before)
    figure = Figure()
    charts.plot_trend(series, "cluster", "cpu_pct", tmp_path / "u.png", "CPU per cluster", figure=figure)
    (ax,) = figure.axes
    assert {line.get_label(): values(line) for line in ax.lines} == {
        "c1": pytest.approx([100 * c / 32 for c in C1_CORES]),  # 32 vCPUs
        "c2": pytest.approx([100 * c / 16 for c in C2_CORES]),  # 16
    }
    assert [t.get_text() for t in legend_of(ax).get_texts()] == ["c2", "c1"]  # the busier by mean first
    assert legend_of(ax).get_title().get_text() == ""  # all shown: no "top N"
    assert (ax.get_ylabel(), ax.get_xlabel(), ax.get_ylim()[0]) == ("CPU used (% of capacity)", "hour (UTC)", 0)
    figure = Figure()
    charts.plot_trend(empty, "host", "cpu_pct", tmp_path / "e.png", "CPU per host", figure=figure)
    (ax,) = figure.axes
    assert [t.get_text() for t in ax.texts] == ["no data"] and not ax.axison and not ax.lines
    figure = Figure()
    charts.plot_forecast(no_peaks, no_forecast, tmp_path / "f.png", figure=figure)
    assert [[t.get_text() for t in ax.texts] for ax in figure.axes] == [["no data"]] * 4


@pytest.mark.parametrize(
    ("where", "reason"),
    [("missing/x.png", "No such file or directory"), ("file/x.png", "Not a directory"), ("", "Is a directory")],
)
def test_an_unwritable_chart_path_is_a_config_error_before_drawing(tmp_path: Path, where: str, reason: str) -> None:
    (tmp_path / "file").touch()
    path = tmp_path / where
    series = pl.DataFrame({"ts": [datetime(2026, 3, 2, tzinfo=UTC)], "host": ["h1"], "cpu_pct": [1.0]})
    draws: list[Callable[[Figure], Path]] = [
        lambda figure: charts.plot_trend(series, "host", "cpu_pct", path, "CPU", figure=figure),
        lambda figure: charts.plot_forecast(pl.DataFrame(), pl.DataFrame({"method": []}), path, figure=figure),
    ]
    for draw in draws:
        figure = Figure()
        with pytest.raises(ConfigError) as error:
            draw(figure)
        assert str(error.value) == f"cannot write chart {path}: {reason}"
        assert not figure.axes  # checked before drawing anything


@pytest.mark.parametrize("command", ["utilization", "forecast"])
def test_cli_plot_to_a_missing_directory_exits_2_with_one_line(env: dict[str, str], command: str) -> None:
    code, out, err = cli.invoke(env, "capacity", command, *cli.WINDOW, "--plot", "/nonexistent/dir/x.png")
    assert (code, err) == (2, "error: cannot write chart /nonexistent/dir/x.png: No such file or directory\n")
    assert "Traceback" not in out + err
