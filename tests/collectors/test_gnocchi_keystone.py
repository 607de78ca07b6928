"""The OpenStack collector's Keystone v3 path against a real Keystone and a Gnocchi that validates its tokens."""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
from typing import Any

import httpx
import pytest

from cloudmeter.collectors.openstack import GnocchiCollector, OpenStackConfig
from cloudmeter.collectors.openstack.api import GnocchiAPI
from cloudmeter.collectors.openstack.keystone import KeystoneAuth
from cloudmeter.collectors.registry import parse_manager_config
from cloudmeter.errors import BadPayload, CollectorAuthError, ConfigError, SourceUnavailable
from cloudmeter.model import ResourceRef
from tests.gnocchi_server import GnocchiServer
from tests.keystone_server import ADMIN_PASSWORD, REGION, KeystoneServer
from tests.loopback import free_port


def _collector(
    keystone: KeystoneServer, transport: httpx.BaseTransport | None = None, **extra: object
) -> GnocchiCollector:
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
    return GnocchiCollector("os", config, transport)


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


def test_debug_logs_carry_no_token(
    keystone: KeystoneServer, keystone_gnocchi: GnocchiServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    collector = _collector(keystone, gnocchi_url=keystone_gnocchi.url)

    collector.verify()

    assert isinstance(collector.api.client.auth, KeystoneAuth)
    assert "X-Subject-Token" in caplog.text  # httpcore logs the headers of Keystone's answer
    assert collector.api.client.auth.token().value not in caplog.text


def reshaped(body: dict[str, Any], how: str) -> dict[str, Any]:
    """A Keystone token request made malformed: ``wrap`` puts the user (password and all) in a list, ``drop``
    leaves out ``methods``. Keystone's input validation answers 400 quoting the offending part back."""
    identity = body["auth"]["identity"]
    if how == "wrap":
        identity["password"]["user"] = [identity["password"]["user"]]
    else:
        del identity["methods"]
    return body


class Reshaping(httpx.HTTPTransport):
    """Sends token requests ``reshaped`` ``how``, everything else as it is."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth/tokens"):
            request = httpx.Request("POST", request.url, json=reshaped(json.loads(request.content), self.how))
        return super().handle_request(request)


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("wrap", "Invalid input for field 'identity/password/user': [{'name': 'admin'"),
        ("drop", "Invalid input for field 'identity': 'methods' is a required property"),
    ],
)
def test_a_keystone_quoting_the_request_back_relays_no_password(keystone: KeystoneServer, how: str, says: str) -> None:
    secret = secrets.token_hex(6)
    password = f"Quoted back {secret} it's \\ here"  # spaces, a quote and a backslash: escaped when quoted
    collector = _collector(keystone, Reshaping(how), password=password)

    with pytest.raises(BadPayload) as caught:
        collector.verify()

    message = str(caught.value)
    assert message.startswith(f"manager 'os': Keystone token request for user 'admin' was rejected (400 {says}")
    assert len(message) < 500 and "\n" not in message and secret not in message


def test_a_gnocchi_answer_quoting_the_credentials_relays_none() -> None:
    token, password = f"tok{secrets.token_hex(8)}", f"pw{secrets.token_hex(8)}"
    basic = base64.b64encode(f"admin:{password}".encode()).decode()

    def quoting(request: httpx.Request) -> httpx.Response:
        """A server quoting the request's credentials back (the basic-auth header decoded too)."""
        header = request.headers.get("Authorization", "")
        sent = f"{request.headers.get('X-Auth-Token')} {header} {base64.b64decode(header[6:]).decode()}"
        if request.url.path == "/v1/json":
            return httpx.Response(400, json={"description": f"bad request: {sent}"})
        return httpx.Response(200, text=f"<html>{sent}</html>")

    for auth, sent in (
        ({"headers": {"X-Auth-Token": token}}, [token]),
        ({"auth": ("admin", password)}, [password, basic]),
    ):
        api = GnocchiAPI("os", httpx.Client(base_url="http://gnocchi", transport=httpx.MockTransport(quoting), **auth))
        for path, says in (("/v1/json", "rejected (400 bad request: "), ("/v1/html", "answered non-JSON: '<html>")):
            with pytest.raises(BadPayload, match=re.escape(says)) as caught:
                api.request("GET", path)
            assert not [secret for secret in sent if secret in str(caught.value)]
