"""Writes the Grafana dashboards in this directory (``python -m dashboards.build``; ``--check`` exits 1 if a file
differs from what it would write).

The JSON files are what users import; their SQL is written in ``dashboards/queries.py``, their layout here.
Every query uses the datasource the user picks at import (the input ``DS_CLOUDMETER``); none is hard-coded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Final

from dashboards.queries import (
    CHARGE_CORES,
    CHARGE_COST,
    CHARGE_MEMORY,
    CHARGE_TABLE,
    CHARGE_VCPU,
    COVERAGE_SERIES,
    CPU_SERIES,
    FREE_TABLE,
    HEADROOM_TABLE,
    MEMORY_SERIES,
    P95_TABLE,
    PCT_SERIES,
    PRICES,
    VAR_CLUSTER,
    VAR_HOST,
    VAR_MANAGER,
    VAR_VM,
    VM_COVERAGE,
    VM_CPU,
    VM_DISK,
    VM_HISTORY,
    VM_MEMORY,
    VM_NETWORK,
    VM_PCT,
    VM_SUMMARY,
    VM_TIMELINE,
)

HERE: Final = Path(__file__).resolve().parent
INPUT: Final = "DS_CLOUDMETER"
PLUGIN: Final = "grafana-postgresql-datasource"
DS: Final = {"type": PLUGIN, "uid": "${" + INPUT + "}"}
SCHEMA_VERSION: Final = 41  # Grafana 12
Json = dict[str, Any]


def query_var(name: str, label: str, sql: str, multi: bool, description: str) -> Json:
    """A query variable over ``sql`` (``__text``, ``__value``); a multi-value one starts at All."""
    return {
        "current": {"text": ["All"], "value": ["$__all"]} if multi else {},
        "datasource": DS,
        "definition": sql,
        "description": description,
        "includeAll": multi,
        "label": label,
        "multi": multi,
        "name": name,
        "options": [],
        "query": sql,
        "refresh": 1,
        "regex": "",
        "sort": 0,
        "type": "query",
    }


def textbox(name: str, label: str, value: str, description: str) -> Json:
    return {
        "current": {"text": value, "value": value},
        "description": description,
        "hide": 0,
        "label": label,
        "name": name,
        "options": [{"selected": True, "text": value, "value": value}],
        "query": value,
        "type": "textbox",
    }


MANAGER_VAR: Final = query_var("manager", "manager", VAR_MANAGER, True, "cloudmeter managers (managers table)")
CLUSTER_VAR: Final = query_var("cluster", "cluster", VAR_CLUSTER, True, "clusters of the selected managers")

# --- panels -----------------------------------------------------------------------------------------------------


def target(sql: str, fmt: str) -> Json:
    return {"datasource": DS, "editorMode": "code", "format": fmt, "rawQuery": True, "rawSql": sql, "refId": "A"}


def timeseries(
    title: str, description: str, sql: str, unit: str, grid: tuple[int, int, int, int], bars: bool = False, **extra: Any
) -> Json:
    custom: Json = {
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 80 if bars else 10,
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if bars else "none"},
    }
    return {
        "datasource": DS,
        "description": description,
        "fieldConfig": {"defaults": {"custom": custom, "unit": unit}, "overrides": []},
        "gridPos": _grid(grid),
        "options": {
            "legend": {"calcs": ["mean", "max"], "displayMode": "table", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "none"},
        },
        "targets": [target(sql, "time_series")],
        "title": title,
        "type": "timeseries",
        **extra,
    }


def table(title: str, description: str, sql: str, grid: tuple[int, int, int, int], units: dict[str, str]) -> Json:
    overrides = [
        {"matcher": {"id": "byName", "options": name}, "properties": [{"id": "unit", "value": unit}]}
        for name, unit in units.items()
    ]
    return {
        "datasource": DS,
        "description": description,
        "fieldConfig": {"defaults": {"custom": {"align": "auto"}, "decimals": 2}, "overrides": overrides},
        "gridPos": _grid(grid),
        "options": {"cellHeight": "sm", "showHeader": True},
        "targets": [target(sql, "table")],
        "title": title,
        "type": "table",
    }


def text(title: str, content: str, grid: tuple[int, int, int, int]) -> Json:
    return {
        "gridPos": _grid(grid),
        "options": {"content": content, "mode": "markdown"},
        "title": title,
        "type": "text",
    }


def _grid(grid: tuple[int, int, int, int]) -> Json:
    x, y, w, h = grid
    return {"h": h, "w": w, "x": x, "y": y}


def dashboard(
    uid: str, title: str, description: str, variables: list[Json], panels: list[Json], timezone: str = "utc"
) -> Json:
    """A dashboard whose every query uses the datasource chosen at import (input ``DS_CLOUDMETER``)."""
    kinds = sorted({p["type"] for p in panels})
    return {
        "__inputs": [
            {
                "description": "the PostgreSQL database cloudmeter writes to (a role with SELECT on it is enough)",
                "label": "cloudmeter PostgreSQL",
                "name": INPUT,
                "pluginId": PLUGIN,
                "pluginName": "PostgreSQL",
                "type": "datasource",
            }
        ],
        "__elements": {},
        "__requires": [
            {"id": "grafana", "name": "Grafana", "type": "grafana", "version": "12.0.0"},
            {"id": PLUGIN, "name": "PostgreSQL", "type": "datasource", "version": "1.0.0"},
            *({"id": kind, "name": kind, "type": "panel", "version": ""} for kind in kinds),
        ],
        "annotations": {"list": []},
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": [{"id": i, **panel} for i, panel in enumerate(panels, start=1)],
        "refresh": "",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["cloudmeter"],
        "templating": {"list": variables},
        "time": {"from": "now-7d", "to": "now"},
        "timepicker": {},
        "timezone": timezone,
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


def cluster_capacity() -> Json:
    limits = [
        textbox("flavor_vcpus", "flavor vCPUs", "4", "headroom: the vCPUs of the VM to place"),
        textbox("flavor_memory_gb", "flavor GB", "8", "headroom: the memory of the VM to place, GB (2^30 bytes)"),
        textbox("cpu_usage_pct", "CPU usage limit %", "90", "headroom: p95 CPU must stay under this % of capacity"),
        textbox("mem_usage_pct", "memory usage limit %", "90", "headroom: p95 memory must stay under this %"),
        textbox("cpu_allocation_ratio", "CPU allocation ratio", "4", "headroom: vCPUs allocated <= ratio x physical"),
        textbox(
            "mem_allocation_ratio", "memory allocation ratio", "1", "headroom: memory allocated <= ratio x physical"
        ),
    ]
    hourly = "Hourly; coarser ranges average the hours of each $__interval. As `cloudmeter capacity utilization`."
    panels = [
        timeseries(
            "CPU: cores used, vCPUs allocated and physical",
            "Per cluster: busy cores (the cluster's hourly average, its VMs summed), the vCPUs of the VMs placed "
            "on its hosts and the hosts' vCPUs, time-weighted within each hour. " + hourly,
            CPU_SERIES,
            "short",
            (0, 0, 12, 9),
            interval="1h",
        ),
        timeseries(
            "Memory: used, allocated and physical",
            "Per cluster: memory used (hourly average), allocated to its VMs, and its hosts' memory. " + hourly,
            MEMORY_SERIES,
            "bytes",
            (12, 0, 12, 9),
            interval="1h",
        ),
        timeseries(
            "CPU and memory used, % of physical capacity",
            "Per cluster and hour: used / its hosts' capacity in that hour. Missing data is a gap, never 0. " + hourly,
            PCT_SERIES,
            "percent",
            (0, 9, 12, 9),
            interval="1h",
        ),
        timeseries(
            "Coverage: samples received, % of those promised",
            "Per cluster and hour: the VMs' samples over what their sampling interval promises while they existed "
            "(at most 100). Read the utilization beside it with this: 50 % means half the samples are missing.",
            COVERAGE_SERIES,
            "percent",
            (12, 9, 12, 9),
            interval="1h",
        ),
        table(
            "p95 per cluster over the time range",
            "As `cloudmeter capacity utilization --level cluster`: p95, average and peak of the hourly values; "
            "capacity and allocation at the last hour; overcommit = allocated / physical; coverage and the hours "
            "with data say what the figures rest on.",
            P95_TABLE,
            (0, 18, 24, 9),
            {
                "coverage_pct": "percent",
                "cpu_pct_p95": "percent",
                "mem_pct_p95": "percent",
                "disk_bps_p95": "Bps",
                "net_bps_p95": "Bps",
                "cpu_pct_avg": "percent",
                "cpu_pct_peak": "percent",
                "mem_pct_avg": "percent",
                "mem_pct_peak": "percent",
            },
        ),
        table(
            "Free vCPUs and GB per cluster (whole units, host by host)",
            "Room left under the limits above, counted host by host as `cloudmeter capacity headroom --vcpus 1 "
            "--memory-gb 1` does: by usage (p95 under the usage limit) and by allocation (under ratio x physical). "
            "Empty when a host with VMs has no data in the range (unknown, not 0).",
            FREE_TABLE,
            (0, 27, 12, 8),
            {"coverage_pct": "percent"},
        ),
        table(
            "Headroom: VMs of ${flavor_vcpus} vCPU / ${flavor_memory_gb} GB that fit",
            "As `cloudmeter capacity headroom --vcpus ${flavor_vcpus} --memory-gb ${flavor_memory_gb}` with the "
            "limits above: per cluster the fit by each constraint (summed over its hosts), the overall fit and "
            "what limits it.",
            HEADROOM_TABLE,
            (12, 27, 12, 8),
            {"coverage_pct": "percent"},
        ),
    ]
    return dashboard(
        "cloudmeter-cluster-capacity",
        "cloudmeter: cluster capacity",
        "Per cluster CPU and memory used, allocated and physical, coverage, p95 and headroom (cloudmeter tables).",
        [MANAGER_VAR, CLUSTER_VAR, *limits],
        panels,
    )


def vm_drilldown() -> Json:
    host = query_var("host", "host", VAR_HOST, True, "hosts of the selected clusters")
    vm = query_var("vm", "VM", VAR_VM, False, "VMs on the selected hosts (or directly in the selected clusters)")
    stored = "The VM's hourly rollup rows as stored (metric_hourly): avg, min, max and p95 of its samples in each hour."
    panels = [
        timeseries(
            "CPU: cores used and vCPUs allocated",
            stored + " Allocation from resource_history.",
            VM_CPU,
            "short",
            (0, 0, 12, 8),
        ),
        timeseries("Memory: used and allocated", stored, VM_MEMORY, "bytes", (12, 0, 12, 8)),
        timeseries("CPU and memory, % of the VM's allocation", stored, VM_PCT, "percent", (0, 8, 12, 8)),
        timeseries(
            "Coverage: samples received, % of those promised",
            "Per hour: the VM's samples over what its sampling interval promises while it existed (0 for an hour "
            "it was silent, empty before it existed or after it was deleted); and the samples in the hour.",
            VM_COVERAGE,
            "percent",
            (12, 8, 12, 8),
        ),
        timeseries("Disk read and write", stored, VM_DISK, "Bps", (0, 16, 12, 8)),
        timeseries("Network in and out", stored, VM_NETWORK, "Bps", (12, 16, 12, 8)),
        table(
            "The VM over the time range",
            "As `cloudmeter capacity rightsize` sees it: allocation at its last hour in the range, hours it existed, "
            "coverage, p95 of the hourly averages of cores used and memory used (GB).",
            VM_SUMMARY,
            (0, 24, 24, 4),
            {"coverage_pct": "percent"},
        ),
        table(
            "Placement history",
            "Every period of resource_history for the VM, whatever the time range: where it was placed and with "
            "what allocation; a live migration or resize closes one row and opens the next.",
            VM_HISTORY,
            (0, 28, 14, 8),
            {"memory_bytes": "bytes"},
        ),
        {
            "datasource": DS,
            "description": "Which host the VM was on when, in the time range (empty after it was deleted).",
            "fieldConfig": {"defaults": {"color": {"mode": "palette-classic"}}, "overrides": []},
            "gridPos": _grid((14, 28, 10, 8)),
            "options": {"mergeValues": True, "showValue": "auto", "alignValue": "left", "rowHeight": 0.9},
            "targets": [target(VM_TIMELINE, "table")],
            "title": "Host over time",
            "type": "state-timeline",
        },
    ]
    return dashboard(
        "cloudmeter-vm-drilldown",
        "cloudmeter: VM drill-down",
        "One VM's hourly rollups, allocation, coverage and placement history (cloudmeter tables).",
        [MANAGER_VAR, CLUSTER_VAR, host, vm],
        panels,
    )


CHARGEBACK_NOTE: Final = """**Usage per project, and an indicative cost at flat prices: not a bill.**

The quantities are what `cloudmeter chargeback` prices, from the same tables the same way: each VM's hours from
`resource_history` (clipped to its life, split at migrations), allocation x hours, busy cores and memory used from
its hourly averages, GB transferred; a day is a local day in the `tz` variable.

*Indicative cost* is those quantities times the flat unit prices in the variables above, nothing more. The
rate-card engine (`cloudmeter chargeback show|export --rates FILE`) applies rate lines by provider, project and tag,
graduated tiers, fixed fees, daily/weekly/monthly rates over the hours of each period, and rounds money exactly;
its **cost** is the figure to bill. Usage in an hour without samples is not charged (the engine does the same) and
counts in `cpu_unknown_hours` instead."""


def chargeback() -> Json:
    prices = [textbox(var, label, value, f"indicative cost: {label} (flat, not the rate card)")
              for var, label, value in PRICES.values()]  # fmt: skip
    variables = [
        MANAGER_VAR,
        textbox("tz", "time zone", "UTC", "IANA zone of the days (as chargeback --tz)"),
        textbox("currency", "currency", "EUR", "shown in titles only"),
        *prices,
    ]
    per_day = (
        "Per project and local day (variable tz), as the quantity of `cloudmeter chargeback show --group-by "
        "project --interval daily`."
    )
    panels = [
        text("What this dashboard shows", CHARGEBACK_NOTE, (0, 0, 24, 6)),
        timeseries("Allocated vCPU-hours per project per day", per_day, CHARGE_VCPU, "short", (0, 6, 12, 8), bars=True),
        timeseries(
            "Allocated memory GB-hours per project per day", per_day, CHARGE_MEMORY, "short", (12, 6, 12, 8), bars=True
        ),
        timeseries(
            "Busy core-hours per project per day",
            per_day + " Hours without samples add nothing here; they count in cpu_unknown_hours.",
            CHARGE_CORES,
            "short",
            (0, 14, 12, 8),
            bars=True,
        ),
        timeseries(
            "Indicative cost per project per day (${currency}, flat prices: not the rate card)",
            "Quantities x the flat prices in the variables. Not what `cloudmeter chargeback` bills: no rate lines, "
            "tiers, fixed fees or per-period rates.",
            CHARGE_COST,
            "none",
            (12, 14, 12, 8),
            bars=True,
        ),
        table(
            "Usage per project over the time range",
            "Quantities in unit-hours (GB = 2^30 bytes), GB transferred, hours without CPU samples, and the "
            "indicative cost at the flat prices (${currency}).",
            CHARGE_TABLE,
            (0, 22, 24, 8),
            {},
        ),
    ]
    return dashboard(
        "cloudmeter-chargeback",
        "cloudmeter: usage for chargeback",
        "Per project and day: allocated and used unit-hours, and an indicative cost at flat prices (not the rate "
        "card).",
        variables,
        panels,
        timezone="browser",  # days start at local midnight in tz: a viewer in that zone sees the bars at 00:00
    )


def main(argv: list[str]) -> int:
    """Write the dashboards (or, with ``--check``, exit 1 naming those that differ from what is written)."""
    stale = []
    for name, board in BOARDS.items():
        path = HERE / f"{name}.json"
        text_ = json.dumps(board(), indent=2, ensure_ascii=False) + "\n"
        if "--check" in argv:
            if not path.exists() or path.read_text(encoding="utf-8") != text_:
                stale.append(path.name)
        else:
            path.write_text(text_, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python -m dashboards.build", file=sys.stderr)
    return 1 if stale else 0


BOARDS: Final = {"cluster-capacity": cluster_capacity, "vm-drilldown": vm_drilldown, "chargeback": chargeback}

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
