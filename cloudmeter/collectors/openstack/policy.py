"""Gnocchi archive policies: which granularities each metric keeps and for how long. Pure, no I/O.

A metric keeps mean measures at each granularity of its archive policy for ``points`` buckets back from its
last measure (``GET /v1/archive_policy`` and each metric's ``archive_policy``). One ``/v1/aggregates`` request
reads one granularity, which every metric in it must keep (else Gnocchi answers 400 "Metrics cannot be
aggregated"); so a capture reads each VM at the finest granularity all of its metrics keep over the time
read, and groups VMs by it.

Sub-minute buckets are passed over while a minute or coarser one covers the time: a bucket that narrow holds
one poll at its own second, and the meters of one poll (cpu, memory.usage, ...) are stamped seconds apart, so
they would land in different rows. Ceilometer's ``ceilometer-high`` (1 s for an hour, 1 min for a day, 1 h for
a year) is read at 1 min while a day back, at 1 h beyond.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from cloudmeter.errors import PayloadError

#: Granularities below this are read only when nothing coarser keeps the time asked for.
MIN_PREFERRED_S: Final = 60
_TIMEDELTA = re.compile(r"^(?:(\d+) days?, )?(\d+):(\d\d):(\d\d(?:\.\d+)?)$")


@dataclass(frozen=True, order=True)
class Keep:
    """One definition of a policy: mean buckets of ``granularity_s`` kept ``points`` deep."""

    granularity_s: int
    points: int

    @property
    def timespan_s(self) -> int:
        """How far back from a series' last measure its buckets reach."""
        return self.granularity_s * self.points


@dataclass(frozen=True)
class ArchivePolicy:
    """A named archive policy and its definitions, finest first."""

    name: str
    keeps: tuple[Keep, ...]

    @property
    def granularities(self) -> tuple[int, ...]:
        """Its granularities in seconds, finest first."""
        return tuple(keep.granularity_s for keep in self.keeps)


def seconds(text: Any, where: str) -> int:
    """A Gnocchi duration (``"0:05:00"``, ``"365 days, 0:00:00"``, or a number of seconds) in whole seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool) and 0 < text < 1e12:
        return max(1, round(text))
    match = _TIMEDELTA.match(text) if isinstance(text, str) else None
    if match is None:
        raise PayloadError.unexpected(where, text, "a duration like '0:05:00' or '1 day, 0:00:00'")
    days, hours, minutes, secs = match.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(secs)
    if total < 1:
        raise PayloadError.unexpected(where, text, "at least one second")
    return round(total)


def archive_policy(value: Any, where: str) -> ArchivePolicy:
    """One policy as ``/v1/archive_policy`` (or a metric's ``archive_policy``) describes it."""
    policy = PayloadError.expect(value, dict, where, "an archive policy object")
    name = policy.get("name")
    if not isinstance(name, str) or not name:
        raise PayloadError.unexpected(f"{where} name", name, "a policy name")
    keeps = []
    definitions = PayloadError.expect(policy.get("definition"), list, f"{where} definition", "a list")
    for k, definition in enumerate(definitions):
        at = f"archive policy {name} definition[{k}]"
        entry = PayloadError.expect(definition, dict, at, "an object")
        granularity = seconds(entry.get("granularity"), f"{at} granularity")
        points = entry.get("points")
        if points is None and entry.get("timespan") is not None:
            points = seconds(entry["timespan"], f"{at} timespan") // granularity
        if not isinstance(points, int) or isinstance(points, bool) or points < 1:
            raise PayloadError.unexpected(f"{at} points", points, "a positive number of points")
        keeps.append(Keep(granularity, points))
    if not keeps:
        raise PayloadError.unexpected(f"{where} definition", [], "at least one granularity")
    return ArchivePolicy(name, tuple(sorted(keeps)))


def archive_policies(body: Any) -> dict[str, ArchivePolicy]:
    """``GET /v1/archive_policy``: policy name -> policy."""
    listed = PayloadError.expect(body, list, "/v1/archive_policy", "a list of archive policies")
    found = (archive_policy(value, f"/v1/archive_policy[{k}]") for k, value in enumerate(listed))
    return {policy.name: policy for policy in found}


def metric_policies(metrics: Iterable[Any], where: str) -> dict[str, str]:
    """Metric id -> archive policy name, from metrics as ``GET /v1/metric`` or ``/v1/metric/ID`` answers them."""
    found: dict[str, str] = {}
    for k, value in enumerate(metrics):
        at = f"{where}[{k}]"
        metric = PayloadError.expect(value, dict, at, "a metric object")
        metric_id = metric.get("id")
        if not isinstance(metric_id, str) or not metric_id:
            raise PayloadError.unexpected(f"{at} id", metric_id, "a metric id")
        inline = metric.get("archive_policy")
        name = inline.get("name") if isinstance(inline, dict) else metric.get("archive_policy_name")
        if not isinstance(name, str) or not name:
            raise PayloadError.unexpected(f"{at} archive_policy_name", name, "a policy name")
        found[metric_id] = name
    return found


class NoCommonGranularity(Exception):
    """No granularity is kept by every policy asked about (or the configured one is not among them)."""

    def __init__(self, policies: Sequence[ArchivePolicy], configured: int | None) -> None:
        offered = " and ".join(f"{p.name} keeps {_listed(p.granularities)}" for p in policies)
        if configured is None:
            problem = "one VM's metrics keep no granularity in common"
        else:
            problem = f"granularity_s = {configured} is not kept by every archive policy"
        super().__init__(f"{problem} ({offered})")


def choose_granularity(
    policies: Sequence[ArchivePolicy], back_s: int, configured: int | None = None, *, coarsest_up_to: int | None = None
) -> int:
    """The granularity to read metrics on ``policies`` at, ``back_s`` seconds back from now.

    ``configured`` when every policy keeps it. Otherwise, of the granularities every policy keeps at least
    ``back_s`` deep: the finest of at least a minute, else the finest (or with ``coarsest_up_to``, the coarsest
    up to that, for few points); when none is that deep, the deepest (the time asked for is partly gone at the
    source). Raises NoCommonGranularity.
    """
    common = set.intersection(*(set(p.granularities) for p in policies)) if policies else set()
    if configured is not None:
        if configured not in common:
            raise NoCommonGranularity(policies, configured)
        return configured
    if not common:
        raise NoCommonGranularity(policies, None)
    depth = {g: min(k.timespan_s for p in policies for k in p.keeps if k.granularity_s == g) for g in common}
    covering = sorted(g for g in common if depth[g] >= back_s)
    if coarsest_up_to is not None and (coarse := [g for g in covering if g <= coarsest_up_to]):
        return coarse[-1]
    preferred = [g for g in covering if g >= MIN_PREFERRED_S] or covering
    return preferred[0] if preferred else max(common, key=lambda g: (depth[g], -g))


def polling_interval(starts: npt.NDArray[np.int64], ts: npt.NDArray[np.int64], granularity_s: int) -> int | None:
    """How often the source polled, from series of readings (``starts`` delimit each series in ``ts``): the
    median step between consecutive readings, in whole granularities; None without two readings in a row."""
    steps = np.diff(ts)
    ends = starts[1:-1] - 1  # the step from one series' last reading to the next series' first is not a step
    keep = np.ones(len(steps), dtype=bool)
    keep[ends[(ends >= 0) & (ends < len(steps))]] = False
    steps = steps[keep & (steps > 0)]
    if not len(steps):
        return None
    return max(1, round(float(np.median(steps)) / granularity_s)) * granularity_s


def keeps_of(policies: Mapping[str, ArchivePolicy], names: Iterable[str]) -> list[ArchivePolicy]:
    """The policies named (unknown names are skipped: Gnocchi deleted the policy since it was listed)."""
    return [policies[name] for name in sorted(set(names)) if name in policies]


def _listed(granularities: Sequence[int]) -> str:
    return ", ".join(f"{g} s" for g in granularities)
