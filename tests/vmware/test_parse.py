"""The vmware collector's pure parts: the statistics levels a window is cut into, QueryPerf's time range, and
answers that break vSphere's documented shape."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np
import pytest

from cloudmeter.collectors.vmware.parse import Entity, levels_kept, plan, query_range, to_batch
from cloudmeter.errors import PayloadError
from cloudmeter.model import METRICS, ResourceRef

VCENTER = [(300, 86400), (1800, 604800), (7200, 2592000), (86400, 31536000)]


def test_levels_are_realtime_then_vcenter_s_up_to_7200_s() -> None:
    assert levels_kept(VCENTER) == [(20, 3600), (300, 86400), (1800, 604800), (7200, 2592000)]
    assert levels_kept([]) == [(20, 3600)]


def up(t: int, step: int) -> int:
    return -(-t // step) * step


def test_a_window_is_cut_where_each_level_begins_on_the_next_level_s_grid() -> None:
    now = 1_000 * 7200 + 1234  # off every grid
    pieces = plan(now - 40 * 86400, now, now, levels_kept(VCENTER))
    # realtime from now - 3600 rounded up to 300 s; 300 s from now - 1 day rounded up to 1800 s; 1800 s from
    # now - 7 days rounded up to 7200 s; 7200 s from now - 30 days rounded up to 7200 s; nothing older
    assert pieces == [
        (up(now - 30 * 86400, 7200), up(now - 7 * 86400, 7200), 7200),
        (up(now - 7 * 86400, 7200), up(now - 86400, 1800), 1800),
        (up(now - 86400, 1800), up(now - 3600, 300), 300),
        (up(now - 3600, 300), now, 20),
    ]
    assert up(now - 3600, 300) == now - 3600 + 266


def test_a_window_inside_one_level_is_one_piece_and_an_expired_one_none() -> None:
    now = 500 * 7200
    assert plan(now - 600, now - 60, now, levels_kept(VCENTER)) == [(now - 600, now - 60, 20)]
    assert plan(now - 60 * 86400, now - 40 * 86400, now, levels_kept(VCENTER)) == []


def test_query_range_selects_ends_of_samples_starting_in_the_span() -> None:
    start, end = query_range(1000, 1100, 20)
    # QueryPerf returns ends t with start < t <= end: 1020 (covering [1000, 1020)) to 1100 ([1080, 1100))
    assert [t for t in range(900, 1200, 20) if start < t <= end] == [1020, 1040, 1060, 1080, 1100]


def answer(moid: str, ends: list[int], series: list[tuple[int, str, list[int]]], interval: int = 20) -> object:
    return SimpleNamespace(
        entity=SimpleNamespace(_moId=moid),
        sampleInfo=[SimpleNamespace(timestamp=datetime.fromtimestamp(t, UTC), interval=interval) for t in ends],
        value=[SimpleNamespace(id=SimpleNamespace(counterId=c, instance=i), value=v) for c, i, v in series],
    )


ENTITY = Entity(ResourceRef("vm", "vm-1"), 2.0 * 1024**3, np.array([0, 1000]), np.array([2000.0, 2500.0]))
COUNTERS = {6: "cpu.usagemhz.average", 24: "net.received.average"}


def test_only_the_aggregate_instance_counts_and_mhz_follow_the_host_of_the_time() -> None:
    batch = to_batch(
        [
            answer(
                "vm-1", [980, 1000, 1020], [(6, "", [500, 600, 700]), (24, "", [1, 2, -1]), (24, "vmnic0", [9, 9, 9])]
            )
        ],
        COUNTERS,
        {"vm-1": ENTITY},
        (0, 10_000),
        20,
    )
    assert batch.ts_s.tolist() == [960, 980, 1000]
    cores, rx = METRICS.index("cpu_used_cores"), METRICS.index("net_rx_bps")
    # the placement from 1000 on is on the 2500 MHz host: the sample starting at 1000 is converted with it
    assert batch.values[:, cores].tolist() == [500 / 2000, 600 / 2000, 700 / 2500]
    assert batch.values[:2, rx].tolist() == [1024.0, 2048.0] and np.isnan(batch.values[2, rx])


@pytest.mark.parametrize(
    ("ends", "values", "problem"),
    [
        ([1000, 1010], [1, 2], "not increasing on the 20-second grid"),
        ([1020, 1000], [1, 2], "not increasing on the 20-second grid"),
        ([1000, 1020], [1], "has 1 values for 2 sample times"),
    ],
)
def test_a_malformed_answer_is_a_payload_error(ends: list[int], values: list[int], problem: str) -> None:
    with pytest.raises(PayloadError, match=problem):
        to_batch([answer("vm-1", ends, [(6, "", values)])], COUNTERS, {"vm-1": ENTITY}, (0, 10_000), 20)


def test_an_entity_not_asked_for_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match=r"QueryPerf\[0\].entity is 'vm-9'"):
        to_batch([answer("vm-9", [1000], [(6, "", [1])])], COUNTERS, {"vm-1": ENTITY}, (0, 10_000), 20)
