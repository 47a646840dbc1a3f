"""``executor: celery``: the daemon (or a tick) claims each fire and queues it; ``reportctl worker`` renders it.

A queued run is already in the state store (SCHEDULED, with its spec hash, revision and parameters) before its
message leaves, so a message lost or repeated loses or doubles nothing: the message only names the run. A worker
takes one message at a time (prefetch 1) and acknowledges it when the run has ended (acks late), so a worker that
dies mid-run leaves its message to Redis to hand to another worker after the visibility timeout.

This module is the Celery application and the sending side; what a worker does with a message is
``celery_worker``, what the broker holds is ``celery_broker``. Celery is an extra (``pip install
'reportctl[celery]'``); nothing here imports it until a run is queued or a worker starts.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from reportctl import __version__
from reportctl.errors import ReportctlError, UsageError

if TYPE_CHECKING:
    from celery import Celery

    from reportctl.config import CeleryExecutor, Project
    from reportctl.schedule.specs import ScheduledSpec

TASK = "reportctl.run"
BROKER_ENV = "REPORTCTL_BROKER_URL"
MAX_TASKS_PER_CHILD = 100
"""A worker's pool process is replaced after this many runs, so memory a library keeps does not pile up."""

_APPS: dict[tuple[str, str, str], Celery] = {}
_APPS_LOCK = threading.Lock()
"""One app per project and settings in a process: a daemon queues every fire through the same connection pool."""


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
def broker_answers(app: Celery, doing: str) -> Iterator[None]:
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
        from reportctl.schedule.celery_worker import execute, process_store

        return execute(project, QueuedRun(**message), task.request.hostname or "", store=process_store(project))

    app.finalize(auto=True)
    return app


def queue_run(
    project: Project, spec: ScheduledSpec, run_id: str, parameters: dict[str, str], scheduled: datetime,
    late: timedelta, queued_at: datetime, *, app: Celery | None = None,
) -> str:  # fmt: skip
    """Send the recorded run ``run_id`` of a fire of ``spec``, ``late`` already, to its priority's queue; the
    queue's name."""
    message = replace(
        queued_message(project, spec, run_id, parameters),
        scheduled=scheduled.isoformat(),
        queued_at=queued_at.isoformat(),
        late_seconds=late.total_seconds(),
    )
    return send(project, message, app=app)


def queued_message(project: Project, spec: ScheduledSpec, run_id: str, parameters: dict[str, str]) -> QueuedRun:
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
    with broker_answers(app, f"did not take run {message.run_id}"):
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
    "queue_run",
    "send",
    "worker_argv",
]
