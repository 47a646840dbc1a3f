"""The audit log: who rendered, delivered, triggered, used a secret or had a policy applied, when, and to what.

Append-only in normal operation: this module adds rows (``record`` and the ``record_*`` shapes of each action) and
reads them (``events``); the only delete is ``prune``, by age, which retention (``audit.retention`` in
reportctl.yaml) calls after runs. No command exists to delete entries.

Who: ``--actor NAME`` (which sets ``REPORTCTL_ACTOR`` for the process and those it starts), else the OS user.
Runs fired by a schedule are the actor ``schedule`` (the OS user of the daemon goes in ``detail``), and a run
rendered elsewhere (a Celery worker) takes the actor of its trigger entry, so the log names who asked, not which
process did the work.

Writing the log never fails what it records: a run whose audit row cannot be written (the store dropped between
the run's own writes and this one) has still happened, and failing it then would lie about it and re-send on retry.
The loss is logged as a warning instead; an installation that must never lose an entry should alert on that warning.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reportctl.state.ledger import LedgerEntry
    from reportctl.state.models import AuditEntry
    from reportctl.state.store import StateStore

ACTOR_ENV = "REPORTCTL_ACTOR"
SCHEDULE_ACTOR = "schedule"
_log = logging.getLogger(__name__)
_acting: ContextVar[str | None] = ContextVar("reportctl_audit_actor", default=None)


def os_user() -> str:
    """The OS user running this process; its uid when the name cannot be found (a container with no passwd entry)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def current_actor() -> str:
    """Who is acting: inside a run, who asked for it (``acting_for_run``); else ``--actor`` / ``REPORTCTL_ACTOR``
    when given, else the OS user."""
    return _acting.get() or os.environ.get(ACTOR_ENV, "").strip() or os_user()


@contextmanager
def acting_for_run(store: StateStore, run_id: str) -> Iterator[str]:
    """Inside the block ``current_actor()`` is who asked for the run: the actor of its trigger entry (recorded
    where it was asked for, maybe on another machine), else ``schedule`` for a scheduled run, else this process's
    actor. So its render, deliveries and policies name the person, not the worker that did the work."""
    actor = actor_of_run(store, run_id)
    if actor is None:
        try:
            scheduled = store.get_run(run_id).trigger == "schedule"
        except Exception:  # the store is down: the run's own writes will say so; the audit takes this process's actor
            scheduled = False
        actor = SCHEDULE_ACTOR if scheduled else current_actor()
    token = _acting.set(actor)
    try:
        yield actor
    finally:
        _acting.reset(token)


@dataclass(frozen=True)
class AuditEvent:
    """One entry of the audit log, as read from the store."""

    id: int
    at: datetime
    actor: str
    action: str
    report: str | None = None
    run_id: str | None = None
    spec_hash: str | None = None
    git_commit: str | None = None
    origin: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, row: AuditEntry) -> AuditEvent:
        return cls(
            id=row.id, at=row.at, actor=row.actor, action=row.action, report=row.report, run_id=row.run_id,
            spec_hash=row.spec_hash, git_commit=row.git_commit, origin=row.origin, detail=dict(row.detail or {}),
        )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, the time as ISO-8601 UTC."""
        from reportctl.state.models import utc_text

        return {**self.__dict__, "at": utc_text(self.at), "detail": dict(self.detail)}


def record(
    store: StateStore,
    action: str,
    *,
    actor: str | None = None,
    report: str | None = None,
    run_id: str | None = None,
    spec_hash: str | None = None,
    git_commit: str | None = None,
    detail: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> bool:
    """Append one entry (``actor`` defaults to ``current_actor()``); False, with a warning logged, when it could not
    be written (see the module's docstring for why that does not fail the caller)."""
    try:
        store.record_audit(
            actor or current_actor(), action, report=report, run_id=run_id, spec_hash=spec_hash,
            git_commit=git_commit, origin=f"{socket.gethostname()}:{os.getpid()}", detail=detail, now=now,
        )  # fmt: skip
    except Exception as exc:  # the audited work is done; losing its entry must not undo or fail it
        _log.warning("audit entry %s for %s not recorded: %s", action, run_id or report or "-", exc)
        return False
    return True


def actor_of_run(store: StateStore, run_id: str) -> str | None:
    """The actor of the run's first trigger entry: who asked for it, wherever it is rendered."""
    from sqlalchemy import select

    from reportctl.state.models import AuditEntry

    try:
        with store._session() as session:
            query = select(AuditEntry.actor).where(AuditEntry.run_id == run_id, AuditEntry.action == "trigger")
            return session.execute(query.order_by(AuditEntry.id).limit(1)).scalar_one_or_none()
    except Exception as exc:  # as in ``record``: the run goes on, under the actor of this process
        _log.warning("audit: the actor of run %s not read: %s", run_id, exc)
        return None


def record_render(store: StateStore, run_id: str, *, secrets: Iterable[str] = ()) -> bool:
    """The ``render`` entry of a run that ended (or was left waiting for a retry), from its record in the store:
    its spec version, parameters, formats, state, viewer and the names (never values) of the secrets it read."""
    try:
        run = store.get_run(run_id)
    except Exception as exc:
        _log.warning("audit entry render for %s not recorded: %s", run_id, exc)
        return False
    formats = sorted({str(a["format"]) for a in run.artifacts if a.get("format")})
    return record(
        store,
        "render",
        report=run.report,
        run_id=run.id,
        spec_hash=run.spec_hash,
        git_commit=run.git_commit,
        detail={
            "status": run.state.value,
            "trigger": run.trigger,
            "parameters": dict(run.parameters or {}),
            "formats": formats,
            "viewer": run.viewer,
            "secrets": sorted(set(secrets)),
            "error": run.error,
        },
    )


def record_fire(
    store: StateStore,
    report: str,
    run_id: str,
    scheduled: datetime,
    *,
    executor: str | None = None,
    skipped: str | None = None,
) -> bool:
    """A schedule's fire: ``trigger`` when its run goes on (rendered here or queued on ``executor``),
    ``trigger.skipped`` with the reason when it does not. The actor is ``schedule``; the OS user is in ``detail``."""
    from reportctl.state.models import utc_text

    detail: dict[str, Any] = {"command": "schedule", "fire_time": utc_text(scheduled), "os_user": os_user()}
    if skipped is not None:
        detail["reason"] = skipped
    else:
        detail["executor"] = executor
    action = "trigger" if skipped is None else "trigger.skipped"
    return record(store, action, actor=SCHEDULE_ACTOR, report=report, run_id=run_id, detail=detail)


def record_deliveries(
    store: StateStore, report: str, run_id: str, entries: Iterable[LedgerEntry], *, resend: bool
) -> None:
    """One ``delivery`` entry per delivery of the run: its recipients (destinations) and how many were sent or not.
    ``resend`` says the failed or unknown ones were asked to be sent again."""
    from reportctl.secrets import redact

    by_delivery: dict[str, list[LedgerEntry]] = {}
    for entry in entries:
        by_delivery.setdefault(entry.channel, []).append(entry)
    for name, rows in by_delivery.items():
        record(
            store,
            "delivery",
            report=report,
            run_id=run_id,
            detail={
                "delivery": name,
                "channel": rows[0].kind,
                "recipients": sorted({redact(row.recipient) for row in rows}),  # a URL may hold a secret
                "sent": sum(1 for row in rows if row.status == "sent"),
                "failed": sum(1 for row in rows if row.status != "sent"),
                "resend": resend,
            },
        )


def record_policy(
    store: StateStore,
    *,
    report: str,
    run_id: str | None,
    viewer: str | None,
    filters: Mapping[str, str],
    actor: str | None = None,
) -> bool:
    """A row-level policy applied to a run: for ``viewer``, the filter each dataset (its name) was read with."""
    return record(
        store,
        "policy",
        actor=actor,
        report=report,
        run_id=run_id,
        detail={"viewer": viewer, "filters": dict(filters)},
    )


def events(
    store: StateStore,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    report: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    limit: int | None = None,
) -> list[AuditEvent]:
    """Entries newest first, filtered; ``action`` also matches its sub-actions (``trigger`` takes
    ``trigger.skipped``)."""
    from sqlalchemy import or_, select

    from reportctl.state.models import AuditEntry

    query = select(AuditEntry)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    if report is not None:
        query = query.where(AuditEntry.report == report)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    if action is not None:
        query = query.where(or_(AuditEntry.action == action, AuditEntry.action.startswith(action + ".")))
    query = query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if limit is not None:
        query = query.limit(limit)
    with store._session() as session:
        return [AuditEvent.of(row) for row in session.execute(query).scalars()]


def prune(store: StateStore, older_than: timedelta, *, now: datetime | None = None) -> int:
    """Delete the entries older than ``older_than`` (retention, by age only); how many went."""
    from sqlalchemy import delete

    from reportctl.state.models import AuditEntry

    cutoff = (now or store.clock()) - older_than
    with store._session(write=True) as session:
        result = session.execute(delete(AuditEntry).where(AuditEntry.at < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)


def record_secret_change(action: str, name: str) -> bool:
    """``secret.set`` / ``secret.delete`` of ``name`` (never its value) in the state store of the project here.
    Outside a project (no reportctl.yaml) there is no log to write to and nothing is recorded; a project's store is
    created for it, since a secret set before the first run is as much a fact as one set after."""
    from reportctl.config import find_project
    from reportctl.state.store import STATE_URL_ENV, open_store

    try:
        project = find_project()
        if project.config_file is None and not os.environ.get(STATE_URL_ENV):
            return False
        with open_store(project) as store:
            return record(store, action, detail={"secret": name})
    except Exception as exc:  # the keyring changed already: say the entry is missing, do not fail the command
        _log.warning("audit entry %s for secret %s not recorded: %s", action, name, exc)
        return False
