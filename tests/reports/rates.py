"""The hourly test rate card and the per-VM costs it gives on the test cloud, computed by hand."""

from __future__ import annotations

from decimal import Decimal

CARD_TOML = """
currency = "EUR"

[[rate]]
name = "compute"
version = "v1"
measure = "vcpu_allocated"
variable = "0.01"          # per vCPU-hour
fixed = "0.01"             # per VM-hour
per_time = "hourly"
effective_from = 2026-01-01
effective_to = 2027-01-01  # then v2

[[rate]]
name = "compute"           # the same line, repriced from 2027
version = "v2"
measure = "vcpu_allocated"
variable = "0.02"
effective_from = 2027-01-01

[[rate]]
name = "compute-dev"
version = "v1"
measure = "vcpu_allocated"
variable = "0.005"
effective_from = 2026-01-01
tags = { env = "dev" }

[[rate]]
name = "cores"
version = "v1"
measure = "cpu_cores_used"
variable = "0.02"
effective_from = 2026-01-01

[[rate]]
name = "memory"
version = "v1"
measure = "memory_gb_allocated"
tiers = [{ up_to = 8, rate = "0.001" }, { rate = "0.0005" }]
effective_from = 2026-01-01

[[rate]]
name = "disk"
version = "v1"
measure = "disk_gb_allocated"
variable = "0.0001"
effective_from = 2026-01-01

[[rate]]
name = "network"
version = "v1"
measure = "network_gb"
variable = "0.01"
effective_from = 2026-01-01
"""

D = Decimal
# Over the two days: vm-a 48 h, vm-b 48 h (env=dev: 0.005 per vCPU-hour, no fixed fee), vm-c 48 h, vm-d 24 h
# (cores known for 20 of them). Network: vm-a 1.7578125 GB an hour.
COSTS = {
    "vm-a": {"compute": 4 * 48 * D("0.01") + 48 * D("0.01"), "cores": 2 * 48 * D("0.02"), "memory": 8 * 48 * D("0.001"),
             "disk": 100 * 48 * D("0.0001"), "network": D("1.7578125") * 48 * D("0.01")},
    "vm-b": {"compute-dev": 2 * 48 * D("0.005"), "cores": D("0.0625") * 48 * D("0.02"), "memory": 4 * 48 * D("0.001"),
             "disk": 20 * 48 * D("0.0001"), "network": D(0)},
    "vm-c": {"compute": 8 * 48 * D("0.01") + 48 * D("0.01"), "cores": 2 * 69 * D("0.02"),  # sum(k/4, k<24) = 69
             "memory": (8 * D("0.001") + 8 * D("0.0005")) * 48, "disk": 50 * 48 * D("0.0001"), "network": D(0)},
    "vm-d": {"compute": 2 * 24 * D("0.01") + 24 * D("0.01"), "cores": 20 * D("0.02"), "memory": 4 * 24 * D("0.001"),
             "disk": 10 * 24 * D("0.0001"), "network": D(0)},
}  # fmt: skip


def nanos(amount: Decimal) -> int:
    return int(amount * 10**9)


def vm_total(name: str) -> Decimal:
    return sum(COSTS[name].values(), D(0))


TOTAL = sum((vm_total(name) for name in COSTS), D(0))
