"""The kit itself: each contract check fails on a collector that breaks it (so none passes vacuously), and the
cassette redaction keeps credentials out while a replay still matches."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from vcr.request import Request  # type: ignore[import-untyped]

from cloudmeter.collectors.aws import AwsConfig, CloudWatchCollector
from cloudmeter.collectors.base import ManagerConfig
from cloudmeter.collectors.simulator import SimulatorCollector, SimulatorConfig
from cloudmeter.model import Inventory, InventoryItem, Requests, ResourceRef, SampleBatch, Window
from cloudmeter.testing import CollectorContract, Redactor, leaks, secret_forms
from cloudmeter.testing.cassettes import ACCESS_KEY_HEADER, REDACTED
from cloudmeter.testing.checks import Bounds, bounds_at

START = datetime(2026, 1, 1, tzinfo=UTC)
NOW = START + timedelta(hours=12)
WORLD = {"seed": 1, "vms": 12, "horizon_days": 1, "clusters": 1, "hosts_per_cluster": 3, "coarse_share": 0.3}
WINDOW = Window(START + timedelta(hours=5), START + timedelta(hours=11))
RETIRED = {ResourceRef("vm", "sim-vm-00007")}
MISSING = (ResourceRef("vm", "sim-vm-00002"), "mem_used_bytes")
SECRET = "kit-secret-value-4Rt9"


class Broken(SimulatorCollector):
    """The simulator of test_contract_simulator, broken the way ``fault`` says."""

    fault = ""

    def __repr__(self) -> str:
        return f"Broken(token={SECRET})" if self.fault == "secret in repr" else super().__repr__()

    def inventory(self) -> Inventory:
        found = super().inventory()
        items = list(found.items)
        if self.fault == "listed twice":
            items.append(items[-1])
        if self.fault == "orphan":
            items[-1] = dataclasses.replace(items[-1], parent=ResourceRef("host", "nowhere"), history=())
        if self.fault == "not retired":
            items = [dataclasses.replace(i, retired_at=None) if i.ref in RETIRED else i for i in items]
        if self.fault == "upside down":  # a host placed under one of its VMs
            vm = next(i.ref for i in items if i.ref.kind == "vm")
            items = [dataclasses.replace(i, parent=vm, history=()) if i.ref.kind == "host" else i for i in items]
        if self.fault == "flapping name":
            self.calls = getattr(self, "calls", 0) + 1
            items[-1] = dataclasses.replace(items[-1], name=f"renamed-{self.calls}")
        return Inventory(found.observed_at, tuple(items))

    def capture(self, window: Window) -> Iterator[SampleBatch]:
        for batch in super().capture(window):
            values, ts = batch.values.copy(), batch.ts_s.copy()
            if self.fault == "zero for missing":
                values[np.isnan(values)] = 0.0
            if self.fault == "end inclusive":
                ts += 60
            if self.fault == "percent over 100":
                values[:, 0] *= 1.5
            if self.fault == "depends on the cut":
                values[:, 4] += window.start_s % 7
            if self.fault == "negative rate":
                values[:, 6] -= 1e9
            if self.fault == "infinite":
                values[:, 7] = np.inf
            yield SampleBatch(batch.refs, batch.resource_idx, ts, values, batch.interval_s)
        if self.fault == "batch repeated":
            yield from super().capture(window)
        if self.fault == "unknown ref":
            yield SampleBatch(
                (ResourceRef("vm", "ghost"),), np.zeros(1, np.int32), np.array([WINDOW.start_s]), np.zeros((1, 8)), 60
            )


def broken(fault: str = "", **fields: Any) -> Broken:
    collector = Broken("sim", SimulatorConfig.model_validate(WORLD | fields), clock=lambda: NOW)
    collector.fault = fault
    return collector


CASES = [
    ("listed twice", "test_inventory_refs_are_unique_and_parents_resolve", "is listed twice"),
    ("orphan", "test_inventory_refs_are_unique_and_parents_resolve", "parent host 'nowhere' is not in the inventory"),
    ("not retired", "test_retired_refs_carry_retired_at", "vm 'sim-vm-00007' was deleted but its retired_at is None"),
    ("flapping name", "test_inventory_is_idempotent", "name was 'renamed-1', then 'renamed-2'"),
    ("zero for missing", "test_missing_metric_is_null_not_zero", "mem_used_bytes is 0.0"),
    ("end inclusive", "test_capture_stays_in_the_half_open_window", r"outside \["),
    ("end inclusive", "test_capture_stays_within_resource_lifetimes", "after it was retired"),
    ("upside down", "test_inventory_refs_are_unique_and_parents_resolve", "is not above it in the topology"),
    ("percent over 100", "test_capture_units_are_in_range", "cpu_usage_pct is .*, above its bound 100"),
    ("negative rate", "test_capture_units_are_in_range", "net_rx_bps is .*, below 0"),
    ("infinite", "test_capture_units_are_in_range", "net_tx_bps is inf"),
    ("depends on the cut", "test_capture_of_a_split_window_equals_the_whole", "disk_read_bps is .* captured whole"),
    ("batch repeated", "test_capture_timestamps_are_sorted_and_unique_per_resource", "twice"),
    ("unknown ref", "test_captured_refs_are_in_inventory", "first vm 'ghost'"),
]


@pytest.mark.parametrize(("fault", "check", "says"), CASES, ids=[f"{c[0]}-{c[1][5:]}" for c in CASES])
def test_each_check_fails_on_a_collector_that_breaks_it(fault: str, check: str, says: str) -> None:
    arguments = {"collector": broken(fault), "window": WINDOW, "retired_refs": RETIRED, "missing_metric": MISSING}
    method = getattr(CollectorContract(), check)
    wanted = {name: arguments[name] for name in method.__code__.co_varnames[1 : method.__code__.co_argcount]}
    with pytest.raises(AssertionError, match=says):
        method(**wanted)
    broken("").verify()  # the same check passes on the simulator as it is
    method(**(wanted | {"collector": broken("")}))


def test_a_secret_in_a_repr_is_found() -> None:
    with pytest.raises(AssertionError, match="collector: repr carries secret #0"):
        CollectorContract().test_secrets_stay_out_of_reprs(
            broken("secret in repr"), broken(fail="auth"), broken(fail="unavailable"), [SECRET]
        )


class PlainTokenConfig(SimulatorConfig):
    """A kind that forgot to type its token ``Secret``."""

    api_token: str = "plain-token-value"


class PlainToken(SimulatorCollector):
    config_model: ClassVar[type[ManagerConfig]] = PlainTokenConfig


def test_a_field_named_like_a_secret_must_be_typed_secret(caplog: pytest.LogCaptureFixture) -> None:
    contract = CollectorContract()
    collector = broken()
    contract.test_secrets_stay_out_of_logs(collector, WINDOW, [], caplog)  # no secret field: the naming holds
    careless = PlainToken("sim", PlainTokenConfig.model_validate(WORLD), clock=lambda: NOW)
    with pytest.raises(AssertionError, match=r"PlainTokenConfig fields \['api_token'\] are named like secrets"):
        contract.test_secrets_stay_out_of_logs(careless, WINDOW, [], caplog)
    with pytest.raises(AssertionError, match=r"PlainTokenConfig fields \['api_token'\] are named like secrets"):
        contract.test_secrets_stay_out_of_reprs(careless, careless, careless, [])


def test_the_wrong_error_class_fails_verify_checks(caplog: pytest.LogCaptureFixture) -> None:
    contract = CollectorContract()
    auth, unavailable = broken(fail="auth"), broken(fail="unavailable")
    with pytest.raises(AssertionError, match=r"raised SourceUnavailable .* documented class is CollectorAuthError"):
        contract.test_verify_refuses_bad_credentials_with_collector_auth_error(unavailable, [], caplog)
    with pytest.raises(AssertionError, match=r"raised CollectorAuthError .* documented class is SourceUnavailable"):
        contract.test_verify_reports_an_unreachable_source_as_unavailable(auth, [], caplog)


def test_fixtures_that_would_make_a_check_vacuous_fail() -> None:
    contract = CollectorContract()
    with pytest.raises(AssertionError, match="must name at least one resource the source knows was deleted"):
        contract.test_retired_refs_carry_retired_at(broken(), set())
    with pytest.raises(AssertionError, match=r"has no samples in .* must name a resource with samples"):
        contract.test_missing_metric_is_null_not_zero(broken(), WINDOW, (ResourceRef("vm", "nothing"), "net_rx_bps"))
    with pytest.raises(AssertionError, match="gave no samples: the window fixture must be one with samples"):
        contract.test_capture_stays_in_the_half_open_window(broken(), Window(START - timedelta(days=9), START))
    keyless = CloudWatchCollector("lab", AwsConfig(region="us-east-1"))  # the default credential chain
    with pytest.raises(pytest.fail.Exception, match="AwsConfig has secret fields, but the `secrets` fixture"):
        contract.all_secrets([], keyless)
    with pytest.raises(AssertionError, match="shorter than 8 characters"):
        contract.all_secrets(["short"], keyless)


# ---- cassettes -----------------------------------------------------------------------------------------------


def test_secret_forms_find_a_secret_inside_basic_auth() -> None:
    header = base64.b64encode(f"admin:{SECRET}".encode()).decode()
    assert any(form in header for form in secret_forms(SECRET))
    assert not any(form in base64.b64encode(b"admin:another-secret").decode() for form in secret_forms(SECRET))


def test_requests_keep_what_they_ask_and_lose_how_they_authenticate() -> None:
    redactor = Redactor([SECRET], {"http://127.0.0.1:804": "http://peer.invalid"})
    keystone = Request(
        "POST",
        "http://127.0.0.1:8041/v3/auth/tokens",
        b'{"auth": {"identity": {"password": {"user": {"name": "admin", "password": "another-pw-123"}}}}}',
        {"Content-Type": "application/json", "X-Auth-Token": "gAAAA-token", "Authorization": f"Basic {SECRET}"},
    )
    signed = Request(
        "POST",
        "http://127.0.0.1:804/",
        f"Action=GetCallerIdentity&Note={SECRET}",
        {
            "Authorization": b"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE000001/20260101/us-east-1/sts/aws4_request, "
            b"SignedHeaders=host, Signature=abcdef",
            "X-Amz-Date": b"20260101T000000Z",
            "X-Amz-Security-Token": b"session-token",
        },
    )
    first, second = redactor.request(keystone), redactor.request(signed)
    assert first.uri == "http://127.0.0.1:8041/v3/auth/tokens"  # ":804" does not rename ":8041"
    assert dict(first.headers) == {"Content-Type": "application/json"}
    assert b"another-pw-123" not in first.body and REDACTED.encode() in first.body
    assert second.uri == "http://peer.invalid/"
    assert dict(second.headers) == {ACCESS_KEY_HEADER: "AKIDEXAMPLE000001"}
    assert SECRET.encode() not in second.body
    assert redactor.request(second).headers == second.headers, "redacting twice (record, then match) changes nothing"


def test_responses_lose_tokens_and_noise() -> None:
    response = {
        "status": {"code": 201, "message": "Created"},
        "headers": {"X-Subject-Token": ["gAAAA"], "Date": ["today"], "Content-Type": ["application/xml"]},
        "body": {"string": b"<R><SessionToken>tok</SessionToken><SecretAccessKey>k</SecretAccessKey><a>1</a></R>"},
    }
    cleaned = Redactor().response(response)
    assert cleaned["headers"] == {"Content-Type": ["application/xml"]}
    assert cleaned["body"]["string"] == b"<R><SessionToken><redacted></SessionToken>" + (
        b"<SecretAccessKey><redacted></SecretAccessKey><a>1</a></R>"
    )


def test_leaks_names_secrets_and_credential_headers(tmp_path: Path) -> None:
    basic = base64.b64encode(f"admin:{SECRET}".encode()).decode()
    cassette = tmp_path / "c.yaml"
    cassette.write_text(f"headers:\n  Authorization:\n  - Basic {basic}\n")
    found = leaks(cassette, [SECRET])
    assert any("secret #0 appears" in leak for leak in found) and any("'Authorization' kept" in leak for leak in found)
    cassette.write_text("headers:\n  Content-Type:\n  - application/json\n")
    assert leaks(cassette, [SECRET]) == []


def test_a_containers_bounds_are_its_limits_and_its_percentages_may_pass_100_up_to_limit_over_request() -> None:
    pod = ResourceRef("pod", "uid")
    limited = InventoryItem(
        ResourceRef("container", "uid/app"), "app", pod,
        requests=Requests(cpu_request_cores=0.5, cpu_limit_cores=1.0, memory_request_bytes=2**30,
                          memory_limit_bytes=2**31),
    )  # fmt: skip
    assert bounds_at(limited, NOW) == Bounds(1.0, 2**31, 200.0, 200.0)
    unlimited = dataclasses.replace(limited, requests=Requests(cpu_request_cores=0.5))
    assert bounds_at(unlimited, NOW) == Bounds(None, None, None, None)
    vm = InventoryItem(ResourceRef("vm", "v"), "v", vcpus=4, memory_bytes=2**33)
    assert bounds_at(vm, NOW) == Bounds(4, 2**33, 100.0, 100.0)
