"""README's two commands on a fresh clone, in either order, leave a working ``cloudmeter`` command.

The test command runs with a small selection of tests (its install steps are the same; the whole suite inside
the suite would be recursion). The servers' virtualenvs and PGlite's node_modules are this checkout's, linked
in, as on a machine where they are installed already.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = "python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/cloudmeter demo"
TESTS = "bash scripts/test.sh tests/test_config.py -q -p no:cacheprovider"
INSTALLED = ("tests/gnocchi/.venv", "tests/keystone/.venv", "tests/pglite/node_modules")


def readme_commands() -> tuple[str, str]:
    """The two commands as README.md shows them (so this test follows the README, not a copy of it)."""
    text = (ROOT / "README.md").read_text()
    demo = re.search(r"^    (python3 -m venv .*cloudmeter demo)$", text, re.MULTILINE)
    tests = re.search(r"^    (bash scripts/test\.sh)$", text, re.MULTILINE)
    assert demo and tests, "README.md no longer shows the two commands"
    return demo.group(1), tests.group(1)


def test_the_readme_shows_the_commands_this_test_runs() -> None:
    demo, tests = readme_commands()
    assert (demo, TESTS.startswith(tests + " ")) == (DEMO, True)


def shell(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=1200, check=False
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[:6000]}"
    return result


@pytest.mark.slow
@pytest.mark.parametrize("order", [(DEMO, TESTS), (TESTS, DEMO)], ids=["demo-then-tests", "tests-then-demo"])
def test_both_commands_in_either_order_then_the_cli(order: tuple[str, str]) -> None:
    # not pytest's tmp_path: as root, the embedded server runs pg_ctl as its own user, who must reach the venv
    tmp_path = Path(tempfile.mkdtemp(prefix="cloudmeter-readme-"))
    tmp_path.chmod(0o755)
    try:
        run_both(tmp_path, order)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def run_both(tmp_path: Path, order: tuple[str, str]) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    for path in INSTALLED:
        if (ROOT / path).exists():
            (clone / path).symlink_to(ROOT / path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDMETER_", "VIRTUAL_ENV", "NUMBA_"))}
    pip_cache = subprocess.run(["python3", "-m", "pip", "cache", "dir"], capture_output=True, text=True, check=False)
    env |= {"CLOUDMETER_DATA_DIR": str(tmp_path / "data"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    if pip_cache.returncode == 0:  # pip would follow XDG_CACHE_HOME too, and download everything again
        env["PIP_CACHE_DIR"] = pip_cache.stdout.strip()
    for command in order:
        shell(command, clone, env)

    helped = shell(".venv/bin/cloudmeter --help", clone, env)
    assert "capacity" in helped.stdout and "demo" in helped.stdout
    assert shell(".venv/bin/cloudmeter --version", clone, env).stdout.startswith("cloudmeter ")
    assert "demo" in shell(".venv/bin/cloudmeter managers list", clone, env).stdout
    written = [p for p in (clone / ".venv").rglob("*.nb[ic]")]
    assert written == [], "numba wrote its cache into the installed package"
    assert list((tmp_path / "cache" / "cloudmeter" / "numba").rglob("*.nbi")), "numba's cache is not where we say"
