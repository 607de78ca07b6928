"""A kubernetes manager on the command line, as a user adds one: a wrong token is refused in one line without a
traceback or the token, a missing field or a bad URL exits 2 naming it, and the right one is saved and verifies.

The command line's clock is the wall clock, days after the world's series: ``lookback_h`` reaches back to them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cli.test_cli import run
from tests.kubernetes import world
from tests.kubernetes.conftest import TOKEN, WRONG_TOKEN, Prom


def fields(url: str) -> list[str]:
    hours = int(time.time() - world.START) // 3600 + 24
    pairs = {"prometheus_url": url, "cluster": world.CLUSTER, "bearer_token": "env:K8S_TOKEN",
             "lookback_h": str(hours)}  # fmt: skip
    return [item for key, value in pairs.items() for item in ("--set", f"{key}={value}")]


def test_managers_add_refuses_a_wrong_token_then_saves_the_right_one(prometheus: Prom, tmp_path: Path) -> None:
    wrong = run("managers", "add", "k8s", "--kind", "kubernetes", *fields(prometheus.proxy_url),
                env={"K8S_TOKEN": WRONG_TOKEN}, data_dir=tmp_path)  # fmt: skip
    assert wrong.returncode == 1
    assert wrong.stderr.strip().replace("\n", " ") == (
        "error: not saved: CollectorAuthError: manager 'k8s': permission denied: Prometheus GET "
        "/api/v1/status/buildinfo was refused (403 Unauthorized); check bearer_token (and its permissions) (fix it, "
        "or pass --no-verify to save anyway)"
    )
    assert "Traceback" not in wrong.stderr and WRONG_TOKEN not in wrong.stdout + wrong.stderr
    right = run("managers", "add", "k8s", "--kind", "kubernetes", *fields(prometheus.proxy_url),
                env={"K8S_TOKEN": TOKEN}, data_dir=tmp_path)  # fmt: skip
    assert right.returncode == 0, right.stderr
    assert right.stdout.strip() == "added manager k8s (kubernetes)"
    verified = run("managers", "verify", "--json", env={"K8S_TOKEN": TOKEN}, data_dir=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert '"result": "ok"' in verified.stdout.replace('":"', '": "')
    assert TOKEN not in verified.stdout + verified.stderr


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('cluster = "prod"\n', "manager 'k8s' (kind 'kubernetes') is invalid: prometheus_url: Field required"),
        ('prometheus_url = "prom:9090"\ncluster = "prod"\n',
         "manager 'k8s' (kind 'kubernetes') is invalid: prometheus_url: Value error, 'prom:9090' is not an http(s) "
         "URL; give e.g. http://prometheus.example:9090"),
    ],
)  # fmt: skip
def test_config_check_exits_2_naming_the_field(table: str, problem: str, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[managers.k8s]\nkind = "kubernetes"\n{table}')
    result = run("config", "check", "--config", str(config), data_dir=tmp_path)
    assert result.returncode == 2
    assert problem in result.stderr.replace("\n", " ")
    assert "Traceback" not in result.stderr
