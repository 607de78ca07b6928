"""What the collectors ask of their sources: API requests per manager and call, CloudWatch metrics and their price.

The API clients count each request they send (``request``: one line in ``GnocchiAPI._send`` and in the CloudWatch
collector's ``_call``) and the metrics each GetMetricData request names (``metrics``). ``METER`` keeps running
totals per manager name, for the whole process; whoever runs the jobs takes what a job used with
``METER.take(name)`` after it (the daemon stores it with the manager and counts it for Prometheus). A request
sent by a call the daemon gave up on is counted when it ends, with the manager's next job.

Prices (US$, AWS's public list prices, which have no per-region difference for these calls): GetMetricData is
billed per metric requested, US$0.01 per 1,000; ListMetrics (like every other CloudWatch API request) US$0.01 per
1,000 requests; EC2's Describe calls, STS, Gnocchi and the simulator cost nothing per request.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

#: US$ per metric a GetMetricData request names.
USD_PER_METRIC: Final = Decimal("0.01") / 1000
#: US$ per request of the CloudWatch calls billed by request (those not named here cost nothing).
USD_PER_REQUEST: Final = {"cloudwatch:ListMetrics": Decimal("0.01") / 1000}


@dataclass
class Usage:
    """Requests by API call (``ec2:DescribeInstances``, ``gnocchi``, ...), CloudWatch metrics requested, cost."""

    requests: Counter[str] = field(default_factory=Counter)
    metrics: int = 0
    cost_usd: Decimal = Decimal(0)

    @property
    def total_requests(self) -> int:
        """Requests of every call."""
        return sum(self.requests.values())

    def __bool__(self) -> bool:
        return bool(self.total_requests or self.metrics)


class Meter:
    """Running usage per manager name; thread-safe (a source's calls run in the daemon's helper threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._usage: dict[str, Usage] = {}

    def request(self, manager: str, api: str) -> None:
        """One request of ``api`` by ``manager``."""
        with self._lock:
            usage = self._usage.setdefault(manager, Usage())
            usage.requests[api] += 1
            usage.cost_usd += USD_PER_REQUEST.get(api, Decimal(0))

    def metrics(self, manager: str, metrics: int) -> None:
        """``metrics`` CloudWatch metrics named by one of ``manager``'s GetMetricData requests."""
        with self._lock:
            usage = self._usage.setdefault(manager, Usage())
            usage.metrics += metrics
            usage.cost_usd += metrics * USD_PER_METRIC

    def take(self, manager: str) -> Usage:
        """What ``manager`` used since the last ``take``, forgotten here."""
        with self._lock:
            return self._usage.pop(manager, Usage())


#: The process's meter, which the API clients count into.
METER: Final = Meter()


def request(manager: str, api: str) -> None:
    """Count one request of ``api`` by ``manager``."""
    METER.request(manager, api)


def metrics(manager: str, count: int) -> None:
    """Count ``count`` CloudWatch metrics named by one GetMetricData request of ``manager``."""
    METER.metrics(manager, count)
