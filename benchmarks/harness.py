"""What the benchmarks share: the common command-line options and the median of timed runs."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable


def parser(doc: str | None, quick: str, vms: int) -> argparse.ArgumentParser:
    """``--quick`` (described by ``quick``), ``--json``, ``--runs`` and ``--vms``; add the rest yourself."""
    made = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    made.add_argument("--quick", action="store_true", help=quick)
    made.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    made.add_argument("--runs", type=int, default=5)
    made.add_argument("--vms", type=int, default=vms)
    return made


def median_time(run: Callable[[], object], runs: int, warm: bool = False) -> float:
    """The median wall time of ``runs`` calls of ``run`` (after one untimed call with ``warm``)."""
    if warm:
        run()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)
