"""The state store's tables as typed SQLAlchemy models, and the frozen snapshots callers get instead of them.

Every datetime column is ``UTCDateTime``: stored as UTC on every backend and always read back timezone-aware.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from reportctl.state.lifecycle import RunState


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC; SQLite keeps naive UTC text, so the zone is put back on reading."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"the state store takes only timezone-aware datetimes, got naive {value.isoformat()}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_text(moment: datetime) -> str:
    """``2026-12-04T09:00:15Z``: a stored time as logs and messages show it, to the second, in UTC."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Base(DeclarativeBase):
    """Metadata of every state table; Alembic's migrations are written to match it."""


class Run(Base):
    """One run of one report, from its claim or creation to its end."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_report_created", "report", "created_at"),
        Index("ix_runs_state", "state"),
        Index("ix_runs_burst_of", "burst_of"),
        UniqueConstraint("fire_key", name="uq_runs_fire_key"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    report: Mapped[str] = mapped_column(String(200))
    spec_path: Mapped[str] = mapped_column(Text, default="")
    spec_hash: Mapped[str] = mapped_column(String(128), default="")
    git_commit: Mapped[str | None] = mapped_column(String(80))
    git_dirty: Mapped[bool | None] = mapped_column(Boolean)
    """Whether the spec or a base it extends had local edits against ``git_commit``."""
    revision: Mapped[str | None] = mapped_column(String(200))
    """The revision asked for (``render --rev``, a schedule's ``rev:``); None for the working tree."""
    snapshot: Mapped[str | None] = mapped_column(Text)
    """The data snapshot folder the run saved (or read), for ``replay``."""
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    viewer: Mapped[str | None] = mapped_column(String(200))
    trigger: Mapped[str] = mapped_column(String(16), default="manual")
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fire_key: Mapped[str | None] = mapped_column(String(300))
    planned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(300))
    worker_node: Mapped[str | None] = mapped_column(String(300))
    """The Celery worker (its node name, ``w1@host``) whose process ``worker`` rendered the run; None locally."""
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    output_dir: Mapped[str | None] = mapped_column(Text)
    artifacts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    artifacts_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    artifacts_note: Mapped[str | None] = mapped_column(Text)
    archive_url: Mapped[str | None] = mapped_column(Text)
    """The s3:// folder retention moved the run's files to (``reportctl.retention``); each artifact's object is
    its ``archive`` entry."""
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    burst_of: Mapped[str | None] = mapped_column(String(64))
    """For a variant of a burst: the run that was fired (``reportctl.burst``); its ``viewer`` names the group."""
    audience: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    """For a variant of a burst: the addresses it was filtered for, the only ones its deliveries may reach."""
    spec_bundle: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), deferred=True)
    """The text of the spec and its bases a queued run keeps (``reportctl.spec.bundle``), for a worker whose copy
    differs; loaded only when asked for (``StateStore.spec_bundle``), never with the run."""


class RunStateRow(Base):
    """One transition of a run: the timeline ``runs show`` prints."""

    __tablename__ = "run_states"
    __table_args__ = (Index("ix_run_states_run", "run_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), ForeignKey("runs.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    detail: Mapped[str | None] = mapped_column(Text)


class Delivery(Base):
    """One recipient's delivery of one run on one channel; the key makes a repeated delivery a no-op."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_run", "run_id"),
        UniqueConstraint("idempotency_key", name="uq_deliveries_idempotency_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), ForeignKey("runs.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(64))
    """The delivery's name: its ``id``, else the channel kind."""
    kind: Mapped[str] = mapped_column(String(64), default="")
    recipient: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16), default="to")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str] = mapped_column(String(300))
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    response: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    """The process (host:pid) sending to this recipient right now; cleared with the outcome."""


class AuditEntry(Base):
    """Who did what to which report; kept when the run it names is pruned, hence no foreign key.

    Append-only (``reportctl.state.audit``): rows are added and read, and deleted only by age (``audit.retention``).
    """

    __tablename__ = "audit"
    __table_args__ = (
        Index("ix_audit_at", "at"),
        Index("ix_audit_report_at", "report", "at"),
        Index("ix_audit_actor_at", "actor", "at"),
        Index("ix_audit_run", "run_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    report: Mapped[str | None] = mapped_column(String(200))
    run_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    spec_hash: Mapped[str | None] = mapped_column(String(128))
    git_commit: Mapped[str | None] = mapped_column(String(80))
    origin: Mapped[str | None] = mapped_column(String(300))
    """The process (``host:pid``) that wrote the entry."""


class ApiRequest(Base):
    """An ``Idempotency-Key`` of the daemon's HTTP API and the run it started (``reportctl.state.idempotency``): the
    same key within a day returns that run instead of starting another, across restarts and daemons."""

    __tablename__ = "api_requests"
    __table_args__ = (Index("ix_api_requests_created", "created_at"),)

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64))
    report: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SchedulerTick(Base):
    """When a named scheduler (a daemon, ``schedule tick``) last looked for due fires."""

    __tablename__ = "scheduler_ticks"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_tick_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SchedulerLease(Base):
    """Which daemon may fire schedules: one row per lease, held until ``expires_at`` by the store's clock.

    ``token`` is the fencing token: it grows by one whenever the lease changes hands, and a claim that carries an
    older token is refused, so a deposed holder records nothing.
    """

    __tablename__ = "scheduler_lease"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(300))
    """``host:pid/suffix`` of the holding process; the random suffix tells a restarted process with a reused pid."""
    token: Mapped[int] = mapped_column(BigInteger)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    renewed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class RunRecord:
    """A run as read from the store: a plain snapshot, so callers never hold a session."""

    id: str
    report: str
    state: RunState
    trigger: str
    attempt: int
    created_at: datetime
    spec_path: str = ""
    spec_hash: str = ""
    git_commit: str | None = None
    git_dirty: bool | None = None
    revision: str | None = None
    snapshot: str | None = None
    parameters: dict[str, Any] | None = None
    viewer: str | None = None
    scheduled_for: datetime | None = None
    fire_key: str | None = None
    planned_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    error: str | None = None
    worker: str | None = None
    worker_node: str | None = None
    heartbeat_at: datetime | None = None
    output_dir: str | None = None
    artifacts: tuple[dict[str, Any], ...] = ()
    artifacts_deleted_at: datetime | None = None
    artifacts_note: str | None = None
    archive_url: str | None = None
    archived_at: datetime | None = None
    burst_of: str | None = None
    audience: tuple[str, ...] | None = None

    @classmethod
    def of(cls, run: Run) -> RunRecord:
        """The snapshot of an ORM row."""
        return cls(
            id=run.id,
            report=run.report,
            state=RunState(run.state),
            trigger=run.trigger,
            attempt=run.attempt,
            created_at=run.created_at,
            spec_path=run.spec_path,
            spec_hash=run.spec_hash,
            git_commit=run.git_commit,
            git_dirty=run.git_dirty,
            revision=run.revision,
            snapshot=run.snapshot,
            parameters=dict(run.parameters or {}),
            viewer=run.viewer,
            scheduled_for=run.scheduled_for,
            fire_key=run.fire_key,
            planned_at=run.planned_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            duration_seconds=run.duration_seconds,
            error=run.error,
            worker=run.worker,
            worker_node=run.worker_node,
            heartbeat_at=run.heartbeat_at,
            output_dir=run.output_dir,
            artifacts=tuple(dict(a) for a in run.artifacts or ()),
            artifacts_deleted_at=run.artifacts_deleted_at,
            artifacts_note=run.artifacts_note,
            archive_url=run.archive_url,
            archived_at=run.archived_at,
            burst_of=run.burst_of,
            audience=None if run.audience is None else tuple(run.audience),
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO-8601 UTC, the state by name."""
        data: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat().replace("+00:00", "Z")
            elif isinstance(value, RunState):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            data[name] = value
        return data


@dataclass(frozen=True)
class StateChange:
    """One entry of a run's timeline."""

    state: RunState
    at: datetime
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state.value, "at": self.at.isoformat().replace("+00:00", "Z"), "detail": self.detail}
