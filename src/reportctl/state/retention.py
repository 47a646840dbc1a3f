"""The state store's side of retention: which runs may go, which runs' files are due, and recording what was done.

A run is only ever touched when it has ended (COMPLETED, FAILED, SKIPPED ...) and its ledger holds no delivery still
pending or being sent (``claimed_by``): a run reaped while delivering keeps its files and its record for ``reportctl
deliver RUN``. Forgetting a run deletes its timeline and ledger rows with it; the audit log, append-only, keeps what
was rendered and delivered. ``reportctl.retention`` decides and moves the files; this module only reads and writes
rows, each call one short transaction.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, and_, delete, exists, or_, select, update
from sqlalchemy import cast as sql_cast

from reportctl.state.lifecycle import TERMINAL_STATES
from reportctl.state.models import Delivery, Run, RunRecord, RunStateRow

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

    from reportctl.state.store import StateStore

_CHUNK = 500
_NEWEST = (Run.created_at.desc(), Run.id.desc())


def _settled() -> ColumnElement[bool]:
    """The run has ended and no delivery of it waits or is under way."""
    unsettled = exists().where(
        Delivery.run_id == Run.id, or_(Delivery.status == "pending", Delivery.claimed_by.is_not(None))
    )
    return and_(Run.state.in_([state.value for state in TERMINAL_STATES]), ~unsettled)


def runs_beyond(store: StateStore, report: str, keep: int) -> list[RunRecord]:
    """The runs of ``report`` older than its newest ``keep`` (every run counts towards ``keep``, active ones too)
    that may be forgotten, oldest first."""
    if keep < 0:
        raise ValueError(f"keep must be 0 or more, got {keep}")
    newest = select(Run.id).where(Run.report == report).order_by(*_NEWEST).limit(keep)
    query = select(Run).where(Run.report == report, Run.id.not_in(newest), _settled()).order_by(*_NEWEST)
    with store._session() as session:
        return [RunRecord.of(run) for run in reversed(session.scalars(query).all())]


def runs_with_files_due(store: StateStore, report: str, older_than: timedelta, now: datetime) -> list[RunRecord]:
    """The runs of ``report`` that finished before ``now - older_than`` and still have files here, oldest first;
    runs archived before but whose files were not yet deleted (a prune cut short) among them."""
    has_files = or_(Run.output_dir.is_not(None), sql_cast(Run.artifacts, String) != "[]")
    query = (
        select(Run)
        .where(
            Run.report == report,
            Run.finished_at < now - older_than,
            Run.artifacts_deleted_at.is_(None),
            has_files,
            _settled(),
        )
        .order_by(Run.finished_at, Run.id)
    )
    with store._session() as session:
        return [RunRecord.of(run) for run in session.scalars(query)]


def reports_in_store(store: StateStore) -> list[str]:
    """Every report that has a run in the store, by name."""
    with store._session() as session:
        return sorted(session.scalars(select(Run.report).distinct()))


def forget_runs(store: StateStore, run_ids: Sequence[str]) -> set[str]:
    """Delete the runs ``run_ids`` with their timelines and ledger rows, those still settled at this moment (a
    delivery retried meanwhile keeps its run); the ids of those that went."""
    gone: set[str] = set()
    with store._session(write=True) as session:
        for start in range(0, len(run_ids), _CHUNK):
            chunk = list(run_ids[start : start + _CHUNK])
            doomed = list(session.scalars(select(Run.id).where(Run.id.in_(chunk), _settled())))
            session.execute(delete(RunStateRow).where(RunStateRow.run_id.in_(doomed)))
            session.execute(delete(Delivery).where(Delivery.run_id.in_(doomed)))
            session.execute(delete(Run).where(Run.id.in_(doomed)))
            gone.update(doomed)
    return gone


def record_archived(
    store: StateStore, run_id: str, folder: str, artifacts: list[dict[str, Any]], now: datetime
) -> None:
    """The run's files are in the archive ``folder``: its artifacts (each with its ``archive`` URL) and the time.
    Written after every upload succeeded and before any local file is deleted."""
    with store._session(write=True) as session:
        session.execute(
            update(Run).where(Run.id == run_id).values(archive_url=folder, archived_at=now, artifacts=artifacts)
        )


def record_files_deleted(store: StateStore, run_id: str, note: str, now: datetime) -> None:
    """The run's local files are gone (deleted, or archived then deleted): ``note`` says which, on ``runs show``."""
    with store._session(write=True) as session:
        session.execute(
            update(Run)
            .where(Run.id == run_id, Run.artifacts_deleted_at.is_(None))
            .values(artifacts_deleted_at=now, artifacts_note=note)
        )


def delete_run_files(run: RunRecord) -> None:
    """Remove a run's files; its whole folder only when it is the run's own (named after the run id)."""
    base = Path(run.output_dir) if run.output_dir else None
    for artifact in run.artifacts:
        path = Path(str(artifact.get("path", "")))
        if not path.is_absolute():
            if base is None:
                continue
            path = base / path
        path.unlink(missing_ok=True)
    if base is not None and base.name == run.id and base.is_dir():
        shutil.rmtree(base, ignore_errors=True)
