"""PNG charts (matplotlib, Agg backend): hourly utilization trends and forecast fits."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import polars as pl


def plot_trend(series: pl.DataFrame, label: str, value: str, path: Path, title: str) -> Path:
    """One line per ``label`` of ``value`` over ``ts``; written to ``path``."""
    fig, ax = plt.subplots(figsize=(10, 4))
    for (name,), part in series.sort("ts").group_by(label, maintain_order=True):
        ax.plot(part["ts"].to_list(), part[value].to_list(), label=str(name))
    ax.set(title=title, ylabel=value)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    fig.autofmt_xdate()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_forecast(peaks: pl.DataFrame, forecast: pl.DataFrame, path: Path) -> Path:
    """Daily peaks per cluster and resource with the linear trend extended to the target; one panel each."""
    panels = forecast.filter(pl.col("method") == "linear")
    fig, axes = plt.subplots(max(panels.height, 1), 1, figsize=(10, 3 * max(panels.height, 1)), squeeze=False)
    for ax, row in zip(axes[:, 0], panels.iter_rows(named=True), strict=False):
        part = peaks.filter((pl.col("cluster") == row["cluster"]) & (pl.col("resource") == row["resource"])).sort("day")
        ax.plot(part["day"].to_list(), part["peak"].to_list(), "o-", label="daily peak")
        if row["target"] is not None:
            ax.axhline(row["target"], color="red", linestyle="--", label="limit")
        ax.set(title=f"{row['cluster']} {row['resource']}: {row['status']}", ylabel=row["resource"])
        ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
