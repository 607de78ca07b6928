"""The simulated source: its world and the kernels that answer for it (where a real source has its API).

The world (topology, flavors, lifecycle, live migrations, per-VM load profiles) is drawn once from
``numpy.random.default_rng(seed)``. Samples and their gaps are a pure function of (seed, VM, timestamp)
through a splitmix64 hash, so any split of a capture window yields exactly the same samples, and generating
them is one numba kernel over the rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

from cloudmeter.collectors.simulator.config import SimulatorConfig
from cloudmeter.model import epoch_s

GIB: Final = 1 << 30
#: Flavor name, vCPUs, memory in GiB.
FLAVORS: Final[tuple[tuple[str, int, int], ...]] = (
    ("m1.small", 1, 2),
    ("m1.medium", 2, 4),
    ("m1.large", 4, 8),
    ("m1.xlarge", 8, 16),
)
DISK_GIB: Final = (20, 40, 80, 160)
PROJECTS: Final = tuple(f"project-{letter}" for letter in "abcde")
TEAMS: Final = ("platform", "data", "web", "ml", "payments")
ENVS: Final = ("prod", "dev")
HOST_VCPUS: Final = 32
HOST_MEMORY_BYTES: Final = 128 * GIB
#: Most rows one SampleBatch holds.
BATCH_ROWS: Final = 1_000_000

LATE_SHARE: Final = 0.2  # VMs created after ``start``
DELETE_SHARE: Final = 0.1
MIGRATE_SHARE: Final = 0.3
NO_MEMORY_AGENT_SHARE: Final = 0.05
#: Load profiles (idle, busy, normal) and their shares of the VMs.
PROFILE_SHARES: Final = (0.10, 0.15, 0.75)
GAP_PER_HOUR: Final = 0.02  # chance that a VM-hour starts a gap
GAP_MIN_S: Final = 300
GAP_MAX_S: Final = 1800
_NEVER: Final = int(np.iinfo(np.int64).max)  # a time that never comes

# Columns of the per-VM profile matrix, and their (low, high) ranges per profile (idle, busy, normal).
# Rates are drawn as log10 and stored as bytes per second.
_CPU_BASE, _CPU_AMP, _CPU_NOISE, _PHASE, _MEM_BASE, _MEM_AMP, _IO_AMP = range(7)
_DISK_READ, _DISK_WRITE, _NET_RX, _NET_TX = range(7, 11)
_RATES = slice(_DISK_READ, _NET_TX + 1)
_PROFILE_RANGES: Final = np.array(
    [
        # idle, busy, normal
        [(1.0, 3.0), (70.0, 85.0), (10.0, 50.0)],  # cpu base, %
        [(0.0, 0.5), (5.0, 10.0), (5.0, 20.0)],  # cpu diurnal amplitude, %
        [(0.1, 0.5), (1.0, 3.0), (2.0, 5.0)],  # cpu noise amplitude, %
        [(0.0, 2 * math.pi)] * 3,  # diurnal phase
        [(0.2, 0.4), (0.6, 0.85), (0.3, 0.7)],  # memory base fraction
        [(0.0, 0.02), (0.02, 0.08), (0.02, 0.1)],  # memory diurnal amplitude (fraction)
        [(0.1, 0.3), (0.3, 0.6), (0.3, 0.9)],  # I/O diurnal amplitude (relative)
        [(2.0, 4.0), (6.0, 7.5), (4.0, 6.5)],  # log10 disk read bytes/s
        [(2.0, 4.0), (5.5, 7.0), (4.0, 6.0)],  # log10 disk write bytes/s
        [(2.0, 3.5), (6.0, 7.5), (4.0, 6.5)],  # log10 net rx bytes/s
        [(2.0, 3.5), (6.0, 7.5), (4.0, 6.5)],  # log10 net tx bytes/s
    ]
).transpose(1, 0, 2)  # -> (profile, column, low/high)

MASK64: Final = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_SALT_VALUES = np.uint64(0x5A17_0F_5A_3C_7E_11)
_SALT_GAPS = np.uint64(0x6A09E667F3BCC909)
_TO_UNIT = 1.0 / 4294967296.0  # 2**-32

_F = TypeVar("_F", bound=Callable[..., Any])


def _jit(fn: _F) -> _F:
    """``numba.njit(cache=True)`` with the function's own signature kept for type checkers."""
    return cast(_F, numba.njit(cache=True)(fn))


@dataclass(frozen=True)
class World:
    """Everything about the simulated VMs, one array row per VM (times in epoch seconds)."""

    flavor: npt.NDArray[np.int64]
    disk_gib: npt.NDArray[np.int64]
    project: npt.NDArray[np.int64]
    env: npt.NDArray[np.int64]
    team: npt.NDArray[np.int64]
    created_s: npt.NDArray[np.int64]
    retired_s: npt.NDArray[np.int64]  # int64 max when never deleted
    host: npt.NDArray[np.int64]  # (vms, 3): global host index before/after each migration
    migrated_s: npt.NDArray[np.int64]  # (vms, 2): migration times, int64 max when unused
    profile: npt.NDArray[np.float64]  # (vms, 11): see the _PROFILE_RANGES columns
    has_memory: npt.NDArray[np.bool_]


def build_world(config: SimulatorConfig) -> World:
    """Draw the simulated VMs from ``config.seed``."""
    rng = np.random.default_rng(config.seed)
    n = config.vms
    first_s = ceil_to(epoch_s(config.start), config.interval_s)
    slots = (epoch_s(config.start) + config.horizon_days * 86400 - first_s) // config.interval_s
    flavor = rng.integers(0, len(FLAVORS), n)
    disk_gib = np.asarray(DISK_GIB)[rng.integers(0, len(DISK_GIB), n)]
    project, env, team = (rng.integers(0, size, n) for size in (len(PROJECTS), len(ENVS), len(TEAMS)))
    created = np.where(rng.random(n) < LATE_SHARE, _draw_between(rng, np.ones(n, np.int64), slots), 0)
    deleted = (rng.random(n) < DELETE_SHARE) & (created + 1 < slots)
    end = np.where(deleted, _draw_between(rng, created + 1, slots), slots)
    host, migrated = _draw_migrations(rng, config, created, end)
    created_s = np.where(created == 0, epoch_s(config.start), first_s + created * config.interval_s)
    return World(
        flavor=flavor,
        disk_gib=disk_gib,
        project=project,
        env=env,
        team=team,
        created_s=created_s,
        retired_s=np.where(deleted, first_s + end * config.interval_s, _NEVER),
        host=host,
        migrated_s=np.where(migrated < 0, _NEVER, first_s + migrated * config.interval_s),
        profile=_draw_profiles(rng, n),
        has_memory=rng.random(n) >= NO_MEMORY_AGENT_SHARE,
    )


def ceil_to(seconds: int, step: int) -> int:
    """The first multiple of ``step`` at or after ``seconds``."""
    return -(-seconds // step) * step


def _draw_between(
    rng: np.random.Generator, low: npt.NDArray[np.int64], high: npt.NDArray[np.int64] | int
) -> npt.NDArray[np.int64]:
    """Uniform integers in ``[low, high)`` per element (``low`` where the range is empty)."""
    span = np.maximum(np.asarray(high) - low, 1)
    return low + (rng.random(len(low)) * span).astype(np.int64)


def _draw_migrations(
    rng: np.random.Generator,
    config: SimulatorConfig,
    created: npt.NDArray[np.int64],
    end: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Hosts (vms, 3) and migration slots (vms, 2; -1 = none) for VMs alive in slots ``[created, end)``.

    A migration moves a VM to another host of its cluster at a slot strictly inside its life.
    """
    n, per_cluster = len(created), config.hosts_per_cluster
    moves = np.where(rng.random(n) < MIGRATE_SHARE, rng.integers(1, 3, n), 0)
    moves = np.minimum(moves, end - created - 1) if per_cluster > 1 else np.zeros(n, np.int64)
    first = _draw_between(rng, created + 1, end)
    second = _draw_between(rng, created + 1, end - 1)
    second += second >= first  # distinct from ``first``
    pair = np.sort(np.column_stack([first, np.where(moves == 2, second, first)]), axis=1)
    cluster = rng.integers(0, config.clusters, n)
    hops = rng.integers(1, max(per_cluster, 2), (n, 2))  # never 0: each move changes host
    local = np.cumsum(np.column_stack([rng.integers(0, per_cluster, n), hops]), axis=1) % per_cluster
    return cluster[:, None] * per_cluster + local, np.where(np.arange(2) < moves[:, None], pair, -1)


def _draw_profiles(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    """Per-VM load parameters (columns as in ``_PROFILE_RANGES``)."""
    ranges = _PROFILE_RANGES[rng.choice(len(PROFILE_SHARES), size=n, p=PROFILE_SHARES)]
    profile = ranges[:, :, 0] + rng.random((n, ranges.shape[1])) * (ranges[:, :, 1] - ranges[:, :, 0])
    profile[:, _RATES] = 10.0 ** profile[:, _RATES]
    return np.ascontiguousarray(profile)


@_jit
def _mix(z: np.uint64) -> np.uint64:
    """The splitmix64 finalizer: a bijective, well-diffusing 64-bit hash."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@_jit
def _gap(key: np.uint64, hour: int) -> tuple[int, int]:
    """The gap ``[start, end)`` in epoch seconds that starts in ``hour`` of a VM, or ``(0, 0)``."""
    h = _mix(key ^ (np.uint64(hour) * _GOLDEN))
    if (h >> np.uint64(11)) * (1.0 / 9007199254740992.0) >= GAP_PER_HOUR:
        return 0, 0
    h = _mix(h)
    start = hour * 3600 + int(_low(h) * 3600)
    return start, start + GAP_MIN_S + int(_high(h) * (GAP_MAX_S - GAP_MIN_S + 1))


@_jit
def fill(
    seed: np.uint64,
    vm_ids: npt.NDArray[np.int64],
    first_ts: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
    interval: int,
    vcpus: npt.NDArray[np.float64],
    memory_bytes: npt.NDArray[np.float64],
    has_memory: npt.NDArray[np.bool_],
    profile: npt.NDArray[np.float64],
    out_idx: npt.NDArray[np.int32],
    out_ts: npt.NDArray[np.int64],
    out_values: npt.NDArray[np.float64],
) -> int:
    """Write the samples of VMs ``vm_ids`` (``counts[j]`` grid slots from ``first_ts[j]``) minus gaps.

    Per-VM arrays (``vcpus`` ... ``profile``) are indexed by the global VM id; rows come out sorted by
    (position in ``vm_ids``, ts). The outputs need room for ``counts.sum()`` rows; returns the rows written.
    """
    row = 0
    for j in range(vm_ids.size):
        vm = vm_ids[j]
        key = _mix(seed ^ _mix(np.uint64(vm) + _GOLDEN))
        value_key, gap_key = _mix(key ^ _SALT_VALUES), _mix(key ^ _SALT_GAPS)
        p = profile[vm]
        hour = np.int64(-(2**62))
        gaps = (0, 0, 0, 0)
        for s in range(counts[j]):
            ts = first_ts[j] + s * interval
            if ts // 3600 != hour:
                hour = ts // 3600
                gaps = _gap(gap_key, hour - 1) + _gap(gap_key, hour)
            if gaps[0] <= ts < gaps[1] or gaps[2] <= ts < gaps[3]:
                continue
            out_idx[row] = j
            out_ts[row] = ts
            _sample(value_key, ts, p, vcpus[vm], memory_bytes[vm], has_memory[vm], out_values[row])
            row += 1
    return row


@_jit
def _sample(
    key: np.uint64,
    ts: int,
    p: npt.NDArray[np.float64],
    vcpus: float,
    memory_bytes: float,
    has_memory: bool,
    out: npt.NDArray[np.float64],
) -> None:
    """The eight metrics (``METRICS`` order) of one VM at ``ts``."""
    h0 = _mix(key ^ (np.uint64(ts) * _GOLDEN))
    h1 = _mix(h0 + _GOLDEN)
    h2 = _mix(h1 + _GOLDEN)
    h3 = _mix(h2 + _GOLDEN)
    noise = (_high(h0) + _low(h0) - 1.0) * p[_CPU_NOISE]  # triangular on [-1, 1]
    day = math.sin(2.0 * math.pi * (ts % 86400) / 86400.0 + p[_PHASE])
    cpu = min(max(p[_CPU_BASE] + p[_CPU_AMP] * day + noise, 0.0), 100.0)
    out[0] = cpu
    out[1] = cpu / 100.0 * vcpus
    if has_memory:
        fraction = min(max(p[_MEM_BASE] + p[_MEM_AMP] * day + 0.02 * (_high(h1) - 0.5), 0.02), 1.0)
        used = math.floor(fraction * memory_bytes)
        out[2] = used
        out[3] = used / memory_bytes * 100.0
    else:
        out[2] = np.nan
        out[3] = np.nan
    shape = 1.0 + p[_IO_AMP] * day
    out[4] = p[_DISK_READ] * shape * (0.5 + _low(h1))
    out[5] = p[_DISK_WRITE] * shape * (0.5 + _high(h2))
    out[6] = p[_NET_RX] * shape * (0.5 + _low(h2))
    out[7] = p[_NET_TX] * shape * (0.5 + _high(h3))


@_jit
def _high(h: np.uint64) -> float:
    """The upper 32 bits of ``h`` as a uniform number in [0, 1)."""
    return float(h >> np.uint64(32)) * _TO_UNIT


@_jit
def _low(h: np.uint64) -> float:
    """The lower 32 bits of ``h`` as a uniform number in [0, 1)."""
    return float(h & np.uint64(0xFFFFFFFF)) * _TO_UNIT


def intervals(config: SimulatorConfig) -> npt.NDArray[np.int64]:
    """Each VM's interval: ``coarse_interval_s`` for a ``coarse_share`` of them (by a hash of seed and VM)."""
    out = np.full(config.vms, config.interval_s, np.int64)
    if config.coarse_share > 0:
        seed = np.uint64(config.seed & MASK64)
        draws = np.array([_mix(seed ^ _mix(np.uint64(k) ^ _SALT_GAPS)) >> np.uint64(11) for k in range(config.vms)])
        out[draws.astype(np.float64) * (1.0 / 9007199254740992.0) < config.coarse_share] = config.coarse_interval_s
    return out
