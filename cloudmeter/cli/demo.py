"""``cloudmeter demo``: a simulated cloud captured and rolled up on the embedded database."""

from __future__ import annotations

from typing import Annotated

import typer

from cloudmeter.cli.common import ConfigOption, console, fail, open_database, read_settings
from cloudmeter.cli.output import JsonOption, Output, View, show


def register(app: typer.Typer) -> None:
    """Put ``demo`` on the root app."""
    app.command()(demo)


def demo(
    config: ConfigOption = None,
    vms: Annotated[int, typer.Option(min=1, max=20000, help="Simulated VMs.")] = 200,
    days: Annotated[int, typer.Option(min=1, max=31, help="Days of history to capture.")] = 3,
    as_json: JsonOption = False,
) -> None:
    """Simulate a cloud, capture and roll up a few days of it on the embedded database, print a summary."""
    from cloudmeter.demo import DEMO_MANAGER, run_demo

    settings = read_settings(config)
    if DEMO_MANAGER in settings.managers:
        raise fail(f"the config file declares a manager named {DEMO_MANAGER!r}; the demo needs that name", 2)
    with open_database(settings) as db:
        result = run_demo(db, settings.time_zones, vms, days)
    if as_json:
        show(result.summary, View(Output.json))
        return
    window = f"{result.window.start:%Y-%m-%d %H:%M} to {result.window.end:%Y-%m-%d %H:%M} UTC"
    daily = ", ".join(f"{count:,} daily rows ({zone})" for zone, count in result.daily_rows.items())
    lines = [
        f"[bold]cloudmeter demo[/]: {vms} VMs on {result.hosts} hosts in 2 clusters ({result.resources} resources)",
        f"captured {result.samples:,} samples from {window}",
        f"rolled up {result.hourly_rows:,} hourly rows and {daily or 'no daily rows'}",
    ]
    if result.replaced:
        lines.append(f"replaced the previous demo run ({result.replaced:,} samples): each run starts clean")
    lines += [
        f"data: {db.display_dsn}",
        "try: cloudmeter capacity utilization; cloudmeter chargeback show; cloudmeter managers remove demo --yes",
    ]
    for line in lines:
        console.print(line, highlight=False)
    show(result.summary, View(), title="per cluster (hourly rollups)")
