"""``reportctl schedule tick``: run whatever fell due since the last tick, for teams driving reportctl from cron.

Every fire is claimed in the state store before it runs (a unique key per report and scheduled time), so a tick
and a daemon, or two ticks on two machines, never run the same fire twice. Fires missed beyond their misfire
grace are recorded once as SKIPPED, never run as a burst of catch-up runs. A scheduled run renders as of its
scheduled time, so "yesterday" means the day before the fire even when the tick comes late.

With ``jobs`` above one, reports that fell due render at once, each report's fires in order in one worker process
of a pool (PDF and Excel writers hold the GIL, so threads would take turns), critical reports submitted first.

A tick leaves the schedules to a daemon that holds the scheduler lease (``daemon_in_charge``): a project that runs
a daemon keeps one place that fires, with its priorities and pools, and a leftover cron entry does no harm.
``--now`` is the time fires are planned for, never a clock for liveness: lost workers are judged by the store's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from reportctl.errors import ReportctlError, SourceError
from reportctl.state import audit
from reportctl.state.lifecycle import RunState, completed_state

if TYPE_CHECKING:
    from reportctl.config import Project
    from reportctl.schedule.specs import ScheduledSpec
    from reportctl.schedule.triggers import Fire
    from reportctl.state.leader import Fence, LeaseState
    from reportctl.state.store import StateStore

TICK_NAME = "tick"
QUEUE_POLL_SECONDS = 1.0


class RenderFire(Protocol):
    """Renders one claimed run (``render_recorded`` by default; the daemon wraps it, a benchmark stubs it)."""

    def __call__(
        self, store: StateStore, loaded: Any, run_id: str, *, parameters: dict[str, str], now: datetime
    ) -> Any:
        """Render ``loaded`` as run ``run_id``; the result has ``run_id`` and ``directory``."""


def render_fire(store: StateStore, loaded: Any, run_id: str, *, parameters: dict[str, str], now: datetime) -> Any:
    """The default ``RenderFire``: ``render_recorded`` as of the scheduled time, delivered as its DISTRIBUTING stage."""
    from reportctl.state.recording import render_recorded

    return render_recorded(store, loaded, run_id, deliver=True, parameters=parameters, now=now)


@dataclass(frozen=True)
class TickOutcome:
    """What a tick did with one fire of one report."""

    report: str
    scheduled: datetime
    state: str
    run_id: str | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "report": self.report,
            "scheduled": self.scheduled.isoformat(),
            "state": self.state,
            "run_id": self.run_id,
            "detail": self.detail,
        }


def run_tick(
    project: Project,
    store: StateStore,
    now: datetime,
    *,
    say: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    jobs: int = 1,
) -> tuple[list[TickOutcome], list[Any]]:
    """Run every fire due at ``now`` since the last tick; returns what happened and the invalid specs skipped.
    With ``jobs`` above one, the reports that fell due render in that many worker processes."""
    from reportctl.schedule.specs import scheduled_specs
    from reportctl.schedule.triggers import due_fires

    say = say or (lambda _message: None)
    specs, problems = scheduled_specs([d for d in project.spec_dirs if d.is_dir()], project)
    queued = project.config.executor.kind == "celery"  # waiting runs wait in the broker
    for lost in store.reap_lost(project.config.state.heartbeat_timeout, queued=queued):
        if lost.state is RunState.COMPLETED:  # lost while delivering: finish it, nobody gets it twice
            _resume_delivery(store, project, lost, say)
    if project.config.executor.kind == "celery":
        _queue_stranded(project, store, specs, say)
    since = store.last_tick(TICK_NAME)
    outcomes: list[TickOutcome] = []
    due: list[tuple[ScheduledSpec, list[Fire]]] = []
    # critical reports first, so they never wait behind standard ones
    for spec in sorted(specs, key=lambda s: (s.priority != "critical", s.name)):
        fires = due_fires(
            spec.cron,
            spec.timezone,
            report=spec.name,
            jitter=spec.jitter,
            since=since,
            now=now,
            misfire_grace=spec.misfire_grace,
        )
        missed = [fire for fire in fires if fire.misfired]
        if missed:
            outcomes.extend(record_missed(store, spec, missed, now))
        if any(not fire.misfired for fire in fires):
            due.append((spec, [fire for fire in fires if not fire.misfired]))
    if jobs > 1 and len(due) > 1:
        outcomes.extend(_run_in_processes(project, due, now, jobs, say))
    else:
        for spec, fires in due:
            outcomes.extend(run_fire(project, store, spec, fire, now, say, sleep) for fire in fires)
    store.set_last_tick(TICK_NAME, now)
    return outcomes, problems


def daemon_in_charge(store: StateStore, now: datetime) -> LeaseState | None:
    """The daemon holding the scheduler lease, by the store's clock, or None. While one holds it a tick fires
    nothing; its watermark moves to ``now`` all the same, so a tick after the daemon has gone does not go back over
    fires that were the daemon's."""
    from reportctl.state.leader import read_lease

    lease = read_lease(store)
    if lease is None or not lease.live:
        return None
    store.set_last_tick(TICK_NAME, now)
    return lease


def _queue_stranded(
    project: Project, store: StateStore, specs: list[ScheduledSpec], say: Callable[[str], None]
) -> None:
    """Send again the waiting runs whose message the broker lost (Redis restarted and kept nothing)."""
    from reportctl.schedule.celery_broker import queue_stranded

    try:
        sent = queue_stranded(project, store, {spec.name: spec for spec in specs})
    except ReportctlError as exc:
        say(f"cannot look for runs the broker lost: {exc}")
        return
    for run_id in sent:
        say(f"run {run_id} had no message in the broker (Redis restarted?): queued it again")


def _run_in_processes(
    project: Project, due: list[tuple[ScheduledSpec, list[Fire]]], now: datetime, jobs: int, say: Callable[[str], None]
) -> list[TickOutcome]:
    """Each report's due fires in a worker process of a pool of ``jobs``; outcomes in the order reports were due."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    say(f"rendering {len(due)} reports in {min(jobs, len(due))} processes")
    with ProcessPoolExecutor(max_workers=min(jobs, len(due)), mp_context=context) as pool:
        futures = [pool.submit(_run_fires, project, spec, fires, now) for spec, fires in due]
        return [outcome for future in futures for outcome in future.result()]


def _run_fires(project: Project, spec: ScheduledSpec, fires: list[Fire], now: datetime) -> list[TickOutcome]:
    """One report's due fires, in order, in a worker process with its own connection to the state store."""
    from reportctl.state import open_store

    with open_store(project) as store:
        return [run_fire(project, store, spec, fire, now, lambda _message: None, time.sleep) for fire in fires]


def record_missed(
    store: StateStore, spec: ScheduledSpec, missed: list[Fire], now: datetime, *, fence: Fence | None = None
) -> list[TickOutcome]:
    """One SKIPPED run for the latest missed fire, saying how many were missed: a record, not a backlog."""

    latest = missed[-1]
    claim = store.claim_fire(
        spec.name, latest.scheduled, latest.planned, fence=fence, spec_path=str(spec.path), now=now
    )
    if claim is None:
        return []
    count = len(missed)
    grace = duration_text(spec.misfire_grace.total_seconds())
    why = f"past misfire_grace {grace}" if latest.late > spec.misfire_grace else "a later fire ran in their place"
    detail = f"missed {count} fire{'s' if count != 1 else ''} (the latest {_late(latest)} late), {why}"
    store.transition(claim.id, RunState.SKIPPED, detail=detail, now=now)
    audit.record_fire(store, spec.name, claim.id, latest.scheduled, skipped=detail)
    return [TickOutcome(spec.name, latest.scheduled, "SKIPPED", claim.id, detail)]


def run_fire(
    project: Project,
    store: StateStore,
    spec: ScheduledSpec,
    fire: Fire,
    now: datetime,
    say: Callable[[str], None],
    sleep: Callable[[float], None],
    *,
    render: RenderFire = render_fire,
    load: Callable[[ScheduledSpec], Any] | None = None,
    fence: Fence | None = None,
    warn: Callable[[str], None] | None = None,
) -> TickOutcome:
    """Claim one due fire and run it: overlap skip or queue, then render with retries (shared by tick and daemon).
    A daemon's claim carries its scheduler lease's ``fence``: ``Deposed`` when another daemon has taken over.
    ``warn`` hears what an operator must know (a broker that does not take the run), ``say`` the rest. For
    ``executor: celery`` the claim stores the spec files as read (``reportctl.spec.bundle``) for its worker."""
    from reportctl.run_record import jsonable_parameters
    from reportctl.runner import resolve_parameters
    from reportctl.spec.revisions import load_spec_at

    parameters = {name: str(value) for name, value in spec.parameters.items()}
    loaded: Any = None
    problem: ReportctlError | None = None
    try:  # read before claiming, so the record holds the resolved parameters; a failure is recorded, not lost
        loaded = load(spec) if load is not None else load_spec_at(spec.path, spec.rev, project)
        resolved = jsonable_parameters(resolve_parameters(loaded, parameters, fire.scheduled))
    except ReportctlError as exc:
        problem, resolved = exc, {}
    bundle = None
    if problem is None and project.config.executor.kind == "celery":
        from reportctl.spec.bundle import spec_bundle

        try:  # a worker whose copy of the spec differs renders this one, the copy the fire read
            bundle = spec_bundle(loaded)
        except ReportctlError as exc:
            problem = exc
    claim, active = store.claim_fire_noting_active(
        spec.name,
        fire.scheduled,
        fire.planned,
        fence=fence,
        spec_path=str(spec.path),
        spec_hash=loaded.spec_hash if loaded else "",
        revision=spec.rev,
        parameters=resolved,
        spec_bundle=bundle,
        now=now,
    )
    if claim is None:
        return TickOutcome(spec.name, fire.scheduled, "CLAIMED", None, "already run by another tick or daemon")
    if problem is not None:
        message = str(problem).splitlines()[0]
        store.transition(claim.id, RunState.FAILED, error=message, now=now)
        return TickOutcome(spec.name, fire.scheduled, "FAILED", claim.id, message)
    if active is not None and spec.overlap == "skip":
        detail = f"overlap: skip; run {active.id} of this report is still {active.state}"
        store.transition(claim.id, RunState.SKIPPED, detail=detail, now=now)
        audit.record_fire(store, spec.name, claim.id, fire.scheduled, skipped=detail)
        return TickOutcome(spec.name, fire.scheduled, "SKIPPED", claim.id, detail)
    audit.record_fire(store, spec.name, claim.id, fire.scheduled, executor=project.config.executor.kind)
    if active is not None:  # overlap: queue, wait for the active run to end
        say(f"{spec.name}: waiting for run {active.id} to finish")
        while _still_active(store, active.id):
            sleep(QUEUE_POLL_SECONDS)
    if project.config.executor.kind == "celery":
        return _queue(project, store, spec, fire, claim.id, parameters, now - fire.planned, warn or say, sleep)
    return _render_with_retries(store, spec, loaded, parameters, resolved, fire, claim.id, say, sleep, render)


def _queue(
    project: Project,
    store: StateStore,
    spec: ScheduledSpec,
    fire: Fire,
    run_id: str,
    parameters: dict[str, str],
    late: timedelta,
    warn: Callable[[str], None],
    sleep: Callable[[float], None],
) -> TickOutcome:
    """Send the claimed run to its Celery queue. While the broker cannot be reached the run waits (SCHEDULED),
    ``warn`` is told, and sending is retried with backoff until the fire is later than its misfire grace: then it
    is SKIPPED."""
    from reportctl.schedule.celery_executor import BrokerUnreachable, queue_run

    started, wait = time.monotonic(), 1.0
    while True:
        waited = timedelta(seconds=time.monotonic() - started)
        try:
            queue = queue_run(project, spec, run_id, parameters, fire.scheduled, late + waited, store.clock())
        except BrokerUnreachable as exc:
            if late + waited > spec.misfire_grace:
                detail = f"not queued: {exc}; retried for {duration_text(waited.total_seconds())}, past misfire_grace"
                store.transition(run_id, RunState.SKIPPED, detail=detail)
                audit.record_fire(store, spec.name, run_id, fire.scheduled, skipped=detail)
                return TickOutcome(spec.name, fire.scheduled, "SKIPPED", run_id, detail)
            warn(f"{spec.name}: {exc}; run {run_id} waits, sending again in {wait:g} s")
            sleep(wait)
            wait = min(wait * 2, 30.0)
            continue
        except ReportctlError as exc:  # a spec outside the project: recorded, not left waiting
            message = str(exc).splitlines()[0]
            store.transition(run_id, RunState.FAILED, error=message)
            return TickOutcome(spec.name, fire.scheduled, "FAILED", run_id, message)
        return TickOutcome(spec.name, fire.scheduled, "QUEUED", run_id, f"queued on {queue}")


def _still_active(store: StateStore, run_id: str) -> bool:
    return not store.get_run(run_id).state.terminal


def _render_with_retries(
    store: StateStore,
    spec: ScheduledSpec,
    loaded: Any,
    parameters: dict[str, str],
    resolved: dict[str, Any],
    fire: Fire,
    run_id: str,
    say: Callable[[str], None],
    sleep: Callable[[float], None],
    render: RenderFire,
) -> TickOutcome:
    """Render the claimed run; on a retryable failure (a source that failed to answer) retry with backoff."""
    attempt = 1
    while True:
        say(f"{spec.name}: rendering the {fire.scheduled.isoformat()} fire (attempt {attempt})")
        try:
            result = render(store, loaded, run_id, parameters=parameters, now=fire.scheduled)
        except ReportctlError as exc:
            if not isinstance(exc, SourceError) or attempt > spec.retries:
                return TickOutcome(spec.name, fire.scheduled, "FAILED", run_id, str(exc).splitlines()[0])
            sleep(min(2 ** (attempt - 1), 60))  # 1 s, 2 s, 4 s ... at most a minute
            attempt += 1
            retry = store.create_run(
                spec.name,
                trigger="retry",
                attempt=attempt,
                spec_path=str(spec.path),
                spec_hash=loaded.spec_hash,
                revision=spec.rev,
                parameters=resolved,
                scheduled_for=fire.scheduled,
                planned_at=fire.planned,
            )
            run_id = retry.id
            continue
        state = completed_state(getattr(result, "warnings", ())).value
        return TickOutcome(spec.name, fire.scheduled, state, result.run_id, str(result.directory))


def _late(fire: Fire) -> str:
    return duration_text(fire.late.total_seconds())


def duration_text(total: float) -> str:
    """Seconds as a spec duration, whole seconds: ``1h30m``."""
    from reportctl.spec.types import format_duration_spec

    return format_duration_spec(timedelta(seconds=int(total)))


def _resume_delivery(store: StateStore, project: Project, run: Any, say: Callable[[str], None]) -> None:
    from reportctl.delivery.engine import resume_delivery

    try:
        report = resume_delivery(store, project, run)
    except ReportctlError as exc:
        say(f"{run.report}: could not finish the delivery of run {run.id}: {exc}")
        return
    say(f"{run.report}: finished the delivery of run {run.id}: {report.summary() or 'nothing left'}")
    for note in report.notes:  # e.g. the recipients the lost worker was sending to, now unknown
        say(f"{run.report}: {note}")
