"""The contract every collector meets, as a pytest class to subclass.

What a collector author provides
--------------------------------
Subclass ``CollectorContract`` in a test module and give it these pytest fixtures (any scope)::

    collector        a ready collector, talking to a real peer or replaying a cassette
    window           a Window in which the source has samples
    bad_credentials  a collector configured with wrong credentials: its verify() must raise CollectorAuthError
    unreachable      a collector pointed at nothing listening (a closed local port): verify() must raise
                     SourceUnavailable
    secrets          list[str]: the secret values those collectors use (passwords, keys; at least 8 characters
                     each); secret fields of their configs are added to it
    retired_refs     set[ResourceRef]: resources the source knows were deleted (at least one: without a deleted
                     resource nothing shows that retirement is reported)
    missing_metric   (ResourceRef, metric): a resource with samples in ``window`` and a name from
                     ``model.METRICS`` the source has no data for there

and, optionally, ``cassette``: a ``CollectorCassette`` to record into or replay from (default None, the real
peer). The inherited ``test_*`` methods are then collected by pytest; each failure names the resource,
timestamp and metric at fault. Collectors with a ``clock`` seam should get a fixed one, so that two calls
see the same "now" and a recording replays.

What each check guards
----------------------
- ``test_is_a_collector``: the protocol's shape (``kind`` equal to its config model's, ``retention_s`` None or a
  positive number of seconds), so the registry and scheduler can drive it.
- ``test_verify_passes`` / ``..._bad_credentials_...`` / ``..._unreachable_...``: verify is the check a manager
  passes before it is saved; the scheduler retries SourceUnavailable (not Throttled, for a closed port) and
  stops on CollectorAuthError, so the class matters, and the error must name the manager.
- ``test_inventory_is_idempotent``: two refreshes of an unchanged source give the same resources with the same
  fields (names, parents, allocations, tags, lifetimes, placements); otherwise every refresh rewrites history.
- ``test_inventory_refs_are_unique_and_parents_resolve``: ``(kind, ems_ref)`` is the resources table's key; kinds
  are ``model.KINDS``; every parent (current or in a placement) is listed and sits higher in the topology, so
  rollups can climb from VMs to the region.
- ``test_inventory_lifetimes_and_placements_are_consistent``: times are timezone-aware and not after the
  inventory's ``observed_at``; created before retired; placements in increasing order, within the lifetime, the
  last one agreeing with the current parent and allocations (the persister turns them into resource_history).
- ``test_retired_refs_carry_retired_at``: deleted resources are listed as retired, not left looking alive.
- ``test_capture_stays_in_the_half_open_window``: every timestamp is in ``[start, end)``.
- ``test_capture_of_a_split_window_equals_the_whole``: the window cut at its middle, at a time off any grid
  and where resources are created, move or are retired captures the same rows, value for value, as the whole:
  incremental capture cuts time anywhere, and a sample must be captured exactly once however it is cut.
- ``test_capture_timestamps_are_sorted_and_unique_per_resource``: ``metric_samples`` has the key
  (resource, ts) and the rollup kernels need sorted input, across the batches of one capture too.
- ``test_capture_units_are_in_range``: only finite numbers or NaN; nothing below 0; ``_pct`` at most 100,
  ``cpu_used_cores`` at most the vCPUs and ``mem_used_bytes`` at most the memory the resource had then (where
  known), each with ``SLACK`` (2 %) above the bound for rates over a poll interval a little shorter than nominal.
- ``test_missing_metric_is_null_not_zero``: what was not measured is NaN (NULL), never a silent 0.
- ``test_capture_stays_within_resource_lifetimes``: a sample stands for ``[ts, ts + interval_s)``; that period
  must overlap the resource's life, from its creation (or first placement, if later) to its retirement.
- ``test_captured_refs_are_in_inventory``: capture looks up every reference of a batch in the inventory.
- ``test_secrets_stay_out_of_reprs`` / ``..._logs`` and the two failing verifies: no secret, as is or
  URL-quoted, JSON-escaped or inside base64 (a basic-auth header), in repr/str of the collectors and their
  configs, in any log record at DEBUG during verify, inventory and capture, or in the errors raised (their
  whole chain). For a kind whose config model has no secret field, the two secret tests check instead that no
  field is named like a secret (password, token, ...) without being typed ``Secret``; one that has secret
  fields fails them when no secret is configured.
"""

from __future__ import annotations

import itertools
import logging
import math
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import fields
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import BaseModel

from cloudmeter.collectors.base import Collector
from cloudmeter.errors import CollectorAuthError, CollectorError, SourceUnavailable, Throttled
from cloudmeter.model import (
    KINDS,
    METRICS,
    Inventory,
    InventoryItem,
    ResourceRef,
    Window,
    epoch_s,
    from_epoch_s,
)
from cloudmeter.testing.cassettes import MIN_SECRET_LENGTH, CollectorCassette
from cloudmeter.testing.checks import (
    CORES,
    MEMORY,
    NON_NEGATIVE_COLUMNS,
    PCT_COLUMNS,
    SLACK,
    Captured,
    at,
    config_secrets,
    declares_secrets,
    find_secrets,
    items_by_ref,
    lifetime,
    log_text,
    memory_at,
    name_of,
    plain_secret_fields,
    vcpus_at,
)

#: Most cuts where resources are created, move or are retired that the split check makes.
MAX_LIFECYCLE_CUTS: Final = 6


class CollectorContract:
    """The checks every collector passes (see the module docstring for the fixtures a subclass provides)."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.collector_contract]

    # ---- fixtures with defaults ---------------------------------------------------------------------------

    @pytest.fixture
    def cassette(self) -> CollectorCassette | None:
        """No cassette: the collectors talk to their real peer. Override to record or replay one."""
        return None

    @pytest.fixture(autouse=True)
    def _through_cassette(self, request: pytest.FixtureRequest, cassette: CollectorCassette | None) -> Iterator[None]:
        """Route the HTTP of tests that use ``collector`` or ``bad_credentials`` through ``cassette``; the
        collectors are built first (outside it), ``unreachable`` always meets a real closed port."""
        used = [name for name in ("collector", "bad_credentials") if name in request.fixturenames]
        if cassette is None or not used:
            yield
            return
        for name in used:
            request.getfixturevalue(name)
        with cassette.playing():
            yield

    # ---- helpers ------------------------------------------------------------------------------------------

    @staticmethod
    def all_secrets(secrets: Iterable[str], *collectors: Any) -> list[str]:
        """The fixture's secrets and those of the collectors' configs. Fails when there are none although the
        config model has secret fields; empty when it has none (then nothing can leak)."""
        configured = (s for c in collectors for s in config_secrets(getattr(c, "config", None)))
        found = list(dict.fromkeys([*secrets, *configured]))
        short = [k for k, s in enumerate(found) if len(s) < MIN_SECRET_LENGTH]
        assert not short, (
            f"secrets #{short} are shorter than {MIN_SECRET_LENGTH} characters: give the test collectors "
            "distinctive secrets, or chance will find them in any text"
        )
        model = collectors[0].config_model if collectors else None
        if not found and model is not None and declares_secrets(model):
            pytest.fail(
                f"{model.__name__} has secret fields, but the `secrets` fixture names none and the collectors' "
                "configs hold none: configure the test collectors with secrets and list them"
            )
        return found

    @classmethod
    def _secrets_to_check(cls, secrets: Iterable[str], *collectors: Any) -> list[str]:
        """``all_secrets``; when there are none (the config model declares no secret field), checks instead that
        no field is named like a secret without being typed ``Secret``."""
        found = cls.all_secrets(secrets, *collectors)
        model = getattr(collectors[0], "config_model", None) if collectors else None
        if not found and model is not None:
            plain = plain_secret_fields(model)
            assert not plain, (
                f"{model.__name__} fields {plain} are named like secrets but typed as plain values: type them "
                "cloudmeter.collectors.base.Secret, so they are masked in repr, logs and storage"
            )
        return found

    # ---- the protocol -------------------------------------------------------------------------------------

    def test_is_a_collector(self, collector: Collector) -> None:
        assert isinstance(collector, Collector), (
            f"{type(collector).__name__} lacks part of the Collector protocol (kind, config_model, name, "
            "retention_s, verify, inventory, capture)"
        )
        declared = collector.config_model.model_fields.get("kind")
        assert declared is not None and declared.default == collector.kind, (
            f"{type(collector).__name__}.kind is {collector.kind!r} but its config model's kind defaults to "
            f"{getattr(declared, 'default', None)!r}"
        )
        retention = collector.retention_s
        assert retention is None or (isinstance(retention, int) and retention > 0), (
            f"retention_s is {retention!r}: None (unbounded) or a positive whole number of seconds"
        )

    # ---- verify -------------------------------------------------------------------------------------------

    def test_verify_passes(self, collector: Collector) -> None:
        collector.verify()

    def test_verify_refuses_bad_credentials_with_collector_auth_error(
        self, bad_credentials: Collector, secrets: list[str], caplog: pytest.LogCaptureFixture
    ) -> None:
        self._failed_verify(bad_credentials, CollectorAuthError, secrets, caplog)

    def test_verify_reports_an_unreachable_source_as_unavailable(
        self, unreachable: Collector, secrets: list[str], caplog: pytest.LogCaptureFixture
    ) -> None:
        error = self._failed_verify(unreachable, SourceUnavailable, secrets, caplog)
        assert not isinstance(error, Throttled), (
            f"an unreachable source is not throttling: raise SourceUnavailable, not Throttled ({error})"
        )

    def _failed_verify(
        self, collector: Collector, wanted: type[CollectorError], secrets: list[str], caplog: pytest.LogCaptureFixture
    ) -> BaseException:
        """The error ``collector.verify()`` raises, checked to be a ``wanted`` naming the manager, with no secret
        in it (or its chain) nor in the log records meanwhile."""
        known = self.all_secrets(secrets, collector)
        caplog.set_level(logging.DEBUG)
        with pytest.raises(Exception) as caught:
            collector.verify()
        self._check_error(caught.value, wanted, collector, known)
        leaked = find_secrets(log_text(caplog), known)
        assert not leaked, f"log records of the failed verify carry {', '.join(leaked)}"
        return caught.value

    @staticmethod
    def _check_error(
        error: BaseException, wanted: type[CollectorError], collector: Collector, known: list[str]
    ) -> None:
        assert isinstance(error, wanted), (
            f"verify raised {type(error).__name__} ({error}); the documented class is {wanted.__name__}"
        )
        assert error.manager == collector.name, (
            f"{wanted.__name__} names manager {error.manager!r}, but the collector is {collector.name!r}"
        )
        shown = "".join(traceback.format_exception(error)) + repr(error)
        leaked = find_secrets(shown, known)
        assert not leaked, f"the {wanted.__name__} raised (or an error it chains) carries {', '.join(leaked)}"

    # ---- inventory ----------------------------------------------------------------------------------------

    def test_inventory_is_idempotent(self, collector: Collector) -> None:
        first, second = collector.inventory(), collector.inventory()
        a, b = items_by_ref(first), items_by_ref(second)
        assert a.keys() == b.keys(), (
            f"the second inventory lists {sorted(b.keys() - a.keys())} more and {sorted(a.keys() - b.keys())} fewer"
        )
        for ref, item in a.items():
            for name in (f.name for f in fields(InventoryItem)):
                was, now = getattr(item, name), getattr(b[ref], name)
                if name == "tags":
                    was, now = dict(was), dict(now)
                assert was == now, f"{name_of(ref)}: {name} was {was!r}, then {now!r} in the next inventory"

    def test_inventory_refs_are_unique_and_parents_resolve(self, collector: Collector) -> None:
        inventory = collector.inventory()
        assert isinstance(inventory, Inventory), f"inventory() returned {type(inventory).__name__}, not Inventory"
        seen: set[ResourceRef] = set()
        for item in inventory.items:
            ref = item.ref
            assert isinstance(ref, ResourceRef), f"{item!r} has ref {ref!r}, not a ResourceRef"
            assert ref not in seen, f"{name_of(ref)} is listed twice: (kind, ems_ref) must be unique"
            seen.add(ref)
            assert ref.kind in KINDS, f"{name_of(ref)}: kind must be one of {KINDS}"
            assert isinstance(ref.ems_ref, str) and ref.ems_ref, f"{name_of(ref)}: ems_ref must be a non-empty string"
            assert isinstance(item.name, str) and item.name, f"{name_of(ref)}: name must be a non-empty string"
        by_ref = items_by_ref(inventory)
        for item in inventory.items:
            parents = [("parent", item.parent)] + [
                (f"history[{k}].parent", p.parent) for k, p in enumerate(item.history)
            ]
            for where, parent in parents:
                if parent is None:
                    continue
                assert parent in by_ref, f"{name_of(item.ref)}: {where} {name_of(parent)} is not in the inventory"
                assert KINDS.index(parent.kind) > KINDS.index(item.ref.kind), (
                    f"{name_of(item.ref)}: {where} {name_of(parent)} is not above it in the topology {KINDS}"
                )

    def test_inventory_lifetimes_and_placements_are_consistent(self, collector: Collector) -> None:
        inventory = collector.inventory()
        observed = inventory.observed_at
        assert observed.tzinfo is not None, "observed_at must be timezone-aware"
        for item in inventory.items:
            name = name_of(item.ref)
            moments = [("created_at", item.created_at), ("retired_at", item.retired_at)]
            moments += [(f"history[{k}].valid_from", p.valid_from) for k, p in enumerate(item.history)]
            for what, moment in moments:
                if moment is not None:
                    assert moment.tzinfo is not None, f"{name}: {what} {moment} has no time zone"
                    assert moment <= observed, f"{name}: {what} {moment} is after the inventory's {observed}"
            if item.created_at and item.retired_at:
                assert item.created_at <= item.retired_at, f"{name}: retired {item.retired_at} before created"
            for what, amount, least in (("vcpus", item.vcpus, 1), ("memory_bytes", item.memory_bytes, 1)):
                assert amount is None or amount >= least, f"{name}: {what} is {amount}"
            assert item.disk_bytes is None or item.disk_bytes >= 0, f"{name}: disk_bytes is {item.disk_bytes}"
            starts = [p.valid_from for p in item.history]
            assert starts == sorted(set(starts)), f"{name}: history is not in strictly increasing valid_from {starts}"
            if not item.history:
                continue
            first, last = item.history[0], item.history[-1]
            if item.created_at is not None:
                assert first.valid_from >= item.created_at, (
                    f"{name}: first placement from {first.valid_from}, before it was created {item.created_at}"
                )
            if item.retired_at is not None:
                assert last.valid_from <= item.retired_at, (
                    f"{name}: a placement from {last.valid_from}, after it was retired {item.retired_at}"
                )
            current = (item.parent, item.vcpus, item.memory_bytes, item.project)
            placed = (last.parent, last.vcpus, last.memory_bytes, last.project)
            assert current == placed, (
                f"{name}: (parent, vcpus, memory_bytes, project) is {current}, but its last placement says {placed}"
            )

    def test_retired_refs_carry_retired_at(self, collector: Collector, retired_refs: set[ResourceRef]) -> None:
        assert retired_refs, (
            "the retired_refs fixture must name at least one resource the source knows was deleted: without one, "
            "nothing shows that retirement is reported"
        )
        inventory = collector.inventory()
        items = items_by_ref(inventory)
        for ref in sorted(retired_refs):
            assert ref in items, f"{name_of(ref)} was deleted but the inventory does not list it (with retired_at)"
            retired = items[ref].retired_at
            assert retired is not None, f"{name_of(ref)} was deleted but its retired_at is None"

    # ---- capture ------------------------------------------------------------------------------------------

    @staticmethod
    def _captured(collector: Collector, window: Window) -> Captured:
        assert isinstance(window, Window), f"the window fixture is {type(window).__name__}, not a Window"
        found = Captured.of(collector, window)
        assert found.rows, f"capture of {window} gave no samples: the window fixture must be one with samples"
        return found

    def test_capture_stays_in_the_half_open_window(self, collector: Collector, window: Window) -> None:
        found = self._captured(collector, window)
        for ref, ts in found.rows:
            assert window.start_s <= ts < window.end_s, (
                f"{name_of(ref)} has a sample at {at(ts)}, outside [{at(window.start_s)}, {at(window.end_s)})"
            )

    def test_capture_of_a_split_window_equals_the_whole(self, collector: Collector, window: Window) -> None:
        """Cut at the middle, at a time off any grid, and where a resource in the window is created, moves or
        is retired (the first ``MAX_LIFECYCLE_CUTS`` such times): where a collector decides who is alive."""
        whole = self._captured(collector, window)
        span = window.end_s - window.start_s
        inside = range(window.start_s + 1, window.end_s)
        moments = {
            epoch_s(moment)
            for item in collector.inventory().items
            for moment in (item.created_at, item.retired_at, *(p.valid_from for p in item.history))
            if moment is not None
        }
        lifecycle = sorted(m for m in moments if m in inside)[:MAX_LIFECYCLE_CUTS]
        cuts = sorted({window.start_s + span // 2, window.start_s + span // 3 + 7, *lifecycle} & set(inside))
        edges = [window.start_s, *cuts, window.end_s]
        pieces = [
            Captured.of(collector, Window(from_epoch_s(a), from_epoch_s(b))) for a, b in itertools.pairwise(edges)
        ]
        cut_at = ", ".join(at(c) for c in edges[1:-1])
        joined: dict[tuple[ResourceRef, int], tuple[npt.NDArray[np.float64], int]] = {}
        for piece in pieces:
            assert not piece.duplicates, f"a piece cut at {cut_at} repeats {piece.duplicates[0]}"
            overlap = joined.keys() & piece.rows.keys()
            assert not overlap, f"{name_of(min(overlap)[0])} at {at(min(overlap)[1])} is in two pieces cut at {cut_at}"
            joined |= piece.rows
        missing, extra = sorted(whole.rows.keys() - joined.keys()), sorted(joined.keys() - whole.rows.keys())
        assert not missing, f"cut at {cut_at}, the pieces lack {name_of(missing[0][0])} at {at(missing[0][1])}"
        assert not extra, f"cut at {cut_at}, the pieces add {name_of(extra[0][0])} at {at(extra[0][1])}"
        for key, (values, interval) in whole.rows.items():
            got, got_interval = joined[key]
            where = f"{name_of(key[0])} at {at(key[1])}"
            assert interval == got_interval, f"{where}: interval {interval} s whole, {got_interval} s in pieces"
            for k, metric in enumerate(METRICS):
                a, b = float(values[k]), float(got[k])
                assert (math.isnan(a) and math.isnan(b)) or a == b, (
                    f"{where}: {metric} is {a!r} captured whole, {b!r} captured in pieces cut at {cut_at}"
                )

    def test_capture_timestamps_are_sorted_and_unique_per_resource(self, collector: Collector, window: Window) -> None:
        found = self._captured(collector, window)
        assert not found.duplicates, f"one capture delivers {found.duplicates[0]} twice"
        for ref, stamps in found.order.items():
            for before, after in itertools.pairwise(stamps):
                assert before < after, (
                    f"{name_of(ref)}: {at(after)} comes after {at(before)}; each resource's timestamps must rise "
                    "strictly, across the batches of a capture too"
                )

    def test_capture_units_are_in_range(self, collector: Collector, window: Window) -> None:
        found = self._captured(collector, window)
        items = items_by_ref(collector.inventory())
        for (ref, ts), (values, _) in sorted(found.rows.items()):
            where = f"{name_of(ref)} at {at(ts)}"
            for k, metric in enumerate(METRICS):
                value = float(values[k])
                assert not math.isinf(value), f"{where}: {metric} is {value}; only finite numbers or NaN"
            for k in NON_NEGATIVE_COLUMNS:
                assert not values[k] < 0, f"{where}: {METRICS[k]} is {float(values[k])!r}, below 0"
            for k in PCT_COLUMNS:
                assert not values[k] > 100 * (1 + SLACK), (
                    f"{where}: {METRICS[k]} is {float(values[k])!r}, above 100 (+{SLACK:.0%} slack)"
                )
            item = items.get(ref)
            if item is None:
                continue
            moment = from_epoch_s(ts)
            vcpus, memory = vcpus_at(item, moment), memory_at(item, moment)
            if vcpus is not None:
                assert not values[CORES] > vcpus * (1 + SLACK), (
                    f"{where}: cpu_used_cores is {float(values[CORES])!r}, above its {vcpus} vCPUs (+{SLACK:.0%})"
                )
            if memory is not None:
                assert not values[MEMORY] > memory * (1 + SLACK), (
                    f"{where}: mem_used_bytes is {float(values[MEMORY])!r}, above its {memory} bytes (+{SLACK:.0%})"
                )

    def test_missing_metric_is_null_not_zero(
        self, collector: Collector, window: Window, missing_metric: tuple[ResourceRef, str]
    ) -> None:
        ref, metric = missing_metric
        assert metric in METRICS, f"the missing_metric fixture names {metric!r}, which is not one of {METRICS}"
        found = self._captured(collector, window)
        stamps = found.order.get(ref, [])
        assert stamps, (
            f"{name_of(ref)} has no samples in {window}: the missing_metric fixture must name a resource with samples "
            f"there, so that its {metric} is seen to be NaN"
        )
        column = METRICS.index(metric)
        for ts in stamps:
            value = float(found.rows[ref, ts][0][column])
            assert math.isnan(value), (
                f"{name_of(ref)} at {at(ts)}: {metric} is {value!r}; the source has no data for it, so it must be "
                "NaN (NULL), never a made-up value such as 0"
            )

    def test_capture_stays_within_resource_lifetimes(self, collector: Collector, window: Window) -> None:
        """A sample stands for ``[ts, ts + interval_s)`` (sources report the start of a period); that period must
        overlap the resource's lifetime: from its creation (or first placement, if later) to its retirement."""
        found = self._captured(collector, window)
        items = items_by_ref(collector.inventory())
        for (ref, ts), (_, interval) in sorted(found.rows.items()):
            item = items.get(ref)
            if item is None:
                continue  # test_captured_refs_are_in_inventory says so
            born, retired = lifetime(item)
            where = f"{name_of(ref)} has a sample at {at(ts)} (interval {interval} s)"
            if born is not None:
                assert from_epoch_s(ts + interval) > born, f"{where}, wholly before it existed ({born})"
            if retired is not None:
                assert from_epoch_s(ts) < retired, f"{where}, after it was retired ({retired})"

    def test_captured_refs_are_in_inventory(self, collector: Collector, window: Window) -> None:
        found = self._captured(collector, window)
        items = items_by_ref(collector.inventory())
        unknown = sorted(found.named - items.keys())
        assert not unknown, (
            f"capture names {len(unknown)} resource(s) the inventory does not list, first {name_of(unknown[0])}"
        )

    # ---- secrets ------------------------------------------------------------------------------------------

    def test_secrets_stay_out_of_reprs(
        self, collector: Collector, bad_credentials: Collector, unreachable: Collector, secrets: list[str]
    ) -> None:
        known = self._secrets_to_check(secrets, collector, bad_credentials, unreachable)
        for role, built in (
            ("collector", collector),
            ("bad_credentials", bad_credentials),
            ("unreachable", unreachable),
        ):
            shown = {"repr": repr(built), "str": str(built)}
            config = getattr(built, "config", None)
            if config is not None:
                shown |= {"repr of its config": repr(config), "str of its config": str(config)}
                if isinstance(config, BaseModel):
                    shown["its config as JSON"] = config.model_dump_json()
            for what, text in shown.items():
                leaked = find_secrets(text, known)
                assert not leaked, f"{role}: {what} carries {', '.join(leaked)}"

    def test_secrets_stay_out_of_logs(
        self, collector: Collector, window: Window, secrets: list[str], caplog: pytest.LogCaptureFixture
    ) -> None:
        known = self._secrets_to_check(secrets, collector)
        caplog.set_level(logging.DEBUG)
        collector.verify()
        collector.inventory()
        list(collector.capture(window))
        leaked = find_secrets(log_text(caplog), known)
        assert not leaked, f"log records of verify, inventory and capture carry {', '.join(leaked)}"
