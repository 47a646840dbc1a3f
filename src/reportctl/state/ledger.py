"""The delivery ledger: one row per (run, delivery, recipient), marked before and after each send.

A row is planned ``pending``; claimed (``claimed_by`` = host:pid, one more attempt) just before its batch is sent;
and given its outcome just after, which releases it: ``sent``, ``bounced``, ``failed``, or ``pending`` for another
try. A row is claimed only while it is in flight. A process that dies mid-send leaves its claim behind, which the
next delivery of the run turns into ``unknown``: the recipient may or may not have got it. Delivery is at most once
by default (nothing sends an ``unknown`` row again unasked) and at least once on request (``deliver
--resend-unknown``), the copy carrying the same message id so a receiver can drop it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from reportctl.state.models import Delivery

if TYPE_CHECKING:
    from reportctl.state.store import StateStore

STATUSES = ("sent", "bounced", "failed", "unknown", "pending")
"""Every status a row can hold, in the order summaries list them."""
FINAL_STATUSES = ("sent", "failed", "bounced", "unknown")
"""The statuses nothing changes unasked; ``failed`` and ``unknown`` are sent again only on request."""
_CHUNK = 500


@dataclass(frozen=True)
class LedgerEntry:
    """One recipient's delivery of one run, as read from the ledger."""

    id: int
    run_id: str
    channel: str
    kind: str
    recipient: str
    role: str
    status: str
    attempts: int
    idempotency_key: str
    first_attempt_at: datetime | None
    last_attempt_at: datetime | None
    response: str | None
    claimed_by: str | None

    @classmethod
    def of(cls, row: Delivery) -> LedgerEntry:
        return cls(
            id=row.id,
            run_id=row.run_id,
            channel=row.channel,
            kind=row.kind,
            recipient=row.recipient,
            role=row.role,
            status=row.status,
            attempts=row.attempts,
            idempotency_key=row.idempotency_key,
            first_attempt_at=row.first_attempt_at,
            last_attempt_at=row.last_attempt_at,
            response=row.response,
            claimed_by=row.claimed_by,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, times as ISO-8601 UTC."""
        data = dict(self.__dict__)
        for name in ("first_attempt_at", "last_attempt_at"):
            value = data[name]
            data[name] = value.isoformat().replace("+00:00", "Z") if value else None
        return data


@dataclass(frozen=True)
class PlannedRecipient:
    """A recipient the ledger should hold a row for."""

    recipient: str
    role: str
    idempotency_key: str


class DeliveryLedger:
    """The ``deliveries`` table of a state store; every method is one short transaction."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def plan(self, run_id: str, channel: str, kind: str, planned: Sequence[PlannedRecipient]) -> list[LedgerEntry]:
        """Add a pending row for each recipient the ledger does not hold yet; every planned row, in plan order."""
        keys = [p.idempotency_key for p in planned]
        for _ in range(3):
            existing = self.by_keys(keys)
            missing = [p for p in planned if p.idempotency_key not in existing]
            if not missing:
                return [existing[key] for key in keys]
            rows = [
                {
                    "run_id": run_id,
                    "channel": channel,
                    "kind": kind,
                    "recipient": p.recipient,
                    "role": p.role,
                    "status": "pending",
                    "attempts": 0,
                    "idempotency_key": p.idempotency_key,
                }
                for p in missing
            ]
            try:
                with self._store._session(write=True) as session:
                    session.execute(insert(Delivery), rows)
            except IntegrityError:
                continue  # another process planned some of them at the same moment: read again
        raise RuntimeError(f"could not plan the deliveries of run {run_id}")  # pragma: no cover - three races

    def claim(self, ids: Sequence[int], worker: str, now: datetime) -> list[int]:
        """Mark the still-pending, unclaimed rows of ``ids`` as being sent by ``worker`` (one more attempt)."""
        claimed: list[int] = []
        with self._store._session(write=True) as session:
            for chunk in _chunks(list(ids)):
                session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(chunk), Delivery.status == "pending", Delivery.claimed_by.is_(None))
                    .values(
                        claimed_by=worker,
                        attempts=Delivery.attempts + 1,
                        first_attempt_at=func.coalesce(Delivery.first_attempt_at, now),
                        last_attempt_at=now,
                    )
                )
                claimed.extend(
                    session.scalars(
                        select(Delivery.id).where(Delivery.id.in_(chunk), Delivery.claimed_by == worker)
                    ).all()
                )
        return claimed

    def record(self, outcomes: Iterable[tuple[int, str, str]], worker: str | None) -> None:
        """Store ``(id, status, response)`` outcomes of rows ``worker`` holds (None: unclaimed rows) and release them.

        ``pending`` is an attempt that failed for now: the row waits, unclaimed, for the next try.
        """
        rows = [
            {"row_id": row_id, "new_status": status, "new_response": response} for row_id, status, response in outcomes
        ]
        claimant = Delivery.claimed_by.is_(None) if worker is None else Delivery.claimed_by == worker
        statement = (
            update(Delivery)
            .where(Delivery.id == bindparam("row_id"), claimant)
            .values(status=bindparam("new_status"), response=bindparam("new_response"), claimed_by=None)
        )
        with self._store._session(write=True) as session:
            connection = session.connection()
            for chunk in _chunks(rows):
                connection.execute(statement, chunk)

    def reopen(self, ids: Sequence[int], status: str = "failed") -> None:
        """Make the rows of ``ids`` that are in ``status`` pending again: ``failed`` for ``deliver --retry-failed``,
        ``unknown`` for ``deliver --resend-unknown``."""
        with self._store._session(write=True) as session:
            for chunk in _chunks(list(ids)):
                session.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(chunk), Delivery.status == status, Delivery.claimed_by.is_(None))
                    .values(status="pending")
                )

    def note_sent(self, ids: Sequence[int], note: str) -> None:
        """Add ``note`` to the answer of the rows of ``ids`` that were sent, once: an encrypted delivery records
        which files went encrypted and how, so the ledger shows it (never a password)."""
        with self._store._session(write=True) as session:
            for chunk in _chunks(list(ids)):
                rows = session.scalars(select(Delivery).where(Delivery.id.in_(chunk), Delivery.status == "sent")).all()
                for row in rows:
                    if note not in (row.response or ""):
                        row.response = f"{row.response}; {note}" if row.response else note

    def release_claims(self, run_id: str, workers: Sequence[str], response: str) -> int:
        """Mark ``unknown`` the rows that ``workers`` (processes that stopped) were sending: whether they arrived
        cannot be known, so they are neither sent again unasked nor counted as failed.

        Their attempts and ``last_attempt_at`` stay as the claim set them: rows claimed together (one batch, one
        message) share that time, which is how ``--resend-unknown`` sends them together again.
        """
        if not workers:
            return 0
        with self._store._session(write=True) as session:
            result = session.execute(
                update(Delivery)
                .where(Delivery.run_id == run_id, Delivery.status == "pending", Delivery.claimed_by.in_(workers))
                .values(status="unknown", claimed_by=None, response=response)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def claims(self, run_id: str) -> dict[str, datetime | None]:
        """Who holds claims on the run's rows, with their latest attempt."""
        with self._store._session() as session:
            rows = session.execute(
                select(Delivery.claimed_by, func.max(Delivery.last_attempt_at))
                .where(Delivery.run_id == run_id, Delivery.claimed_by.is_not(None))
                .group_by(Delivery.claimed_by)
            ).all()
        return {str(worker): last for worker, last in rows}

    def forget(self, run_id: str, channel: str, recipient: str) -> None:
        """Remove a row that stood for a delivery that could not start (it named no real recipient)."""
        with self._store._session(write=True) as session:
            session.execute(
                delete(Delivery).where(
                    Delivery.run_id == run_id, Delivery.channel == channel, Delivery.recipient == recipient
                )
            )

    def entries(self, run_id: str) -> list[LedgerEntry]:
        """Every row of a run, by delivery, then in the order they were planned."""
        with self._store._session() as session:
            rows = session.scalars(
                select(Delivery).where(Delivery.run_id == run_id).order_by(Delivery.channel, Delivery.id)
            ).all()
            return [LedgerEntry.of(row) for row in rows]

    def by_keys(self, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        """The rows with these idempotency keys, by key (a dry run asks which recipients are done)."""
        found: dict[str, LedgerEntry] = {}
        with self._store._session() as session:
            for chunk in _chunks(list(keys)):
                for row in session.scalars(select(Delivery).where(Delivery.idempotency_key.in_(chunk))).all():
                    found[row.idempotency_key] = LedgerEntry.of(row)
        return found


def status_counts(entries: Iterable[LedgerEntry]) -> dict[str, int]:
    """How many of ``entries`` are in each status."""
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.status] = counts.get(entry.status, 0) + 1
    return counts


def in_status_order(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """``counts`` as (status, count) pairs in the order of ``STATUSES``; a status not among them comes last."""
    order = {status: index for index, status in enumerate(STATUSES)}
    return sorted(counts.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))


def counts_by_delivery(entries: Iterable[LedgerEntry]) -> dict[str, dict[str, int]]:
    """Per delivery, how many of ``entries`` are in each status."""
    by_delivery: dict[str, list[LedgerEntry]] = {}
    for entry in entries:
        by_delivery.setdefault(entry.channel, []).append(entry)
    return {name: status_counts(rows) for name, rows in by_delivery.items()}


def _chunks(items: list[Any], size: int = _CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
