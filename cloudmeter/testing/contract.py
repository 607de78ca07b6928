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

import logging
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import fields
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from cloudmeter.collectors.base import Collector
from cloudmeter.errors import CollectorAuthError, CollectorError, SourceUnavailable, Throttled
from cloudmeter.model import (
    HEIGHTS,
    KINDS,
    Inventory,
    InventoryItem,
    ResourceRef,
    Window,
)
from cloudmeter.testing.capture_contract import CaptureContract
from cloudmeter.testing.cassettes import MIN_SECRET_LENGTH, CollectorCassette
from cloudmeter.testing.checks import (
    config_secrets,
    declares_secrets,
    find_secrets,
    items_by_ref,
    log_text,
    name_of,
    plain_secret_fields,
)


class CollectorContract(CaptureContract):
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
                assert HEIGHTS.get(parent.kind, -1) > HEIGHTS.get(item.ref.kind, -1), (
                    f"{name_of(item.ref)}: {where} {name_of(parent)} is not above it in the topology "
                    "(container < pod, vm < host < cluster < provider < region; projects are nobody's parent)"
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
