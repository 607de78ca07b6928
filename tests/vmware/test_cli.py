"""A vmware manager on the command line, as a user adds one: a wrong password is refused in one line without
a traceback or the password, a missing field exits 2 naming it, and the right one is saved and verifies."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_cli import run
from tests.vmware import world
from tests.vmware.conftest import World


def fields(vsphere: World) -> list[str]:
    pairs = {"host": vsphere.server.host, "port": str(vsphere.server.port), "username": world.USERNAME,
             "password": "env:VC_PASSWORD", "verify_tls": "false"}  # fmt: skip
    return [item for key, value in pairs.items() for item in ("--set", f"{key}={value}")]


def test_managers_add_refuses_a_wrong_password_then_saves_the_right_one(vsphere: World, tmp_path: Path) -> None:
    wrong = run("managers", "add", "vc", "--kind", "vmware", *fields(vsphere),
                env={"VC_PASSWORD": world.WRONG_PASSWORD}, data_dir=tmp_path)  # fmt: skip
    assert wrong.returncode == 1
    assert (
        wrong.stderr.strip()
        .replace("\n", " ")
        .startswith("error: not saved: CollectorAuthError: manager 'vc': invalid credentials: vSphere at 127.0.0.1:")
    )
    assert "Traceback" not in wrong.stderr and world.WRONG_PASSWORD not in wrong.stdout + wrong.stderr
    right = run("managers", "add", "vc", "--kind", "vmware", *fields(vsphere),
                env={"VC_PASSWORD": world.PASSWORD}, data_dir=tmp_path)  # fmt: skip
    assert right.returncode == 0, right.stderr
    assert right.stdout.strip() == "added manager vc (vmware)"
    verified = run("managers", "verify", "--json", env={"VC_PASSWORD": world.PASSWORD}, data_dir=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert '"result": "ok"' in verified.stdout.replace('":"', '": "')


def test_a_manager_without_password_is_a_config_error_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[managers.vc]\nkind = "vmware"\nhost = "vcenter.example"\nusername = "u"\n')
    result = run("config", "check", "--config", str(config), data_dir=tmp_path)
    assert result.returncode == 2
    assert "manager 'vc' (kind 'vmware') is invalid: password: Field required" in result.stderr
    assert "Traceback" not in result.stderr
