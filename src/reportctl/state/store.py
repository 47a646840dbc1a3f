"""The state store: runs and their timeline, scheduler ticks and the audit log, in SQLite or PostgreSQL.

Each method is one short transaction and returns frozen snapshots (``RunRecord``), never ORM objects, so callers
never hold a session or a lock. State changes are compare-and-set updates, so two processes cannot both move a run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError
from sqlalchemy.orm import Session

from reportctl.errors import ReportctlError, first_line
from reportctl.state.leader import Fence, check_fence, store_now
from reportctl.state.lifecycle import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    TRIGGERS,
    IllegalTransition,
    RunState,
    Trigger,
    UnknownRun,
    is_legal,
    new_run_id,
)
from reportctl.state.liveness import worker_alive_here, worker_name
from reportctl.state.migrations import (
    STATE_URL_ENV,
    create_state_engine,
    database_url,
    describe_failure,
    sqlite_file,
    state_url,
    upgrade_to_head,
    write_options,
)
from reportctl.state.models import (
    AuditEntry,
    Run,
    RunRecord,
    RunStateRow,
    SchedulerTick,
    StateChange,
    utc_text,
)

if TYPE_CHECKING:
    from reportctl.config import Project

__all__ = [
    "STATE_URL_ENV",
    "NoStateStore",
    "StateStore",
    "StateStoreError",
    "fire_key",
    "open_store",
    "state_url",
]

_ACTIVE = [s.value for s in ACTIVE_STATES]
# built once: a statement executed with parameters is compiled once, one made with .values() on every call
_INSERT_RUN = insert(Run.__table__)  # type: ignore[arg-type]
# on PostgreSQL a new run's first heartbeat is the server's time, whatever the inserting machine's clock says
_INSERT_RUN_SERVER_BEAT = (
    insert(Run.__table__).values(heartbeat_at=func.now()).returning(Run.heartbeat_at)  # type: ignore[arg-type]
)
_INSERT_STATE = insert(RunStateRow.__table__)  # type: ignore[arg-type]
_ACTIVE_RUN = (
    select(Run.id)
    .where(Run.report == bindparam("report"), Run.state.in_(_ACTIVE))
    .order_by(Run.created_at.desc(), Run.id.desc())
    .limit(1)
)


class StateStoreError(ReportctlError):
    """The state store cannot be reached or refused a statement; the message names the URL without password."""


class NoStateStore(StateStoreError):
    """A command that only reads found no state store: nothing has been recorded in this project yet."""


def open_store(project: Project, *, create: bool = True) -> StateStore:
    """The project's state store, migrated to the newest schema.

    A SQLite store's folder is made when the store is first created. Commands that only read (``runs``,
    ``replay``, ``deliver``) pass ``create=False``: where no store exists yet they get ``NoStateStore`` instead of
    leaving an empty database behind.
    """
    url = state_url(project)
    file = sqlite_file(url)
    if file is not None and not file.exists():
        if not create:
            raise NoStateStore(f"no runs are recorded in this project yet (no state store at {file})")
        file.parent.mkdir(parents=True, exist_ok=True)
    return StateStore(url)


def fire_key(report: str, scheduled_for: datetime) -> str:
    """The unique name of one scheduled fire: ``<report>@<scheduled time in ISO UTC>``."""
    return f"{report}@{utc_text(scheduled_for)}"


class StateStore:
    """Runs, their timelines, deliveries, audit and scheduler ticks in one SQLAlchemy database."""

    def __init__(self, url: str) -> None:
        try:
            parsed = database_url(url)
        except ArgumentError:
            raise StateStoreError(
                "state store: not a database URL; expected e.g. sqlite:///path/state.db or postgresql://user@host/db"
            ) from None
        self.url = parsed.render_as_string(hide_password=True)
        self._closed = False
        try:
            self._engine = create_state_engine(parsed)
        except (NoSuchModuleError, ImportError) as exc:
            raise StateStoreError(f"state store {self.url}: no driver for '{parsed.drivername}' ({exc})") from None
        try:
            upgrade_to_head(self._engine)
        except DBAPIError as exc:
            self._engine.dispose()
            raise StateStoreError(f"state store {self.url}: cannot connect: {describe_failure(exc)}") from None

    def close(self) -> None:
        """Release every pooled connection; the store cannot be used after (SQLAlchemy would quietly open a new
        connection that nothing closes)."""
        self._closed = True
        self._engine.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def _session(self, *, write: bool = False) -> Iterator[Session]:
        if self._closed:
            raise RuntimeError(f"state store {self.url} used after it was closed")
        try:
            with self._engine.connect() as connection:
                if write:
                    connection.execution_options(**write_options(self._engine))
                with Session(bind=connection, expire_on_commit=False) as session, session.begin():
                    yield session
        except IntegrityError:
            raise
        except DBAPIError as exc:
            raise StateStoreError(f"state store {self.url}: {describe_failure(exc)}") from exc

    def clock(self) -> datetime:
        """The time by the store's clock: the PostgreSQL server's (one clock for every machine that shares the
        store, whatever their own clocks say); this machine's for SQLite, a file only processes of one machine
        share."""
        if self._engine.dialect.name != "postgresql":
            return datetime.now(UTC)
        with self._session() as session:
            return store_now(session)

    def create_run(self, report: str, *, detail: str | None = None, **fields: Any) -> RunRecord:
        """Record a new SCHEDULED run (``fields`` as ``_run_values`` takes them: trigger, parameters, spec_hash ...);
        a duplicate ``fire_key`` raises ``IntegrityError`` (see ``claim_fire``)."""
        values = _run_values(report, **fields)
        with self._session(write=True) as session:
            _insert_run(session, values, detail)
        return RunRecord.of(Run(**values))

    def claim_fire(
        self,
        report: str,
        scheduled_for: datetime,
        planned_at: datetime | None = None,
        *,
        fence: Fence | None = None,
        **fields: Any,
    ) -> RunRecord | None:
        """Record the run of one scheduled fire, or None when any process anywhere has claimed it already
        (``fields`` as ``create_run`` takes them, ``now`` included). With a ``fence`` (a daemon's scheduler lease)
        the claim is refused with ``Deposed``, recording nothing, when that lease has changed hands since."""
        return self._claim(report, scheduled_for, planned_at, fields, find_active=False, fence=fence)[0]

    def claim_fire_noting_active(
        self,
        report: str,
        scheduled_for: datetime,
        planned_at: datetime | None = None,
        *,
        fence: Fence | None = None,
        **fields: Any,
    ) -> tuple[RunRecord | None, RunRecord | None]:
        """``claim_fire``, and the report's newest unfinished run before the claim (``active_run``), read in the same
        transaction: one round trip instead of two for every fire the daemon runs."""
        return self._claim(report, scheduled_for, planned_at, fields, find_active=True, fence=fence)

    def _claim(
        self, report: str, scheduled_for: datetime, planned_at: datetime | None, fields: dict[str, Any], *,
        find_active: bool, fence: Fence | None,
    ) -> tuple[RunRecord | None, RunRecord | None]:  # fmt: skip
        key = fire_key(report, scheduled_for)
        for _ in range(3):
            values = _run_values(
                report, trigger="schedule", scheduled_for=scheduled_for, planned_at=planned_at, fire_key=key, **fields
            )
            try:
                with self._session(write=True) as session:
                    if fence is not None:
                        check_fence(session, fence)
                    active = _active_record(session, report) if find_active else None
                    _insert_run(session, values, None)
                return RunRecord.of(Run(**values)), active
            except IntegrityError:
                with self._session() as session:
                    if session.scalar(select(Run.id).where(Run.fire_key == key)) is not None:
                        return None, None
                # a run id collided (same second, same random suffix): try again with a new id
                fields.pop("run_id", None)
        raise StateStoreError(f"state store {self.url}: could not record the fire {key}")

    def transition(
        self,
        run_id: str,
        state: RunState | str,
        *,
        detail: str | None = None,
        error: str | None = None,
        artifacts: Sequence[Mapping[str, Any]] | None = None,
        output_dir: str | Path | None = None,
        git_commit: str | None = None,
        git_dirty: bool | None = None,
        snapshot: str | Path | None = None,
        node: str | None = None,
        now: datetime | None = None,
    ) -> RunRecord:
        """Move a run to ``state`` if that is legal from where it stands, recording the time on its timeline.
        ``node`` names the Celery worker this process belongs to (recorded with the process as it starts)."""
        target, now = RunState(state), _utc(now)
        with self._session(write=True) as session:
            run = session.get(Run, run_id)
            if run is None:
                raise UnknownRun(f"no run '{run_id}'")
            current = RunState(run.state)
            if not is_legal(current, target):
                raise IllegalTransition(run_id, current, target)
            values: dict[str, Any] = {}
            if error is not None:
                values["error"] = error
            if artifacts is not None:
                values["artifacts"] = [dict(a) for a in artifacts]
            if output_dir is not None:
                values["output_dir"] = str(output_dir)
            if git_commit is not None:
                values["git_commit"] = git_commit
            if git_dirty is not None:
                values["git_dirty"] = git_dirty
            if snapshot is not None:
                values["snapshot"] = str(snapshot)
            if node is not None:
                values["worker_node"] = node
            if not _move(session, run, target, now, detail or first_line(error or "") or None, values):
                latest = session.scalar(
                    select(Run.state).where(Run.id == run_id).execution_options(populate_existing=True)
                )
                raise IllegalTransition(run_id, RunState(latest or current), target, concurrent=True)
            session.expire(run)
            return RunRecord.of(run)

    def requeue(self, run_id: str, detail: str, *, worker: str | None = None) -> RunRecord | None:
        """Put a run still rendering (GENERATING or FORMATTING) back to SCHEDULED as its next attempt, under the same
        record: a queued run whose ``worker`` was found gone, to be rendered again by another worker, or one whose
        source failed, to be tried again (``retries``). None when the run has moved on or, with ``worker``, another
        worker took it over first (the update is a compare-and-set)."""
        with self._session(write=True) as session:
            now = store_now(session)
            still_rendering = [Run.id == run_id, Run.state.in_([RunState.GENERATING.value, RunState.FORMATTING.value])]
            if worker is not None:
                still_rendering.append(Run.worker == worker)
            result = session.execute(
                update(Run)
                .where(*still_rendering)
                .values(
                    state=RunState.SCHEDULED.value, attempt=Run.attempt + 1, worker=None, worker_node=None,
                    heartbeat_at=None, started_at=None,
                )
            )  # fmt: skip
            if _rowcount(result) != 1:
                return None
            session.add(RunStateRow(run_id=run_id, state=RunState.SCHEDULED.value, at=now, detail=detail))
        return self.get_run(run_id)

    def spec_bundle(self, run_id: str) -> dict[str, Any] | None:
        """The copy of its spec files the run stored when it was queued (``reportctl.spec.bundle``), or None."""
        with self._session() as session:
            return session.scalar(select(Run.spec_bundle).where(Run.id == run_id))

    def note(self, run_id: str, detail: str) -> None:
        """Add ``detail`` to the run's timeline under the state it is in, without moving it; by this machine's
        clock, as the transitions this machine records next are."""
        with self._session(write=True) as session:
            state = session.scalar(select(Run.state).where(Run.id == run_id))
            if state is None:
                raise UnknownRun(f"no run '{run_id}'")
            session.add(RunStateRow(run_id=run_id, state=state, at=_utc(None), detail=detail))

    def heartbeat(self, run_id: str) -> bool:
        """Say the run's worker is alive, stamped with the store's time (not the worker's, which may be skewed);
        False when the run has ended (for instance reaped), so the worker stops."""
        with self._session(write=True) as session:
            result = session.execute(
                update(Run).where(Run.id == run_id, Run.state.in_(_ACTIVE)).values(heartbeat_at=_beat_time(session))
            )
            return _rowcount(result) == 1

    def active_run(self, report: str) -> RunRecord | None:
        """The newest unfinished run of ``report``; call ``reap_lost`` first so a dead worker's run does not count."""
        with self._session() as session:
            return _active_record(session, report)

    def reap_lost(self, heartbeat_timeout: timedelta, *, queued: bool = False) -> list[RunRecord]:
        """End every unfinished run whose worker is lost: silent for ``heartbeat_timeout`` by the store's clock (no
        caller's clock or ``--now`` counts) and, when it ran on this host, its process gone.

        A run lost while rendering fails; one lost while delivering is complete (its artifacts exist) and its ledger
        keeps the recipients still pending for ``reportctl deliver``. With ``queued`` (executor: celery), a run
        waiting (SCHEDULED) is left alone: it waits in the broker, where nobody beats for it, whatever became of the
        daemon that claimed it; ``celery_broker.queue_stranded`` sends it again if the broker lost it.
        """
        states = _ACTIVE if not queued else [state for state in _ACTIVE if state != RunState.SCHEDULED.value]
        reaped: list[RunRecord] = []
        with self._session(write=True) as session:
            now = store_now(session)
            cutoff = now - heartbeat_timeout
            stale = or_(
                and_(Run.heartbeat_at.is_not(None), Run.heartbeat_at < cutoff),
                and_(Run.heartbeat_at.is_(None), Run.created_at < cutoff),
            )
            for run in session.scalars(select(Run).where(Run.state.in_(states), stale)).all():
                if worker_alive_here(run.worker):
                    continue  # silent, but its process is still running here (a stalled store, a busy GIL)
                last = run.heartbeat_at or run.created_at
                error = f"worker lost (no heartbeat since {utc_text(last)} from {run.worker or 'unknown worker'})"
                if run.state == RunState.DISTRIBUTING.value:
                    # the report was written; only its delivery stopped, and the ledger knows where
                    note = f"{error} while delivering; `reportctl deliver {run.id}` finishes the delivery"
                    if _move(session, run, RunState.COMPLETED, now, note, {}):
                        session.expire(run)
                        reaped.append(RunRecord.of(run))
                    continue
                if _move(session, run, RunState.FAILED, now, error, {"error": error}):
                    session.expire(run)
                    reaped.append(RunRecord.of(run))
        return reaped

    def list_runs(
        self,
        report: str | None = None,
        state: RunState | str | None = None,
        since: datetime | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Runs newest first, optionally of one report, in one state, or created at or after ``since``."""
        query = select(Run).order_by(*_NEWEST).limit(limit)
        if report is not None:
            query = query.where(Run.report == report)
        if state is not None:
            query = query.where(Run.state == RunState(state).value)
        if since is not None:
            query = query.where(Run.created_at >= _utc(since))
        with self._session() as session:
            return [RunRecord.of(run) for run in session.scalars(query)]

    def burst_variants(self, burst: RunRecord) -> dict[str, RunRecord]:
        """The variants of a burst run by group (``viewer``), oldest first and a completed one winning: those of
        ``burst`` itself and, for a scheduled fire, those of the fire's earlier attempts (a retry is a new run)."""
        owner = Run.burst_of == burst.id
        if burst.scheduled_for is not None:
            same_fire = (Run.report == burst.report) & (Run.scheduled_for == burst.scheduled_for)
            owner = owner | (same_fire & (Run.trigger == "burst"))
        query = select(Run).where(owner).order_by(Run.created_at, Run.id)
        variants: dict[str, RunRecord] = {}
        with self._session() as session:
            for run in session.scalars(query):
                record = RunRecord.of(run)
                kept = variants.get(record.viewer or "")
                if kept is None or not kept.state.succeeded:
                    variants[record.viewer or ""] = record
        return variants

    def get_run(self, id_or_prefix: str) -> RunRecord:
        """The run with this id or unique id prefix; ``UnknownRun`` names the candidates otherwise."""
        key = id_or_prefix.strip()
        with self._session() as session:
            run = session.get(Run, key) if key else None
            if run is not None:
                return RunRecord.of(run)
            matches = list(session.scalars(select(Run.id).where(Run.id.startswith(key, autoescape=True)).limit(11)))
            if len(matches) == 1 and key:
                return RunRecord.of(session.get_one(Run, matches[0]))
            if not matches or not key:
                newest = list(session.scalars(select(Run.id).order_by(*_NEWEST).limit(5)))
                hint = f"; the newest are: {', '.join(newest)}" if newest else "; there are no runs yet"
                raise UnknownRun(f"no run '{key}'{hint}")
        shown = ", ".join(sorted(matches)[:10]) + (" and more" if len(matches) > 10 else "")
        raise UnknownRun(f"run '{key}' is ambiguous: it matches {shown}; give more of the id")

    def timeline(self, run_id: str) -> list[StateChange]:
        """The run's states in the order it entered them, each with its time."""
        with self._session() as session:
            rows = session.scalars(
                select(RunStateRow).where(RunStateRow.run_id == run_id).order_by(RunStateRow.at, RunStateRow.id)
            ).all()
            if not rows and session.get(Run, run_id) is None:
                raise UnknownRun(f"no run '{run_id}'")
            return [StateChange(RunState(r.state), r.at, r.detail) for r in rows]

    def last_tick(self, name: str) -> datetime | None:
        """When the scheduler ``name`` last ticked, or None if never."""
        with self._session() as session:
            return session.scalar(select(SchedulerTick.last_tick_at).where(SchedulerTick.name == name))

    def set_last_tick(self, name: str, at: datetime, *, fence: Fence | None = None) -> None:
        """Record that the scheduler ``name`` has handled everything due up to ``at``; with a ``fence``, only while
        that scheduler lease is still held (``Deposed`` otherwise)."""
        at = _utc(at)
        for _ in range(2):
            try:
                with self._session(write=True) as session:
                    if fence is not None:
                        check_fence(session, fence)
                    updated = session.execute(
                        update(SchedulerTick).where(SchedulerTick.name == name).values(last_tick_at=at)
                    )
                    if _rowcount(updated) == 0:
                        session.add(SchedulerTick(name=name, last_tick_at=at))
                return
            except IntegrityError:
                continue  # another process inserted it first: the update will find it now

    def record_audit(
        self,
        actor: str,
        action: str,
        *,
        report: str | None = None,
        run_id: str | None = None,
        spec_hash: str | None = None,
        git_commit: str | None = None,
        origin: str | None = None,
        detail: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> None:
        """Append to the audit log: who did what, to which report and run (``reportctl.state.audit`` says what each
        action records). Stamped ``now``, else by the store's clock within the insert itself."""
        with self._session(write=True) as session:
            session.add(
                AuditEntry(
                    at=_utc(now) if now is not None else _beat_time(session), actor=actor, action=action,
                    report=report, run_id=run_id, spec_hash=spec_hash or None, git_commit=git_commit, origin=origin,
                    detail=dict(detail or {}),
                )
            )  # fmt: skip


_NEWEST = (Run.created_at.desc(), Run.id.desc())


def _move(
    session: Session, run: Run, target: RunState, now: datetime, detail: str | None, values: dict[str, Any]
) -> bool:
    """Compare-and-set the run's state from what was read to ``target``, with its times; False if it moved meanwhile."""
    changes: dict[str, Any] = {**values, "state": target.value}
    if target is RunState.GENERATING:
        changes.update(started_at=now, worker=worker_name(), heartbeat_at=_beat_time(session))
    if target in TERMINAL_STATES:
        changes["finished_at"] = now
        changes["duration_seconds"] = round((now - (run.started_at or run.created_at)).total_seconds(), 3)
    result = session.execute(update(Run).where(Run.id == run.id, Run.state == run.state).values(**changes))
    if _rowcount(result) != 1:
        return False
    session.add(RunStateRow(run_id=run.id, state=target.value, at=now, detail=detail))
    return True


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


def _run_values(
    report: str,
    *,
    trigger: Trigger = "manual",
    run_id: str | None = None,
    spec_path: str = "",
    spec_hash: str = "",
    git_commit: str | None = None,
    revision: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    viewer: str | None = None,
    scheduled_for: datetime | None = None,
    planned_at: datetime | None = None,
    fire_key: str | None = None,
    attempt: int = 1,
    output_dir: str | Path | None = None,
    spec_bundle: Mapping[str, Any] | None = None,
    burst_of: str | None = None,
    audience: Sequence[str] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The columns of a new SCHEDULED run."""
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger '{trigger}'; expected one of {', '.join(TRIGGERS)}")
    now = _utc(now)
    return {
        "id": run_id or new_run_id(now), "report": report, "spec_path": spec_path, "spec_hash": spec_hash,
        "git_commit": git_commit, "revision": revision, "parameters": dict(parameters or {}), "viewer": viewer,
        "trigger": trigger, "scheduled_for": scheduled_for, "fire_key": fire_key, "planned_at": planned_at,
        "state": RunState.SCHEDULED.value, "attempt": attempt, "created_at": now, "worker": worker_name(),
        "heartbeat_at": now, "output_dir": None if output_dir is None else str(output_dir), "artifacts": [],
        "spec_bundle": None if spec_bundle is None else dict(spec_bundle), "burst_of": burst_of,
        "audience": None if audience is None else list(audience),
    }  # fmt: skip


def _active_record(session: Session, report: str) -> RunRecord | None:
    """The newest unfinished run of ``report``: its id alone first, by a prebuilt statement (the daemon asks before
    every fire, and there is nearly always none), then the row."""
    found = session.scalar(_ACTIVE_RUN, {"report": report})
    run = None if found is None else session.get(Run, found)
    return None if run is None else RunRecord.of(run)


def _insert_run(session: Session, values: dict[str, Any], detail: str | None) -> None:
    """Insert a run and the first entry of its timeline: Core statements built once, not the ORM's unit of work
    (the daemon claims a run for every fire, thousands a minute). Its first heartbeat is the store's time, written
    back into ``values`` so the caller's snapshot matches the row."""
    if session.get_bind().dialect.name == "postgresql":
        values["heartbeat_at"] = session.execute(_INSERT_RUN_SERVER_BEAT, values).scalar_one()
    else:
        values["heartbeat_at"] = datetime.now(UTC)
        session.execute(_INSERT_RUN, values)
    state = {"run_id": values["id"], "state": values["state"], "at": values["created_at"], "detail": detail}
    session.execute(_INSERT_STATE, state)


def _beat_time(session: Session) -> Any:
    """A heartbeat's time for an UPDATE: the PostgreSQL server's ``now()``, this machine's for SQLite."""
    return func.now() if session.get_bind().dialect.name == "postgresql" else datetime.now(UTC)


def _utc(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError(f"the state store takes only timezone-aware datetimes, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)
