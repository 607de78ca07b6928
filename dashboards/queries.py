"""The SQL of the Grafana dashboards, in pieces shared by the panels that need them (``dashboards/build.py`` puts
them into the JSON files).

Every query reads only the tables of the data contract (README, "Tables"): ``managers``, ``resources``,
``resource_history``, ``resource_intervals`` and ``metric_hourly``, and computes what the report of the same name
computes (``cloudmeter.reports``), so a panel and the CLI or HTTP API agree on the same hours;
``tests/dashboards`` runs every query, expanded as Grafana expands it, and checks that.

Windows are whole UTC hours: a panel covers the hours whose start lies in Grafana's time range
(``$__timeFilter(ts)``, inclusive at both ends, as Grafana's own ranges end at :59:59.999). Grafana's template
variables: ``${manager:sqlstring}`` and ``${cluster:sqlstring}`` (ids, multi-value), ``${vm:sqlstring}``,
textboxes quoted as literals (``'${tz}'``), ``$__interval`` for the cluster series.
"""

from __future__ import annotations

from typing import Final

GIB: Final = "1073741824.0"

# --- SQL pieces -------------------------------------------------------------------------------------------------

MANAGERS: Final = "${manager:sqlstring}"


def placed(kinds: str, where: str = "", ancestors: bool = False) -> str:
    """``periods`` and ``placed``: placements of resources of ``kinds`` by UTC hour in the time range, as the
    reports' ``inputs.placements``: ``resource_history`` periods clipped to the resource's lifetime, ``seconds``
    the part of the hour they cover (a mid-hour migration or resize splits the hour). With ``ancestors`` (``anc``
    defined), also ``parent_host`` and ``parent_cluster``: the parent's nearest host and cluster, looked up once
    per period (``periods`` is materialized so that the lookup happens before the hours multiply the rows)."""
    lookup = (
        "\n  LEFT JOIN anc ph ON ph.id = h.parent_id AND ph.kind = 'host'"
        "\n  LEFT JOIN anc pc ON pc.id = h.parent_id AND pc.kind = 'cluster'"
        if ancestors
        else ""
    )
    columns = ",\n         ph.ancestor_id AS parent_host, pc.ancestor_id AS parent_cluster" if ancestors else ""
    return f"""periods AS MATERIALIZED (
  SELECT h.resource_id, r.kind, r.manager_id, h.parent_id, h.vcpus, h.memory_bytes, h.project, h.valid_from,
         least(coalesce(h.valid_to, 'infinity'), coalesce(r.retired_at, 'infinity')) AS until{columns}
  FROM resource_history h
  JOIN resources r ON r.id = h.resource_id{lookup}
  WHERE r.kind IN ({kinds}) AND r.manager_id IN ({MANAGERS}){where}
    AND h.valid_from <= $__timeTo() AND (h.valid_to IS NULL OR h.valid_to > $__timeFrom())
),
placed AS (
  SELECT g.hour AS ts, h.*,
         extract(epoch FROM least(h.until, g.hour + interval '1 hour') - greatest(h.valid_from, g.hour))::float8
           AS seconds
  FROM periods h
  CROSS JOIN LATERAL generate_series(
    date_bin('1 hour', greatest(h.valid_from, $__timeFrom()::timestamptz), timestamptz '2000-01-01 00:00+00'),
    least(h.until - interval '1 microsecond', $__timeTo()::timestamptz), interval '1 hour') g(hour)
  WHERE $__timeFilter(g.hour) AND h.until > greatest(h.valid_from, g.hour)
)"""


def vm_coverage(where: str = "") -> str:
    """``vm_cov``: VM placements with their hourly rollup row and ``samples`` / ``expected``, as
    ``inputs.sample_coverage``: the hour's samples split among its placements by seconds, against what the VM's
    sampling interval in that hour (``resource_intervals``, else its newest, else its manager's) promises in
    the placement's seconds; samples never count above what is promised."""
    return f"""usual AS (
  SELECT r.id AS resource_id,
         coalesce((SELECT i.interval_s FROM resource_intervals i WHERE i.resource_id = r.id
                   ORDER BY i.valid_from DESC LIMIT 1), m.sample_interval_s) AS interval_s
  FROM resources r JOIN managers m ON m.id = r.manager_id
  WHERE r.kind = 'vm' AND r.manager_id IN ({MANAGERS}){where}
),
vm_promised AS (
  SELECT p.*, p.seconds / coalesce(hi.interval_s, u.interval_s) AS promised
  FROM placed p
  LEFT JOIN resource_intervals hi ON hi.resource_id = p.resource_id AND hi.valid_from <= p.ts AND hi.valid_to > p.ts
  LEFT JOIN usual u ON u.resource_id = p.resource_id
  WHERE p.kind = 'vm'
),
vm_split AS (
  SELECT p.*, mh.sample_count, mh.cpu_used_cores_avg, mh.mem_used_bytes_avg, mh.net_rx_bps_avg, mh.net_tx_bps_avg,
         coalesce(mh.sample_count, 0) * (p.seconds / sum(p.seconds) OVER (PARTITION BY p.resource_id, p.ts))
           AS split_samples
  FROM vm_promised p
  LEFT JOIN metric_hourly mh ON mh.resource_id = p.resource_id AND mh.ts = p.ts
),
vm_cov AS (
  SELECT s.*, least(s.split_samples, coalesce(s.promised, s.split_samples)) AS samples,
         coalesce(s.promised, s.split_samples) AS expected
  FROM vm_split s
)"""


ANCESTORS: Final = f"""up AS (
  SELECT id AS start_id, id, kind, parent_id, 0 AS depth FROM resources
  WHERE kind <> 'vm' AND manager_id IN ({MANAGERS})
  UNION ALL
  SELECT up.start_id, r.id, r.kind, r.parent_id, up.depth + 1
  FROM up JOIN resources r ON r.id = up.parent_id
  WHERE up.depth < 64
),
anc AS (
  SELECT DISTINCT ON (start_id, kind) start_id AS id, kind, id AS ancestor_id FROM up ORDER BY start_id, kind, depth
)"""
"""``anc``: every non-VM resource's nearest ancestor of each kind (itself included) by current ``parent_id``, as
``inputs.ancestor``."""


def level_series(level: str, p: str) -> str:
    """``{p}series`` and ``{p}rows``: per resource of ``level`` (host or cluster) and hour, capacity (its hosts'
    vCPUs and memory, time-weighted; NULL when one is unknown), allocation (its VMs'), VMs, what their
    intervals promise and the samples of its own hourly rollup row (never more than promised), joined with that
    row; as ``capacity.hourly_series``."""
    host_group = "p.resource_id" if level == "host" else "p.parent_cluster"
    return f"""{p}host_hours AS (
  SELECT p.ts, p.resource_id, {host_group} AS group_id, p.vcpus, p.memory_bytes, p.seconds
  FROM placed p
  WHERE p.kind = 'host'
),
{p}capacity AS (
  SELECT group_id, ts,
         CASE WHEN bool_or(vcpus IS NULL) OR sum(vcpus * (seconds / 3600.0)) <= 0 THEN NULL
              ELSE sum(vcpus * (seconds / 3600.0)) END AS capacity_vcpus,
         CASE WHEN bool_or(memory_bytes IS NULL) OR sum(memory_bytes * (seconds / 3600.0)) <= 0 THEN NULL
              ELSE sum(memory_bytes * (seconds / 3600.0)) END AS capacity_memory_bytes
  FROM {p}host_hours GROUP BY group_id, ts
),
{p}allocation AS (
  SELECT coalesce(hh.group_id, v.parent_{level}) AS group_id, v.ts,
         sum(v.vcpus * (v.seconds / 3600.0)) AS allocated_vcpus,
         sum(v.memory_bytes * (v.seconds / 3600.0)) AS allocated_memory_bytes,
         count(DISTINCT v.resource_id) AS vms, sum(v.promised) AS vm_promised,
         bool_or(v.promised IS NULL) AS vm_unpromised
  FROM vm_promised v
  LEFT JOIN (SELECT DISTINCT ON (ts, resource_id) ts, resource_id, group_id FROM {p}host_hours
             ORDER BY ts, resource_id, seconds DESC) hh ON hh.ts = v.ts AND hh.resource_id = v.parent_id
  WHERE coalesce(hh.group_id, v.parent_{level}) IS NOT NULL
  GROUP BY 1, 2
),
{p}series AS (
  SELECT coalesce(c.group_id, a.group_id) AS group_id, coalesce(c.ts, a.ts) AS ts,
         c.capacity_vcpus, c.capacity_memory_bytes, a.allocated_vcpus, a.allocated_memory_bytes,
         a.vms, a.vm_promised, a.vm_unpromised
  FROM {p}capacity c FULL JOIN {p}allocation a ON a.group_id = c.group_id AND a.ts = c.ts
),
{p}counted AS (
  SELECT s.*, mh.sample_count,
         CASE WHEN s.vm_unpromised THEN greatest(coalesce(s.vm_promised, 0), coalesce(mh.sample_count, 0))
              ELSE s.vm_promised END AS vm_expected
  FROM {p}series s
  LEFT JOIN metric_hourly mh ON mh.resource_id = s.group_id AND mh.ts = s.ts
),
{p}rows AS (
  SELECT s.*, CASE WHEN s.vm_expected IS NOT NULL THEN least(coalesce(s.sample_count, 0), s.vm_expected) END
           AS vm_samples, g.name AS {level}, m.name AS manager,
         mh.cpu_used_cores_avg, mh.cpu_used_cores_max, mh.mem_used_bytes_avg, mh.mem_used_bytes_max,
         100 * mh.cpu_used_cores_avg / s.capacity_vcpus AS cpu_pct,
         100 * mh.cpu_used_cores_max / s.capacity_vcpus AS cpu_pct_max,
         100 * mh.mem_used_bytes_avg / s.capacity_memory_bytes AS mem_pct,
         100 * mh.mem_used_bytes_max / s.capacity_memory_bytes AS mem_pct_max,
         mh.mem_used_bytes_avg / {GIB} AS mem_gb, mh.mem_used_bytes_max / {GIB} AS mem_gb_max,
         mh.disk_read_bps_avg + mh.disk_write_bps_avg AS disk_bps, mh.net_rx_bps_avg + mh.net_tx_bps_avg AS net_bps
  FROM {p}counted s
  JOIN resources g ON g.id = s.group_id AND g.kind = '{level}'
  JOIN managers m ON m.id = g.manager_id
  LEFT JOIN metric_hourly mh ON mh.resource_id = s.group_id AND mh.ts = s.ts
)"""


def level_summary(level: str, p: str) -> str:
    """``{p}summary``: per resource of ``level`` (all of the selected managers', with or without rows) its window
    statistics and its capacity and allocation at the last hour, as ``capacity.utilization``."""
    return f"""{p}last AS (
  SELECT * FROM {p}rows WHERE ts = (SELECT max(ts) FROM {p}rows)
),
{p}stats AS (
  SELECT group_id,
         count(*) FILTER (WHERE sample_count > 0) AS hours_with_data,
         min(ts) FILTER (WHERE sample_count > 0) AS data_from,
         max(ts) FILTER (WHERE sample_count > 0) + interval '1 hour' AS data_to,
         100 * sum(vm_samples) / sum(vm_expected) AS coverage_pct,
         avg(cpu_used_cores_avg) AS cpu_cores_avg,
         percentile_cont(0.95) WITHIN GROUP (ORDER BY cpu_used_cores_avg) AS cpu_cores_p95,
         max(cpu_used_cores_max) AS cpu_cores_peak,
         avg(cpu_pct) AS cpu_pct_avg, percentile_cont(0.95) WITHIN GROUP (ORDER BY cpu_pct) AS cpu_pct_p95,
         max(cpu_pct_max) AS cpu_pct_peak,
         avg(mem_gb) AS mem_gb_avg, percentile_cont(0.95) WITHIN GROUP (ORDER BY mem_gb) AS mem_gb_p95,
         max(mem_gb_max) AS mem_gb_peak,
         avg(mem_pct) AS mem_pct_avg, percentile_cont(0.95) WITHIN GROUP (ORDER BY mem_pct) AS mem_pct_p95,
         max(mem_pct_max) AS mem_pct_peak,
         avg(disk_bps) AS disk_bps_avg, percentile_cont(0.95) WITHIN GROUP (ORDER BY disk_bps) AS disk_bps_p95,
         max(disk_bps) AS disk_bps_peak,
         avg(net_bps) AS net_bps_avg, percentile_cont(0.95) WITHIN GROUP (ORDER BY net_bps) AS net_bps_p95,
         max(net_bps) AS net_bps_peak
  FROM {p}rows GROUP BY group_id
),
{p}summary AS (
  SELECT g.id AS group_id, g.name AS {level}, m.name AS manager, coalesce(st.hours_with_data, 0) AS hours_with_data,
         st.data_from, st.data_to, st.coverage_pct,
         st.cpu_cores_avg, st.cpu_cores_p95, st.cpu_cores_peak, st.cpu_pct_avg, st.cpu_pct_p95, st.cpu_pct_peak,
         st.mem_gb_avg, st.mem_gb_p95, st.mem_gb_peak, st.mem_pct_avg, st.mem_pct_p95, st.mem_pct_peak,
         st.disk_bps_avg, st.disk_bps_p95, st.disk_bps_peak, st.net_bps_avg, st.net_bps_p95, st.net_bps_peak,
         l.vms, l.capacity_vcpus AS vcpus_capacity, l.allocated_vcpus AS vcpus_allocated,
         l.capacity_memory_bytes / {GIB} AS mem_gb_capacity, l.allocated_memory_bytes / {GIB} AS mem_gb_allocated,
         l.allocated_vcpus / l.capacity_vcpus AS cpu_overcommit,
         (l.allocated_memory_bytes / {GIB}) / (l.capacity_memory_bytes / {GIB}) AS mem_overcommit
  FROM resources g
  JOIN managers m ON m.id = g.manager_id
  LEFT JOIN {p}stats st ON st.group_id = g.id
  LEFT JOIN {p}last l ON l.group_id = g.id
  WHERE g.kind = '{level}' AND g.manager_id IN ({MANAGERS})
)"""


def with_ctes(*parts: str) -> str:
    """``WITH RECURSIVE`` and the CTEs (RECURSIVE for ``up``; harmless for the others)."""
    return "WITH RECURSIVE " + ",\n".join(parts) + "\n"


CLUSTERS: Final = "${cluster:sqlstring}"
CLUSTER_CTES: Final = with_ctes(
    ANCESTORS, placed("'vm', 'host'", ancestors=True), vm_coverage(), level_series("cluster", "c_")
)


def cluster_timeseries(columns: str) -> str:
    """Hourly (or coarser, averaged over ``$__interval``) series of the selected clusters."""
    return (
        CLUSTER_CTES
        + f"""SELECT $__timeGroupAlias(ts, $__interval), cluster,
{columns}
FROM c_rows
WHERE group_id IN ({CLUSTERS})
GROUP BY 1, cluster
ORDER BY 1, cluster"""
    )


CPU_SERIES: Final = cluster_timeseries(
    """  avg(cpu_used_cores_avg) AS "cores used", avg(allocated_vcpus) AS "vCPUs allocated",
  avg(capacity_vcpus) AS "vCPUs physical\""""
)
MEMORY_SERIES: Final = cluster_timeseries(
    """  avg(mem_used_bytes_avg) AS "memory used", avg(allocated_memory_bytes) AS "memory allocated",
  avg(capacity_memory_bytes) AS "memory physical\""""
)
PCT_SERIES: Final = cluster_timeseries('  avg(cpu_pct) AS "CPU used %", avg(mem_pct) AS "memory used %"')
COVERAGE_SERIES: Final = cluster_timeseries('  100 * sum(vm_samples) / sum(vm_expected) AS "coverage %"')

P95_TABLE: Final = (
    with_ctes(
        ANCESTORS,
        placed("'vm', 'host'", ancestors=True),
        vm_coverage(),
        level_series("cluster", "c_"),
        level_summary("cluster", "c_"),
    )
    + f"""SELECT cluster, manager, coverage_pct, hours_with_data, data_from, data_to,
       cpu_cores_p95, cpu_pct_p95, mem_gb_p95, mem_pct_p95, disk_bps_p95, net_bps_p95,
       cpu_cores_avg, cpu_cores_peak, cpu_pct_avg, cpu_pct_peak, mem_gb_avg, mem_gb_peak, mem_pct_avg, mem_pct_peak,
       vms, vcpus_capacity, vcpus_allocated, cpu_overcommit, mem_gb_capacity, mem_gb_allocated, mem_overcommit
FROM c_summary
WHERE group_id IN ({CLUSTERS})
ORDER BY cluster"""
)


def _fits(room: str, size: str) -> str:
    """Whole VMs of ``size`` in ``room`` (never negative, a hair of float error does not lose one; NULL stays
    NULL), as ``headroom._fits``."""
    return f"CASE WHEN ({room}) IS NULL THEN NULL ELSE greatest(floor(({room}) / {size} + 1e-9), 0)::bigint END"


CONSTRAINTS: Final = ("cpu_usage", "mem_usage", "cpu_allocation", "mem_allocation")


def headroom(vcpus: str, memory_gb: str, select: str) -> str:
    """Per cluster, VMs of ``vcpus`` and ``memory_gb`` that fit host by host under the limits in the dashboard's
    variables, as ``headroom.headroom``; ``select`` picks the columns from ``fit``."""
    cpu_p95 = "CASE WHEN coalesce(vms, 0) = 0 AND cpu_cores_p95 IS NULL THEN 0.0 ELSE cpu_cores_p95 END"
    mem_p95 = "CASE WHEN coalesce(vms, 0) = 0 AND mem_gb_p95 IS NULL THEN 0.0 ELSE mem_gb_p95 END"
    rooms = {
        "cpu_usage": f"vcpus_capacity * '${{cpu_usage_pct}}'::float8 / 100 - {cpu_p95}",
        "mem_usage": f"mem_gb_capacity * '${{mem_usage_pct}}'::float8 / 100 - {mem_p95}",
        "cpu_allocation": "vcpus_capacity * '${cpu_allocation_ratio}'::float8 - coalesce(vcpus_allocated, 0)",
        "mem_allocation": "mem_gb_capacity * '${mem_allocation_ratio}'::float8 - coalesce(mem_gb_allocated, 0)",
    }
    sizes = {"cpu_usage": vcpus, "mem_usage": memory_gb, "cpu_allocation": vcpus, "mem_allocation": memory_gb}
    per_host = ",\n         ".join(f"{_fits(rooms[c], sizes[c])} AS {c}" for c in CONSTRAINTS)
    summed = ",\n         ".join(
        f"CASE WHEN bool_or(unknown) THEN NULL ELSE sum({c})::bigint END AS {c}" for c in (*CONSTRAINTS, "fit")
    )
    least = ", ".join(CONSTRAINTS)
    limited = "\n".join(f"              WHEN {c} = least({least}) THEN '{c}'" for c in CONSTRAINTS)
    return (
        with_ctes(
            ANCESTORS,
            placed("'vm', 'host'", ancestors=True),
            vm_coverage(),
            level_series("host", "h_"),
            level_summary("host", "h_"),
            level_series("cluster", "c_"),
            level_summary("cluster", "c_"),
            f"""host_fits AS (
  SELECT a.ancestor_id AS cluster_id, f.*, least({least}) AS fit,
         ({" OR ".join(f"{c} IS NULL" for c in CONSTRAINTS)}) AS unknown
  FROM (SELECT group_id, vcpus_capacity, vcpus_allocated,
         {per_host}
        FROM h_summary
        WHERE group_id NOT IN (  -- retired before the range's last hour: no room now, known or not
          SELECT id FROM resources WHERE kind = 'host'
            AND retired_at <= date_bin('1 hour', $__timeTo()::timestamptz, timestamptz '2000-01-01 00:00+00'))) f
  LEFT JOIN anc a ON a.id = f.group_id AND a.kind = 'cluster'
)""",
            f"""fit AS (
  SELECT g.name AS cluster, f.cluster_id, count(*) AS hosts, count(*) FILTER (WHERE unknown) AS hosts_without_data,
         {summed},
         sum(vcpus_capacity) AS vcpus_capacity, sum(vcpus_allocated) AS vcpus_allocated
  FROM host_fits f LEFT JOIN resources g ON g.id = f.cluster_id
  GROUP BY g.name, f.cluster_id
)""",
        )
        + f"""SELECT {select}
FROM (SELECT f.*, CASE WHEN f.fit IS NULL THEN NULL
{limited}
              END AS limited_by,
             c.coverage_pct, c.hours_with_data, c.data_from, c.data_to
      FROM fit f LEFT JOIN c_summary c ON c.group_id = f.cluster_id) h
WHERE cluster_id IN ({CLUSTERS})
ORDER BY cluster"""
    )


HEADROOM_TABLE: Final = headroom(
    "'${flavor_vcpus}'::int",
    "'${flavor_memory_gb}'::float8",
    "cluster, fit, limited_by, cpu_usage, mem_usage, cpu_allocation, mem_allocation, hosts, hosts_without_data,\n"
    "       vcpus_capacity, vcpus_allocated, coverage_pct, hours_with_data, data_from, data_to",
)
FREE_TABLE: Final = headroom(
    "1",
    "1.0",
    'cluster, cpu_usage AS "free vCPUs (usage)", cpu_allocation AS "free vCPUs (allocation)",\n'
    '       mem_usage AS "free GB (usage)", mem_allocation AS "free GB (allocation)", hosts_without_data, coverage_pct',
)

# --- variables' options -----------------------------------------------------------------------------------------------


def _unique_text(kind: str, where: str) -> str:
    """Options ``__text`` (the name, with ``#id`` where two share it: Grafana drops options with equal texts) and
    ``__value`` (the resource id)."""
    return (
        "SELECT CASE WHEN count(*) OVER (PARTITION BY r.name) > 1 THEN r.name || ' #' || r.id ELSE r.name END "
        f"AS __text, r.id::text AS __value\nFROM resources r\nWHERE r.kind = '{kind}' AND {where}\nORDER BY 1"
    )


VAR_MANAGER: Final = "SELECT name AS __text, id::text AS __value FROM managers ORDER BY name"
VAR_CLUSTER: Final = _unique_text("cluster", f"r.manager_id IN ({MANAGERS})")
VAR_HOST: Final = _unique_text("host", f"r.manager_id IN ({MANAGERS}) AND r.parent_id IN ({CLUSTERS})")
VAR_VM: Final = _unique_text(
    "vm",
    f"r.manager_id IN ({MANAGERS})\n  AND (r.parent_id::text = ANY (ARRAY[${{host:sqlstring}}]::text[]) "
    f"OR r.parent_id IN ({CLUSTERS}))",
)


# --- VM drill-down ----------------------------------------------------------------------------------------------

VM: Final = "nullif(${vm:sqlstring}, '')::int"
VM_HOURS: Final = (
    "WITH "
    + ",\n".join(
        (
            placed("'vm'", f" AND h.resource_id = {VM}"),
            vm_coverage(f" AND r.id = {VM}"),
            """alloc AS (
  SELECT ts, sum(vcpus * seconds) / sum(seconds) FILTER (WHERE vcpus IS NOT NULL) AS vcpus_allocated,
         sum(memory_bytes * seconds) / sum(seconds) FILTER (WHERE memory_bytes IS NOT NULL) AS memory_allocated,
         100 * sum(samples) / sum(expected) AS coverage_pct
  FROM vm_cov GROUP BY ts
)""",
            f"""vm_hours AS (
  SELECT coalesce(a.ts, mh.ts) AS ts, a.vcpus_allocated, a.memory_allocated, a.coverage_pct, mh.sample_count,
         mh.cpu_used_cores_avg, mh.cpu_used_cores_min, mh.cpu_used_cores_max, mh.cpu_used_cores_p95,
         mh.cpu_usage_pct_avg, mh.cpu_usage_pct_max, mh.cpu_usage_pct_p95,
         mh.mem_used_bytes_avg, mh.mem_used_bytes_min, mh.mem_used_bytes_max, mh.mem_used_bytes_p95,
         mh.mem_usage_pct_avg, mh.mem_usage_pct_max, mh.mem_usage_pct_p95,
         mh.disk_read_bps_avg, mh.disk_read_bps_max, mh.disk_read_bps_p95,
         mh.disk_write_bps_avg, mh.disk_write_bps_max, mh.disk_write_bps_p95,
         mh.net_rx_bps_avg, mh.net_rx_bps_max, mh.net_rx_bps_p95,
         mh.net_tx_bps_avg, mh.net_tx_bps_max, mh.net_tx_bps_p95
  FROM alloc a
  FULL JOIN (SELECT * FROM metric_hourly WHERE resource_id = {VM} AND $__timeFilter(ts)) mh ON mh.ts = a.ts
)""",
        )
    )
    + "\n"
)
"""``vm_hours``: the selected VM's hourly rollup rows as stored, beside its allocation (``resource_history``,
averaged over the part of the hour it existed) and its coverage in that hour (``inputs.sample_coverage``)."""


def vm_series(columns: str) -> str:
    return VM_HOURS + f"SELECT $__time(ts),\n{columns}\nFROM vm_hours\nORDER BY ts"


VM_CPU: Final = vm_series(
    """  cpu_used_cores_avg AS "avg", cpu_used_cores_min AS "min", cpu_used_cores_max AS "max",
  cpu_used_cores_p95 AS "p95", vcpus_allocated AS "vCPUs allocated\""""
)
VM_MEMORY: Final = vm_series(
    """  mem_used_bytes_avg AS "avg", mem_used_bytes_min AS "min", mem_used_bytes_max AS "max",
  mem_used_bytes_p95 AS "p95", memory_allocated AS "allocated\""""
)
VM_PCT: Final = vm_series(
    """  cpu_usage_pct_avg AS "CPU avg", cpu_usage_pct_p95 AS "CPU p95", cpu_usage_pct_max AS "CPU max",
  mem_usage_pct_avg AS "memory avg", mem_usage_pct_p95 AS "memory p95", mem_usage_pct_max AS "memory max\""""
)
VM_DISK: Final = vm_series(
    """  disk_read_bps_avg AS "read avg", disk_read_bps_p95 AS "read p95", disk_read_bps_max AS "read max",
  disk_write_bps_avg AS "write avg", disk_write_bps_p95 AS "write p95", disk_write_bps_max AS "write max\""""
)
VM_NETWORK: Final = vm_series(
    """  net_rx_bps_avg AS "in avg", net_rx_bps_p95 AS "in p95", net_rx_bps_max AS "in max",
  net_tx_bps_avg AS "out avg", net_tx_bps_p95 AS "out p95", net_tx_bps_max AS "out max\""""
)
VM_COVERAGE: Final = vm_series('  coverage_pct AS "coverage %", sample_count AS "samples"')
VM_SUMMARY: Final = (
    "WITH "
    + ",\n".join(
        (
            placed("'vm'", f" AND h.resource_id = {VM}"),
            vm_coverage(f" AND r.id = {VM}"),
            """per_hour AS (
  SELECT resource_id, ts, sum(seconds) AS seconds, min(cpu_used_cores_avg) AS cpu_cores,
         min(mem_used_bytes_avg) / 1073741824.0 AS memory_gb, sum(samples) AS samples, sum(expected) AS expected
  FROM vm_cov GROUP BY resource_id, ts
)""",
            """last AS (
  SELECT DISTINCT ON (resource_id) resource_id, vcpus, memory_bytes FROM vm_cov ORDER BY resource_id, ts DESC
)""",
        )
    )
    + f"""
SELECT r.name AS vm, m.name AS manager, l.vcpus, l.memory_bytes / {GIB} AS memory_gb,
       sum(h.seconds) / 3600 AS hours_alive, 100 * sum(h.samples) / sum(h.expected) AS coverage_pct,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY h.cpu_cores) AS cpu_cores_p95,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY h.memory_gb) AS memory_gb_p95, r.retired_at
FROM per_hour h
JOIN resources r ON r.id = h.resource_id
JOIN managers m ON m.id = r.manager_id
JOIN last l ON l.resource_id = h.resource_id
GROUP BY r.name, m.name, l.vcpus, l.memory_bytes, r.retired_at"""
)
VM_HISTORY: Final = f"""SELECT h.valid_from, h.valid_to, p.name AS placed_under, p.kind AS parent_kind,
       CASE WHEN p.kind = 'cluster' THEN p.name ELSE c.name END AS cluster,
       h.vcpus, h.memory_bytes, h.project, r.retired_at
FROM resource_history h
JOIN resources r ON r.id = h.resource_id
LEFT JOIN resources p ON p.id = h.parent_id
LEFT JOIN resources c ON c.id = p.parent_id AND c.kind = 'cluster'
WHERE h.resource_id = {VM}
ORDER BY h.valid_from"""
VM_TIMELINE: Final = f"""SELECT time, host FROM (
  SELECT greatest(h.valid_from, $__timeFrom()::timestamptz) AS time, p.name AS host
  FROM resource_history h LEFT JOIN resources p ON p.id = h.parent_id
  WHERE h.resource_id = {VM} AND h.valid_from <= $__timeTo() AND (h.valid_to IS NULL OR h.valid_to > $__timeFrom())
  UNION ALL
  SELECT retired_at, NULL FROM resources WHERE id = {VM} AND $__timeFilter(retired_at)
) t
ORDER BY time"""


# --- chargeback ---------------------------------------------------------------------------------------------------

TZ: Final = "'${tz}'"
PRICES: Final = {
    "vcpu_hours": ("price_vcpu_hour", "per vCPU-hour allocated", "0.016"),
    "memory_gb_hours": ("price_memory_gb_hour", "per GB-hour of memory allocated", "0.004"),
    "disk_gb_hours": ("price_disk_gb_hour", "per GB-hour of disk allocated", "0.0001"),
    "core_hours_used": ("price_core_hour", "per busy core-hour", "0.004"),
    "memory_gb_hours_used": ("price_memory_gb_used_hour", "per GB-hour of memory used", "0"),
    "network_gb": ("price_network_gb", "per GB transferred (in + out)", "0.01"),
}
USAGE: Final = (
    "WITH "
    + ",\n".join(
        (
            placed("'vm'"),
            vm_coverage(),
            f"""usage AS (
  SELECT date_trunc('day', v.ts AT TIME ZONE {TZ}) AT TIME ZONE {TZ} AS day_start, proj.name AS project,
         v.seconds / 3600.0 AS vm_hours,
         v.vcpus * (v.seconds / 3600.0) AS vcpu_hours,
         (v.memory_bytes / {GIB}) * (v.seconds / 3600.0) AS memory_gb_hours,
         (r.disk_bytes / {GIB}) * (v.seconds / 3600.0) AS disk_gb_hours,
         v.cpu_used_cores_avg * (v.seconds / 3600.0) AS core_hours_used,
         (v.mem_used_bytes_avg / {GIB}) * (v.seconds / 3600.0) AS memory_gb_hours_used,
         (v.net_rx_bps_avg + v.net_tx_bps_avg) * v.seconds / {GIB} AS network_gb,
         CASE WHEN v.cpu_used_cores_avg IS NULL THEN v.seconds / 3600.0 ELSE 0.0 END AS cpu_unknown_hours
  FROM vm_cov v
  JOIN resources r ON r.id = v.resource_id
  LEFT JOIN resources proj ON proj.manager_id = r.manager_id AND proj.kind = 'project' AND proj.ems_ref = v.project
)""",
        )
    )
    + "\n"
)
"""``usage``: per VM placement and UTC hour, the local day (in ``$tz``) it belongs to, its project and the
quantities the rate-card engine prices (``usage.vm_hours``, ``chargeback.charges``), in unit-hours."""
INDICATIVE: Final = " +\n       ".join(
    f"coalesce(sum({q}), 0) * '${{{var}}}'::float8" for q, (var, _, _) in PRICES.items()
)


def per_project_day(column: str) -> str:
    return (
        USAGE + f"SELECT $__time(day_start), project,\n  {column}\nFROM usage\nGROUP BY 1, project\nORDER BY 1, project"
    )


CHARGE_VCPU: Final = per_project_day('sum(vcpu_hours) AS "vCPU-hours"')
CHARGE_MEMORY: Final = per_project_day('sum(memory_gb_hours) AS "GB-hours"')
CHARGE_CORES: Final = per_project_day('sum(core_hours_used) AS "core-hours"')
CHARGE_COST: Final = per_project_day(f'{INDICATIVE} AS "indicative cost"')
CHARGE_TABLE: Final = (
    USAGE
    + f"""SELECT project, sum(vm_hours) AS vm_hours, sum(vcpu_hours) AS vcpu_hours,
       sum(memory_gb_hours) AS memory_gb_hours,
       sum(disk_gb_hours) AS disk_gb_hours, sum(core_hours_used) AS core_hours_used,
       sum(memory_gb_hours_used) AS memory_gb_hours_used, sum(network_gb) AS network_gb,
       sum(cpu_unknown_hours) AS cpu_unknown_hours,
       {INDICATIVE} AS indicative_cost
FROM usage
GROUP BY project
ORDER BY project"""
)
