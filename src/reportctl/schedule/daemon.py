"""The schedule daemon's core: which specs run, and what happens when one of them falls due. No threads of its own.

``Daemon`` holds the scheduled specs and one ``PlannedFireTrigger`` each; APScheduler (``daemon_service``) calls
``dispatch_spec`` when a trigger fires, and tests call ``dispatch_due(now)`` and ``reload(now)`` directly. A due
fire goes through ``tick.run_fire`` (claim in the store, overlap skip or queue, render with retries), so a daemon
and ``schedule tick`` never run one fire twice. The daemon's own misfire rule is ``due_fires``: a fire is due when
its planned time lies in (the spec's watermark, now]; only the latest within ``misfire_grace`` runs.

Leadership: with a ``LeaseHolder`` only the holder of the scheduler lease fires; a standby keeps its specs loaded
and checked but fires nothing until ``take_over``, which catches up from the store's watermark like a restart.
Every claim carries the lease's fence, so a daemon deposed without knowing it yet records nothing (``Deposed``).

Timeouts: a run past its spec's ``timeout`` is recorded FAILED "timed out after 10m" by ``check_timeouts``. With
``RenderWorkers`` (the running daemon) its worker process is killed there and then; a render function in the job's
thread (tests) keeps going until its next state change, which the store refuses, so it stops there.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reportctl.errors import Problem, ReportctlError, SpecError, first_line
from reportctl.schedule.apscheduler_trigger import PlannedFireTrigger
from reportctl.schedule.logs import LOGGER_NAME, log_event
from reportctl.schedule.tick import RenderFire, TickOutcome, record_missed, render_fire, run_fire
from reportctl.schedule.triggers import Fire, due_fires
from reportctl.schedule.workers import RenderWorkers
from reportctl.state.lifecycle import RunState, completed_state, succeeded

if TYPE_CHECKING:
    from reportctl.config import Project
    from reportctl.schedule.metrics import DaemonMetrics
    from reportctl.schedule.specs import ScheduledSpec
    from reportctl.state.leader import Fence, LeaseHolder
    from reportctl.state.models import RunRecord
    from reportctl.state.store import StateStore

DAEMON_TICK = "daemon"
CUT_OFF = "daemon stopped before the run finished"
STORE_RETRY_MAX_SECONDS = 30.0
_RESCHEDULE_FIELDS = ("cron", "timezone", "jitter", "priority")


class DaemonStopping(Exception):
    """Raised inside a waiting fire (queue, backoff) when the daemon stops, so it starts nothing new."""


class JobControl(Protocol):
    """What the daemon asks of the scheduler that runs its jobs (APScheduler, or nothing in tests)."""

    def schedule(self, spec: ScheduledSpec, trigger: PlannedFireTrigger, *, run_now: bool) -> None:
        """Add or replace the job of ``spec``; ``run_now`` runs it at once (a fire fell due while down)."""

    def unschedule(self, name: str) -> None:
        """Remove the job of report ``name``."""


@dataclass(frozen=True)
class ReloadResult:
    """What a (re)load changed: reports added, changed (rescheduled or not), removed, kept at their last version."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    rescheduled: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass
class _Running:
    report: str
    started: datetime
    timeout: timedelta | None
    timed_out: bool = False


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Daemon:
    """The scheduled specs of a project and how their fires are dispatched; drive it with an injected clock."""

    def __init__(
        self,
        project: Project,
        store: StateStore,
        *,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], None] | None = None,
        render: RenderFire = render_fire,
        jobs: JobControl | None = None,
        metrics: DaemonMetrics | None = None,
        logger: logging.Logger | None = None,
        lease: LeaseHolder | None = None,
    ) -> None:
        self.project, self.store, self.clock = project, store, clock
        self.jobs, self.metrics, self.lease = jobs, metrics, lease
        self._leading = lease is None
        self.log = logger or logging.getLogger(LOGGER_NAME)
        self.stopping = threading.Event()
        self.specs: dict[str, ScheduledSpec] = {}
        self.triggers: dict[str, PlannedFireTrigger] = {}
        self._sleep_fn = sleep
        self._render_fn = render
        self._since: dict[str, datetime | None] = {}
        self._started = False
        self._start_since: datetime | None = None
        self._unclaimed: dict[tuple[str, datetime], datetime] = {}
        self._running: dict[str, _Running] = {}
        self._loaded: dict[str, Any] = {}
        self._stamps: dict[str, tuple[tuple[str, int, int], ...]] = {}
        self._scanned: dict[str, tuple[tuple[str, int, int], ...]] = {}
        self._lock = threading.Lock()
        self.resuming: list[threading.Thread] = []
        """Deliveries of reaped runs being finished in the background."""

    # --- specs ----------------------------------------------------------------------------------------------------

    def start(self, now: datetime | None = None, *, leading: bool = True) -> ReloadResult:
        """Load every spec and schedule its job; fires missed since the daemon's last tick run at once (catch-up).
        A standby (``leading=False``, another daemon holds the lease) loads and schedules alike but fires nothing."""
        self._start_since = self.store.last_tick(DAEMON_TICK)
        self._leading = leading
        result = self.reload(now)
        self._started = True
        return result

    @property
    def leading(self) -> bool:
        """Whether this daemon fires: no lease is used, or it holds the lease and it cannot have expired."""
        return self._leading and (self.lease is None or self.lease.held())

    def take_over(self, now: datetime | None = None) -> None:
        """Start firing after standing by: fires missed since the store's watermark (the last leader's) are caught
        up with the misfire rules of a restart; those the last leader claimed are found claimed and not run again."""
        now = now or self.clock()
        with self._lock:
            self._start_since = self.store.last_tick(DAEMON_TICK)
            for name, spec in self.specs.items():
                self._since[name] = self._start_since or self._first_since(spec, now)
            self._leading = True
            specs = list(self.specs.values())
        for spec in specs:
            self._schedule(spec, now)

    def stand_by(self) -> None:
        """Stop firing at once (the lease is lost or cannot be renewed); runs already started go on."""
        self._leading = False

    def reload(self, now: datetime | None = None) -> ReloadResult:
        """Re-read the specs: add, reschedule and drop jobs; an invalid spec keeps its last valid version running."""
        from reportctl.schedule.specs import scheduled_specs

        now = now or self.clock()
        disabled: list[str] = []
        found, problems = scheduled_specs(
            [d for d in self.project.spec_dirs if d.is_dir()], self.project, disabled=disabled
        )
        fresh = {spec.name: spec for spec in found}
        self._scanned = {name: _file_stamp(spec.loaded) for name, spec in fresh.items() if spec.loaded is not None}
        broken = {_resolved(p.position.file if p.position else p.file) for p in problems} - {None}
        result = ReloadResult(problems=problems)
        for problem in problems:
            log_event(self.log, logging.ERROR, "spec.invalid", str(problem).splitlines()[0])
        for name, old in list(self.specs.items()):
            if name in fresh:
                continue
            if _resolved(old.path) in broken:
                result.kept.append(name)
                log_event(self.log, logging.WARNING, "spec.kept", "keeping its last valid version", report=name)
                continue
            self._drop(name)
            result.removed.append(name)
        for name, spec in fresh.items():
            previous = self.specs.get(name)
            if previous == spec:
                continue
            if previous is None:
                result.added.append(name)
                self._since[name] = (self._start_since or self._first_since(spec, now)) if not self._started else now
                self._schedule(spec, now)
            elif any(getattr(previous, key) != getattr(spec, key) for key in _RESCHEDULE_FIELDS):
                result.changed.append(name)
                result.rescheduled.append(name)
                self._since[name] = now  # the new cron starts from now: no catch-up of fires it never had
                self._schedule(spec, now)
            else:
                result.changed.append(name)
                self.specs[name] = spec
        if self.metrics is not None:
            self._publish_specs(self.metrics, result, broken, len(disabled))
        return result

    def _publish_specs(
        self, metrics: DaemonMetrics, result: ReloadResult, broken: set[Path | None], disabled: int
    ) -> None:
        """The spec gauges after a (re)load: an invalid file is labelled with the report it held (kept at its last
        valid version), else with its file name."""
        kept_files = {_resolved(self.specs[name].path) for name in result.kept}
        invalid = [*result.kept, *sorted(f.stem for f in broken if f is not None and f not in kept_files)]
        valid = [name for name in self.specs if name not in result.kept]
        metrics.specs_loaded(valid, invalid, scheduled=len(self.specs), disabled=disabled)

    def _publish_next_fire(self, spec: ScheduledSpec, now: datetime) -> None:
        """Set the report's next fire gauge; a trigger of its own, as the job's is APScheduler's to call."""
        if self.metrics is not None:
            from zoneinfo import ZoneInfo

            from reportctl.schedule.metrics import schedule_interval

            fire = PlannedFireTrigger(spec).next_fire(now)
            interval = schedule_interval(spec.cron, now.astimezone(ZoneInfo(spec.timezone)).date())
            self.metrics.fires_next(spec.name, None if fire is None else fire[1].timestamp(), interval=interval)

    def _first_since(self, spec: ScheduledSpec, now: datetime) -> datetime:
        """Where a daemon that never ticked starts counting fires: just before the latest fire within the grace
        (it runs at once, as a catch-up), else at the start. A fire after the start whose job then waits past its
        grace (a full pool) is inside the window, so it is recorded SKIPPED instead of falling outside unseen."""
        recent = [fire for fire in self._due(spec, now, since=now - spec.misfire_grace) if not fire.misfired]
        return recent[-1].planned - timedelta(microseconds=1) if recent else now

    def _schedule(self, spec: ScheduledSpec, now: datetime) -> None:
        self.specs[spec.name] = spec
        trigger = self.triggers[spec.name] = PlannedFireTrigger(spec)
        if self.jobs is not None:
            self.jobs.schedule(spec, trigger, run_now=bool(self._due(spec, now)))
        self._publish_next_fire(spec, now)

    def _drop(self, name: str) -> None:
        self.specs.pop(name, None)
        self.triggers.pop(name, None)
        self._since.pop(name, None)
        self._loaded.pop(name, None)
        self._stamps.pop(name, None)
        if self.jobs is not None:
            self.jobs.unschedule(name)
        if self.metrics is not None:
            self.metrics.fires_next(name, None)

    def _due(self, spec: ScheduledSpec, now: datetime, *, since: datetime | None = None) -> list[Fire]:
        return due_fires(
            spec.cron,
            spec.timezone,
            report=spec.name,
            jitter=spec.jitter,
            since=since or self._since.get(spec.name),
            now=now,
            misfire_grace=spec.misfire_grace,
        )

    # --- fires ----------------------------------------------------------------------------------------------------

    def dispatch_due(self, now: datetime) -> list[TickOutcome]:
        """Run every fire due at ``now`` in this thread, critical reports first (what the jobs do, one spec each)."""
        names = sorted(self.specs, key=lambda n: (self.specs[n].priority != "critical", n))
        return [outcome for name in names for outcome in self.dispatch_spec(name, now)]

    def dispatch_spec(self, name: str, now: datetime | None = None) -> list[TickOutcome]:
        """Run the fires of report ``name`` due at ``now``: the missed ones recorded SKIPPED, the latest run."""
        now = now or self.clock()
        with self._lock:
            spec = self.specs.get(name)
            if spec is not None:
                self._publish_next_fire(spec, now)
            if spec is None or self.stopping.is_set() or not self.leading:
                return []
            fires = self._due(spec, now)
            self._since[name] = now
            if not fires:
                return []
            runnable = [fire for fire in fires if not fire.misfired]
            for fire in runnable:
                self._unclaimed[(name, fire.scheduled)] = fire.planned
        outcomes: list[TickOutcome] = []
        missed = [fire for fire in fires if fire.misfired]
        if missed:
            outcomes += (
                self._with_store(
                    spec, missed[-1], lambda: record_missed(self.store, spec, missed, now, fence=self._fence())
                )
                or []
            )
        for fire in runnable:
            try:
                outcome = self._with_store(spec, fire, lambda f=fire: self._run(spec, f))  # type: ignore[misc]
            finally:
                with self._lock:
                    self._unclaimed.pop((name, fire.scheduled), None)
            if outcome is not None:
                outcomes.append(outcome)
        for outcome in outcomes:
            self._report(outcome)
        return outcomes

    def _run(self, spec: ScheduledSpec, fire: Fire) -> TickOutcome:
        try:
            outcome = run_fire(
                self.project,
                self.store,
                spec,
                fire,
                self.clock(),
                lambda message: log_event(self.log, logging.INFO, "run.progress", message, report=spec.name),
                self.sleep,
                render=self._render,
                load=self._load,
                fence=self._fence(),
                warn=lambda message: log_event(self.log, logging.WARNING, "run.waiting", message, report=spec.name),
            )
        except DaemonStopping:
            return self._cut_off_waiting(spec, fire)
        if outcome.state == "FAILED" and outcome.run_id is not None:
            self._record_failure(spec.name, outcome.run_id, outcome.detail)
        return outcome

    def render_submitted(self, loaded: Any, run_id: str, parameters: dict[str, str], now: datetime) -> TickOutcome:
        """Render a run the HTTP API recorded (``schedule.api_runs``) as a fire's run is rendered: in this thread's
        worker, with the spec's timeout, logged and counted in the metrics; a failure is recorded FAILED."""
        report = str(loaded.spec.name)
        try:
            result = self._render(self.store, loaded, run_id, parameters=parameters, now=now)
        except ReportctlError as exc:
            detail = first_line(str(exc), "failed")
            self._record_failure(report, run_id, detail)
            outcome = TickOutcome(report, now, "FAILED", run_id, detail)
        else:
            state = completed_state(getattr(result, "warnings", ())).value
            outcome = TickOutcome(report, now, state, result.run_id, str(result.directory))
        self._report(outcome)
        return outcome

    def _record_failure(self, report: str, run_id: str, error: str) -> None:
        """Make sure a failed run is recorded FAILED, retrying while the store is down, until the daemon stops."""
        from reportctl.state.recording import record_failed_once_stored

        def warn(message: str) -> None:
            log_event(self.log, logging.WARNING, "store.retry", message, report=report, run_id=run_id)

        with contextlib.suppress(DaemonStopping):
            record_failed_once_stored(
                self.store, run_id, error, sleep=self.sleep, warn=warn, longest_wait=STORE_RETRY_MAX_SECONDS
            )

    def _fence(self) -> Fence | None:
        """The fence this daemon's claims carry; ``Deposed`` when it uses a lease it no longer holds."""
        from reportctl.state.leader import Deposed

        if self.lease is None:
            return None
        fence = self.lease.fence
        if fence is None or not self._leading:
            raise Deposed("this daemon no longer holds the scheduler lease, so it fires nothing")
        return fence

    def _with_store(self, spec: ScheduledSpec, fire: Fire, action: Callable[[], Any]) -> Any:
        """``action`` retried with backoff while the store is unreachable, until the fire passes its misfire grace.
        A claim refused because another daemon took over ends here: this daemon stands by, the new leader fires."""
        from reportctl.state.leader import Deposed
        from reportctl.state.store import StateStoreError

        delay = 1.0
        while True:
            try:
                return action()
            except Deposed as exc:
                self.stand_by()
                log_event(self.log, logging.WARNING, "fire.refused", str(exc), report=spec.name)
                return None
            except StateStoreError as exc:
                late = self.clock() - fire.planned
                if late > spec.misfire_grace or self.stopping.is_set():
                    log_event(self.log, logging.ERROR, "fire.lost", f"state store unreachable: {exc}", report=spec.name)
                    return None
                log_event(self.log, logging.WARNING, "store.retry", f"{exc}; retrying in {delay:g}s", report=spec.name)
                try:
                    self.sleep(delay)
                except DaemonStopping:
                    return None
                delay = min(delay * 2, STORE_RETRY_MAX_SECONDS)

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (the injected sleep in tests); ``DaemonStopping`` when the daemon stops meanwhile."""
        if self.stopping.is_set():
            raise DaemonStopping
        if self._sleep_fn is not None:
            self._sleep_fn(seconds)
        elif self.stopping.wait(seconds):
            raise DaemonStopping

    def _load(self, spec: ScheduledSpec) -> Any:
        """The spec as it is now (as at its pinned revision, if any), or its last valid version (logged) when the
        file has become invalid."""
        from reportctl.spec.loader import check_loaded
        from reportctl.spec.revisions import load_spec_at

        cached = self._loaded.get(spec.name)
        if (
            cached is not None
            and spec.rev is None
            and cached.ref is None
            and self._stamps.get(spec.name) == _file_stamp(cached)
        ):
            return cached  # unchanged since it was read and checked: skip parsing and checking it again
        scanned = spec.loaded if spec.rev is None else None
        try:
            if scanned is not None and self._scanned.get(spec.name) == _file_stamp(scanned):
                loaded = check_loaded(scanned)  # as read by the last reload: only its references to check
            else:
                loaded = load_spec_at(spec.path, spec.rev, self.project)
        except SpecError as exc:
            last = self._loaded.get(spec.name)
            if last is None:
                raise
            first = str(exc).splitlines()[0] if str(exc) else "invalid"
            log_event(
                self.log, logging.WARNING, "spec.kept", f"running its last valid version: {first}", report=spec.name
            )
            return last
        self._loaded[spec.name] = loaded
        self._stamps[spec.name] = _file_stamp(loaded)
        return loaded

    def _render(self, store: StateStore, loaded: Any, run_id: str, *, parameters: dict[str, str], now: datetime) -> Any:
        """Render through the configured ``RenderFire``, tracked so timeouts and shutdown can find the run."""
        report = str(loaded.spec.name)
        spec = self.specs.get(report)
        running = _Running(report, self.clock(), spec.timeout if spec else None)
        with self._lock:
            self._running[run_id] = running
        log_event(self.log, logging.INFO, "run.started", report=report, run_id=run_id)
        began = time.monotonic()
        try:
            result = self._render_fn(store, loaded, run_id, parameters=parameters, now=now)
        except ReportctlError:
            if running.timed_out:
                raise ReportctlError(_timed_out(running.timeout)) from None
            raise
        finally:
            with self._lock:
                self._running.pop(run_id, None)
            if self.metrics is not None:
                self.metrics.duration.labels(report=report).observe(time.monotonic() - began)
        if self.metrics is not None:  # how its sources were read, brought back from the worker process
            self.metrics.sources_read(list(getattr(result, "sources", ())))
        if running.timed_out:  # finished without another state change after the timeout was recorded
            raise ReportctlError(_timed_out(running.timeout))
        return result

    def _report(self, outcome: TickOutcome) -> None:
        level = logging.ERROR if outcome.state == "FAILED" else logging.INFO
        event = "fire.claimed_elsewhere" if outcome.state == "CLAIMED" else f"run.{outcome.state.lower()}"
        log_event(
            self.log, level, event, outcome.detail, report=outcome.report, run_id=outcome.run_id,
            scheduled=outcome.scheduled.isoformat(),
        )  # fmt: skip

        # a CLAIMED fire is another daemon's; a QUEUED one ends on a Celery worker, which records how
        if self.metrics is not None and outcome.state not in ("CLAIMED", "QUEUED"):
            at = self.clock().timestamp() if succeeded(outcome.state) else None
            self.metrics.run_finished(outcome.report, outcome.state, at=at)

    # --- housekeeping ---------------------------------------------------------------------------------------------

    def check_timeouts(self, now: datetime | None = None) -> list[str]:
        """Record FAILED every run of this daemon past its spec's timeout; the run ids."""
        now = now or self.clock()
        with self._lock:
            late = [(run_id, r) for run_id, r in self._running.items() if r.timeout and now - r.started > r.timeout]
        failed = []
        for run_id, running in late:
            if running.timed_out:
                continue
            running.timed_out = True
            if self._fail(run_id, _timed_out(running.timeout), now):
                failed.append(run_id)
                stopped = isinstance(self._render_fn, RenderWorkers) and self._render_fn.stop(run_id)
                log_event(
                    self.log, logging.ERROR, "run.timed_out", "its worker process was stopped" if stopped else "",
                    report=running.report, run_id=run_id,
                )  # fmt: skip
        return failed

    def running(self) -> list[str]:
        """The run ids this daemon is rendering now."""
        with self._lock:
            return list(self._running)

    def cut_off(self, now: datetime | None = None) -> list[str]:
        """After the shutdown grace: record FAILED every run still rendering here; the run ids."""
        cut = []
        with self._lock:
            running = list(self._running.items())
        for run_id, entry in running:
            if self._fail(run_id, CUT_OFF, now or self.clock()):
                cut.append(run_id)
                log_event(self.log, logging.WARNING, "run.cut_off", CUT_OFF, report=entry.report, run_id=run_id)
        return cut

    def _cut_off_waiting(self, spec: ScheduledSpec, fire: Fire) -> TickOutcome:
        """A claimed fire stopped while waiting (queue, backoff): record its SCHEDULED run as cut off."""
        for run in self.store.list_runs(report=spec.name, state="SCHEDULED", limit=20):
            if run.scheduled_for is not None and run.scheduled_for == fire.scheduled.astimezone(UTC):
                self._fail(run.id, CUT_OFF, self.clock())
                return TickOutcome(spec.name, fire.scheduled, "FAILED", run.id, CUT_OFF)
        return TickOutcome(spec.name, fire.scheduled, "FAILED", None, CUT_OFF)

    def _fail(self, run_id: str, error: str, now: datetime) -> bool:
        from reportctl.state.lifecycle import IllegalTransition
        from reportctl.state.store import StateStoreError

        try:
            self.store.transition(run_id, RunState.FAILED, error=error, now=now)
        except (IllegalTransition, StateStoreError):
            return False  # finished meanwhile, or the store is down (the reaper will find it later)
        return True

    def reap(self) -> list[str]:
        """End the runs whose worker is lost (silent by the store's clock, and gone if it ran on this host); the
        run ids. A run lost while delivering is complete; its pending recipients are delivered in the background.
        """
        queued = self.project.config.executor.kind == "celery"  # waiting runs wait in the broker
        reaped = self.store.reap_lost(self.project.config.state.heartbeat_timeout, queued=queued)
        for run in reaped:
            log_event(self.log, logging.WARNING, "run.worker_lost", run.error or "", report=run.report, run_id=run.id)
            if run.state is RunState.COMPLETED:
                resuming = threading.Thread(target=self._resume_delivery, args=(run,), name=f"resume-{run.id}")
                resuming.daemon = True
                self.resuming.append(resuming)
                resuming.start()
        return [run.id for run in reaped]

    def _resume_delivery(self, run: RunRecord) -> None:
        """Deliver what a lost worker left pending; the ledger sees to it that nobody gets the report twice."""
        from reportctl.delivery.engine import resume_delivery

        try:
            report = resume_delivery(self.store, self.project, run)
        except Exception as exc:  # logged for the operator; `reportctl deliver RUN` can finish it by hand
            log_event(self.log, logging.ERROR, "delivery.resume_failed", str(exc), report=run.report, run_id=run.id)
            return
        log_event(
            self.log,
            logging.INFO,
            "delivery.resumed",
            report.summary() or "nothing left",
            report=run.report,
            run_id=run.id,
        )
        for note in report.notes:  # e.g. the recipients the lost worker was sending to, now unknown: for an operator
            log_event(self.log, logging.WARNING, "delivery.note", note, report=run.report, run_id=run.id)

    def watermark(self, now: datetime) -> datetime:
        """Everything planned up to this time has been handed to a job: where a restarted daemon catches up from."""
        marks = [now]
        with self._lock:
            marks += [planned - timedelta(microseconds=1) for planned in self._unclaimed.values()]
            for name, trigger in self.triggers.items():
                since = self._since.get(name)
                if trigger.submitted is not None and since is not None and trigger.submitted > since:
                    marks.append(since)  # APScheduler has submitted a fire the job has not picked up yet
        return min(mark.astimezone(UTC) for mark in marks)

    def queue_stranded(self) -> list[str]:
        """With ``executor: celery``, send again the waiting runs whose message the broker no longer holds (Redis
        restarted and kept nothing); the run ids. A broker that does not answer is logged and tried next time."""
        from reportctl.schedule.celery_broker import queue_stranded

        try:
            sent = queue_stranded(self.project, self.store, self.specs)
        except ReportctlError as exc:
            log_event(self.log, logging.WARNING, "broker.unreachable", str(exc))
            return []
        for run_id in sent:
            detail = "its message was not in the broker (Redis restarted?): queued again"
            log_event(self.log, logging.WARNING, "run.requeued", detail, run_id=run_id)
        return sent

    def save_watermark(self, now: datetime | None = None) -> datetime:
        """Record the daemon's tick in the store (see ``watermark``); a daemon that uses a lease records it only
        while it holds it (``Deposed`` otherwise), so a deposed leader never moves the new leader's watermark."""
        mark = self.watermark(now or self.clock())
        self.store.set_last_tick(DAEMON_TICK, mark, fence=self._fence())
        return mark


def _timed_out(timeout: timedelta | None) -> str:
    from reportctl.spec.types import format_duration_spec

    return f"timed out after {format_duration_spec(timeout or timedelta(0))}"


def _resolved(path: Path | None) -> Path | None:
    return None if path is None else path.resolve()


__all__ = ["CUT_OFF", "DAEMON_TICK", "Daemon", "DaemonStopping", "JobControl", "ReloadResult"]


def _file_stamp(loaded: Any) -> tuple[tuple[str, int, int], ...]:
    """Modification time and size of a spec's files (bases and reportctl.yaml included), to spot an edit."""
    files = [*loaded.files, *([loaded.project.config_file] if loaded.project.config_file else [])]
    stamps = []
    for file in files:
        try:
            status = file.stat()
        except OSError:
            return ()
        stamps.append((str(file), status.st_mtime_ns, status.st_size))
    return tuple(stamps)
