"""What the contract's checks are made of: a capture as rows, lifetimes and allocations from an inventory, the
secrets a collector holds and where they may show. Used by ``contract.CollectorContract``."""

from __future__ import annotations

import re
import traceback
import typing
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import BaseModel, SecretStr

from cloudmeter.collectors.base import Collector
from cloudmeter.model import METRICS, Inventory, InventoryItem, ResourceRef, SampleBatch, Window, from_epoch_s
from cloudmeter.testing.cassettes import secret_forms

#: How far above its bound a measured value may go: a rate over a poll interval that was a little shorter
#: than nominal reads a little high (``_pct`` up to 100 * (1 + SLACK), cores up to vCPUs * (1 + SLACK), used
#: memory up to the allocation * (1 + SLACK)). There is no slack below 0.
SLACK: Final = 0.02
PCT_COLUMNS: Final = [k for k, m in enumerate(METRICS) if m.endswith("_pct")]
NON_NEGATIVE_COLUMNS: Final = [k for k, m in enumerate(METRICS) if m.endswith(("_bytes", "_bps", "_cores", "_pct"))]
CORES: Final = METRICS.index("cpu_used_cores")
MEMORY: Final = METRICS.index("mem_used_bytes")


def at(ts: int) -> str:
    return f"{from_epoch_s(ts).isoformat()} ({ts})"


def name_of(ref: ResourceRef) -> str:
    return f"{ref.kind} {ref.ems_ref!r}"


@dataclass
class Captured:
    """One capture as rows: values and interval by (resource, ts), each resource's timestamps in the order
    the batches delivered them, and every reference the batches named."""

    batches: list[SampleBatch]
    rows: dict[tuple[ResourceRef, int], tuple[npt.NDArray[np.float64], int]] = field(default_factory=dict)
    order: dict[ResourceRef, list[int]] = field(default_factory=lambda: defaultdict(list))
    named: set[ResourceRef] = field(default_factory=set)
    duplicates: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, collector: Collector, window: Window) -> Captured:
        batches = list(collector.capture(window))
        found = cls(batches)
        for number, batch in enumerate(batches):
            assert isinstance(batch, SampleBatch), f"capture yielded {type(batch).__name__}, not a SampleBatch"
            check_batch(batch, number)
            found.named.update(batch.refs)
            for idx, ts, values in zip(batch.resource_idx.tolist(), batch.ts_s.tolist(), batch.values, strict=True):
                ref = batch.refs[idx]
                if (ref, ts) in found.rows:
                    found.duplicates.append(f"{name_of(ref)} at {at(ts)} (again in batch {number})")
                found.rows[ref, ts] = (values, batch.interval_s)
                found.order[ref].append(ts)
        return found


def check_batch(batch: SampleBatch, number: int) -> None:
    where = f"batch {number}"
    assert all(isinstance(ref, ResourceRef) for ref in batch.refs), f"{where}: refs must be ResourceRef values"
    assert batch.resource_idx.dtype == np.int32, f"{where}: resource_idx is {batch.resource_idx.dtype}, not int32"
    assert batch.ts_s.dtype == np.int64, f"{where}: ts_s is {batch.ts_s.dtype}, not int64 epoch seconds"
    assert batch.values.dtype == np.float64, f"{where}: values are {batch.values.dtype}, not float64"
    if len(batch):
        low, high = int(batch.resource_idx.min()), int(batch.resource_idx.max())
        assert low >= 0 and high < len(batch.refs), (
            f"{where}: resource_idx runs from {low} to {high}, outside its {len(batch.refs)} refs"
        )


def items_by_ref(inventory: Inventory) -> dict[ResourceRef, InventoryItem]:
    return {item.ref: item for item in inventory.items}


def lifetime(item: InventoryItem) -> tuple[datetime | None, datetime | None]:
    """When a resource began to exist as far as the inventory says (its creation, or its first placement if
    later: before it there is no parent to roll a sample up to) and when it was retired."""
    starts = [t for t in (item.created_at, item.history[0].valid_from if item.history else None) if t is not None]
    return (max(starts) if starts else None), item.retired_at


def vcpus_at(item: InventoryItem, moment: datetime) -> int | None:
    """The vCPUs ``item`` had at ``moment``: its placement's then, else its current allocation."""
    current = [p for p in item.history if p.valid_from <= moment]
    if current and current[-1].vcpus is not None:
        return current[-1].vcpus
    return item.vcpus


def memory_at(item: InventoryItem, moment: datetime) -> int | None:
    current = [p for p in item.history if p.valid_from <= moment]
    if current and current[-1].memory_bytes is not None:
        return current[-1].memory_bytes
    return item.memory_bytes


@dataclass(frozen=True)
class Bounds:
    """The most a resource may use at a moment (None: no bound): cores, memory bytes and both percentages."""

    cores: float | None
    memory_bytes: float | None
    cpu_pct: float | None = 100.0
    mem_pct: float | None = 100.0


def bounds_at(item: InventoryItem, moment: datetime) -> Bounds:
    """What ``item`` may use at ``moment``: its vCPUs and memory, percentages up to 100; a Kubernetes container
    (with ``Requests``) up to its limits, its percentages (over its requests) up to limit / request."""
    current = [p for p in item.history if p.valid_from <= moment]
    requests = current[-1].requests if current and current[-1].requests else item.requests
    if requests is None:
        return Bounds(vcpus_at(item, moment), memory_at(item, moment))

    def ratio(limit: float | None, request: float | None) -> float | None:
        return 100 * limit / request if limit and request else None

    return Bounds(
        requests.cpu_limit_cores,
        requests.memory_limit_bytes,
        ratio(requests.cpu_limit_cores, requests.cpu_request_cores),
        ratio(requests.memory_limit_bytes, requests.memory_request_bytes),
    )


def config_secrets(config: Any) -> list[str]:
    """The values of the secret fields of a pydantic config (nested models included)."""
    found: list[str] = []
    if isinstance(config, BaseModel):
        for name in type(config).model_fields:
            value = getattr(config, name)
            if isinstance(value, SecretStr):
                found.append(value.get_secret_value())
            elif isinstance(value, BaseModel):
                found.extend(config_secrets(value))
    return found


def declares_secrets(model: type[BaseModel]) -> bool:
    """Whether a config model has a secret field (SecretStr, optional or annotated) anywhere."""
    return any(_mentions_secret(info.annotation) for info in model.model_fields.values())


#: Field names that hold a secret whatever the kind (a field named so must be typed ``Secret``).
SECRET_NAMES: Final = re.compile(r"password|secret|token|passphrase|private_key|api_key")


def plain_secret_fields(model: type[BaseModel]) -> list[str]:
    """Fields of a config model named like a secret (``SECRET_NAMES``) but not typed as one: they would be
    stored, shown and logged in clear."""
    return [
        name
        for name, info in model.model_fields.items()
        if SECRET_NAMES.search(name) and not _mentions_secret(info.annotation)
    ]


def _mentions_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return declares_secrets(annotation)
    return any(_mentions_secret(argument) for argument in typing.get_args(annotation))


def find_secrets(text: str, secrets: Iterable[str]) -> list[str]:
    return sorted(
        {f"secret #{k} as {form!r}" for k, s in enumerate(secrets) for form in secret_forms(s) if form in text}
    )


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    messages = []
    for record in caplog.records:
        messages.append(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            messages.extend(traceback.format_exception(record.exc_info[1]))
    return "\n".join([caplog.text, *messages])
