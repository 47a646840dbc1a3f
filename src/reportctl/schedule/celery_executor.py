"""``executor: celery``: the daemon (or a tick) claims each fire and queues it; ``reportctl worker`` renders it.

A queued run is already in the state store (SCHEDULED, with its spec hash, revision and parameters) before its
message leaves, so a message lost or repeated loses or doubles nothing: the message only names the run. A worker
takes one message at a time (prefetch 1) and acknowledges it when the run has ended (acks late), so a worker that
dies mid-run leaves its message to Redis to hand to another worker after the visibility timeout. What a worker
renders is checked against what the fire recorded: the same reportctl version, the same spec (by hash, read at the
recorded revision or commit from the worker's own checkout, else from the copy of the spec files the run stored
when it was claimed), and a fire that waited in the queue past its misfire grace is recorded SKIPPED rather than
rendered late.

Celery is an extra (``pip install 'reportctl[celery]'``); nothing here imports it until a run is queued or a
worker starts.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from reportctl import __version__
from reportctl.errors import ReportctlError, SourceError, UsageError, exception_line
from reportctl.schedule.tick import duration_text
from reportctl.state.lifecycle import RunState

if TYPE_CHECKING:
    from celery import Celery

    from reportctl.config import CeleryExecutor, Project
    from reportctl.schedule.specs import ScheduledSpec
    from reportctl.state.models import RunRecord
    from reportctl.state.store import StateStore

TASK = "reportctl.run"
BROKER_ENV = "REPORTCTL_BROKER_URL"
STRANDED_AFTER = timedelta(seconds=30)
"""A waiting run claimed longer ago than this should have its message in the broker."""
MAX_TASKS_PER_CHILD = 100
"""A worker's pool process is replaced after this many runs, so memory a library keeps does not pile up."""

log = logging.getLogger("reportctl.worker")
_APPS: dict[tuple[str, str, str], Celery] = {}
_APPS_LOCK = threading.Lock()
"""One app per project and settings in a process: a daemon queues every fire through the same connection pool."""
_STORES: dict[tuple[int, str], StateStore] = {}


@dataclass(frozen=True)
class QueuedRun:
    """The message of one queued run: the run's id and what the worker needs to check it renders the same run."""

    run_id: str
    report: str
    spec: str
    """The spec's path relative to the project root (workers have their own checkouts, elsewhere)."""
    revision: str | None
    parameters: dict[str, str]
    scheduled: str
    queued_at: str
    """When the message was sent, by the store's clock."""
    late_seconds: float
    """How late the fire already was when it was queued (0 for a retry)."""
    priority: str
    timeout_seconds: float | None
    misfire_grace_seconds: float
    retries: int
    attempt: int = 1
    version: str = __version__


class BrokerUnreachable(ReportctlError):
    """The broker did not take a message (Redis down or refusing); the run it named stays SCHEDULED."""


@contextmanager
def _broker_answers(app: Celery, doing: str) -> Iterator[None]:
    """Turn the broker client's errors into ``BrokerUnreachable``: 'the broker URL (password masked) DOING: why'."""
    from kombu.exceptions import OperationalError
    from kombu.utils.url import maybe_sanitize_url
    from redis.exceptions import RedisError

    try:
        yield
    except (OperationalError, OSError, RedisError) as exc:
        where = maybe_sanitize_url(app.conf.broker_url)
        raise BrokerUnreachable(f"the broker {where} {doing}: {str(exc).rstrip('.')}") from None


def celery_settings(project: Project) -> CeleryExecutor:
    """The project's ``executor: celery`` settings; a usage error when the project renders locally."""
    from reportctl.config import CeleryExecutor

    executor = project.config.executor
    if not isinstance(executor, CeleryExecutor):
        raise UsageError(
            f"{project.config_file or 'reportctl.yaml'}: executor is '{executor.kind}'; "
            "set executor: {kind: celery, broker: redis://HOST:6379/0} to run workers"
        )
    return executor


def broker_url(settings: CeleryExecutor) -> str:
    """The broker URL: REPORTCTL_BROKER_URL, else ``executor.broker`` with its secrets resolved."""
    from reportctl.secrets import resolve_secrets

    return os.environ.get(BROKER_ENV) or resolve_secrets(settings.broker)


def celery_app(project: Project) -> Celery:
    """The Celery application of a project (one per process): its broker, its queues, the ``reportctl.run`` task."""
    from reportctl.extras import missing_extra

    problem = missing_extra("celery", "executor: celery")
    if problem:
        raise UsageError(problem)
    settings = celery_settings(project)
    key = (str(project.root), broker_url(settings), settings.model_dump_json())
    # A daemon's job threads and its broker poll ask at once: each must get the finished app, and celery's lazy
    # package cannot be imported by two threads at a time ("cannot import name 'Celery' from 'celery'").
    with _APPS_LOCK:
        if key not in _APPS:
            from celery import Celery

            _APPS[key] = _new_app(Celery, project, settings)
        return _APPS[key]


def _new_app(celery: type[Celery], project: Project, settings: CeleryExecutor) -> Celery:
    app = celery("reportctl", broker=broker_url(settings), set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,  # the state store holds every outcome
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=MAX_TASKS_PER_CHILD,
        worker_hijack_root_logger=False,
        task_default_queue=settings.queues["standard"],
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": int(settings.visibility_timeout.total_seconds())},
    )
    app.reportctl_project = project

    @app.task(name=TASK, bind=True, shared=False)  # type: ignore[untyped-decorator]  # Celery has no type hints
    def run(task: Any, **message: Any) -> str:
        project = task.app.reportctl_project
        return execute(project, QueuedRun(**message), task.request.hostname or "", store=_process_store(project))

    app.finalize(auto=True)
    return app


def queue_run(
    project: Project, spec: ScheduledSpec, run_id: str, parameters: dict[str, str], scheduled: datetime,
    late: timedelta, queued_at: datetime, *, app: Celery | None = None,
) -> str:  # fmt: skip
    """Send the recorded run ``run_id`` of a fire of ``spec``, ``late`` already, to its priority's queue; the
    queue's name."""
    message = replace(
        _message(project, spec, run_id, parameters),
        scheduled=scheduled.isoformat(),
        queued_at=queued_at.isoformat(),
        late_seconds=late.total_seconds(),
    )
    return send(project, message, app=app)


def _message(project: Project, spec: ScheduledSpec, run_id: str, parameters: dict[str, str]) -> QueuedRun:
    """The message of a run of ``spec`` (its times to be filled in)."""
    try:
        within = spec.path.resolve().relative_to(project.root.resolve()).as_posix()
    except ValueError:
        raise UsageError(
            f"{spec.path}: executor: celery needs specs inside the project folder {project.root}, where workers "
            "find them in their own checkouts"
        ) from None
    return QueuedRun(
        run_id=run_id,
        report=spec.name,
        spec=within,
        revision=spec.rev,
        parameters=parameters,
        scheduled="",
        queued_at="",
        late_seconds=0.0,
        priority=spec.priority,
        timeout_seconds=spec.timeout.total_seconds() if spec.timeout else None,
        misfire_grace_seconds=spec.misfire_grace.total_seconds(),
        retries=spec.retries,
    )


def send(project: Project, message: QueuedRun, *, countdown: float = 0, app: Celery | None = None) -> str:
    """Send ``message`` to its priority's queue (the run's id is the task's id); the queue's name."""
    queue = celery_settings(project).queues[message.priority]  # type: ignore[index]
    timeout = message.timeout_seconds
    app = app or celery_app(project)
    with _broker_answers(app, f"did not take run {message.run_id}"):
        app.send_task(
            TASK,
            kwargs=asdict(message),
            queue=queue,
            task_id=message.run_id,
            countdown=countdown or None,
            soft_time_limit=timeout,
            time_limit=timeout + 30 if timeout else None,
            retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        )
    return queue


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


def _process_store(project: Project) -> StateStore:
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
    from reportctl.state.recording import render_recorded

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
        return f"FAILED: {str(exc).splitlines()[0]}"
    except SoftTimeLimitExceeded:
        error = f"timed out after {duration_text(message.timeout_seconds or 0)} (the report's timeout)"
        fail_lost_run(store, loaded, record.id, error, scheduled)
        return f"FAILED: {error}"
    except Exception as exc:  # a bug in one report must not leave its run looking alive
        error = f"internal error: {exception_line(exc)}"
        fail_lost_run(store, loaded, record.id, error, scheduled)
        return f"FAILED: {error}"
    return f"COMPLETED on {worker or 'this worker'}: {result.directory}"


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


def messages_in_broker(project: Project, *, app: Celery | None = None) -> set[str]:
    """The run ids of every message in the project's queues or taken by a worker and not yet acknowledged (kombu's
    ``unacked`` hash, retries waiting for their countdown included)."""
    import json

    settings = celery_settings(project)
    app = app or celery_app(project)
    ids: set[str] = set()
    queues = set(settings.queues.values())
    with _broker_answers(app, "does not answer"), app.connection_for_read() as connection:
        channel = connection.default_channel
        for queue in queues:
            ids.update(json.loads(raw)["headers"]["id"] for raw in channel.client.lrange(queue, 0, -1))
        for raw in channel.client.hvals(channel.unacked_key):  # one hash for every queue on this Redis
            message, _exchange, routing_key = json.loads(raw)
            if routing_key in queues:
                ids.add(message["headers"]["id"])
    return ids


def queue_stranded(
    project: Project, store: StateStore, specs: Mapping[str, ScheduledSpec], *, older_than: timedelta = STRANDED_AFTER
) -> list[str]:
    """Send again the runs that wait (SCHEDULED) with no message in the broker: Redis restarted, or lost what it
    held (it keeps nothing on disk here). A run claimed within ``older_than`` is left alone, its message on the way,
    and so is one that ``overlap: queue`` holds back until its report's earlier run has ended; one whose report is
    no longer scheduled here is failed, saying so. The run ids sent again.

    A message sent twice does no harm (a worker drops a run that has started); one never sent would leave the run
    waiting for ever. A run that waited past its misfire grace is recorded SKIPPED by the worker that gets it."""
    now = store.clock()
    waiting = [
        run
        for run in store.list_runs(state=RunState.SCHEDULED, limit=10_000)
        if run.trigger in ("schedule", "retry") and now - run.created_at > older_than
    ]
    if not waiting:
        return []
    present = messages_in_broker(project)
    sent: list[str] = []
    for run in (run for run in waiting if run.id not in present):
        spec = specs.get(run.report)
        if spec is None:
            why = "its message was lost from the broker and the report is no longer scheduled here"
            store.transition(run.id, RunState.FAILED, error=why)
            continue
        if spec.overlap == "queue" and _behind_an_earlier_run(store, run):
            continue  # not sent yet on purpose: a daemon holds it until the report's earlier run has ended
        planned = run.planned_at or run.scheduled_for or run.created_at
        message = replace(
            _message(project, spec, run.id, {k: str(v) for k, v in spec.parameters.items()}),
            scheduled=(run.scheduled_for or planned).isoformat(),
            queued_at=now.isoformat(),
            late_seconds=max((now - planned).total_seconds(), 0.0),
            attempt=run.attempt,
        )
        send(project, message)
        sent.append(run.id)
    return sent


def _behind_an_earlier_run(store: StateStore, run: RunRecord) -> bool:
    """Whether an earlier run of ``run``'s report has not ended yet (``overlap: queue`` holds ``run`` until then)."""
    return any(
        not other.state.terminal and other.created_at < run.created_at
        for other in store.list_runs(report=run.report, limit=100)
    )


@dataclass(frozen=True)
class BrokerStatus:
    """What the broker says: runs waiting in each priority's queue, and the workers taking from those queues."""

    queued: dict[str, int]
    workers: list[str]


def broker_status(project: Project, *, timeout: float = 1.0, app: Celery | None = None) -> BrokerStatus:
    """Queue depths (Redis list lengths) and the names of the workers that consume this project's queues and
    answer within ``timeout`` seconds; ``BrokerUnreachable`` when Redis does not answer."""
    settings = celery_settings(project)
    app = app or celery_app(project)
    with _broker_answers(app, "does not answer"):
        with app.connection_for_read() as connection:
            client = connection.default_channel.client
            queued = {str(priority): int(client.llen(queue)) for priority, queue in settings.queues.items()}
        answers = app.control.inspect(timeout=timeout).active_queues() or {}
    ours = set(settings.queues.values())  # a broker may serve other projects' workers too
    workers = [name for name, queues in answers.items() if ours & {queue["name"] for queue in queues}]
    return BrokerStatus(queued, sorted(workers))


def worker_argv(queues: list[str], concurrency: int, name: str | None) -> list[str]:
    """The arguments of ``celery worker`` for ``reportctl worker``."""
    argv = ["worker", "--queues", ",".join(queues), "--concurrency", str(concurrency), "--pool", "prefork"]
    argv += ["--loglevel", "INFO", "--prefetch-multiplier", "1", "--without-gossip", "--without-mingle"]
    return [*argv, "--hostname", name or "reportctl@%h"]


__all__ = [
    "BROKER_ENV",
    "TASK",
    "BrokerUnreachable",
    "QueuedRun",
    "celery_app",
    "execute",
    "queue_run",
    "send",
    "worker_argv",
]
