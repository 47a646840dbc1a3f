"""Idempotency keys of the daemon's HTTP API: a run created once per key within a window (24 h).

The key and its run are written in one transaction with the run itself, and the key is the table's primary key, so
two requests with one key, on one daemon or on two sharing the store, start one run: the second finds the first's.
Keys older than the window are deleted as new ones come in, so the table holds about a day of requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reportctl.state.store import StateStore

IDEMPOTENCY_WINDOW = timedelta(hours=24)
MAX_KEY_LENGTH = 300


@dataclass(frozen=True)
class KeyedRun:
    """The run a key stands for, and whether this call created it (False: an earlier request with the key did)."""

    run_id: str
    created: bool


def run_for_key(store: StateStore, key: str, now: datetime) -> str | None:
    """The id of the run started with ``key`` less than the window (24 h) before ``now``, or None."""
    from sqlalchemy import select

    from reportctl.state.models import ApiRequest

    with store._session() as session:
        row = session.execute(
            select(ApiRequest.run_id, ApiRequest.created_at).where(ApiRequest.key == key)
        ).one_or_none()
    if row is None or row.created_at <= now - IDEMPOTENCY_WINDOW:
        return None
    return str(row.run_id)


def create_run_once(
    store: StateStore,
    key: str | None,
    report: str,
    now: datetime,
    **fields: Any,
) -> KeyedRun:
    """Record a new SCHEDULED run (``fields`` as ``StateStore.create_run`` takes them), or, when ``key`` was used
    within the window, return that run instead. Without a key every call creates a run."""
    from sqlalchemy import delete, insert
    from sqlalchemy.exc import IntegrityError

    from reportctl.state.models import ApiRequest, Run, RunRecord
    from reportctl.state.store import _insert_run, _run_values

    if key is None:
        run = store.create_run(report, now=now, **fields)
        return KeyedRun(run.id, True)
    for _ in range(3):
        earlier = run_for_key(store, key, now)
        if earlier is not None:
            return KeyedRun(earlier, False)
        values = _run_values(report, now=now, **fields)
        try:
            with store._session(write=True) as session:
                cutoff = now - IDEMPOTENCY_WINDOW
                # an expired key is free again; its row goes with the others past the window
                session.execute(delete(ApiRequest).where(ApiRequest.created_at <= cutoff))
                session.execute(insert(ApiRequest).values(key=key, run_id=values["id"], report=report, created_at=now))
                _insert_run(session, values, None)
        except IntegrityError:
            continue  # another request took the key first (or a run id collided): read who has it
        return KeyedRun(RunRecord.of(Run(**values)).id, True)
    from reportctl.state.store import StateStoreError

    raise StateStoreError(f"state store {store.url}: could not record the request with Idempotency-Key '{key}'")


__all__ = ["IDEMPOTENCY_WINDOW", "MAX_KEY_LENGTH", "KeyedRun", "create_run_once", "run_for_key"]
