"""A server that is up but set up so cloudmeter cannot work: one line naming the problem and its fix, exit 2.

Every case is a real server set up that way (tests/fix_db.py): password logins, a role without CREATE on the
schema, a read-only role or database, a hot standby, a full tmpfs tablespace, PostgreSQL 14, and PostgreSQL 18
offering a timescaledb extension that it does not preload (whose library ends the session the way the real
loader does). Each runs the real ``cloudmeter`` command and reads its stderr: one line, no traceback, no
warning from the connection pool.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from cloudmeter.storage import schema
from cloudmeter.storage.server import preloaded_libraries
from tests.fix_db import FAKE_TIMESCALEDB_VERSION, Cluster

ALL = [m.version for m in schema.MIGRATIONS]  # a new database gets every migration

_names = itertools.count()


def cloudmeter(*args: str, dsn: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDMETER_")}
    env.update(COLUMNS="80", CLOUDMETER_DSN=dsn, CLOUDMETER_DATA_DIR=str(data_dir))
    return subprocess.run(
        [sys.executable, "-m", "cloudmeter", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def refusal(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The one line a refused command printed on stderr (after ``error: ``), checking the exit code."""
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # no pool warning, no hint lines
    assert lines[0].startswith("error: ")
    return lines[0].removeprefix("error: ")


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert (result.returncode, result.stderr) == (0, ""), result.stdout + result.stderr
    return " ".join(result.stdout.split())  # rich wraps at 80 columns


def tables(cluster: Cluster, dbname: str) -> list[str]:
    with psycopg.connect(cluster.admin(dbname)) as conn:
        rows = conn.execute("SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace").fetchall()
    return sorted(name for (name,) in rows)


def test_a_wrong_password_names_the_user_and_the_setting(strict_pg15: Cluster, tmp_path: Path) -> None:
    dsn = strict_pg15.dsn("meter", "not-the-password", "cm")
    assert refusal(cloudmeter("db", "init", dsn=dsn, data_dir=tmp_path)) == (
        f"PostgreSQL refused the connection (postgresql://meter:********@127.0.0.1:{strict_pg15.port}/cm): "
        'password authentication failed for user "meter"; fix the user name or password in CLOUDMETER_DSN'
    )
    assert "not-the-password" not in refusal(cloudmeter("status", dsn=dsn, data_dir=tmp_path))


def test_a_missing_database_says_create_it(strict_pg15: Cluster, tmp_path: Path) -> None:
    dsn = strict_pg15.dsn("meter", "meter-pw", "nosuchdb")
    assert refusal(cloudmeter("db", "init", dsn=dsn, data_dir=tmp_path)) == (
        f"PostgreSQL refused the connection (postgresql://meter:********@127.0.0.1:{strict_pg15.port}/nosuchdb): "
        'database "nosuchdb" does not exist; create it (createdb -O OWNER NAME) or fix the database name in '
        "CLOUDMETER_DSN"
    )


def test_an_unreachable_server_stays_exit_1_it_may_come_back(tmp_path: Path) -> None:
    line = refusal(cloudmeter("db", "init", dsn="postgresql://meter:pw@127.0.0.1:1/cm", data_dir=tmp_path), code=1)
    assert line.startswith("cannot connect to PostgreSQL (postgresql://meter:********@127.0.0.1:1/cm): ")
    assert line.endswith("Connection refused. Check CLOUDMETER_DSN, or unset it to use the embedded server")


def test_no_create_privilege_names_the_grant_which_then_works(strict_pg15: Cluster, tmp_path: Path) -> None:
    db = f"grant{next(_names)}"
    strict_pg15.sql(f"CREATE DATABASE {db} OWNER meter")
    dsn = strict_pg15.dsn("reader", "reader-pw", db)
    assert refusal(cloudmeter("db", "init", dsn=dsn, data_dir=tmp_path)) == (
        f'user "reader" may not create tables in schema "public" of database "{db}" (no CREATE privilege); as its '
        'owner or a superuser run GRANT CREATE ON SCHEMA "public" TO "reader", or connect as the database owner'
    )
    assert tables(strict_pg15, db) == []
    strict_pg15.sql('GRANT CREATE ON SCHEMA "public" TO "reader"', dbname=db)
    assert ok(cloudmeter("db", "init", dsn=dsn, data_dir=tmp_path)).startswith(f"applied migrations {ALL}")


def test_a_user_without_create_may_use_a_schema_the_owner_made(strict_pg15: Cluster, tmp_path: Path) -> None:
    db = f"owned{next(_names)}"
    strict_pg15.sql(f"CREATE DATABASE {db} OWNER meter")
    ok(cloudmeter("db", "init", dsn=strict_pg15.dsn("meter", "meter-pw", db), data_dir=tmp_path))
    strict_pg15.sql("SET ROLE meter", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader", dbname=db)
    reader = strict_pg15.dsn("reader", "reader-pw", db)
    assert ok(cloudmeter("db", "migrate", dsn=reader, data_dir=tmp_path)).startswith(
        f"schema is up to date (version {schema.LATEST}, mode native)"
    )


def test_a_read_only_role_names_where_it_is_set_and_the_reset(strict_pg15: Cluster, tmp_path: Path) -> None:
    dsn = strict_pg15.dsn("frozen", "frozen-pw", "frozendb")
    assert refusal(cloudmeter("db", "init", dsn=dsn, data_dir=tmp_path)) == (
        'transactions on this connection are read-only (default_transaction_read_only = on, set for role "frozen"); '
        'have an administrator run ALTER ROLE "frozen" RESET default_transaction_read_only'
    )
    assert tables(strict_pg15, "frozendb") == []


def test_a_read_only_database_names_alter_database_which_then_works(strict_pg15: Cluster, tmp_path: Path) -> None:
    db = f"ro{next(_names)}"
    strict_pg15.sql(f"CREATE DATABASE {db} OWNER meter", f"ALTER DATABASE {db} SET default_transaction_read_only = on")
    dsn = strict_pg15.dsn("meter", "meter-pw", db)
    assert refusal(cloudmeter("db", "init", dsn=dsn, data_dir=tmp_path)) == (
        f'transactions on this connection are read-only (default_transaction_read_only = on, set for database "{db}"'
        f'); have an administrator run ALTER DATABASE "{db}" RESET default_transaction_read_only'
    )
    strict_pg15.sql(f'ALTER DATABASE "{db}" RESET default_transaction_read_only')
    ok(cloudmeter("db", "init", dsn=dsn, data_dir=tmp_path))


def test_a_hot_standby_says_use_the_primary_and_status_still_reads_it(
    strict_pg15: Cluster, standby_pg15: Cluster, tmp_path: Path
) -> None:
    dsn = standby_pg15.dsn("meter", "meter-pw", "cm")
    assert refusal(cloudmeter("db", "init", dsn=dsn, data_dir=tmp_path)) == (
        "the server is a read-only standby (pg_is_in_recovery() is true): cloudmeter writes; point CLOUDMETER_DSN "
        "at the primary server"
    )
    assert refusal(cloudmeter("capture", "-m", "lab", "--since", "2026-01-01", dsn=dsn, data_dir=tmp_path)).startswith(
        "the server is a read-only standby"
    )
    assert json.loads(ok(cloudmeter("status", "--json", dsn=dsn, data_dir=tmp_path)))["schema_version"] == 0


def test_a_full_disk_is_named_and_leaves_no_half_made_schema(disk_full_pg15: Cluster, tmp_path: Path) -> None:
    dsn = disk_full_pg15.dsn("postgres", "unused", "cm")
    line = refusal(cloudmeter("db", "init", dsn=dsn, data_dir=tmp_path))
    assert re.fullmatch(
        r"PostgreSQL ran out of disk space while creating or upgrading the schema: could not extend file "
        r'"pg_tblspc/\d+/PG_15_\d+/\d+/\d+": No space left on device \(SQLSTATE 53100\); free space on the disk '
        r"that holds the server's data \(or the tablespace\), then run the command again",
        line,
    ), line
    assert tables(disk_full_pg15, "cm") == []


def test_postgresql_14_is_refused_naming_the_supported_versions(pg14_server: Cluster, tmp_path: Path) -> None:
    dsn = pg14_server.dsn("postgres", "unused", "cm")
    expected = (
        f"PostgreSQL 14.23 is not supported (postgresql://postgres:********@127.0.0.1:{pg14_server.port}/cm): "
        "cloudmeter needs PostgreSQL 15 or newer (tested on 15 to 18); upgrade the server, or unset CLOUDMETER_DSN "
        "to use the embedded PostgreSQL 18"
    )
    assert refusal(cloudmeter("db", "init", dsn=dsn, data_dir=tmp_path)) == expected
    assert refusal(cloudmeter("status", dsn=dsn, data_dir=tmp_path)) == expected
    assert tables(pg14_server, "cm") == []


UNPRELOADED = (
    f"TimescaleDB {FAKE_TIMESCALEDB_VERSION} is installed on this server but not in shared_preload_libraries "
    "({now}), so CREATE EXTENSION timescaledb would fail: add 'timescaledb' to shared_preload_libraries in "
    "postgresql.conf and restart PostgreSQL, then run `cloudmeter db init` again for hypertables; or run "
    "`cloudmeter db init --mode native` for native partitions (a database keeps the mode it is created in)"
)


def test_the_fake_timescaledb_fails_like_the_real_one_when_not_preloaded(unpreloaded_timescaledb_pg18: Cluster) -> None:
    server = unpreloaded_timescaledb_pg18
    db = f"fake{next(_names)}"
    server.sql(f"CREATE DATABASE {db}")
    with psycopg.connect(server.admin(db), autocommit=True) as conn:
        offered = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'")
        assert offered.fetchall() == [(FAKE_TIMESCALEDB_VERSION,)]
        with pytest.raises(psycopg.Error, match='extension "timescaledb" must be preloaded') as raised:
            conn.execute("CREATE EXTENSION timescaledb")
        assert raised.value.sqlstate == "XX000"
        assert conn.broken  # FATAL: the server ended the session


def test_timescaledb_offered_but_not_preloaded_is_refused_before_create_extension(
    unpreloaded_timescaledb_pg18: Cluster, tmp_path: Path
) -> None:
    server = unpreloaded_timescaledb_pg18
    db = f"tsdb{next(_names)}"
    server.sql(f"CREATE DATABASE {db}")
    dsn = server.dsn("postgres", "unused", db)
    assert refusal(cloudmeter("db", "init", dsn=dsn, data_dir=tmp_path)) == UNPRELOADED.format(now="now empty")
    assert refusal(cloudmeter("db", "init", "--mode", "timescaledb", dsn=dsn, data_dir=tmp_path)) == (
        UNPRELOADED.format(now="now empty")
    )
    assert refusal(cloudmeter("demo", "--vms", "2", "--days", "1", dsn=dsn, data_dir=tmp_path)) == (
        UNPRELOADED.format(now="now empty")
    )  # every command that creates the schema
    assert tables(server, db) == []
    before = json.loads(ok(cloudmeter("status", "--json", dsn=dsn, data_dir=tmp_path)))
    assert before["timescaledb"] == f"{FAKE_TIMESCALEDB_VERSION} (available, not preloaded)"
    assert before["notes"] == [UNPRELOADED.format(now="now empty")]

    assert ok(cloudmeter("db", "init", "--mode", "native", dsn=dsn, data_dir=tmp_path)).startswith(
        f"applied migrations {ALL} (version {schema.LATEST}, mode native)"
    )
    assert ok(cloudmeter("db", "migrate", dsn=dsn, data_dir=tmp_path)).startswith("schema is up to date")
    after = json.loads(ok(cloudmeter("status", "--json", dsn=dsn, data_dir=tmp_path)))
    assert (after["mode"], after["policies"]) == ("native", [])
    assert after["notes"] == [
        "TimescaleDB is on this server but this database was created with native partitions; it keeps them "
        "(a new database would get hypertables; existing rows are not converted)"
    ]
    assert refusal(cloudmeter("db", "init", "--mode", "timescaledb", dsn=dsn, data_dir=tmp_path)) == (
        "this database was created with native mode and keeps it; --mode timescaledb applies only to a new "
        "database (existing rows are not converted)"
    )


def test_a_user_who_may_not_read_the_preload_setting_gets_the_same_refusal(
    unpreloaded_timescaledb_pg18: Cluster, tmp_path: Path
) -> None:
    server = unpreloaded_timescaledb_pg18
    user, db = f"app{next(_names)}", f"appdb{next(_names)}"
    server.sql(f"CREATE ROLE {user} LOGIN", f"CREATE DATABASE {db} OWNER {user}")
    dsn = server.dsn(user, "unused", db)
    assert refusal(cloudmeter("db", "init", dsn=dsn, data_dir=tmp_path)) == UNPRELOADED.format(
        now="this user may not read the setting, and the library is not loaded"
    )


def test_shared_preload_libraries_is_read_the_way_postgresql_writes_it() -> None:
    assert preloaded_libraries("") == set()
    assert preloaded_libraries("timescaledb") == {"timescaledb"}
    assert preloaded_libraries(' pg_stat_statements , "$libdir/timescaledb.so",auto_explain') == {
        "pg_stat_statements",
        "timescaledb",
        "auto_explain",
    }
    assert "timescaledb" not in preloaded_libraries("timescaledb_toolkit, pg_cron")


def test_an_unknown_role_or_a_revoked_connect_names_the_fix(
    unpreloaded_timescaledb_pg18: Cluster, tmp_path: Path
) -> None:
    server = unpreloaded_timescaledb_pg18  # trusted logins: the server says which role is missing
    where = f"postgresql://{{user}}:********@127.0.0.1:{server.port}/{{db}}"
    assert refusal(cloudmeter("status", dsn=server.dsn("ghost", "pw", "postgres"), data_dir=tmp_path)) == (
        f'PostgreSQL refused the connection ({where.format(user="ghost", db="postgres")}): role "ghost" does not '
        "exist; create the role (CREATE ROLE name LOGIN PASSWORD '...') or fix the user name in CLOUDMETER_DSN"
    )
    user, db = f"outsider{next(_names)}", f"closed{next(_names)}"
    server.sql(f"CREATE ROLE {user} LOGIN", f"CREATE DATABASE {db}", f"REVOKE CONNECT ON DATABASE {db} FROM PUBLIC")
    assert refusal(cloudmeter("status", dsn=server.dsn(user, "pw", db), data_dir=tmp_path)) == (
        f"PostgreSQL refused the connection ({where.format(user=user, db=db)}): permission denied for database "
        f'"{db}"; have the database owner GRANT CONNECT ON DATABASE to this user, or connect as another user'
    )
