"""cAdvisor's series, as Prometheus' query_range answers them, into cloudmeter's samples (pure).

A sample at ``ts`` stands for ``[ts, ts + step)``: it is what Prometheus evaluates at ``ts + step`` over a range of
``step`` seconds (``rate(...[step])`` for counters, ``avg_over_time(...[step])`` for the memory working set), so
every sample covers its own step and a step without two scrapes (one, for memory) is NULL, never 0. Prometheus'
ranges include both ends, so a scrape exactly on a step boundary is seen by both steps.

Series are attached to pods by the pod uid in cAdvisor's ``id`` label (the cgroup path,
``/kubepods/burstable/pod<uid>/<container id>`` or, with the systemd driver,
``.../kubepods-burstable-pod<uid with _>.slice/cri-containerd-<id>.scope``), never by the pod's name, which a
rescheduled pod shares with its predecessor. A container that restarts is a new series (a new container id); the
rates of a container's series are added, and its memory is the larger of their averages where two overlap.

An answer's points are read in bulk: the value strings of all its series by polars' parser in one go; the
times of a series that has a point at every step from its first to its last (Prometheus answers each step at
most once, in order) from those two, the others' by polars from the JSON numbers; then every value is put in
its slot at once (summed by ``np.bincount`` in the order answered, or maxed by ``np.fmax.at``). A loop over the
points in Python cost half as much as Prometheus' answer and its JSON decoding together
(``benchmarks/kubernetes.py``). Where a value is not a numeric string or a time not a number, the series are
read point by point, which names the first malformed point; values are identical either way (both parsers
round correctly).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import polars as pl

from cloudmeter.errors import PayloadError
from cloudmeter.model import METRICS, Requests, ResourceRef, SampleBatch

#: The pod sandbox, as cAdvisor names it: it carries the pod's network.
SANDBOX: Final = "POD"
_UID: Final = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")

#: Per-container and per-pod series read by capture: metric -> (PromQL template, how a container's series
#: combine). ``{sel}`` is the label matchers (cluster and namespace, each followed by a comma), ``{step}`` the range.
_CONTAINERS: Final = 'container!="",container!="POD"'
_SANDBOX: Final = 'container=~"POD|",pod!=""'


def _template(function: str, series: str, which: str) -> str:
    return function + "(" + series + "{{{sel}" + which + "}}[{step}s])"


CAPTURE: Final[dict[str, tuple[str, str]]] = {
    "cpu_used_cores": (_template("rate", "container_cpu_usage_seconds_total", _CONTAINERS), "sum"),
    "mem_used_bytes": (_template("avg_over_time", "container_memory_working_set_bytes", _CONTAINERS), "max"),
    "disk_read_bps": (_template("rate", "container_fs_reads_bytes_total", _CONTAINERS), "sum"),
    "disk_write_bps": (_template("rate", "container_fs_writes_bytes_total", _CONTAINERS), "sum"),
    "net_rx_bps": (_template("rate", "container_network_receive_bytes_total", _SANDBOX), "sum"),
    "net_tx_bps": (_template("rate", "container_network_transmit_bytes_total", _SANDBOX), "sum"),
}


def uid_of(cgroup: str) -> str | None:
    """The pod uid in a cAdvisor ``id`` (a cgroup path), or None (a node-level cgroup)."""
    found = _UID.search(cgroup)
    return found[1].replace("_", "-") if found else None


def container_ref(uid: str, container: str) -> ResourceRef:
    """A container's reference: ``<pod uid>/<container name>`` (the sandbox: ``<pod uid>/POD``)."""
    return ResourceRef("container", f"{uid}/{container}")


def matchers(**labels: str) -> str:
    """PromQL label matchers for ``labels`` (values escaped), each followed by a comma; empty for none."""
    return "".join(f"{name}={quote(value)}," for name, value in labels.items())


def quote(value: str) -> str:
    """A PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def grid(start_s: int, end_s: int, step_s: int) -> tuple[int, int] | None:
    """The first and last sample time on the ``step_s`` grid (multiples of it since the epoch) in
    ``[start_s, end_s)``, or None if there is none."""
    first = -(-start_s // step_s) * step_s
    last = -(-end_s // step_s) * step_s - step_s
    return (first, last) if first <= last else None


@dataclass(frozen=True)
class Target:
    """What one container's samples need: its reference and requests (the percentages' denominators)."""

    ref: ResourceRef
    requests: Requests | None


def _labels(series: Mapping[str, Any], where: str) -> dict[str, str]:
    metric = PayloadError.expect(series.get("metric"), dict, f"{where}.metric", "an object of labels")
    return {str(k): str(v) for k, v in metric.items()}


def _points(series: Mapping[str, Any], where: str) -> Iterable[tuple[float, float]]:
    values = PayloadError.expect(series.get("values"), list, f"{where}.values", "a list of [time, value]")
    for k, point in enumerate(values):
        if not (isinstance(point, list) and len(point) == 2 and isinstance(point[0], int | float)):
            raise PayloadError.unexpected(f"{where}.values[{k}]", point, "[time, value]")
        try:
            yield float(point[0]), float(point[1])
        except (TypeError, ValueError) as exc:
            raise PayloadError.unexpected(f"{where}.values[{k}]", point, "[time, numeric string]") from exc


def _slots(times: npt.NDArray[np.float64], first_eval_s: int, step_s: int) -> npt.NDArray[np.int64]:
    """The slot of each evaluation time: its steps after ``first_eval_s``, rounded half to even as round() does."""
    return np.floor_divide(np.round(times - first_eval_s), step_s).astype(np.int64)


def _bulk_points(
    results: Sequence[Any], first_eval_s: int, step_s: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], list[int]] | None:
    """Every series' points of one answer, parsed at once: (slots, values, points per series); None where a
    value is not a numeric string or a time not a number (then ``_points`` reads them one by one).

    Prometheus answers each step of a series at most once, in order, so a series whose first and last times are
    ``count - 1`` steps apart has a point at every step between: their times are not read one by one."""
    lists = [series.get("values") if isinstance(series, Mapping) else None for series in results]
    if not all(isinstance(values, list) for values in lists):
        return None
    counts = [len(values) for values in lists]  # type: ignore[arg-type]
    try:
        ends = [(values[0][0], values[-1][0], len(values)) for values in lists if values]
        steps = all(type(a) in (int, float) and type(b) in (int, float) and b - a == (c - 1) * step_s
                    for a, b, c in ends)  # fmt: skip
        points = itertools.chain.from_iterable(lists)  # type: ignore[arg-type]
        values = pl.Series(list(map(itemgetter(1), points)), dtype=pl.String).cast(pl.Float64)
        if steps:
            firsts = _slots(np.array([a for a, _, _ in ends], np.float64), first_eval_s, step_s)
            present = [c for c in counts if c]
            slots = np.repeat(firsts - np.cumsum([0, *present[:-1]]), present) + np.arange(sum(present))
        else:
            points = itertools.chain.from_iterable(lists)  # type: ignore[arg-type]
            times = pl.Series(list(map(itemgetter(0), points)), dtype=pl.Float64)
            if times.null_count():
                return None
            slots = _slots(times.to_numpy(), first_eval_s, step_s)
    except (TypeError, ValueError, IndexError, KeyError, pl.exceptions.PolarsError):
        return None
    if values.null_count():
        return None
    return slots, values.to_numpy(), counts


def _column(
    results: Sequence[Mapping[str, Any]], rows: Sequence[int], metric: str, first_eval_s: int, step_s: int, n: int
) -> npt.NDArray[np.float64]:
    """One metric's values as a (keys x n) vector: series k's points at row ``rows[k]`` (-1: left out), each in
    the slot of its evaluation time (those off the ``n`` slots, and values that are not finite, left out); where
    a row has several series (a restarted container), their values summed in the order answered, or the
    largest kept, as ``CAPTURE`` says; NaN where none has a value."""
    keys = max(rows, default=-1) + 1
    bulk = _bulk_points(results, first_eval_s, step_s)
    if bulk is None:
        read = [list(_points(series, f"{metric}[{k}]")) if rows[k] >= 0 else [] for k, series in enumerate(results)]
        flat = [point for points in read for point in points]
        bulk = (_slots(np.array([t for t, _ in flat], np.float64), first_eval_s, step_s),
                np.array([v for _, v in flat], np.float64), [len(points) for points in read])  # fmt: skip
    slots, values, counts = bulk
    row = np.repeat(np.asarray(rows, np.int64), counts)
    keep = (row >= 0) & (slots >= 0) & (slots < n) & np.isfinite(values)
    at = row[keep] * n + slots[keep]
    if CAPTURE[metric][1] == "sum":  # in the order answered, from the first value (0.0 + v is v)
        seen = np.bincount(at, minlength=keys * n) > 0
        return np.where(seen, np.bincount(at, weights=values[keep], minlength=keys * n), np.nan)
    found = np.full(keys * n, np.nan)
    np.fmax.at(found, at, values[keep])
    return found


def combine(
    answers: Mapping[str, Sequence[Mapping[str, Any]]], first_eval_s: int, step_s: int, n: int
) -> dict[tuple[str, str], npt.NDArray[np.float64]]:
    """(pod uid, container) -> an (n, len(METRICS)) array of the answers' values at the ``n`` evaluation times
    from ``first_eval_s`` (NaN where no series has a value). ``answers`` maps metric names of ``CAPTURE`` to
    query_range results; series without a pod uid in ``id`` are left out. Network series of the pod's cgroup
    (``container=""``) stand for the sandbox only where it has no ``POD`` series of its own."""
    keys: dict[tuple[str, str], int] = {}
    rows: dict[str, list[int]] = {}
    for metric, results in answers.items():
        rows[metric] = []
        for k, series in enumerate(results):
            labels = _labels(series, f"{metric}[{k}]")
            uid = uid_of(labels.get("id", ""))
            rows[metric].append(-1 if uid is None else keys.setdefault((uid, labels.get("container", "")), len(keys)))
    table = np.full((len(keys), n, len(METRICS)), np.nan)
    for metric, results in answers.items():
        column = _column(results, rows[metric], metric, first_eval_s, step_s, n)
        table[: len(column) // n, :, METRICS.index(metric)] = column.reshape(-1, n)
    found = {key: table[k] for key, k in keys.items()}
    for uid, container in [key for key in found if key[1] == ""]:
        pod_level = found.pop((uid, container))  # the sandbox's network where the runtime reports it so
        found.setdefault((uid, SANDBOX), pod_level)  # never added to a POD container's own
    return found


def _pct(used: npt.NDArray[np.float64], request: float | None) -> npt.NDArray[np.float64]:
    if request is None or request <= 0:
        return np.full(len(used), np.nan)
    return 100.0 * used / request


def to_batch(
    combined: Mapping[tuple[str, str], npt.NDArray[np.float64]],
    targets: Mapping[tuple[str, str], Target],
    first_ts_s: int,
    step_s: int,
) -> SampleBatch:
    """One batch of ``combine``'s arrays (row k at ``first_ts_s + k * step_s``): each container's rows with a
    value, the percentages over its requests (NaN where it has none). The sandbox keeps only its network;
    a key without a target gets a reference without requests."""
    refs: list[ResourceRef] = []
    idx: list[npt.NDArray[np.int32]] = []
    times: list[npt.NDArray[np.int64]] = []
    rows: list[npt.NDArray[np.float64]] = []
    cpu, mem = METRICS.index("cpu_used_cores"), METRICS.index("mem_used_bytes")
    net = [METRICS.index("net_rx_bps"), METRICS.index("net_tx_bps")]
    for key in sorted(combined):
        values = combined[key].copy()
        target = targets.get(key) or Target(container_ref(*key), None)
        if key[1] == SANDBOX:
            keep = np.zeros(len(METRICS), dtype=bool)
            keep[net] = True
            values[:, ~keep] = np.nan
        else:
            values[:, net] = np.nan
            requests = target.requests or Requests()
            values[:, METRICS.index("cpu_usage_pct")] = _pct(values[:, cpu], requests.cpu_request_cores)
            memory = requests.memory_request_bytes
            values[:, METRICS.index("mem_usage_pct")] = _pct(values[:, mem], None if memory is None else float(memory))
        present = ~np.all(np.isnan(values), axis=1)
        if not present.any():
            continue
        slots = np.flatnonzero(present)
        idx.append(np.full(len(slots), len(refs), np.int32))
        refs.append(target.ref)
        times.append(first_ts_s + slots.astype(np.int64) * step_s)
        rows.append(values[slots])
    if not refs:
        return SampleBatch((), np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros((0, len(METRICS))), step_s)
    return SampleBatch(tuple(refs), np.concatenate(idx), np.concatenate(times), np.vstack(rows), step_s)
