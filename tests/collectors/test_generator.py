"""``cloudmeter collectors new``: the package it writes lints clean as written, installs beside cloudmeter, fails
its own tests while its parser is a stub, and once a parser is written passes the kit's contract and works through
the command line (verify, capture into the embedded database)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner, Result

from cloudmeter.cli import app
from cloudmeter.collectors import scaffold
from cloudmeter.storage.embedded import EmbeddedPostgres
from tests.loopback import serving

ROOT = Path(__file__).resolve().parents[2]
#: The site-packages of the environment running these tests (cloudmeter's dependencies, pip, setuptools, pytest).
SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
TOOLS = Path(sys.executable).parent
KIND = "acme"
Completed = subprocess.CompletedProcess[str]
WINDOW = (datetime(2026, 1, 1, 0, 0, tzinfo=UTC), datetime(2026, 1, 1, 1, 0, tzinfo=UTC))

#: The test's own parser for the example answers (what an author writes): it replaces the stubs' bodies.
PARSER = """

def _inventory(payload: Any, observed_at: datetime) -> Inventory:
    from cloudmeter.errors import PayloadError
    from cloudmeter.model import InventoryItem

    entries = payload.get("resources") if isinstance(payload, dict) else None
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise PayloadError("resources", "is not a list of objects")
    for k, entry in enumerate(entries):
        for key in ("id", "kind", "name"):
            PayloadError.expect(entry.get(key), str, f"resources[{k}].{key}", "a string")
    refs = {entry["id"]: ResourceRef(entry["kind"], entry["id"]) for entry in entries}

    def when(text: Any) -> datetime | None:
        return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))

    items = tuple(
        InventoryItem(
            refs[e["id"]],
            e["name"],
            parent=refs.get(e.get("parent")),
            vcpus=e.get("vcpus"),
            memory_bytes=None if e.get("memory_mib") is None else e["memory_mib"] << 20,
            project=e.get("project"),
            created_at=when(e.get("created_at")),
            retired_at=when(e.get("deleted_at")),
        )
        for e in entries
    )
    return Inventory(observed_at, items)


def _samples(payload: Any, refs: Mapping[str, ResourceRef]) -> SampleBatch:
    import numpy as np
    from cloudmeter.errors import PayloadError
    from cloudmeter.model import METRICS

    fields = {
        "cpu_percent": ("cpu_usage_pct", 1.0),
        "memory_used_mib": ("mem_used_bytes", 2.0**20),
        "disk_read_bytes_per_s": ("disk_read_bps", 1.0),
        "disk_write_bytes_per_s": ("disk_write_bps", 1.0),
        "net_in_bits_per_s": ("net_rx_bps", 1 / 8),
        "net_out_bits_per_s": ("net_tx_bps", 1 / 8),
    }
    if not isinstance(payload, dict) or not isinstance(payload.get("interval_s"), int):
        raise PayloadError("interval_s", "is not an integer")
    taken = [s for s in payload.get("samples", []) if s.get("resource") in refs]
    order = sorted({s["resource"] for s in taken})
    values = np.full((len(taken), len(METRICS)), np.nan)
    ts = np.empty(len(taken), np.int64)
    for i, s in enumerate(taken):
        try:
            ts[i] = datetime.fromisoformat(s["time"].replace("Z", "+00:00")).timestamp()
        except ValueError as exc:
            raise PayloadError(f"samples[{i}].time", "is not an ISO 8601 time") from exc
        for name, (metric, scale) in fields.items():
            if s.get(name) is not None:
                value = PayloadError.expect(s[name], (int, float), f"samples[{i}].{name}", "a number")
                values[i, METRICS.index(metric)] = value * scale
    idx = np.array([order.index(s["resource"]) for s in taken], np.int32)
    return SampleBatch(tuple(refs[r] for r in order), idx, ts, values, payload["interval_s"])
"""


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without cloudmeter's settings or a PYTHONPATH, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDMETER_") and k != "PYTHONPATH"}
    return env | {"COLUMNS": "80"} | extra


def run(*command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> Completed:
    """``command`` to its end, its output captured."""
    return subprocess.run(
        [str(part) for part in command],
        check=False,
        cwd=cwd,
        env=clean_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=600,
    )


def cli(*args: str | Path) -> Result:
    """``cloudmeter ARGS`` in this process (quick), 80 columns wide."""
    return CliRunner().invoke(app, [str(arg) for arg in args], env={"COLUMNS": "80"})


def generate(tmp_path: Path, name: str = KIND) -> Path:
    """``cloudmeter collectors new NAME --output DIR`` through the real command."""
    out = tmp_path / f"cloudmeter-{name}"
    done = run(sys.executable, "-m", "cloudmeter", "collectors", "new", name, "--output", out)
    assert done.returncode == 0, done.stderr
    return out


def implement_parser(package: Path) -> None:
    """Replace the two stubs' ``raise NotImplementedError(...)`` with calls to the test's parser."""
    path = package / "parse.py"
    text = path.read_text()
    calls = {"parse_inventory": "_inventory(payload, observed_at)", "parse_samples": "_samples(payload, refs)"}
    for function, call in calls.items():
        text, count = re.subn(
            rf'(def {function}\(.*?""".*?"""\n)    raise NotImplementedError\(.*?\n    \)\n',
            rf"\1    return {call}\n",
            text,
            count=1,
            flags=re.DOTALL,
        )
        assert count == 1, f"the stub of {function} has changed shape; update this test"
    path.write_text(text + PARSER)


def build_isolation(python: Path) -> list[str]:
    """``--no-build-isolation`` where ``python`` can build a wheel with the setuptools it has (a setuptools
    before 70.1 needs the ``wheel`` package for that); otherwise none, and pip fetches setuptools from its index."""
    probe = "import setuptools, importlib.util as u; print(u.find_spec('wheel') is not None or "
    probe += "tuple(map(int, setuptools.__version__.split('.')[:2])) >= (70, 1))"
    return ["--no-build-isolation"] if run(python, "-c", probe).stdout.strip() == "True" else []


def expected_samples(out: Path) -> int:
    """How many samples the stub serves in ``WINDOW``, counted from the example answers themselves."""
    answers = json.loads((out / "tests" / "example_payloads.json").read_text())
    times = [datetime.fromisoformat(s["time"].replace("Z", "+00:00")) for s in answers["/samples"]["samples"]]
    return sum(WINDOW[0] <= when < WINDOW[1] for when in times)


# --- what `collectors new` writes and refuses -------------------------------------------------------------------


def test_every_file_is_rendered_with_its_names_filled_in() -> None:
    files = scaffold.render("my_cloud")
    assert {
        "pyproject.toml", "README.md", ".gitignore", "cloudmeter_my_cloud/__init__.py", "cloudmeter_my_cloud/py.typed",
        "cloudmeter_my_cloud/config.py", "cloudmeter_my_cloud/api.py", "cloudmeter_my_cloud/parse.py",
        "cloudmeter_my_cloud/collector.py", "tests/test_parse.py", "tests/test_contract.py", "tests/stub_server.py",
        "tests/example_payloads.json",
    } == set(files)  # fmt: skip
    assert 'my_cloud = "cloudmeter_my_cloud.collector:MyCloudCollector"' in files["pyproject.toml"]
    assert 'name = "cloudmeter-my-cloud"' in files["pyproject.toml"]
    assert 'kind: Literal["my_cloud"] = "my_cloud"' in files["cloudmeter_my_cloud/config.py"]
    assert "env:MY_CLOUD_TOKEN" in files["README.md"]
    assert "not a working collector" in files["README.md"]
    assert not [path for path, text in files.items() if "$" in text], "a placeholder was left unfilled"
    json.loads(files["tests/example_payloads.json"])


@pytest.mark.parametrize(
    ("current", "requirement"),
    [("0.1.0", ">=0.1.0,<0.2"), ("0.12.3", ">=0.12.3,<0.13"), ("1.4.2", ">=1.4.2,<2"), ("2.0.0rc1", ">=2.0.0rc1,<3")],
)
def test_the_package_requires_this_cloudmeters_release_series(current: str, requirement: str) -> None:
    # PyPI's "cloudmeter" 0.5.0 is another project: an open ">=0.1.0" would let pip install it instead
    assert scaffold.release_series(current) == requirement
    dependencies = scaffold.render("my_cloud")["pyproject.toml"]
    series = scaffold.release_series(scaffold.names("my_cloud").cloudmeter_requirement.split(",")[0][2:])
    assert f'"cloudmeter{series}"' in dependencies and f'"cloudmeter[testing]{series}"' in dependencies


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("Acme", "'Acme' is not a lowercase identifier ([a-z][a-z0-9_]*); use e.g. 'acme'"),
        ("my-cloud", "use e.g. 'my_cloud'"),
        ("9lives", "is not a lowercase identifier"),
        ("aws", "kind 'aws' is installed already (cloudmeter collectors list); pick another name"),
    ],
)
def test_a_name_that_cannot_be_a_new_kind_is_one_line_naming_the_fix(tmp_path: Path, name: str, says: str) -> None:
    done = cli("collectors", "new", name, "--output", tmp_path / "out")
    assert done.exit_code == 2
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "out").exists()


def test_an_output_directory_with_files_in_it_is_never_written_into(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    done = cli("collectors", "new", KIND, "--output", tmp_path)
    assert done.exit_code == 2
    assert f"{tmp_path} exists and is not empty; remove it or give another --output" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_new_writes_into_an_empty_directory_and_says_what_and_what_next_in_80_columns(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    done = cli("collectors", "new", KIND, "--output", out)
    assert done.exit_code == 0, done.stderr
    assert max(len(line) for line in done.stdout.splitlines()) <= 80, done.stdout
    assert f"wrote {out}/:" in done.stdout
    assert "pyproject.toml                the package cloudmeter-acme and its entry point\n" in done.stdout
    assert "cloudmeter_acme/parse.py      parsing the answers: A STUB to implement" in done.stdout
    assert "its tests fail until you implement\ncloudmeter_acme/parse.py" in done.stdout
    assert "pip install -e '.[test]'" in done.stdout and "python -m pytest" in done.stdout
    assert set(scaffold.render(KIND)) == {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}


def test_new_writes_to_cloudmeter_name_in_the_current_directory_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    done = cli("collectors", "new", "beta")
    assert done.exit_code == 0, done.stderr
    assert (tmp_path / "cloudmeter-beta" / "cloudmeter_beta" / "collector.py").is_file()


def test_every_template_ships_in_the_wheel() -> None:
    """cloudmeter's package-data covers every template (an editable install finds them without it, a wheel not)."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped = {
        path for pattern in setuptools["package-data"]["cloudmeter"] for path in (ROOT / "cloudmeter").glob(pattern)
    }
    templates = {path for path in (ROOT / "cloudmeter" / "collectors" / "template").rglob("*") if path.is_file()}
    assert templates and templates <= shipped, sorted(str(path) for path in templates - shipped)


def test_the_generated_code_passes_ruff_as_written(tmp_path: Path) -> None:
    out = generate(tmp_path)
    for command in (["ruff", "check", "."], ["ruff", "format", "--check", "."]):
        done = run(TOOLS / command[0], *command[1:], cwd=out)
        assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"


# --- the author's journey: install, fail as a stub, implement, pass the contract, use it -------------------------


@pytest.mark.slow
def test_a_generated_collector_fails_as_a_stub_then_passes_the_contract_and_captures(tmp_path: Path) -> None:
    out = generate(tmp_path)

    # a virtualenv with the package installed editable beside cloudmeter, which comes from this checkout and its
    # dependencies from the running environment (a .pth instead of reinstalling them; no network)
    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", "--without-pip", venv).returncode == 0
    python = venv / "bin" / "python"
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    Path(site, "cloudmeter-dev.pth").write_text(f"{SITE_PACKAGES}\n{ROOT}\n")
    assert run(python, "-c", "import setuptools, pip, cloudmeter").returncode == 0
    installed = run(python, "-m", "pip", "install", "-q", "--no-deps", *build_isolation(python), "-e", out)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    # as generated, it is mypy --strict clean against the installed cloudmeter (the venv's, as a user's would be)
    typed = run(TOOLS / "mypy", "--strict", "--python-executable", python, cwd=out)
    assert typed.returncode == 0, typed.stdout[-4000:] + typed.stderr[-2000:]

    listed = run(python, "-m", "cloudmeter", "collectors", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    kinds = {kind["kind"]: kind for kind in json.loads(listed.stdout)}
    assert kinds[KIND]["package"] == "cloudmeter-acme" and kinds[KIND]["error"] is None
    assert kinds[KIND]["target"] == "cloudmeter_acme.collector:AcmeCollector"
    fields = {field["name"]: field for field in kinds[KIND]["fields"]}
    assert fields["token"]["secret"] and fields["token"]["required"] and fields["url"]["required"]
    assert {"simulator", "openstack", "aws"} <= set(kinds)

    # as generated, its tests fail, and say why
    stub = run(python, "-m", "pytest", "-p", "no:cacheprovider", "-q", cwd=out)
    assert stub.returncode == 1, stub.stdout[-4000:] + stub.stderr[-2000:]
    assert "NotImplementedError: cloudmeter_acme.parse.parse_inventory is a stub" in stub.stdout
    assert "parse_samples is a stub" in stub.stdout
    assert re.search(r"FAILED tests/test_contract\.py::TestAcmeCollector::", stub.stdout), stub.stdout[-4000:]

    # with a parser written, every test passes: the parser's and the kit's contract
    implement_parser(out / "cloudmeter_acme")
    done = run(python, "-m", "pytest", "-p", "no:cacheprovider", "-v", cwd=out)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    passed = re.findall(r"^tests/(test_\w+)\.py::\S+ PASSED", done.stdout, re.MULTILINE)
    assert passed.count("test_parse") >= 10 and passed.count("test_contract") >= 5, done.stdout[-4000:]

    # and a user's manager of the new kind works through the command line, on the embedded database
    config = tmp_path / "cloudmeter.toml"
    data = tmp_path / "data"
    stub_server = [str(python), str(out / "tests" / "stub_server.py"), "--token", "s3cret-t0ken"]
    with serving(stub_server, tmp_path, "the stub server") as (_, port), EmbeddedPostgres(data) as server:
        config.write_text(f'[managers.x]\nkind = "{KIND}"\nurl = "http://127.0.0.1:{port}"\ntoken = "env:ACME_TOKEN"\n')
        env = {"CLOUDMETER_DATA_DIR": str(data), "ACME_TOKEN": "s3cret-t0ken"}
        verified = run(python, "-m", "cloudmeter", "managers", "verify", "x", "--config", config, env=env)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert re.search(r"x\s+acme\s+ok", verified.stdout), verified.stdout
        since, until = (moment.isoformat() for moment in WINDOW)
        captured = run(
            python, "-m", "cloudmeter", "capture", "--manager", "x", "--since", since, "--until", until,
            "--config", config, env=env,
        )  # fmt: skip
        assert captured.returncode == 0, captured.stdout + captured.stderr
        want = expected_samples(out)
        assert f"x: {want} samples" in captured.stdout
        with psycopg.connect(server.uri) as conn:
            stored = conn.execute("SELECT count(*) FROM metric_samples").fetchone()
            retired = conn.execute("SELECT ems_ref FROM resources WHERE retired_at IS NOT NULL").fetchall()
        assert stored == (want,) and want == 28
        assert retired == [("vm-3",)]
        wrong = run(
            python, "-m", "cloudmeter", "managers", "verify", "x", "--json", "--config", config,
            env=env | {"ACME_TOKEN": "not-the-token"},
        )  # fmt: skip
        assert wrong.returncode == 1, wrong.stdout + wrong.stderr
        (result,) = json.loads(wrong.stdout)
        assert result["result"].startswith("CollectorAuthError: manager 'x': acme GET /resources refused the token")
        assert "not-the-token" not in wrong.stdout + wrong.stderr
