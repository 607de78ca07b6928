"""``managers add NAME --kind K`` in a terminal asks for each field of the kind's config (issue 21), driven through
a pseudo-terminal: the real ``cloudmeter`` console script on the database a user would give it (CLOUDMETER_DSN
and a config file)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pexpect
import psycopg
import pytest

from tests.loopback import in_thread

CLOUDMETER = Path(sys.executable).with_name("cloudmeter")
#: A prompt line as the terminal shows it: the field, its choices, the value in parentheses, then the answer.
PROMPT = re.compile(r"^(\w+)(?:: environment variable holding it)?(?: \[[^\]\n]*\])? \([^()\n]*\):( |$)")
UNREACHABLE = "http://127.0.0.1:1"
SECRET = "pw-Zq81-never-shown"


class Terminal:
    """``cloudmeter ARGS`` on a pseudo-terminal 80 columns wide; ``transcript`` is everything it showed."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDMETER_", "CM_TEST_"))}
        full_env |= {"COLUMNS": "80", "TERM": "dumb"} | env  # dumb: no escape codes between the words expected
        self._log = io.StringIO()
        self.child = pexpect.spawn(
            str(CLOUDMETER), list(args), env=full_env, encoding="utf-8", timeout=60, dimensions=(50, 80)
        )
        self.child.logfile_read = self._log

    def answer(self, prompt: str, text: str) -> None:
        """Wait for ``prompt`` (the end of the prompt line, e.g. ``seed (42): ``), then type ``text`` and Enter."""
        self.child.expect_exact(prompt)
        self.child.sendline(text)

    def status(self) -> int:
        """The exit status, once the command has ended."""
        self.child.expect(pexpect.EOF)
        self.child.close()
        assert self.child.exitstatus is not None, f"killed by signal {self.child.signalstatus}: {self.transcript}"
        return self.child.exitstatus

    @property
    def transcript(self) -> str:
        return self._log.getvalue().replace("\r\n", "\n")

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.transcript.splitlines()]

    def prompts(self) -> list[str]:
        """Each prompt line with the answer the terminal echoed (trailing spaces cut)."""
        return [line for line in self.lines() if PROMPT.match(line)]

    def after(self, line: str) -> str:
        """The line shown after ``line`` (what the command said to that answer)."""
        lines = self.lines()
        return lines[lines.index(line) + 1]

    def text(self) -> str:
        """The transcript with rich's wrapping at 80 columns undone."""
        return " ".join(self.transcript.split())


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``cloudmeter ARGS`` with no terminal (stdin is /dev/null)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDMETER_", "CM_TEST_"))}
    return subprocess.run(
        [str(CLOUDMETER), *args],
        check=False,
        capture_output=True,
        text=True,
        env=full_env | {"COLUMNS": "80"} | env,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


def database_text(dsn: str) -> str:
    """Every row of the managers table as JSON text (to look for a secret in)."""
    with psycopg.connect(dsn) as conn:
        return "\n".join(row[0] for row in conn.execute("SELECT row_to_json(m)::text FROM managers m"))


def stored(dsn: str) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """The managers table: each manager's kind, source and stored config."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT name, kind, source, config FROM managers ORDER BY name").fetchall()
    return {name: (kind, source, config) for name, kind, source, config in rows}


@pytest.fixture
def env(dsn: str, tmp_path: Path) -> dict[str, str]:
    """What a user sets: the database, and a config file (with no managers in it)."""
    config = tmp_path / "cloudmeter.toml"
    config.write_text('time_zones = ["UTC"]\n')
    return {"CLOUDMETER_DSN": dsn, "CLOUDMETER_CONFIG": str(config)}


class _GnocchiStub(BaseHTTPRequestHandler):
    """Gnocchi's ``instance`` resource type behind basic auth: user admin, password ``SECRET`` only."""

    def do_GET(self) -> None:
        wanted = "Basic " + base64.b64encode(f"admin:{SECRET}".encode()).decode()
        if self.headers.get("Authorization") != wanted:
            self._reply(401, {"title": "Unauthorized"})
        elif self.path == "/v1/resource_type/instance":
            self._reply(200, {"name": "instance", "state": "active", "attributes": {}})
        else:
            self._reply(404, {"title": "Not Found"})

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def gnocchi_stub() -> Iterator[str]:
    """The URL of a Gnocchi stub that answers verify's request for the one right password."""
    with in_thread(_GnocchiStub) as url:
        yield url


SIMULATOR_ANSWERS = [
    ("seed (42): ", "7"),
    ("region (sim-region-1): ", ""),
    ("clusters (2): ", "1"),
    ("hosts_per_cluster (4): ", "2"),
    ("vms (40): ", "5"),
    ("interval_s (60): ", "7"),
    ("interval_s (60): ", "300"),
    ("coarse_interval_s (300): ", ""),
    ("coarse_share (0.0): ", "1.5"),
    ("coarse_share (0.0): ", ""),
    ("start (2026-01-01T00:00:00+00:00): ", "2026-03-01T00:00Z"),
    ("horizon_days (30): ", ""),
    ("fail [auth/unavailable] (none): ", "sometimes"),
    ("fail [auth/unavailable] (none): ", ""),
]


def test_a_simulator_manager_is_asked_field_by_field_verified_saved_and_shown(env: dict[str, str], dsn: str) -> None:
    term = Terminal("managers", "add", "lab", "--kind", "simulator", env=env)
    for prompt, text in SIMULATOR_ANSWERS:
        term.answer(prompt, text)

    assert term.status() == 0, term.transcript
    assert term.prompts() == [(prompt + text).rstrip() for prompt, text in SIMULATOR_ANSWERS]
    assert term.after("interval_s (60): 7") == "interval_s must divide 3600 (e.g. 60, 300, 3600), got 7"
    assert term.after("coarse_share (0.0): 1.5") == "Input should be less than or equal to 1"
    assert term.after("fail [auth/unavailable] (none): sometimes") == "Input should be 'auth' or 'unavailable'"
    text = term.text()
    assert "interval_s (integer, 1 to 3600) - seconds between samples; divides 3600 interval_s (60):" in text
    assert "fail (one of auth, unavailable) - make every call fail as a broken manager would" in text
    assert "Not asked" not in text  # the simulator has no tables
    assert term.lines()[-3:] == ["verifying lab ...", "verify: ok", "added manager lab (simulator)"]
    assert stored(dsn) == {
        "lab": (
            "simulator",
            "cli",
            {
                "kind": "simulator",
                "seed": 7,
                "clusters": 1,
                "hosts_per_cluster": 2,
                "vms": 5,
                "interval_s": 300,
                "start": "2026-03-01T00:00:00Z",
            },
        )
    }

    shown = run("managers", "show", "lab", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {
        "name": "lab",
        "kind": "simulator",
        "source": "cli",
        "config": {
            "kind": "simulator",
            "enabled": True,
            "seed": 7,
            "region": "sim-region-1",
            "clusters": 1,
            "hosts_per_cluster": 2,
            "vms": 5,
            "interval_s": 300,
            "coarse_interval_s": 300,
            "coarse_share": 0.0,
            "start": "2026-03-01T00:00:00Z",
            "horizon_days": 30,
            "fail": None,
        },
        "defaults": ["enabled", "region", "coarse_interval_s", "coarse_share", "horizon_days", "fail"],
    }


OPENSTACK_BASIC = [
    ("auth_mode [keystone/basic] (keystone): ", "basic"),
    ("auth_url (none): ", ""),
    ("username (admin): ", ""),
    ("password: environment variable holding it (none): ", "CM_TEST_OS_PASSWORD"),
    ("project_name (none): ", ""),
    ("user_domain_name (Default): ", ""),
    ("project_domain_name (Default): ", ""),
    ("region (none): ", ""),
    ("interface [public/internal/admin] (public): ", ""),
    ("gnocchi_url (none): ", UNREACHABLE),
    ("granularity_s (none): ", ""),
    ("polling_interval_s (none): ", ""),
    ("retired_lookback_days (30): ", ""),
    ("retention_days (none): ", ""),
    ("timeout_s (30.0): ", "5"),
    ("verify_tls [yes/no] (yes): ", ""),
    ("amqp_url: environment variable holding it (none): ", ""),
    ("amqp_exchange (nova): ", ""),
    ("amqp_queue (none): ", ""),
    ("amqp_durable_exchange [yes/no] (no): ", ""),
    ("amqp_max_queued (100000): ", ""),
]


def test_an_openstack_manager_that_fails_verify_is_not_saved_when_told_no(env: dict[str, str], dsn: str) -> None:
    term = Terminal("managers", "add", "os", "--kind", "openstack", env=env | {"CM_TEST_OS_PASSWORD": SECRET})
    for prompt, text in OPENSTACK_BASIC:
        term.answer(prompt, text)
    term.answer("save it anyway? [y/n] (n): ", "no")

    assert term.status() == 1, term.transcript
    assert term.prompts() == [(prompt + text).rstrip() for prompt, text in OPENSTACK_BASIC]
    text = term.text()
    assert (
        "Not asked (tables): host_clusters, host_capacity, flavors, amqp_topics; give them with --set or in a "
        "[managers.os] table of the config file."
    ) in text
    assert term.after("password: environment variable holding it (none): CM_TEST_OS_PASSWORD") == (
        "  CM_TEST_OS_PASSWORD is set here: verify uses it"
    )
    assert (
        "verify failed: SourceUnavailable: manager 'os': Gnocchi at http://127.0.0.1:1 is unreachable ([Errno 111] "
        "Connection refused); check gnocchi_url/auth_url save it anyway? [y/n] (n): no error: not saved: os failed "
        "verify"
    ) in text
    assert "Traceback" not in text
    assert SECRET not in term.transcript
    assert stored(dsn) == {}
    assert SECRET not in database_text(dsn)


def test_answers_that_do_not_fit_together_are_asked_again_and_a_typed_secret_is_hidden_and_never_stored(
    env: dict[str, str], dsn: str, gnocchi_stub: str
) -> None:
    """Keystone (the default) without auth_url, password and project_name: the model says so and every field is
    asked again; then basic auth with a password typed hidden (its variable is not set here) verifies against a
    stub that accepts only that password, and only the variable's name is stored."""
    term = Terminal("managers", "add", "os", "--kind", "openstack", env=env)
    first = [(prompt, "CM_TEST_TYPED" if "password" in prompt else "") for prompt, _ in OPENSTACK_BASIC]
    for prompt, text in first:
        term.answer(prompt, text)
        if "password" in prompt:
            term.answer("  value of CM_TEST_TYPED: ", "")  # Enter: none (yet)
    second = [
        ("auth_mode [keystone/basic] (keystone): ", "basic"),
        *((prompt, "") for prompt, _ in OPENSTACK_BASIC[1:3]),
        ("password: environment variable holding it (CM_TEST_TYPED): ", "CM_TEST_HIDDEN"),
        *((prompt, "") for prompt, _ in OPENSTACK_BASIC[4:9]),
        ("gnocchi_url (none): ", gnocchi_stub),
        *((prompt, "") for prompt, _ in OPENSTACK_BASIC[10:]),
    ]
    for prompt, text in second:
        term.answer(prompt, text)
        if "password" in prompt:
            term.answer("  value of CM_TEST_HIDDEN: ", SECRET)

    assert term.status() == 0, term.transcript
    assert term.prompts() == [(prompt + text).rstrip() for prompt, text in first + second]
    assert (
        "These answers do not fit together: auth_mode 'keystone' needs auth_url, project_name (or set auth_mode = "
        "'basic') Once more (Enter keeps each answer):"
    ) in term.text()
    assert term.lines()[-4:] == [
        "verifying os ...",
        "verify: ok",
        "added manager os (openstack)",
        "note: export CM_TEST_HIDDEN where cloudmeter runs os",
    ]
    assert SECRET not in term.transcript  # the terminal did not echo it
    assert stored(dsn) == {
        "os": (
            "openstack",
            "cli",
            {"kind": "openstack", "auth_mode": "basic", "password": "env:CM_TEST_HIDDEN", "gnocchi_url": gnocchi_stub},
        )
    }
    assert SECRET not in database_text(dsn)


def test_a_wrong_password_from_the_environment_fails_verify_against_the_stub(
    env: dict[str, str], dsn: str, gnocchi_stub: str
) -> None:
    answers = [(prompt, gnocchi_stub if prompt.startswith("gnocchi_url") else text) for prompt, text in OPENSTACK_BASIC]
    term = Terminal("managers", "add", "os", "--kind", "openstack", env=env | {"CM_TEST_OS_PASSWORD": "not-it"})
    for prompt, text in answers:
        term.answer(prompt, text)
    term.answer("save it anyway? [y/n] (n): ", "")

    assert term.status() == 1, term.transcript
    assert "verify failed: CollectorAuthError: manager 'os': invalid credentials:" in term.text()
    assert stored(dsn) == {}


@pytest.mark.parametrize(
    ("send", "status", "message"),
    [
        (lambda child: child.sendintr(), 130, "error: stopped (Ctrl-C); nothing saved"),
        (lambda child: child.sendeof(), 1, "error: stopped at the end of input; nothing saved"),
    ],
    ids=["ctrl-c", "eof"],
)
def test_ctrl_c_or_end_of_input_stops_with_one_line_and_nothing_saved(
    env: dict[str, str], dsn: str, send: Any, status: int, message: str
) -> None:
    term = Terminal("managers", "add", "lab", "--kind", "simulator", env=env)
    term.answer("seed (42): ", "7")
    term.child.expect_exact("region (sim-region-1): ")
    send(term.child)

    assert term.status() == status, term.transcript
    assert term.lines()[-1] == message
    assert "Traceback" not in term.transcript
    assert stored(dsn) == {}


def test_a_taken_name_fails_before_the_questions(env: dict[str, str], dsn: str) -> None:
    assert run("managers", "add", "lab", "--kind", "simulator", env=env).returncode == 0
    term = Terminal("managers", "add", "lab", "--kind", "simulator", env=env)

    assert term.status() == 2
    assert term.lines() == ["error: a manager named 'lab' exists already; remove it first or pick another name"]


def test_set_or_no_terminal_asks_nothing(env: dict[str, str], dsn: str) -> None:
    with_set = Terminal("managers", "add", "tty", "--kind", "simulator", "--set", "vms=3", env=env)
    assert with_set.status() == 0
    assert with_set.lines() == ["added manager tty (simulator)"]

    piped = run("managers", "add", "piped", "--kind", "simulator", env=env)
    assert (piped.returncode, piped.stdout, piped.stderr) == (0, "added manager piped (simulator)\n", "")
    assert {name: config for name, (_, _, config) in stored(dsn).items()} == {
        "piped": {"kind": "simulator"},
        "tty": {"kind": "simulator", "vms": 3},
    }
