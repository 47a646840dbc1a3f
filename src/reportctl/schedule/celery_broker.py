"""What the broker holds for a project: the runs whose messages wait or are being worked on, the queue depths and
the workers; and the runs to send again when Redis lost their messages."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from reportctl.schedule.celery_executor import broker_answers, celery_app, celery_settings, queued_message, send
from reportctl.state.lifecycle import RunState

if TYPE_CHECKING:
    from celery import Celery

    from reportctl.config import Project
    from reportctl.schedule.specs import ScheduledSpec
    from reportctl.state.models import RunRecord
    from reportctl.state.store import StateStore

STRANDED_AFTER = timedelta(seconds=30)
"""A waiting run claimed longer ago than this should have its message in the broker."""


def messages_in_broker(project: Project, *, app: Celery | None = None) -> set[str]:
    """The run ids of every message in the project's queues or taken by a worker and not yet acknowledged (kombu's
    ``unacked`` hash, retries waiting for their countdown included)."""
    settings = celery_settings(project)
    app = app or celery_app(project)
    ids: set[str] = set()
    queues = set(settings.queues.values())
    with broker_answers(app, "does not answer"), app.connection_for_read() as connection:
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
            queued_message(project, spec, run.id, {k: str(v) for k, v in spec.parameters.items()}),
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
    with broker_answers(app, "does not answer"):
        with app.connection_for_read() as connection:
            client = connection.default_channel.client
            queued = {str(priority): int(client.llen(queue)) for priority, queue in settings.queues.items()}
        answers = app.control.inspect(timeout=timeout).active_queues() or {}
    ours = set(settings.queues.values())  # a broker may serve other projects' workers too
    workers = [name for name, queues in answers.items() if ours & {queue["name"] for queue in queues}]
    return BrokerStatus(queued, sorted(workers))


__all__ = ["STRANDED_AFTER", "BrokerStatus", "broker_status", "messages_in_broker", "queue_stranded"]
