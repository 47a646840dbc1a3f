"""What a ``reportctl worker`` does with a queued run: check it, take it over from a lost worker, render it.

What a worker renders is checked against what the fire recorded: the same reportctl version, the same spec (by
hash, read at the recorded revision or commit from the worker's own checkout, else from the copy of the spec files
the run stored when it was claimed), and a fire that waited in the queue past its misfire grace is recorded SKIPPED
rather than rendered late. A message may come more than once (a worker that vanished, a visibility timeout): the
state store says what became of its run.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from reportctl import __version__
from reportctl.errors import ReportctlError, SourceError, exception_line
from reportctl.schedule.celery_executor import BrokerUnreachable, QueuedRun, send
from reportctl.schedule.tick import duration_text
from reportctl.state.lifecycle import RunState, completed_state

if TYPE_CHECKING:
    from reportctl.config import Project
    from reportctl.state.models import RunRecord
    from reportctl.state.store import StateStore

log = logging.getLogger("reportctl.worker")
_STORES: dict[tuple[int, str], StateStore] = {}


def execute(project: Project, message: QueuedRun, worker: str = "", *, store: StateStore | None = None) -> str:
    """Render and deliver the queued run on this worker; what became of it, for the worker's log.

    A message for a run that has already ended, or that a live worker of this host is rendering, is dropped: Redis
    may hand a message out again (a worker that vanished, a visibility timeout), and the state store says what
    happened. One for a run that a worker of another host is still rendering, by its heartbeat, is looked at again
    once a silent worker would count as lost: when that host's pool process was killed, its message came back at
    once, while the heartbeat it left still looks fresh. Without ``store``, the project's is opened for this run.
    """
    if store is None:
        from reportctl.state import open_store

        with open_store(project) as opened:
            return execute(project, message, worker, store=opened)
    record = store.get_run(message.run_id)
    if record.state in (RunState.GENERATING, RunState.FORMATTING):
        record = _take_over(project, store, record, message)
        if record.state is not RunState.SCHEDULED and not record.state.terminal and not _on_this_host(record.worker):
            return _look_again(project, store, record, message)
    if record.state is not RunState.SCHEDULED:
        return f"run {record.id} is {record.state.value}{_by(record)}: nothing to do"
    refusal = _refusal(project, store, message)
    if refusal is not None:
        state, why = refusal
        store.transition(record.id, state, error=why if state is RunState.FAILED else None, detail=why)
        log.warning("%s %s: %s", message.report, record.id, why)
        return why
    return _render(project, store, message, worker)


def _take_over(project: Project, store: StateStore, record: RunRecord, message: QueuedRun) -> RunRecord:
    """A run still rendering when its message comes again: its worker process was killed (Celery hands the message
    out again at once) or its machine vanished (after the visibility timeout). When that worker is gone (on this
    host: its process; elsewhere: no heartbeat within ``state.heartbeat_timeout`` by the store's clock), the run
    goes back to SCHEDULED as its next attempt, once, and is rendered here under the same record; its deliveries
    had not started. Lost a second time, it fails. Otherwise it is left to its worker."""
    from reportctl.state.liveness import worker_alive_here

    worker = record.worker or ""
    if _on_this_host(worker):
        lost = not worker_alive_here(worker)
    else:
        beat = record.heartbeat_at or record.created_at
        lost = store.clock() - beat > project.config.state.heartbeat_timeout
    if not lost:
        return record
    why = f"worker {worker or '(unknown)'} lost while {record.state.value}"
    if record.attempt > message.attempt:  # taken over once already
        failed = store.transition(record.id, RunState.FAILED, error=f"{why}, the second time; not tried again")
        log.warning("%s %s: %s", message.report, record.id, failed.error)
        return failed
    requeued = store.requeue(record.id, f"{why}; rendered again by another worker", worker=worker)
    log.warning("%s %s: %s; rendering it again", message.report, record.id, why)
    return requeued or store.get_run(record.id)


def _on_this_host(worker: str | None) -> bool:
    return (worker or "").rpartition(":")[0] == socket.gethostname()


def _look_again(project: Project, store: StateStore, record: RunRecord, message: QueuedRun) -> str:
    """Send the message of ``record``, rendering on another host, again for when its worker would count as lost if
    it has gone silent meanwhile; the run started in time, so the wait does not count against its misfire grace."""
    after = project.config.state.heartbeat_timeout + timedelta(seconds=5)
    due = store.clock() + after
    send(project, replace(message, queued_at=due.isoformat(), late_seconds=0.0), countdown=after.total_seconds())
    again = duration_text(after.total_seconds())
    return f"run {record.id} is {record.state.value} on {record.worker}: looked at again in {again}"


def _by(record: RunRecord) -> str:
    return f" on {record.worker}" if record.worker and not record.state.terminal else ""


def process_store(project: Project) -> StateStore:
    """This worker process's state store, opened on its first run and kept for the next ones: opening one took
    18 ms, more than rendering a small report, and a pool process serves up to ``MAX_TASKS_PER_CHILD`` runs."""
    from reportctl.state import open_store, state_url

    key = (os.getpid(), state_url(project))  # a forked process opens its own
    store = _STORES.get(key)
    if store is None:
        store = _STORES[key] = open_store(project)
    return store


def _refusal(project: Project, store: StateStore, message: QueuedRun) -> tuple[RunState, str] | None:
    """Why this worker must not render the run (FAILED: another version; SKIPPED: waited past its grace)."""
    if message.version != __version__:
        return RunState.FAILED, (
            f"the run was queued by reportctl {message.version} and this worker runs {__version__}; "
            "run one version on daemons and workers"
        )
    waited = store.clock() - datetime.fromisoformat(message.queued_at)
    if waited + timedelta(seconds=message.late_seconds) > timedelta(seconds=message.misfire_grace_seconds):
        from reportctl.schedule.tick import duration_text

        grace = duration_text(message.misfire_grace_seconds)
        return (
            RunState.SKIPPED,
            f"waited {duration_text(waited.total_seconds())} in the queue, past misfire_grace {grace}",
        )
    return None


def _render(project: Project, store: StateStore, message: QueuedRun, worker: str) -> str:
    from celery.exceptions import SoftTimeLimitExceeded

    from reportctl.schedule.workers import fail_lost_run
    from reportctl.state.recording import record_failed_once_stored, render_recorded

    record = store.get_run(message.run_id)
    try:
        loaded = _load_same_spec(project, store, message, record.spec_hash, record.git_commit)
    except ReportctlError as exc:
        why = str(exc).splitlines()[0]
        store.transition(record.id, RunState.FAILED, error=why)
        return why
    scheduled = datetime.fromisoformat(message.scheduled)
    delay = min(2 ** (message.attempt - 1), 60)  # 1 s, 2 s, 4 s ... at most a minute

    def again(error: BaseException) -> str | None:
        """The spec asks for retries of a source that failed to answer: the same run, its next attempt."""
        if not isinstance(error, SourceError) or message.attempt > message.retries:
            return None
        return f"attempt {message.attempt} failed: {str(error).splitlines()[0]}; tried again in {delay} s"

    try:
        result = render_recorded(
            store, loaded, record.id, deliver=True, parameters=message.parameters, now=scheduled, retry=again,
            node=worker or None,
        )  # fmt: skip
    except SourceError as exc:
        retry = store.get_run(record.id)
        if retry.state is not RunState.SCHEDULED:
            return f"FAILED: {str(exc).splitlines()[0]}"
        failed = f"attempt {message.attempt} failed: {str(exc).splitlines()[0]}"
        due = store.clock() + timedelta(seconds=delay)
        try:
            send(
                project,
                replace(message, attempt=retry.attempt, queued_at=due.isoformat(), late_seconds=0.0),
                countdown=delay,
            )
        except BrokerUnreachable as down:  # the run waits SCHEDULED; the leading daemon sends it again
            return f"{failed}; attempt {retry.attempt} waits for the broker: {down}"
        return f"{failed}; attempt {retry.attempt} in {delay} s"
    except ReportctlError as exc:
        error = str(exc).splitlines()[0]
        # a render that failed because the store broke under it could not record so: this pool process lives on
        # and the reaper would spare the run for ever
        record_failed_once_stored(store, record.id, error, sleep=time.sleep, warn=log.warning)
        return f"FAILED: {error}"
    except SoftTimeLimitExceeded:
        error = f"timed out after {duration_text(message.timeout_seconds or 0)} (the report's timeout)"
        fail_lost_run(store, loaded, record.id, error, scheduled)
        return f"FAILED: {error}"
    except Exception as exc:  # a bug in one report must not leave its run looking alive
        error = f"internal error: {exception_line(exc)}"
        fail_lost_run(store, loaded, record.id, error, scheduled)
        return f"FAILED: {error}"
    state = completed_state(result.warnings).value
    return f"{state} on {worker or 'this worker'}: {result.directory}"


def _load_same_spec(project: Project, store: StateStore, message: QueuedRun, spec_hash: str, commit: str | None) -> Any:
    """The spec as the fire recorded it: read at its revision (or the working tree), else at the commit the run
    recorded, else from the copy of the spec files the run stored when it was queued; a spec error when this
    worker's checkout has none of them (or cannot be read, and the run stored no copy)."""
    from reportctl.errors import Problem, SpecError
    from reportctl.spec.revisions import load_spec_at

    path = project.root / message.spec
    unreadable: ReportctlError | None = None
    try:
        loaded = load_spec_at(path, message.revision, project)
    except ReportctlError as exc:  # not there yet, or invalid here: the stored copy may still be the one
        unreadable = exc
    else:
        if not spec_hash or loaded.spec_hash == spec_hash:
            return loaded
    if commit:
        try:
            at_commit = load_spec_at(path, commit, project)
        except ReportctlError:
            at_commit = None
        if at_commit is not None and at_commit.spec_hash == spec_hash:
            return at_commit
    why = "this worker's copy differs"
    if unreadable is not None:
        why = f"this worker's copy cannot be used ({str(unreadable).splitlines()[0]})"
    stored = _stored_spec(project, store, message, spec_hash, why)
    if stored is not None:
        return stored
    if unreadable is not None:
        raise unreadable
    where = f"commit {commit[:12]} does not have it either" if commit else "the run recorded no commit"
    problem = Problem(
        f"this worker's copy differs from the spec the fire recorded (hash {spec_hash[:12]}) and {where}; "
        "deploy the same revision to workers and daemons",
        file=path,
    )
    raise SpecError([problem])


def _stored_spec(project: Project, store: StateStore, message: QueuedRun, spec_hash: str, why: str) -> Any | None:
    """The spec from the copy its run stored when queued (``reportctl.spec.bundle``), when that copy hashes as the
    fire recorded, noted on the run's timeline; None for a run queued without one (by an older reportctl)."""
    from reportctl.spec.bundle import is_bundle, load_stored_spec

    bundle = store.spec_bundle(message.run_id)
    if not spec_hash or bundle is None or not is_bundle(bundle):
        return None
    loaded = load_stored_spec(project.root / message.spec, bundle, project, ref=message.revision)
    if loaded.spec_hash != spec_hash:
        return None
    note = f"rendered from the spec stored with the run: {why}"
    store.note(message.run_id, note)
    log.warning("%s %s: %s", message.report, message.run_id, note)
    return loaded


__all__ = ["execute", "process_store"]
