"""The daemon behind ``cloudmeter run``: apscheduler jobs per leased manager, until SIGTERM or SIGINT.

Every ``lease_interval_s`` a sweep counts the live daemons, gives back managers beyond this daemon's fair
share, leases free ones up to it (PostgreSQL advisory locks, ``storage.leases``) and adds or removes their
jobs: inventory refresh and capture (which rolls up in-stream, rebuilds dirty hours and closes local days).
One daemon, the holder of the maintenance lease, creates partitions and drops expired ones.

Per manager, jobs run one at a time (a lock) and a failure backs the manager off exponentially
(``next_attempt_at``) without touching the others. Each captured batch commits whole with its rows, so a kill
at any moment loses nothing already committed and the next capture resumes from ``captured_until``. On
SIGTERM/SIGINT the daemon stops taking new steps and waits for running ones to commit.
"""

from __future__ import annotations

import logging
import math
import random
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType

import psycopg
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from cloudmeter.collectors.base import Collector, ManagerConfig
from cloudmeter.collectors.registry import build_collector
from cloudmeter.config import Settings
from cloudmeter.errors import CloudmeterError
from cloudmeter.scheduler import jobs, metrics
from cloudmeter.scheduler.fleet import fleet
from cloudmeter.scheduler.pipeline import StreamRollup
from cloudmeter.scheduler.windows import CapturePlan, next_window
from cloudmeter.storage import managers, partitions
from cloudmeter.storage.database import Database
from cloudmeter.storage.dsn import scrub
from cloudmeter.storage.leases import Leases

log = logging.getLogger(__name__)


@dataclass
class _Leased:
    """A manager this daemon runs."""

    name: str
    id: int
    collector: Collector
    lock: threading.Lock = field(default_factory=threading.Lock)
    stream: StreamRollup | None = None


class Daemon:
    """Runs the jobs of the managers it leases until ``stop`` is set."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.stop = threading.Event()
        schedule = settings.schedule
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(schedule.max_concurrent_jobs)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": schedule.capture_interval_s},
            timezone=UTC,
        )
        self._leases: Leases | None = None
        self._leased: dict[str, _Leased] = {}
        self._idle_said = False  # warned that there is nothing to run (once, until there is something)

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT (or ``stop``), then let running steps commit and give the leases back."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        self.db.migrate()
        with self.db.connection() as conn:  # the config file's managers; added ones are stored already
            for name, config in self.settings.managers.items():
                managers.register_manager(conn, name, config.kind, config.public_fields())
        if self.settings.metrics_port is not None:
            metrics.serve(self.settings.metrics_port)
        schedule = self.settings.schedule
        now = datetime.now(UTC)
        self.scheduler.add_job(self._sweep, "interval", seconds=schedule.lease_interval_s, next_run_time=now)
        first_maintenance = now + timedelta(seconds=schedule.lease_interval_s)  # after the first sweep joined
        self.scheduler.add_job(
            self._maintain, "interval", seconds=schedule.maintenance_interval_s, next_run_time=first_maintenance
        )
        self.scheduler.start()
        log.info("daemon started on %s", self.db.display_dsn)
        self.stop.wait()
        log.info("stopping: waiting for running jobs to commit")
        self.scheduler.shutdown(wait=True)
        if self._leases is not None:
            self._leases.conn.close()
        log.info("stopped")

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        del frame
        log.info("received %s", signal.Signals(signum).name)
        self.stop.set()

    # --- leases ---------------------------------------------------------------------------------------------

    def _sweep(self) -> None:
        """Rebalance: give back what is over the fair share or gone, lease free managers up to it."""
        if self.stop.is_set():
            return
        try:
            self._rebalance()
        except psycopg.OperationalError as exc:  # the session, and with it every lock, is gone
            log.warning("lost the lease connection (%s); dropping all managers until it is back", scrub(str(exc)))
            for name in list(self._leased):
                self._drop(name, release=False)
            self._leases = None

    def _rebalance(self) -> None:
        if self._leases is None:
            self._leases = Leases(self.db.dedicated_connection())
            slot = self._leases.join()
            log.info("joined as daemon slot %d", slot)
        found = fleet(self.db, self.settings.managers)
        for name, why in found.broken.items():
            log.error("manager %s is skipped: %s", name, why)
        wanted = self._enabled(found.configs)
        if not wanted and not self._idle_said:
            log.warning(
                "no enabled managers (%d configured): add [managers.NAME] to the config file or use "
                "`cloudmeter managers add`, or `managers enable NAME`; waiting for one",
                len(found.configs),
            )
        self._idle_said = not wanted
        share = math.ceil(len(wanted) / self._leases.daemons())
        for name in [n for n in self._leased if n not in wanted]:
            self._drop(name)
        for name in list(self._leased)[share:]:
            self._drop(name)
        free = [name for name in wanted if name not in self._leased]
        random.shuffle(free)
        for name in free:
            if len(self._leased) >= share:
                break
            if self._leases.try_acquire(wanted[name][0]):
                self._take(name, *wanted[name])
        metrics.LEASED.set(len(self._leased))

    def _enabled(self, configs: dict[str, ManagerConfig]) -> dict[str, tuple[int, ManagerConfig]]:
        """Enabled managers by name with their ids."""
        with self.db.connection() as conn:
            rows = {row.name: row for row in managers.list_managers(conn)}
        return {
            name: (rows[name].id, config)
            for name, config in configs.items()
            if name in rows and config.enabled and rows[name].enabled
        }

    def _take(self, name: str, manager_id: int, config: ManagerConfig) -> None:
        schedule = self.settings.schedule
        leased = self._leased[name] = _Leased(name, manager_id, build_collector(name, config))
        now = datetime.now(UTC)
        for job, every, first in (
            ("refresh", schedule.refresh_interval_s, now),
            ("capture", schedule.capture_interval_s, now + timedelta(seconds=1)),
        ):
            self.scheduler.add_job(
                self._guarded,
                "interval",
                args=(leased, job),
                seconds=every,
                jitter=schedule.jitter_s,
                next_run_time=first,
                id=f"{job}:{name}",
                name=f"{job} {name}",  # apscheduler's log lines name the job by this, not by the method
            )
        log.info("leased manager %s", name)

    def _drop(self, name: str, release: bool = True) -> None:
        """Stop running ``name``'s jobs and give its lease back (after a running step has committed)."""
        leased = self._leased.pop(name)
        for job in ("refresh", "capture"):
            if self.scheduler.get_job(f"{job}:{name}") is not None:
                self.scheduler.remove_job(f"{job}:{name}")
        with leased.lock:  # a running step finishes first
            if release and self._leases is not None:
                self._leases.release(leased.id)
        log.info("gave back manager %s", name)

    # --- jobs ---------------------------------------------------------------------------------------------

    def _guarded(self, leased: _Leased, job: str) -> None:
        """Run one job of a manager unless it is backing off; record a failure and back it off."""
        step: Callable[[_Leased, managers.ManagerRow], None] = self._refresh if job == "refresh" else self._capture
        name = leased.name
        with leased.lock:
            if self.stop.is_set():
                return
            with self.db.connection() as conn:
                row = managers.manager_by_id(conn, leased.id)
            now = datetime.now(UTC)
            if row.next_attempt_at is not None and row.next_attempt_at > now:
                log.debug("manager %s backs off until %s", name, row.next_attempt_at)
                return
            try:
                step(leased, row)
                metrics.JOBS.labels(name, job, "ok").inc()
            except Exception as exc:
                self._failed(leased, job, exc)

    def _failed(self, leased: _Leased, job: str, exc: Exception) -> None:
        name = leased.name
        leased.stream = None  # in-stream state may be ahead of storage: resume from storage next time
        # stored in managers.last_error and logged: never a DSN a library quoted
        message = scrub(str(exc) if isinstance(exc, CloudmeterError) else f"{type(exc).__name__}: {exc}")
        schedule = self.settings.schedule
        with self.db.connection() as conn:
            retry_at = managers.mark_failed(
                conn,
                leased.id,
                f"{job}: {message}",
                datetime.now(UTC),
                (schedule.backoff_initial_s, schedule.backoff_max_s),
            )
        metrics.JOBS.labels(name, job, "failed").inc()
        log.warning("manager %s: %s failed, next attempt at %s: %s", name, job, retry_at, message)
        if not isinstance(exc, CloudmeterError):
            log.debug("traceback", exc_info=exc)

    def _refresh(self, leased: _Leased, row: managers.ManagerRow) -> None:
        del row  # a refresh does not depend on progress
        jobs.refresh_inventory(self.db, leased.id, leased.collector)

    def _capture(self, leased: _Leased, row: managers.ManagerRow) -> None:
        """Capture from the last captured time (``row``'s) up to now, a window at a time, stopping between
        windows on shutdown."""
        jobs.ensure_inventory(self.db, leased.id, leased.collector)
        schedule = self.settings.schedule
        plan = CapturePlan(
            schedule.capture_overlap_s, schedule.initial_capture_s, schedule.max_window_s, leased.collector.retention_s
        )
        leased.stream = leased.stream or StreamRollup(self.db, leased.id, self.settings.time_zones)
        now = datetime.now(UTC)
        captured_until = row.captured_until
        while not self.stop.is_set():
            window = next_window(captured_until, now, plan)
            if window is None:
                break
            result = jobs.capture(self.db, leased.id, leased.collector, window, stream=leased.stream)
            captured_until = max(captured_until or window.end, window.end)  # what jobs.capture marked
            metrics.SAMPLES.labels(leased.name).inc(result.rows)
            metrics.LAG.labels(leased.name).set((datetime.now(UTC) - window.end).total_seconds())
            log.info("manager %s: captured %d samples, %s", leased.name, result.rows, window)

    def _maintain(self) -> None:
        """Partitions ahead and retention, by the one daemon holding the maintenance lease."""
        if self.stop.is_set() or self._leases is None or not self._leases.try_maintenance():
            return
        retention = self.settings.retention.model_dump()
        mode = self.db.mode()
        if mode is None:
            return
        with self.db.connection() as conn:
            dropped = partitions.maintain(conn, mode, retention, datetime.now(UTC), self.db.native_partitions())
        log.info("maintenance done; dropped %d expired partitions", len(dropped))


def run(db: Database, settings: Settings) -> None:
    """Run the daemon in this process until SIGTERM or SIGINT."""
    Daemon(db, settings).run()
