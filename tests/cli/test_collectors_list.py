"""``cloudmeter collectors list``: every installed kind with its package, version, class and config fields; a kind
that does not load is listed with the reason, the others still are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from cloudmeter.cli import app

#: Third-party kinds that do not load, each the way a plugin breaks: (kind, target, its module's source).
BROKEN = [
    ("crashes", "cm_crashes:Collector", "raise RuntimeError('set ACME_HOME first')\n"),
    ("gone", "cm_gone:NoSuchCollector", ""),
    ("shapeless", "cm_shapeless:Collector", "class Collector:\n    config_model = dict\n"),
]


def listed(*args: str) -> Any:
    done = CliRunner().invoke(app, ["collectors", "list", *args], env={"COLUMNS": "80"})
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout) if "--json" in args else done.stdout


def plugins(site: Path) -> Path:
    """A directory that makes ``BROKEN`` installed distributions when put on the path (dist-info and modules)."""
    for kind, target, source in BROKEN:
        module = target.partition(":")[0]
        info = site / f"cloudmeter_{kind}-0.3.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: cloudmeter-{kind}\nVersion: 0.3\n")
        (info / "entry_points.txt").write_text(f"[cloudmeter.collectors]\n{kind} = {target}\n")
        (site / f"{module}.py").write_text(source)
    return site


def run_with(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDMETER_")}
    env |= {"PYTHONPATH": str(site), "COLUMNS": "80"}
    command = [sys.executable, "-m", "cloudmeter", "collectors", "list", *args]
    return subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=120)


def test_every_built_in_kind_is_listed_with_its_package_version_class_and_fields() -> None:
    kinds = {kind["kind"]: kind for kind in listed("--json")}
    assert {"simulator", "openstack", "aws"} <= set(kinds)
    aws = kinds["aws"]
    assert (aws["package"], aws["version"], aws["error"]) == ("cloudmeter", version("cloudmeter"), None)
    assert aws["target"] == "cloudmeter.collectors.aws:CloudWatchCollector"
    fields = {field["name"]: field for field in aws["fields"]}
    assert "kind" not in fields
    assert fields["region"] | {"description": None} == {
        "name": "region", "type": "str", "default": None, "required": True, "secret": False, "description": None,
    }  # fmt: skip
    assert fields["secret_access_key"]["secret"] and fields["secret_access_key"]["type"] == "secret | None"
    assert fields["enabled"]["default"] is True and not fields["enabled"]["required"]
    openstack = {field["name"]: field for field in kinds["openstack"]["fields"]}
    assert openstack["auth_mode"]["type"] == "keystone|basic" and openstack["auth_mode"]["default"] == "keystone"
    assert openstack["host_clusters"]["type"] == "dict[str, str]" and openstack["host_clusters"]["default"] == {}
    assert openstack["password"]["secret"] and not openstack["username"]["secret"]
    simulator = {field["name"]: field for field in kinds["simulator"]["fields"]}
    assert simulator["start"] | {"description": None} == {
        "name": "start", "type": "datetime", "default": "2026-01-01T00:00:00Z", "required": False, "secret": False,
        "description": None,
    }  # fmt: skip


def test_the_table_fits_80_columns_with_each_kind_then_its_fields() -> None:
    text = listed()
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "aws (cloudmeter " in text and "): cloudmeter.collectors.aws:CloudWatchCollector\n" in text
    assert "\n  region             str, required\n      the AWS region" in text
    assert "\n  secret_access_key  secret | None\n" in text
    assert '\n  auth_mode              keystone|basic = "keystone"\n' in text


def test_a_kind_that_does_not_load_is_listed_with_the_reason_and_the_others_still_are(tmp_path: Path) -> None:
    site = plugins(tmp_path / "site")
    done = run_with(site, "--json")
    assert done.returncode == 0, done.stderr
    kinds = {kind["kind"]: kind for kind in json.loads(done.stdout)}
    assert {"simulator", "openstack", "aws"} <= {name for name, kind in kinds.items() if kind["error"] is None}
    reasons = {name: kinds[name]["error"] for name, _, _ in BROKEN}
    assert reasons == {
        "crashes": "cm_crashes:Collector raised RuntimeError on import: set ACME_HOME first",
        "gone": "manager kind 'gone' is installed (cm_gone:NoSuchCollector) but does not load: module 'cm_gone' has "
        "no attribute 'NoSuchCollector'; reinstall its package",
        "shapeless": "cm_shapeless:Collector.config_model is not a ManagerConfig subclass; fix its package",
    }
    assert (kinds["crashes"]["package"], kinds["crashes"]["version"], kinds["crashes"]["fields"]) == (
        "cloudmeter-crashes", "0.3", [],
    )  # fmt: skip

    table = run_with(site)
    assert table.returncode == 0 and "Traceback" not in table.stdout + table.stderr, table.stderr
    assert "crashes (cloudmeter-crashes 0.3): cm_crashes:Collector\n  does not load: cm_crashes:Collector raised " in (
        table.stdout
    )
    assert "\n  region             str, required\n" in table.stdout  # aws still listed with its fields
