"""The running daemon: APScheduler's BackgroundScheduler with a worker pool per priority, signals, reload, shutdown.

The main thread only waits: for signals (SIGHUP reloads; SIGTERM and SIGINT stop), for spec files to change (their
mtimes are polled every 2 s), and for housekeeping (timeouts each second, ``reap_lost`` every heartbeat_timeout/2,
the daemon's tick in the store every 10 s; retention every hour and, with ``executor: celery`` and metrics, a
broker poll every 15 s, each in a thread of its own). Jobs run ``Daemon.dispatch_spec`` in the thread pool of their
priority; each thread hands its runs to a worker process of its own (``RenderWorkers``), so runs of one pool render
side by side on separate cores, and a run past its timeout is stopped by killing its process.

Only the holder of the scheduler lease fires. The main loop renews it every third of ``state.scheduler_lease`` (a
standby tries to take it as often, and as the lease it waits for expires, so it takes over within one lease of the
leader's last renewal); a leader that cannot renew stands by at once, a standby that wins the lease takes over and
catches up. A clean shutdown releases the lease first, so a standby takes over within a renewal.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportctl.schedule.daemon import Daemon
from reportctl.schedule.logs import log_event
from reportctl.schedule.workers import RenderWorkers
from reportctl.state.leader import LeaseHolder

if TYPE_CHECKING:
    from reportctl.config import Project
    from reportctl.schedule.apscheduler_trigger import PlannedFireTrigger
    from reportctl.schedule.http_api import DaemonApi
    from reportctl.schedule.metrics import BrokerPoll, DaemonMetrics
    from reportctl.schedule.metrics_store import StoreReadings
    from reportctl.schedule.specs import ScheduledSpec
    from reportctl.state.leader import LeaseState
    from reportctl.state.store import StateStore

POOL_SIZES = {"critical": 2, "standard": 4}
POLL_SECONDS = 2.0
TICK_SAVE_SECONDS = 10.0
BROKER_POLL_SECONDS = 15.0
STRANDED_CHECK_SECONDS = 30.0
"""How often the leading daemon (executor: celery) looks for waiting runs whose message the broker lost."""
PRUNE_SECONDS = 3600.0
"""How often the leading daemon applies every report's retention (``reportctl.retention``), in a thread."""
SIGNAL_POLL_SECONDS = 0.2
LEASE_EXPIRY_MARGIN_SECONDS = 0.05
"""A standby tries the lease this long after it should have expired (the store's clock decides)."""
# APScheduler must never drop a fire: overlap is decided by the daemon through the state store
MAX_INSTANCES = 10_000


@dataclass(frozen=True)
class ServiceExit:
    """How the daemon ended: the exit code, and whether render threads are still running (exit without joining)."""

    code: int
    threads_left: bool


class ApschedulerJobs:
    """One APScheduler job per report, in the executor named after its priority (``JobControl``)."""

    def __init__(self, scheduler: Any, run_job: Any) -> None:
        self.scheduler, self.run_job = scheduler, run_job

    def schedule(self, spec: ScheduledSpec, trigger: PlannedFireTrigger, *, run_now: bool) -> None:
        """Add or replace the job of ``spec``."""
        options: dict[str, Any] = {}
        if run_now:
            options["next_run_time"] = datetime.now(UTC)
        self.scheduler.add_job(
            self.run_job, trigger=trigger, args=[spec.name], id=spec.name, name=spec.name, executor=spec.priority,
            coalesce=True, max_instances=MAX_INSTANCES, misfire_grace_time=None, replace_existing=True, **options,
        )  # fmt: skip

    def unschedule(self, name: str) -> None:
        """Remove the job of ``name`` if there is one."""
        from contextlib import suppress

        from apscheduler.jobstores.base import JobLookupError

        with suppress(JobLookupError):
            self.scheduler.remove_job(name)


class DaemonService:
    """Runs a ``Daemon`` on APScheduler until SIGTERM or SIGINT; ``run`` returns how it ended."""

    def __init__(
        self,
        project: Project,
        store: StateStore,
        *,
        logger: logging.Logger,
        metrics: DaemonMetrics | None = None,
        grace: timedelta = timedelta(seconds=60),
        api: DaemonApi | None = None,
    ) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        self.log, self.metrics, self.grace, self.api = logger, metrics, grace, api
        executors = {name: ThreadPoolExecutor(size) for name, size in POOL_SIZES.items()}
        self.scheduler = BackgroundScheduler(executors=executors, timezone=UTC)
        self.workers = RenderWorkers(project)
        self.lease = LeaseHolder(store, project.config.state.scheduler_lease)
        self.daemon = Daemon(
            project, store, render=self.workers, jobs=ApschedulerJobs(self.scheduler, self._run_job),
            metrics=metrics, logger=logger, lease=self.lease,
        )  # fmt: skip
        self._held_token: int | None = None
        self._last_token: int | None = None
        """The token this daemon last held the lease with, to tell holding it again from taking it over."""
        self.broker_poll: BrokerPoll | None = None
        self.store_readings: StoreReadings | None = None
        if metrics is not None:
            metrics.follow_lease(lambda: self.daemon.leading, self._lease_token)
            from reportctl.schedule.metrics_store import StoreReadings

            self.store_readings = StoreReadings(store, metrics, logger, leading=lambda: self.daemon.leading)
            if project.config.executor.kind == "celery":
                from reportctl.schedule.metrics import BrokerPoll

                self.broker_poll = BrokerPoll(project, metrics, logger)
        self._reload_asked = False
        self._stops = 0
        self._in_flight = 0
        self._count = threading.Lock()

    def _lease_token(self) -> int:
        """The lease's token as last read (the holder's, on a standby too); 0 before the first read."""
        state = self.lease.state
        return 0 if state is None else state.token

    def _run_job(self, name: str) -> None:
        spec = self.daemon.specs.get(name)
        if self.metrics is not None and spec is not None:
            self.metrics.queued(spec.priority, -1)
        with self._count:
            self._in_flight += 1
        try:
            self.daemon.dispatch_spec(name)
        except Exception as exc:  # a bug must not kill the worker thread silently
            self.log.exception("%s", exc, extra={"event": "job.error", "reportctl_fields": {"report": name}})
        finally:
            with self._count:
                self._in_flight -= 1

    def submit_run(self, loaded: Any, run_id: str, parameters: dict[str, str], now: datetime) -> None:
        """Render a run the HTTP API recorded in the worker pool of its spec's priority, as a one-off job."""
        schedule = loaded.spec.schedule
        priority = schedule.priority if schedule is not None else "standard"
        self.scheduler.add_job(
            self._run_submitted, args=[loaded, run_id, parameters, now], id=f"api:{run_id}", name=f"api:{run_id}",
            executor=priority, misfire_grace_time=None,  # a busy pool delays the run, never drops it
        )  # fmt: skip

    def _run_submitted(self, loaded: Any, run_id: str, parameters: dict[str, str], now: datetime) -> None:
        with self._count:
            self._in_flight += 1
        try:
            self.daemon.render_submitted(loaded, run_id, parameters, now)
        except Exception as exc:  # a bug must not kill the worker thread silently
            self.log.exception("%s", exc, extra={"event": "job.error", "reportctl_fields": {"run_id": run_id}})
        finally:
            with self._count:
                self._in_flight -= 1

    def _submitted(self, event: Any) -> None:
        spec = self.daemon.specs.get(event.job_id)
        if self.metrics is not None and spec is not None:
            self.metrics.queued(spec.priority, 1)

    def _on_signal(self, number: int, _frame: Any) -> None:
        # Only plain assignments here: a handler runs between two bytecodes of the main thread, which may hold the
        # lock inside an Event at that moment; taking that lock here (Event.set) would deadlock the daemon.
        if number == signal.SIGHUP:
            self._reload_asked = True
        else:
            self._stops += 1

    def run(self) -> ServiceExit:
        """Start, serve until a stop signal, then shut down within the grace period."""
        from apscheduler.events import EVENT_JOB_SUBMITTED

        for number in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._on_signal)
        began = time.monotonic()
        lease = self.lease.acquire()
        leading = lease.holder == self.lease.holder
        self._held_token = self._last_token = lease.token if leading else None
        result = self.daemon.start(leading=leading)
        if self.store_readings is not None:
            self.store_readings.restore()
        self.scheduler.add_listener(self._submitted, EVENT_JOB_SUBMITTED)
        self.scheduler.start()
        log_event(
            self.log, logging.INFO, "daemon.started", f"scheduled {len(self.daemon.specs)} jobs",
            jobs=len(self.daemon.specs), invalid=len(result.problems), seconds=round(time.monotonic() - began, 3),
        )  # fmt: skip
        if leading:
            log_event(
                self.log, logging.INFO, "daemon.leading", f"leader: holding the scheduler lease as {lease.describe()}",
                token=lease.token,
            )  # fmt: skip
        else:
            self._log_standby(lease)
        if self.api is not None:
            self.api.start(self)
        self._serve()
        return self._shut_down()

    def _keep_lease(self) -> float:
        """Renew the lease (a standby: try to take it); stand by at once when it is lost or cannot be renewed, take
        over when it is won. Seconds until the next try: a renewal period, or for a standby the moment the lease it
        waits for expires, if sooner (so a standby takes over within one lease of the leader's last renewal)."""
        from reportctl.state.store import StateStoreError

        was_leading = self.daemon.leading
        try:
            lease = self.lease.acquire()
        except StateStoreError as exc:
            if self._held_token is not None:
                self._held_token = None
                self.daemon.stand_by()
                log_event(
                    self.log, logging.WARNING, "daemon.lease_lost",
                    f"cannot renew the scheduler lease, firing nothing until it is held again: {exc}",
                )  # fmt: skip
            return self.lease.renew_every
        if lease.holder != self.lease.holder:
            if self._held_token is not None or was_leading:
                self._held_token = None
                self.daemon.stand_by()
                self._log_standby(lease)
            expires_in = max((lease.expires_at - lease.now).total_seconds(), 0.0)
            return min(self.lease.renew_every, expires_in + LEASE_EXPIRY_MARGIN_SECONDS)
        if not was_leading or lease.token != self._held_token:
            self._held_token = lease.token
            self.daemon.take_over()
            # the same token: nobody held the lease meanwhile (the store was down), this daemon holds it again
            again = lease.token == self._last_token
            how = "leader again: holding the scheduler lease" if again else "leader: took over the scheduler lease"
            log_event(
                self.log, logging.INFO, "daemon.took_over", f"{how} as {lease.describe()}; catching up missed fires",
                token=lease.token,
            )  # fmt: skip
        self._last_token = lease.token
        return self.lease.renew_every

    def _log_standby(self, lease: LeaseState) -> None:
        log_event(
            self.log, logging.INFO, "daemon.standby", f"standby: the scheduler lease is held by {lease.describe()}",
            holder=lease.holder, token=lease.token,
        )  # fmt: skip

    def _serve(self) -> None:
        from reportctl.state.leader import Deposed
        from reportctl.state.store import StateStoreError

        snapshot = _spec_mtimes(self.daemon.project.spec_dirs)
        reap_every = self.daemon.project.config.state.heartbeat_timeout.total_seconds() / 2
        last_poll = last_reap = time.monotonic()
        next_lease = last_poll + self.lease.renew_every
        # the watermark at once: a leader that loses the store in its first seconds must find, when it is back,
        # where its own fires began, or the fires it missed meanwhile would be caught up as by a new daemon
        # (only the latest run, the others not recorded at all)
        last_save = float("-inf")
        last_broker = float("-inf")  # the first poll at once, so the broker's numbers are there from the start
        from reportctl.schedule.metrics_store import READ_SECONDS

        last_read = time.monotonic()  # the deliveries of runs finished from the start, read in READ_SECONDS
        last_stranded = last_prune = time.monotonic()
        celery = self.daemon.project.config.executor.kind == "celery"
        from reportctl.retention import BackgroundPrune

        pruning = BackgroundPrune(self.daemon.project, self.daemon.store, self.log)
        while not self._stops:
            # signals set flags only: this is how soon they are noticed (sooner when the lease is to be tried)
            time.sleep(min(SIGNAL_POLL_SECONDS, max(next_lease - time.monotonic(), 0.01)))
            if self._stops:
                break
            now = time.monotonic()
            changed = False
            if now - last_poll >= POLL_SECONDS:
                last_poll = now
                fresh = _spec_mtimes(self.daemon.project.spec_dirs)
                changed, snapshot = fresh != snapshot, fresh
            if self._reload_asked or changed:
                self._reload("SIGHUP" if self._reload_asked else "files changed")
            if now >= next_lease:
                next_lease = now + self._keep_lease()
            if celery and now - last_stranded >= STRANDED_CHECK_SECONDS and self.daemon.leading:
                last_stranded = now
                self.daemon.queue_stranded()
            if now - last_prune >= PRUNE_SECONDS and self.daemon.leading:
                last_prune = now
                pruning.start()
            if self.broker_poll is not None and now - last_broker >= BROKER_POLL_SECONDS:
                last_broker = now
                self.broker_poll.start()
            if self.store_readings is not None and now - last_read >= READ_SECONDS:
                last_read = now
                self.store_readings.start()
            try:
                self.daemon.check_timeouts()
                if now - last_reap >= reap_every and self.daemon.leading:
                    last_reap = now
                    self.daemon.reap()
                if now - last_save >= TICK_SAVE_SECONDS and self.daemon.leading:
                    last_save = now
                    self.daemon.save_watermark()
            except (StateStoreError, Deposed) as exc:
                log_event(self.log, logging.WARNING, "store.unreachable", str(exc))

    def _reload(self, why: str) -> None:
        self._reload_asked = False
        result = self.daemon.reload()
        log_event(
            self.log, logging.INFO, "daemon.reloaded", f"specs re-read ({why})",
            added=len(result.added), changed=len(result.changed), removed=len(result.removed),
            kept=len(result.kept), invalid=len(result.problems),
        )  # fmt: skip

    def _shut_down(self) -> ServiceExit:
        grace = self.grace.total_seconds()
        log_event(self.log, logging.INFO, "daemon.stopping", f"letting running reports finish within {grace:g}s")
        self.daemon.stopping.set()
        if self.api is not None:  # no new runs; the links and /runs/ID of the others stop with it
            self.api.close()
        self.scheduler.shutdown(wait=False)
        self._hand_over()
        deadline = time.monotonic() + grace
        while self._busy() and time.monotonic() < deadline and self._stops < 2:
            time.sleep(SIGNAL_POLL_SECONDS)
        cut = self.daemon.cut_off()
        self.workers.close()
        if self.metrics is not None:
            self.metrics.close()
        code = 130 if self._stops >= 2 else 0
        log_event(self.log, logging.INFO, "daemon.stopped", f"{len(cut)} runs cut off", cut_off=len(cut), code=code)
        return ServiceExit(code, self._busy())

    def _hand_over(self) -> None:
        """A leader that stops records its watermark, then releases the lease: a standby takes over at its next
        try, and catches up whatever this daemon had not claimed. Runs already going here finish here."""
        from reportctl.state.leader import Deposed
        from reportctl.state.store import StateStoreError

        if not self.daemon.leading:
            return
        try:
            self.daemon.save_watermark()
            self.lease.release()
        except (StateStoreError, Deposed) as exc:
            log_event(self.log, logging.WARNING, "store.unreachable", str(exc))
            return
        self.daemon.stand_by()
        log_event(self.log, logging.INFO, "daemon.lease_released", "released the scheduler lease for a standby")

    def _busy(self) -> bool:
        with self._count:
            return self._in_flight > 0 or bool(self.daemon.running())


def _spec_mtimes(folders: list[Path]) -> dict[str, tuple[int, int]]:
    """Modification time and size of every spec file: a change in either means a reload."""
    from reportctl.spec.files import spec_file_stamps

    return spec_file_stamps([folder for folder in folders if folder.is_dir()])


__all__ = ["BROKER_POLL_SECONDS", "POOL_SIZES", "ApschedulerJobs", "DaemonService", "ServiceExit"]
