"""The daemon behind ``cloudmeter run``: apscheduler jobs per leased manager, until SIGTERM or SIGINT.

Every ``lease_interval_s`` a sweep counts the live daemons, gives back managers beyond this daemon's fair
share, leases free ones up to it (PostgreSQL advisory locks, ``storage.leases``) and adds or removes their
jobs: inventory refresh and capture (which rolls up in-stream, rebuilds dirty hours and closes local days), and
starts its event catcher where its source has events (``handler``), stopped when the manager is given back.
One daemon, the holder of the maintenance lease, creates partitions and drops expired ones.

Per manager, jobs run one at a time: a job that fires while another of its manager runs is run right after it by
the same worker, so a manager holds at most one worker. A job waits for each answer of its source at most
``bounded.FACTOR`` x the manager's ``timeout_s`` (``bounded``: a source that hangs or trickles bytes defeats a
read timeout). A failure backs the manager off exponentially (``next_attempt_at``) without touching the others;
a source that asked to slow down (``Throttled``) is left alone at least as long as it asked. Failures are logged
in one line each, and so is a database that cannot be reached to record them: no job lets an exception reach
apscheduler. A failed job runs again at ``next_attempt_at`` (its schedule is moved there), not at its next turn. A
manager added with ``managers add`` whose stored config does not load here (an ``env:`` variable that is not set)
fails the same way, as a ``config`` job, retried by a sweep at its ``next_attempt_at``. Each captured batch
commits whole with its rows, so a kill at any moment loses nothing already committed and the next capture resumes
from ``captured_until``. On SIGTERM/SIGINT the daemon stops taking new steps, gives up waiting on sources and
waits for running steps to commit.

Per capture job the daemon reads the source's retention once; a range before it that was never captured is
skipped in one warning and recorded in ``managers.skipped``. A run of windows that bring nothing is one log line
saying so and naming the newest sample stored; a source that has sent nothing for ``stale_after_intervals``
capture intervals of captured time is warned about once and flagged (``cloudmeter_source_stale``). What each job
asked of the source (``collectors.usage``: requests, CloudWatch metrics, US$) is added to the manager's totals and
to Prometheus counters; a capture job's figures and samples are also its manager's last cycle's.
"""

from __future__ import annotations

import logging
import math
import random
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Final

import psycopg
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from cloudmeter.collectors import usage
from cloudmeter.collectors.base import ManagerConfig
from cloudmeter.collectors.registry import build_collector
from cloudmeter.config import Settings
from cloudmeter.errors import CloudmeterError, ConfigError, StorageError, Throttled
from cloudmeter.redact import one_line
from cloudmeter.scheduler import bounded, handler, jobs, metrics
from cloudmeter.scheduler.cycle import Leased, capture_cycle
from cloudmeter.scheduler.fleet import fleet
from cloudmeter.storage import events, managers, partitions
from cloudmeter.storage.database import Database
from cloudmeter.storage.dsn import scrub
from cloudmeter.storage.leases import Leases

log = logging.getLogger(__name__)

#: How long a manager's event catcher is given to finish committing its batch when the manager is given back.
CATCHER_STOP_S: Final = 10.0
#: The longest a source's Retry-After is honoured (a larger hint is taken for this).
MAX_RETRY_AFTER_S: Final = 86400.0
#: What the database raises when it cannot be reached or refuses (a pool timeout is an OperationalError).
_DATABASE_ERRORS: Final = (psycopg.Error, StorageError)


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
        self._leased: dict[str, Leased] = {}
        self._idle_said = False  # warned that there is nothing to run (once, until there is something)
        self._lost_said = False  # warned that the lease connection is lost (once, until it is back)
        self._sweeping = threading.Lock()  # a sweep at a broken manager's retry time may meet the regular one

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
        for leased in self._leased.values():
            if leased.events is not None:
                leased.events.stop(CATCHER_STOP_S)
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
            with self._sweeping:
                self._rebalance()
            self._lost_said = False
        except psycopg.OperationalError as exc:  # the session, and with it every lock, is gone
            # said once per outage (a sweep runs every lease_interval_s), then at DEBUG until it is back
            level = logging.DEBUG if self._lost_said else logging.WARNING
            log.log(level, "lost the lease connection (%s); dropping all managers until it is back", _reason(exc))
            self._lost_said = True
            for name in list(self._leased):
                self._drop(name, release=False)
            self._leases = None

    def _rebalance(self) -> None:
        if self._leases is None:
            self._leases = Leases(self.db.dedicated_connection())
            slot = self._leases.join()
            log.info("joined as daemon slot %d", slot)
        found = fleet(self.db, self.settings.managers)
        with self.db.connection() as conn:
            rows = {row.name: row for row in managers.list_managers(conn)}
        wanted = self._enabled(found.configs, rows)
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
        for name, why in found.broken.items():
            if name in rows and rows[name].enabled:
                self._unloadable(rows[name], why)

    def _enabled(
        self, configs: dict[str, ManagerConfig], rows: dict[str, managers.ManagerRow]
    ) -> dict[str, tuple[int, ManagerConfig]]:
        """Enabled managers by name with their ids."""
        return {
            name: (rows[name].id, config)
            for name, config in configs.items()
            if name in rows and config.enabled and rows[name].enabled
        }

    def _unloadable(self, row: managers.ManagerRow, why: str) -> None:
        """Record that an added manager's stored config does not load here as a failed ``config`` job, backed off
        like any failure (one log line per attempt), unless another daemon holds it; try again at its
        ``next_attempt_at`` (a sweep is scheduled then)."""
        assert self._leases is not None
        now = datetime.now(UTC)
        retry_at = row.next_attempt_at
        if (retry_at is None or retry_at <= now) and self._leases.try_acquire(row.id):
            try:  # holding its lease: no other daemon records the same failure meanwhile
                with self.db.connection() as conn:
                    current = managers.manager_by_id(conn, row.id)
                    retry_at = current.next_attempt_at
                    if retry_at is None or retry_at <= now:
                        message = one_line(scrub(why))
                        retry_at = managers.mark_failed(
                            conn,
                            row.id,
                            f"config: {message}",
                            now,
                            self._backoff(ConfigError(why), current.failures),
                        )
                        metrics.JOBS.labels(row.name, "config", "failed").inc()
                        log.warning("manager %s: config failed, next attempt at %s: %s", row.name, retry_at, message)
            finally:
                self._leases.release(row.id)
        if retry_at is not None and retry_at > now:
            self.scheduler.add_job(
                self._sweep, "date", run_date=retry_at, id=f"retry:{row.name}", name=f"retry {row.name}",
                replace_existing=True,
            )  # fmt: skip

    def _take(self, name: str, manager_id: int, config: ManagerConfig) -> None:
        schedule = self.settings.schedule
        collector, limit_s = build_collector(name, config), bounded.limit_s(config)
        with self.db.connection() as conn:  # its config loads here: a back-off for failing to load it is over
            managers.end_config_backoff(conn, manager_id)
        leased = self._leased[name] = Leased(name, manager_id, collector, config=config, limit_s=limit_s)
        leased.events = handler.start_catcher(self.db, name, manager_id, config, collector)
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
        if leased.events is not None:
            leased.events.stop(CATCHER_STOP_S)
        for job in ("refresh", "capture"):
            if self.scheduler.get_job(f"{job}:{name}") is not None:
                self.scheduler.remove_job(f"{job}:{name}")
        with leased.lock:  # a running step finishes first
            if release and self._leases is not None:
                self._leases.release(leased.id)
        log.info("gave back manager %s", name)

    # --- jobs ---------------------------------------------------------------------------------------------

    def _guarded(self, leased: Leased, job: str) -> None:
        """Run one job of a manager, then any of its jobs that fired meanwhile; if one is running already, leave
        this job to the worker running it (a manager never holds more than one worker)."""
        with leased.turns:
            if not leased.lock.acquire(blocking=False):
                leased.waiting.add(job)
                log.debug("manager %s: %s waits for the job running now", leased.name, job)
                return
        done = False
        try:
            while not done:
                self._attempt(leased, job)
                with leased.turns:
                    if leased.waiting and not self.stop.is_set() and self._leased.get(leased.name) is leased:
                        job = leased.waiting.pop()
                    else:
                        leased.waiting.clear()
                        leased.lock.release()
                        done = True
        finally:
            if not done:  # an exception no attempt catches (a BaseException): let the manager's next job run
                with leased.turns:
                    leased.waiting.clear()
                    leased.lock.release()

    def _attempt(self, leased: Leased, job: str) -> None:
        """Run one job unless the manager is backing off; record a failure and back it off. Never raises an
        Exception: each outcome is one log line (apscheduler would log a traceback)."""
        step: Callable[[Leased, managers.ManagerRow], int | None] = self._refresh if job == "refresh" else self._capture
        name = leased.name
        if self.stop.is_set():
            return
        try:
            with self.db.connection() as conn:
                row = managers.manager_by_id(conn, leased.id)
        except _DATABASE_ERRORS as exc:
            log.warning("manager %s: %s skipped: the database is unreachable (%s)", name, job, _reason(exc))
            return
        now = datetime.now(UTC)
        if row.next_attempt_at is not None and row.next_attempt_at > now:
            log.debug("manager %s backs off until %s", name, row.next_attempt_at)
            return
        samples = None
        try:
            samples = step(leased, row)
            metrics.JOBS.labels(name, job, "ok").inc()
        except bounded.Interrupted:
            leased.stream = None
            log.info("manager %s: %s stopped waiting for its source: shutting down", name, job)
        except Exception as exc:
            # an abandoned call may still run in its helper thread: the next job gets a collector of its own
            leased.abandoned = leased.abandoned or isinstance(exc, bounded.NoAnswer)
            self._failed(leased, job, exc, row.failures)
        self._record_usage(leased, job, samples)

    def _record_usage(self, leased: Leased, job: str, samples: int | None) -> None:
        """Add what the job asked of the source to the manager's totals and Prometheus's counters; a capture
        job's (``samples`` not None) is also the manager's last cycle's."""
        used = usage.METER.take(leased.name)
        for api, count in used.requests.items():
            metrics.REQUESTS.labels(leased.name, api).inc(count)
        metrics.METRICS_REQUESTED.labels(leased.name).inc(used.metrics)
        metrics.COST.labels(leased.name).inc(float(used.cost_usd))
        if not used and samples is None:
            return
        try:
            with self.db.connection() as conn:
                managers.record_job(conn, leased.id, used.total_requests, used.metrics, used.cost_usd, samples)
        except _DATABASE_ERRORS as exc:  # counted by Prometheus; the stored totals miss it
            log.warning("manager %s: %s's source usage not recorded: %s", leased.name, job, _reason(exc))

    def _failed(self, leased: Leased, job: str, exc: Exception, failures: int = 0) -> None:
        """Record that ``job`` failed with ``exc`` (the ``failures``-th failure in a row was the last) and back
        the manager off; one log line, also when the database cannot be reached to record it."""
        name = leased.name
        leased.stream = None  # in-stream state may be ahead of storage: resume from storage next time
        # stored in managers.last_error and logged: never a DSN a library quoted, never more than a line
        message = one_line(scrub(str(exc) if isinstance(exc, CloudmeterError) else f"{type(exc).__name__}: {exc}"))
        metrics.JOBS.labels(name, job, "failed").inc()
        try:
            with self.db.connection() as conn:
                retry_at = managers.mark_failed(
                    conn, leased.id, f"{job}: {message}", datetime.now(UTC), self._backoff(exc, failures)
                )
            log.warning("manager %s: %s failed, next attempt at %s: %s", name, job, retry_at, message)
            if retry_at is not None:
                self._retry_at(leased, job, retry_at)
        except _DATABASE_ERRORS as db_exc:  # the job runs again as scheduled; its failure is not counted
            unrecorded = f"not recorded: the database is unreachable: {_reason(db_exc)}"
            log.warning("manager %s: %s failed (%s): %s", name, job, unrecorded, message)
        if not isinstance(exc, CloudmeterError):
            log.debug("traceback", exc_info=exc)

    def _retry_at(self, leased: Leased, failed: str, retry_at: datetime) -> None:
        """Run the ``failed`` job again at ``retry_at`` (its ``next_attempt_at``) and the manager's other job not
        before then: a back-off longer or shorter than the interval then means what it says."""
        for job in ("refresh", "capture"):
            scheduled = self.scheduler.get_job(f"{job}:{leased.name}")
            if scheduled is None:
                continue
            if job == failed or scheduled.next_run_time is None or scheduled.next_run_time < retry_at:
                scheduled.modify(next_run_time=retry_at)

    def _backoff(self, exc: Exception, failures: int) -> tuple[float, float]:
        """``managers.mark_failed``'s (first, most) wait for a job failing with ``exc`` after ``failures`` in a
        row: the schedule's doubling back-off, or for ``Throttled`` the longer of that and the source's hint."""
        schedule = self.settings.schedule
        if not isinstance(exc, Throttled):
            return (schedule.backoff_initial_s, schedule.backoff_max_s)
        usual = min(schedule.backoff_initial_s * 2.0 ** min(failures, 64), schedule.backoff_max_s)
        wait = max(usual, min(exc.retry_after, MAX_RETRY_AFTER_S))
        return (wait, wait)  # least(wait * 2^n, wait): this wait, whatever the count

    def _refresh(self, leased: Leased, row: managers.ManagerRow) -> None:
        del row  # a refresh does not depend on progress
        jobs.refresh_inventory(self.db, leased.id, self._source(leased))

    def _capture(self, leased: Leased, row: managers.ManagerRow) -> int:
        return capture_cycle(self.db, self.settings, leased, row, self._source(leased), self.stop)

    def _source(self, leased: Leased) -> bounded.Bounded:
        """``leased``'s collector, each answer within its bound (a new collector after one was abandoned)."""
        if leased.abandoned and leased.config is not None:
            leased.collector = build_collector(leased.name, leased.config)
        leased.abandoned = False
        return bounded.Bounded(leased.collector, leased.limit_s, self.stop)

    def _maintain(self) -> None:
        """Partitions ahead and retention (events kept as long as raw samples), by the one daemon holding the
        maintenance lease."""
        try:
            self._maintain_partitions()
        except _DATABASE_ERRORS as exc:  # the next run tries again; the sweep says whether the lease is lost
            log.warning("maintenance skipped: the database is unreachable (%s)", _reason(exc))

    def _maintain_partitions(self) -> None:
        if self.stop.is_set() or self._leases is None or not self._leases.try_maintenance():
            return
        retention = self.settings.retention.model_dump()
        mode = self.db.mode()
        if mode is None:
            return
        now = datetime.now(UTC)
        with self.db.connection() as conn:
            dropped = partitions.maintain(conn, mode, retention, now, self.db.native_partitions())
            expired = events.expire_events(conn, now - timedelta(days=retention["raw_days"]))
        log.info("maintenance done; dropped %d expired partitions and %d expired events", len(dropped), expired)


def _reason(exc: Exception) -> str:
    """What a database error says, on one line and without a DSN's password."""
    return one_line(scrub(str(exc))) or type(exc).__name__


def run(db: Database, settings: Settings) -> None:
    """Run the daemon in this process until SIGTERM or SIGINT."""
    Daemon(db, settings).run()
