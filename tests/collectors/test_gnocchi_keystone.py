"""The OpenStack collector's Keystone v3 path against a real Keystone and a Gnocchi that validates its tokens."""

from __future__ import annotations

import pytest

from cloudmeter.collectors.gnocchi import GnocchiCollector, OpenStackConfig
from cloudmeter.collectors.registry import parse_manager_config
from cloudmeter.errors import CollectorAuthError, ConfigError, SourceUnavailable
from cloudmeter.model import ResourceRef
from tests.gnocchi_server import GnocchiServer
from tests.keystone_server import ADMIN_PASSWORD, REGION, KeystoneServer
from tests.loopback import free_port


def _collector(keystone: KeystoneServer, **extra: object) -> GnocchiCollector:
    raw = {
        "kind": "openstack",
        "auth_url": keystone.url,
        "username": "admin",
        "password": ADMIN_PASSWORD,
        "project_name": "admin",
        "region": REGION,
        **extra,
    }
    config = parse_manager_config("os", raw)
    assert isinstance(config, OpenStackConfig)
    return GnocchiCollector("os", config)


def test_the_catalog_leads_to_gnocchi(keystone: KeystoneServer, keystone_gnocchi: GnocchiServer) -> None:
    collector = _collector(keystone)

    collector.verify()

    assert str(collector.api.client.base_url).rstrip("/") == keystone_gnocchi.url
    assert ADMIN_PASSWORD not in repr(collector.api.client.auth.__dict__) + repr(collector.config)
    inventory = collector.inventory()  # an authenticated search, no instances yet
    assert [item.ref for item in inventory.items] == [ResourceRef("region", REGION), ResourceRef("provider", "os")]


def test_a_wrong_password_is_invalid_credentials(keystone: KeystoneServer, keystone_gnocchi: GnocchiServer) -> None:
    collector = _collector(keystone, password="not-the-password", gnocchi_url=keystone_gnocchi.url)

    with pytest.raises(CollectorAuthError, match="invalid credentials") as caught:
        collector.verify()
    assert "not-the-password" not in str(caught.value)


def test_the_password_may_come_from_the_environment(
    keystone: KeystoneServer, keystone_gnocchi: GnocchiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OS_TEST_PASSWORD", ADMIN_PASSWORD)

    _collector(keystone, password="env:OS_TEST_PASSWORD").verify()


def test_a_region_without_gnocchi_names_the_fix(keystone: KeystoneServer, keystone_gnocchi: GnocchiServer) -> None:
    with pytest.raises(
        ConfigError, match="no public 'metric' \\(Gnocchi\\) endpoint in region Nowhere; set gnocchi_url"
    ):
        _collector(keystone, region="Nowhere").verify()


def test_an_unreachable_keystone_says_so() -> None:
    port = free_port()
    dead = KeystoneServer(f"http://127.0.0.1:{port}/v3")

    with pytest.raises(SourceUnavailable, match=rf"Keystone at http://127.0.0.1:{port}/v3 is unreachable"):
        _collector(dead).verify()


def test_gnocchi_refuses_requests_without_a_token(keystone_gnocchi: GnocchiServer) -> None:
    import httpx

    assert httpx.get(f"{keystone_gnocchi.url}/v1/resource_type/instance").status_code == 401
