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


def test_a_window_is_cut_on_whole_hours_so_that_each_hour_is_read_at_one_level() -> None:
    now = 1_000 * 7200 + 1234  # 20 min 34 s past a whole hour (on the 7200-s grid)
    pieces = plan(now - 40 * 86400, now, now, levels_kept(VCENTER))
    # realtime keeps from now - 3600 (20:34 past the hour before): that hour is read at 300 s, realtime from the
    # next whole hour; 300 s from the whole hour after now - 1 day, 1800 s from now - 7 days rounded up to 7200 s
    # (the next level's grid), 7200 s from now - 30 days rounded up to its grid; nothing older
    hour = now - 1234
    assert pieces == [
        (up(now - 30 * 86400, 7200), up(now - 7 * 86400, 7200), 7200),
        (up(now - 7 * 86400, 7200), hour - 86400 + 3600, 1800),
        (hour - 86400 + 3600, hour, 300),
        (hour, now, 20),
    ]
    # a window starting where realtime keeps everything is read at realtime whole (a daemon's next capture),
    # one starting before that, from the next whole hour on
    assert plan(now - 3000, now, now, levels_kept(VCENTER)) == [(now - 3000, now, 20)]
    assert plan(now - 4200, now, now, levels_kept(VCENTER)) == [(now - 4200, hour, 300), (hour, now, 20)]


def test_a_window_inside_one_level_is_one_piece_and_an_expired_one_none() -> None:
    now = 500 * 7200
    assert plan(now - 600, now - 60, now, levels_kept(VCENTER)) == [(now - 600, now - 60, 20)]
    assert plan(now - 60 * 86400, now - 40 * 86400, now, levels_kept(VCENTER)) == []


def test_query_range_selects_ends_of_samples_starting_in_the_span() -> None:
    start, end = query_range(1000, 1100, 20)
    # QueryPerf returns ends t with start < t <= end: 1020 (covering [1000, 1020)) to 1100 ([1080, 1100))
    assert [t for t in range(900, 1200, 20) if start < t <= end] == [1020, 1040, 1060, 1080, 1100]
    # a 7200-s sample is stored as its two hours: the one ending at a + 3600 has its second hour in the span
    start, end = query_range(7200 * 10 + 3600, 7200 * 12, 7200)
    assert [t for t in range(0, 7200 * 20, 7200) if start < t <= end] == [7200 * 11, 7200 * 12]


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


def test_a_sample_longer_than_an_hour_is_a_row_per_hour_at_an_hour_s_interval() -> None:
    start = 7200 * 100
    ends = [start + 7200, start + 14400]
    batch = to_batch(
        [answer("vm-1", ends, [(24, "", [3, 4])], interval=7200)],
        COUNTERS,
        {"vm-1": ENTITY},
        (start + 3600, start + 14400),
        7200,
    )
    # [start, start + 7200) and [start + 7200, start + 14400): their hours in the span, each with the sample's value
    assert batch.interval_s == 3600
    assert batch.ts_s.tolist() == [start + 3600, start + 7200, start + 10800]
    assert batch.values[:, METRICS.index("net_rx_bps")].tolist() == [3 * 1024.0, 4 * 1024.0, 4 * 1024.0]
