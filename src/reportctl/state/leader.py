"""The scheduler lease: one daemon at a time fires schedules; the others stand by and take over when it stops.

The lease is a row (``scheduler_lease``) naming its holder (``host:pid/suffix``), a fencing token and when it
expires. Every time is the store's clock (the PostgreSQL server's, read inside the same transaction), so no machine's
own clock decides who leads. Acquiring is one conditional UPDATE (take the row when it is mine or has expired) or,
for the very first holder, an INSERT that a concurrent one loses on the primary key: two processes never both win.

The token grows by one whenever the holder changes. A daemon claims each fire with its ``Fence`` (lease name and
token); the claim's own transaction reads the lease's token (``FOR SHARE`` on PostgreSQL, so a takeover waits for
the claim or the claim sees the takeover) and refuses with ``Deposed`` when it differs: a daemon that lost the lease
without knowing it yet records nothing and sends nothing.

A holder also keeps a deadline by its monotonic clock: the time it sent its last successful renewal plus the lease
duration, which is never later than the expiry the store wrote. Past it, ``held()`` is False and the daemon stops
firing, even when the renewal itself hangs on an unreachable store.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from reportctl.errors import ReportctlError
from reportctl.state.models import SchedulerLease, utc_text

if TYPE_CHECKING:
    from reportctl.state.store import StateStore

SCHEDULER_LEASE = "scheduler"
DEFAULT_LEASE = timedelta(seconds=15)

__all__ = [
    "DEFAULT_LEASE",
    "SCHEDULER_LEASE",
    "Deposed",
    "Fence",
    "LeaseHolder",
    "LeaseState",
    "check_fence",
    "describe_leader",
    "new_holder",
    "read_lease",
    "store_now",
]


class Deposed(ReportctlError):
    """A claim carried a lease token that is no longer the lease's: another daemon took over; nothing was recorded."""


@dataclass(frozen=True)
class Fence:
    """What a daemon's claim carries: the lease it fires under and the token it holds it with."""

    lease: str
    token: int


@dataclass(frozen=True)
class LeaseState:
    """The lease row as read: who holds it, with which token, until when (store's clock)."""

    name: str
    holder: str
    token: int
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime
    now: datetime
    """The store's time when this was read, to tell whether the lease had expired then."""

    @property
    def live(self) -> bool:
        """Whether the holder's lease had not expired when this was read."""
        return self.expires_at > self.now

    def describe(self) -> str:
        """``HOST:PID (token N) until TIME``: the holder as people read it (the random suffix left off)."""
        return f"{self.holder.split('/', 1)[0]} (token {self.token}) until {utc_text(self.expires_at)}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, times as ISO-8601 UTC."""
        return {
            "name": self.name, "holder": self.holder, "token": self.token, "acquired_at": utc_text(self.acquired_at),
            "renewed_at": utc_text(self.renewed_at), "expires_at": utc_text(self.expires_at), "live": self.live,
        }  # fmt: skip


def describe_leader(lease: LeaseState | None) -> str:
    """The scheduler lease in a line: who holds it and until when, or that nobody does."""
    if lease is None:
        return "none (no daemon has run on this state store)"
    if lease.live:
        return f"{lease.describe()}, renewed {utc_text(lease.renewed_at)}"
    holder = lease.holder.split("/", 1)[0]
    return f"none: the last holder, {holder} (token {lease.token}), expired {utc_text(lease.expires_at)}"


def store_now(session: Session) -> datetime:
    """The store's time inside ``session``'s transaction: PostgreSQL's ``now()``, this machine's for SQLite (a file
    that only the processes of one machine share)."""
    from sqlalchemy import func

    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return datetime.now(UTC)
    moment: datetime = session.execute(select(func.now())).scalar_one()
    return moment.astimezone(UTC)


def check_fence(session: Session, fence: Fence) -> None:
    """Refuse (``Deposed``) inside a claim's transaction when ``fence`` no longer holds the lease.

    On PostgreSQL the row is read ``FOR SHARE``: a takeover updating it waits until the claim commits, and a claim
    that comes after a takeover reads the new token. SQLite writers are serialised by ``BEGIN IMMEDIATE`` already.
    """
    query = select(SchedulerLease.token).where(SchedulerLease.name == fence.lease).with_for_update(read=True)
    token = session.scalar(query)
    if token != fence.token:
        raise Deposed(
            f"the scheduler lease is held with token {token}, not this daemon's {fence.token}: another daemon "
            "took over, so this fire was not recorded"
        )


def read_lease(store: StateStore, name: str = SCHEDULER_LEASE) -> LeaseState | None:
    """The lease ``name`` as the store holds it now, or None when no daemon has ever held it."""
    with store._session() as session:
        row = session.get(SchedulerLease, name)
        return None if row is None else _state(row, store_now(session))


def new_holder() -> str:
    """This process as a lease holder: ``host:pid`` and a random suffix, so a restart that reuses a pid differs."""
    from reportctl.state.liveness import worker_name

    return f"{worker_name()}/{secrets.token_hex(4)}"


class LeaseHolder:
    """One process's hold on a lease: ``acquire`` takes or renews it, ``release`` gives it up, ``held`` says whether
    it may act on it now."""

    def __init__(
        self,
        store: StateStore,
        duration: timedelta = DEFAULT_LEASE,
        *,
        name: str = SCHEDULER_LEASE,
        holder: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if duration <= timedelta(0):
            raise ValueError(f"a lease must last a while, got {duration}")
        self.store, self.duration, self.name = store, duration, name
        self.holder = holder or new_holder()
        self._monotonic = monotonic
        self._valid_until = float("-inf")
        self.state: LeaseState | None = None
        """The lease as last seen by ``acquire``: this holder's, or the one it waits for."""

    @property
    def renew_every(self) -> float:
        """Seconds between renewals: a third of the lease, so two renewals can fail before it expires."""
        return self.duration.total_seconds() / 3

    def acquire(self) -> LeaseState:
        """Take the lease if it is free, expired or already this holder's (then it is renewed); the lease as it
        stands afterwards, whoever holds it. A store error propagates, and ``held()`` turns False in time."""
        sent = self._monotonic()
        for _ in range(2):
            try:
                with self.store._session(write=True) as session:
                    state = self._take(session)
                break
            except IntegrityError:
                continue  # another process inserted the first row at the same moment: the update decides now
        else:
            raise RuntimeError(f"lease {self.name}: no row after two attempts")
        self.state = state
        self._valid_until = sent + self.duration.total_seconds() if state.holder == self.holder else float("-inf")
        return state

    def _take(self, session: Session) -> LeaseState:
        now = store_now(session)
        row = SchedulerLease.__table__.c
        mine = row.holder == self.holder
        taken = session.execute(
            update(SchedulerLease)
            .where(row.name == self.name, (row.holder == self.holder) | (row.expires_at <= now))
            .values(
                token=case((mine, row.token), else_=row.token + 1),
                acquired_at=case((mine, row.acquired_at), else_=now),
                holder=self.holder,
                renewed_at=now,
                expires_at=now + self.duration,
            )
            .execution_options(synchronize_session=False)
        )
        if _rowcount(taken) == 0 and session.get(SchedulerLease, self.name) is None:
            session.add(
                SchedulerLease(
                    name=self.name, holder=self.holder, token=1, acquired_at=now, renewed_at=now,
                    expires_at=now + self.duration,
                )
            )  # fmt: skip
            session.flush()
        current = session.get_one(SchedulerLease, self.name, populate_existing=True)
        return _state(current, now)

    def held(self) -> bool:
        """Whether this holder may act on the lease now: its last acquire won it, and by this machine's monotonic
        clock the lease cannot have expired since (the deadline counts from before that acquire was sent)."""
        return self._monotonic() < self._valid_until

    @property
    def fence(self) -> Fence | None:
        """The fence for claims made under this hold; None when it is not held."""
        if self.state is None or not self.held():
            return None
        return Fence(self.name, self.state.token)

    def release(self) -> bool:
        """Give the lease up (a clean shutdown) so a standby takes it at once; False when it was not this holder's."""
        self._valid_until = float("-inf")
        with self.store._session(write=True) as session:
            now = store_now(session)
            row = SchedulerLease.__table__.c
            released = session.execute(
                update(SchedulerLease)
                .where(row.name == self.name, row.holder == self.holder)
                .values(expires_at=now)
                .execution_options(synchronize_session=False)
            )
            return _rowcount(released) == 1


def _state(row: SchedulerLease, now: datetime) -> LeaseState:
    return LeaseState(row.name, row.holder, row.token, row.acquired_at, row.renewed_at, row.expires_at, now)


def _rowcount(result: Any) -> int:
    return int(result.rowcount)
