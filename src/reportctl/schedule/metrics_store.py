"""What the daemon's metrics read from the state store, in the housekeeping loop and never on a scrape: the last
success of each report when the daemon starts, and the ledger rows of the runs it sees finish.

Deliveries are counted from the ledger, not in the process that delivered, so runs rendered by the daemon's worker
processes and by Celery workers on other machines count alike. Every ``READ_SECONDS`` the daemon reads the runs that
finished since its last read (``LOOKBACK`` earlier, for other machines' clocks and slow commits) that it has not
read yet, counts each of their ledger rows in a final status, and watches the rows still pending until they reach
one. So a row counts once, when it first reaches a final status; a row made pending again later (``reportctl
deliver --retry-failed``) is not counted again. Runs started by hand (``trigger: manual``) are not the daemon's and
do not count. Only the leading daemon counts: a standby reads alike, so that after taking over it does not count
again what the leader counted, but adds nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from reportctl.schedule.logs import log_event
from reportctl.state.lifecycle import succeeded

if TYPE_CHECKING:
    from reportctl.schedule.metrics import DaemonMetrics
    from reportctl.state.store import StateStore

READ_SECONDS = 15.0
"""How often the daemon reads the runs that finished and their ledger rows."""
LOOKBACK = timedelta(minutes=5)
"""How far before its last read the daemon looks for finished runs: a worker's clock may be behind the store's, and
a run's end may commit a while after the time it records."""
WATCH_LIMIT = timedelta(days=1)
"""A ledger row still pending this long after its run finished is no longer watched (its sender is gone)."""
_CHUNK = 500
_T = TypeVar("_T")


@dataclass(frozen=True)
class FinishedRun:
    id: str
    report: str
    state: str
    finished_at: datetime


@dataclass(frozen=True)
class LedgerRow:
    id: int
    run_id: str
    channel: str
    """The channel kind (email, webhook, slack, s3, file ...), not the delivery's own name."""
    status: str


def last_successes(store: StateStore) -> dict[str, float]:
    """When each report last succeeded (Unix time), by the runs in the store."""
    from sqlalchemy import func, select

    from reportctl.state.models import Run, UTCDateTime

    query = select(Run.report, Run.state, func.max(Run.finished_at, type_=UTCDateTime())).group_by(
        Run.report, Run.state
    )
    latest: dict[str, float] = {}
    with store._session() as session:  # the state package's kind of query; the store has no public one for it
        for report, state, finished in session.execute(query):
            if finished is not None and succeeded(state):
                latest[report] = max(latest.get(report, 0.0), finished.timestamp())
    return latest


def finished_runs(store: StateStore, since: datetime) -> list[FinishedRun]:
    """The runs not started by hand that finished at or after ``since``."""
    from sqlalchemy import select

    from reportctl.state.models import Run

    query = select(Run.id, Run.report, Run.state, Run.finished_at).where(
        Run.finished_at >= since, Run.trigger != "manual"
    )
    with store._session() as session:
        rows = list(session.execute(query))
    return [FinishedRun(run_id, report, state, at) for run_id, report, state, at in rows if at is not None]


def ledger_rows(store: StateStore, *, run_ids: Sequence[str] = (), ids: Sequence[int] = ()) -> list[LedgerRow]:
    """The ledger rows of the runs ``run_ids`` and the rows ``ids``."""
    from sqlalchemy import select

    from reportctl.state.models import Delivery

    columns = (Delivery.id, Delivery.run_id, Delivery.kind, Delivery.channel, Delivery.status)
    rows: list[LedgerRow] = []
    with store._session() as session:
        wanted = [Delivery.run_id.in_(chunk) for chunk in _chunks(list(run_ids))]
        wanted += [Delivery.id.in_(chunk) for chunk in _chunks(list(ids))]
        for condition in wanted:
            for row_id, run_id, kind, channel, status in session.execute(select(*columns).where(condition)):
                rows.append(LedgerRow(row_id, run_id, kind or channel, status))
    return rows


class StoreReadings:
    """Reads the state store into ``metrics``: ``restore`` once at start, ``start`` (in a thread of its own, one at a
    time, so a slow store never holds up the daemon's loop) every ``READ_SECONDS``."""

    def __init__(
        self, store: StateStore, metrics: DaemonMetrics, logger: logging.Logger, *, leading: Callable[[], bool]
    ) -> None:
        self.store, self.metrics, self.log, self.leading = store, metrics, logger, leading
        self._since: datetime | None = None
        self._seen: dict[str, datetime] = {}
        """Runs already read (their finish time, to forget them once they fall behind the look-back)."""
        self._watching: dict[int, tuple[str, datetime]] = {}
        """Pending ledger rows of runs already read: their report and their run's finish time."""
        self._started = False
        self._thread: threading.Thread | None = None
        self._down = False

    def restore(self) -> bool:
        """Set every report's last success from the store, so a restarted daemon does not show it absent, and read
        the runs that finished before the start, counting none of them; whether the store answered (if not, the
        first read that succeeds is the one that counts nothing)."""
        from reportctl.state.store import StateStoreError

        try:
            for report, at in last_successes(self.store).items():
                self.metrics.succeeded_at(report, at)
        except StateStoreError as exc:
            self._unreachable(exc)
            return False
        return self.read()

    def start(self) -> bool:
        """Read in the background unless the last read has not finished; whether one started."""
        if self._thread is not None and self._thread.is_alive():
            return False
        self._thread = threading.Thread(target=self.read, name="metrics-store-read", daemon=True)
        self._thread.start()
        return True

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for a read in the background to finish."""
        if self._thread is not None:
            self._thread.join(timeout)

    def read(self) -> bool:
        """Read the runs finished since the last read and their ledger rows into the metrics; whether the store
        answered. Never raises: this runs beside the daemon's loop."""
        from reportctl.state.ledger import FINAL_STATUSES
        from reportctl.state.store import StateStoreError

        try:
            now = self.store.clock()
            since = (self._since or now) - LOOKBACK
            fresh = [run for run in finished_runs(self.store, since) if run.id not in self._seen]
            rows = ledger_rows(self.store, run_ids=[run.id for run in fresh], ids=list(self._watching))
        except StateStoreError as exc:
            self._unreachable(exc)
            return False
        except Exception as exc:  # a bug here must not end the daemon; the next read tries again
            self.log.exception("%s", exc, extra={"event": "metrics.read_failed"})
            return False
        finished = {run.id: run for run in fresh}
        for run in fresh:
            self._seen[run.id] = run.finished_at
            if succeeded(run.state):
                self.metrics.succeeded_at(run.report, run.finished_at.timestamp())
        counting = self._started and self.leading()  # the runs of the first read finished before the start
        ended: list[tuple[str, str, str]] = []
        watched = dict(self._watching)
        self._watching = {}
        for row in rows:
            ended_run = finished.get(row.run_id)
            report, at = (ended_run.report, ended_run.finished_at) if ended_run else watched.get(row.id, ("", now))
            if row.status in FINAL_STATUSES:
                if counting:
                    ended.append((report, row.channel, row.status))
            elif now - at < WATCH_LIMIT:
                self._watching[row.id] = (report, at)
        self.metrics.deliveries_ended(ended)
        self._seen = {run_id: at for run_id, at in self._seen.items() if at >= since}
        self._since, self._started = now, True
        if self._down:
            self._down = False
            log_event(self.log, logging.INFO, "metrics.store_reachable", "the state store answers the metrics again")
        return True

    def _unreachable(self, exc: Exception) -> None:
        if not self._down:
            self._down = True
            log_event(self.log, logging.WARNING, "store.unreachable", f"metrics not read: {exc}")


def _chunks(values: list[_T], size: int = _CHUNK) -> Iterator[list[_T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


__all__ = [
    "LOOKBACK",
    "READ_SECONDS",
    "FinishedRun",
    "LedgerRow",
    "StoreReadings",
    "finished_runs",
    "last_successes",
    "ledger_rows",
]
