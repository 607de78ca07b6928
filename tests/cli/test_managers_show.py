"""``managers show NAME`` prints a manager's effective config, from the config file or ``managers add``, with every
default marked and no secret shown (issue 21), through the real command at 80 columns."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli.test_prompts import run

CONFIG = """
[managers.filed]
kind = "openstack"
auth_mode = "basic"
gnocchi_url = "http://127.0.0.1:1"
password = "clear-pw-77"
flavors = { "m1.small" = { vcpus = 1, memory_mib = 2048 }, "m1.large" = { vcpus = 4, memory_mib = 8192 } }

[managers.cloud]
kind = "aws"
region = "eu-west-2"
access_key_id = "AKIAEXAMPLE"
secret_access_key = "env:CM_TEST_SHOW_AWS"
"""


def rows(table: str) -> list[list[str]]:
    """A printed table's rows (after its rule) as cells split at runs of two or more spaces."""
    lines = table.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("─")) + 1
    return [re.split(r" {2,}", line.strip()) for line in lines[start:] if line.strip()]


def test_a_config_file_manager_with_every_default_marked_and_its_secrets_masked(dsn: str, tmp_path: Path) -> None:
    config = tmp_path / "cloudmeter.toml"
    config.write_text(CONFIG)
    env = {"CLOUDMETER_DSN": dsn, "CLOUDMETER_CONFIG": str(config), "CM_TEST_SHOW_AWS": "aws-secret-99"}

    table = run("managers", "show", "filed", env=env)
    as_json = run("managers", "show", "filed", "--json", env=env)
    aws = run("managers", "show", "cloud", "--json", env=env)

    assert table.returncode == as_json.returncode == aws.returncode == 0, table.stderr + as_json.stderr + aws.stderr
    assert table.stdout.splitlines()[0].rstrip() == "manager filed (openstack, in the config file)"
    assert max(len(line.rstrip()) for line in table.stdout.splitlines()) <= 80
    assert rows(table.stdout) == [
        ["kind", "openstack"],
        ["enabled", "true", "default"],
        ["auth_mode", "basic"],
        ["auth_url", "-", "default"],
        ["username", "admin", "default"],
        ["password", "********"],
        ["project_name", "-", "default"],
        ["user_domain_name", "Default", "default"],
        ["project_domain_name", "Default", "default"],
        ["region", "-", "default"],
        ["interface", "public", "default"],
        ["gnocchi_url", "http://127.0.0.1:1"],
        ["host_clusters", "{}", "default"],
        ["host_capacity", "{}", "default"],
        ["flavors", '{"m1.small": {"vcpus": 1, "memory_mib":'],  # wrapped within 80 columns, not cut
        ['2048}, "m1.large": {"vcpus": 4,'],
        ['"memory_mib": 8192}}'],
        ["granularity_s", "-", "default"],
        ["polling_interval_s", "-", "default"],
        ["retired_lookback_days", "30", "default"],
        ["retention_days", "-", "default"],
        ["timeout_s", "30.0", "default"],
        ["verify_tls", "true", "default"],
        ["amqp_url", "-", "default"],
        ["amqp_exchange", "nova", "default"],
        ["amqp_topics", '["notifications"]', "default"],
        ["amqp_queue", "-", "default"],
        ["amqp_durable_exchange", "false", "default"],
        ["amqp_max_queued", "100000", "default"],
    ]
    assert json.loads(as_json.stdout) == {
        "name": "filed",
        "kind": "openstack",
        "source": "config",
        "config": {
            "kind": "openstack",
            "enabled": True,
            "auth_mode": "basic",
            "auth_url": None,
            "username": "admin",
            "password": "********",
            "project_name": None,
            "user_domain_name": "Default",
            "project_domain_name": "Default",
            "region": None,
            "interface": "public",
            "gnocchi_url": "http://127.0.0.1:1",
            "host_clusters": {},
            "host_capacity": {},
            "flavors": {"m1.small": {"vcpus": 1, "memory_mib": 2048}, "m1.large": {"vcpus": 4, "memory_mib": 8192}},
            "granularity_s": None,
            "polling_interval_s": None,
            "retired_lookback_days": 30,
            "retention_days": None,
            "timeout_s": 30.0,
            "verify_tls": True,
            "amqp_url": None,
            "amqp_exchange": "nova",
            "amqp_topics": ["notifications"],
            "amqp_queue": None,
            "amqp_durable_exchange": False,
            "amqp_max_queued": 100000,
        },
        "defaults": [
            "enabled",
            "auth_url",
            "username",
            "project_name",
            "user_domain_name",
            "project_domain_name",
            "region",
            "interface",
            "host_clusters",
            "host_capacity",
            "granularity_s",
            "polling_interval_s",
            "retired_lookback_days",
            "retention_days",
            "timeout_s",
            "verify_tls",
            "amqp_url",
            "amqp_exchange",
            "amqp_topics",
            "amqp_queue",
            "amqp_durable_exchange",
            "amqp_max_queued",
        ],
    }
    assert json.loads(aws.stdout)["config"] == {
        "kind": "aws",
        "enabled": True,
        "region": "eu-west-2",
        "access_key_id": "AKIAEXAMPLE",
        "secret_access_key": "env:CM_TEST_SHOW_AWS",
        "role_arn": None,
        "endpoint_url": None,
        "cluster_tag": None,
    }
    for result in (table, as_json, aws):
        assert "clear-pw-77" not in result.stdout + result.stderr
        assert "aws-secret-99" not in result.stdout + result.stderr


def test_an_added_manager_shows_its_env_reference_even_where_the_variable_is_not_set(dsn: str) -> None:
    env = {"CLOUDMETER_DSN": dsn}
    added = run(
        "managers", "add", "vault", "--kind", "openstack", "--set", "auth_mode=basic",
        "--set", "gnocchi_url=http://127.0.0.1:1", "--set", "password=env:CM_TEST_SHOW_PW", "--no-verify",
        env=env | {"CM_TEST_SHOW_PW": "hunter2"},
    )  # fmt: skip
    assert added.returncode == 0, added.stderr

    table = run("managers", "show", "vault", env=env)
    as_json = run("managers", "show", "vault", "--json", env=env)

    assert table.returncode == as_json.returncode == 0, table.stderr + as_json.stderr
    assert table.stdout.splitlines()[0].rstrip() == "manager vault (openstack, added with managers add)"
    assert ["password", "env:CM_TEST_SHOW_PW", "not set here"] in rows(table.stdout)
    assert ["auth_mode", "basic"] in rows(table.stdout)
    report = json.loads(as_json.stdout)
    assert (report["source"], report["config"]["password"]) == ("cli", "env:CM_TEST_SHOW_PW")
    assert "password" not in report["defaults"] and "username" in report["defaults"]


def test_an_unknown_manager_is_one_line_naming_those_there_are(dsn: str, tmp_path: Path) -> None:
    config = tmp_path / "cloudmeter.toml"
    config.write_text('[managers.filed]\nkind = "simulator"\n')
    env = {"CLOUDMETER_DSN": dsn, "CLOUDMETER_CONFIG": str(config)}
    assert run("managers", "add", "lab", "--kind", "simulator", env=env).returncode == 0

    shown = run("managers", "show", "nope", env=env)

    assert shown.returncode == 2
    assert shown.stderr == (
        "error: manager 'nope' is not configured (configured: filed, lab); add [managers.nope] or `managers add`\n"
    )
