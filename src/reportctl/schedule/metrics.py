"""Prometheus metrics of the daemon: runs by state, run durations, queue depth per priority, last success and next
fire per report, deliveries by channel and result, scheduled/invalid/disabled specs, query-cache hits, whether it
holds the scheduler lease, and (``executor: celery``) what the broker says: runs waiting and workers.

Each ``DaemonMetrics`` has a registry of its own, so tests and benchmarks can make as many as they like. The broker
is read by ``BrokerPoll`` and the state store by ``StoreReadings`` (``metrics_store``) from the daemon's housekeeping
loop, never on a scrape: a scrape only reads numbers. Labels are report names, channel kinds, states and results,
never run ids, so the number of series stays that of the project's reports.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from reportctl.schedule.logs import log_event
from reportctl.state.lifecycle import succeeded

if TYPE_CHECKING:
    from reportctl.config import Project

BROKER_TIMEOUT = 1.0
"""Seconds the workers get to answer a poll (the broker's own connection retries come on top)."""
CACHE_RESULTS = ("hit", "miss")
INTERVAL_HORIZON = timedelta(days=8)
"""How far ``schedule_interval`` looks: a week and a day, so a weekly pattern's longest gap is in it."""


class DaemonMetrics:
    """The daemon's counters and gauges; ``serve`` exposes them over HTTP for Prometheus to scrape."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.runs = Counter("reportctl_runs", "Runs by final state.", ["report", "state"], registry=self.registry)
        self.duration = Histogram(
            "reportctl_run_duration_seconds",
            "How long a run took to render.",
            ["report"],
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "reportctl_queue_depth", "Fires waiting for a worker, per priority.", ["priority"], registry=self.registry
        )
        self.last_success = Gauge(
            "reportctl_last_success_timestamp_seconds",
            "When each report last completed (Unix time).",
            ["report"],
            registry=self.registry,
        )
        self.scheduler_leader = Gauge(
            "reportctl_scheduler_leader",
            "1 while this daemon holds the scheduler lease and fires, 0 while it stands by.",
            registry=self.registry,
        )
        self.lease_token = Gauge(
            "reportctl_scheduler_lease_token",
            "The scheduler lease's fencing token as this daemon last read it; it grows whenever the holder changes.",
            registry=self.registry,
        )
        self.deliveries = Counter(
            "reportctl_deliveries",
            "Ledger rows of the daemon's runs that reached a final status, by report, channel kind and status.",
            ["report", "channel", "result"],
            registry=self.registry,
        )
        self.next_fire = Gauge(
            "reportctl_next_fire_timestamp_seconds",
            "When each scheduled report fires next, jitter included (Unix time).",
            ["report"],
            registry=self.registry,
        )
        self.interval = Gauge(
            "reportctl_schedule_interval_seconds",
            "The longest gap between a scheduled report's fires in the coming week (a weekday schedule: its "
            "weekend): how long it may go without a fire.",
            ["report"],
            registry=self.registry,
        )
        self.specs = Gauge(
            "reportctl_specs",
            "Spec files at the last (re)load: scheduled, invalid (not loaded), or with a disabled schedule.",
            ["state"],
            registry=self.registry,
        )
        self.spec_valid = Gauge(
            "reportctl_spec_valid",
            "1 while a report's spec file is valid; 0 while it is invalid (a known report keeps its last valid "
            "version scheduled).",
            ["report"],
            registry=self.registry,
        )
        self.cache_requests = Counter(
            "reportctl_cache_requests",
            "Query-cache lookups of the runs this daemon rendered: hit (read from the cache) or miss (queried).",
            ["result"],
            registry=self.registry,
        )
        for result in CACHE_RESULTS:
            self.cache_requests.labels(result=result)  # both series from the start, so rate() has a zero to go from
        self._reports_valid: set[str] = set()
        self._succeeded: dict[str, float] = {}
        self._fires: set[str] = set()
        self.broker_up: Any = None
        self.workers: Any = None
        """``reportctl_broker_up`` and ``reportctl_workers``: registered by the first broker poll, so a daemon that
        renders locally exports no broker it does not have."""
        self._waiting_here: dict[str, int] = {}
        self._waiting_broker: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: Any = None

    def run_finished(self, report: str, state: str, *, duration: float | None = None, at: float | None = None) -> None:
        """Count a run that ended in ``state``; a successful one also sets the report's last success time."""
        self.runs.labels(report=report, state=state).inc()
        if duration is not None:
            self.duration.labels(report=report).observe(duration)
        if succeeded(state) and at is not None:
            self.succeeded_at(report, at)

    def succeeded_at(self, report: str, at: float) -> None:
        """``report`` last succeeded at ``at`` (Unix time), unless a later success is known already: the store's
        record at start and the runs the daemon sees finish can arrive in any order."""
        with self._lock:
            if at > self._succeeded.get(report, float("-inf")):
                self._succeeded[report] = at
                self.last_success.labels(report=report).set(at)

    def deliveries_ended(self, ended: list[tuple[str, str, str]]) -> None:
        """Count ledger rows that reached a final status, each as (report, channel kind, status)."""
        for report, channel, result in ended:
            self.deliveries.labels(report=report, channel=channel, result=result).inc()

    def sources_read(self, sources: list[dict[str, Any]]) -> None:
        """Count a run's query-cache lookups from its ``sources`` (``CacheRead.as_dict``): a ``hit`` is a hit, a
        source queried (``stored`` or ``live``) a miss."""
        for source in sources:
            self.cache_requests.labels(result="hit" if source.get("cache") == "hit" else "miss").inc()

    def fires_next(self, report: str, at: float | None, *, interval: float | None = None) -> None:
        """``report`` fires next at ``at`` (Unix time), its fires at most ``interval`` seconds apart; ``at`` None:
        it fires no more, or is no longer scheduled."""
        with self._lock:
            if at is None:
                if report in self._fires:
                    self._fires.discard(report)
                    self.next_fire.remove(report)
                    self.interval.remove(report)
                return
            if report not in self._fires:  # from the start, so increase() sees the first of either
                for state in ("COMPLETED", "FAILED"):
                    self.runs.labels(report=report, state=state)
            self._fires.add(report)
            self.next_fire.labels(report=report).set(at)
            self.interval.labels(report=report).set(interval if interval is not None else float("nan"))

    def specs_loaded(self, valid: list[str], invalid: list[str], *, scheduled: int, disabled: int) -> None:
        """A (re)load found ``valid`` and ``invalid`` reports (an invalid file whose report is unknown goes by its
        file name); ``scheduled`` reports have a job, ``disabled`` specs a schedule turned off."""
        with self._lock:
            self.specs.labels(state="scheduled").set(scheduled)
            self.specs.labels(state="invalid").set(len(invalid))
            self.specs.labels(state="disabled").set(disabled)
            current = {**dict.fromkeys(valid, 1.0), **dict.fromkeys(invalid, 0.0)}
            for gone in self._reports_valid - set(current):
                self.spec_valid.remove(gone)
            for report, value in current.items():
                self.spec_valid.labels(report=report).set(value)
            self._reports_valid = set(current)

    def queued(self, priority: str, change: int) -> None:
        """A fire entered (+1) or left (-1) the queue of its priority's worker pool."""
        with self._lock:
            self._waiting_here[priority] = self._waiting_here.get(priority, 0) + change
            self._publish_depth([priority])

    def follow_lease(self, leading: Callable[[], bool], token: Callable[[], int]) -> None:
        """Read the lease gauges from the daemon at each scrape: ``leading`` turns False the moment the daemon stops
        firing (a lost renewal, a refused claim, its lease past due while a renewal hangs), whichever path led
        there; ``token`` is the lease's token as last read (0 before the first read)."""
        self.scheduler_leader.set_function(lambda: 1.0 if leading() else 0.0)
        self.lease_token.set_function(lambda: float(token()))

    def broker_read(self, queued: dict[str, int], workers: int) -> None:
        """The broker answered: ``queued`` runs wait in each priority's queue, ``workers`` take from them."""
        broker_up, workers_gauge = self._broker_gauges()
        with self._lock:
            self._waiting_broker = dict(queued)
            self._publish_depth([*queued, *self._waiting_here])
        broker_up.set(1)
        workers_gauge.set(workers)

    def broker_unreachable(self) -> None:
        """The broker did not answer: no worker can take a run from it, and what waits there is unknown, so the
        queue depth counts only the fires waiting in this daemon."""
        broker_up, workers_gauge = self._broker_gauges()
        with self._lock:
            stale, self._waiting_broker = list(self._waiting_broker), {}
            self._publish_depth([*stale, *self._waiting_here])
        broker_up.set(0)
        workers_gauge.set(0)

    def _broker_gauges(self) -> tuple[Any, Any]:
        from prometheus_client import Gauge

        with self._lock:
            if self.broker_up is None:
                self.broker_up = Gauge(
                    "reportctl_broker_up",
                    "1 when the broker (executor: celery) answered the daemon's last poll, else 0.",
                    registry=self.registry,
                )
                self.workers = Gauge(
                    "reportctl_workers",
                    "Celery workers taking from this project's queues at the last poll (0 while the broker is down).",
                    registry=self.registry,
                )
            return self.broker_up, self.workers

    def _publish_depth(self, priorities: list[str]) -> None:
        """Fires waiting per priority: those waiting for a thread of this daemon plus the runs waiting in the
        broker's queue (nothing there with ``executor: local``). The caller holds the lock."""
        for priority in dict.fromkeys(priorities):
            waiting = self._waiting_here.get(priority, 0) + self._waiting_broker.get(priority, 0)
            self.queue_depth.labels(priority=priority).set(waiting)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on ``host:port`` in a background thread (loopback unless told otherwise)."""
        from prometheus_client import start_http_server

        self._server = start_http_server(port, addr=host, registry=self.registry)

    def close(self) -> None:
        """Stop serving, if serving."""
        if isinstance(self._server, tuple):
            server, thread = self._server
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        self._server = None


@functools.lru_cache(maxsize=1024)
def schedule_interval(cron: str, day: date) -> float | None:
    """The longest gap in seconds between consecutive fires of ``cron`` that span the 8 days from ``day`` (a
    weekday schedule's weekend, a monthly one's month), by wall time (a daylight-saving change is an hour off, which
    an alert on twice this gap does not notice); None for a cron that does not parse or fire.

    Moments an hour apart, each half a minute past a fire or an hour, never on a fire (fires are whole minutes),
    fall inside every gap of an hour or more, so the fires either side of them find those gaps; a sparse cron jumps
    from fire to fire. A cron whose gaps are all shorter fires alike every hour, so its next two hours show them.
    Reports share crons and the answer holds for the day: it is kept.
    """
    import copy
    from itertools import pairwise

    from croniter import CroniterBadDateError

    from reportctl.cron import parsed_cron

    parsed = parsed_cron(cron)
    if parsed is None:
        return None
    walls = copy.copy(parsed)
    start = moment = datetime.combine(day, time(0, 0, 30))
    gaps: list[timedelta] = []
    try:
        while moment < start + INTERVAL_HORIZON:
            walls.set_current(moment, force=True)
            before: datetime = walls.get_prev(datetime)
            walls.set_current(moment, force=True)
            after: datetime = walls.get_next(datetime)
            gaps.append(after - before)
            moment = max(moment + timedelta(hours=1), after + timedelta(seconds=30))
        walls.set_current(start, force=True)
        fires: list[datetime] = [walls.get_next(datetime)]
        while fires[-1] < start + timedelta(hours=2) and len(fires) <= 120:
            fires.append(walls.get_next(datetime))
    except CroniterBadDateError:  # a cron that never matches, such as 0 0 30 2 *
        return None
    gaps += [later - earlier for earlier, later in pairwise(fires)]
    return max(gaps).total_seconds()


class BrokerPoll:
    """Reads the runs waiting in the project's queues and the workers taking from them into ``metrics``.

    ``start`` polls in a thread of its own and starts none while the last one is still going, so a broker that is
    slow or gone (a refused connection costs seconds of retries) never holds up the daemon's loop. A failure sets
    ``reportctl_broker_up`` to 0 and is logged once per outage, with one more line when the broker answers again.
    """

    def __init__(
        self, project: Project, metrics: DaemonMetrics, logger: logging.Logger, *, timeout: float = BROKER_TIMEOUT
    ) -> None:
        self.project, self.metrics, self.log, self.timeout = project, metrics, logger, timeout
        self._thread: threading.Thread | None = None
        self._down = False

    def start(self) -> bool:
        """Poll in the background unless the last poll has not finished; whether one started."""
        if self._thread is not None and self._thread.is_alive():
            return False
        self._thread = threading.Thread(target=self.poll, name="broker-poll", daemon=True)
        self._thread.start()
        return True

    def poll(self) -> bool:
        """Read the broker once and set the metrics; whether it answered. Never raises: this runs beside the
        daemon's loop, and a broker that cannot be read must not stop the daemon."""
        from reportctl.errors import ReportctlError, exception_line
        from reportctl.schedule.celery_broker import broker_status

        try:
            status = broker_status(self.project, timeout=self.timeout)
        except Exception as exc:  # BrokerUnreachable, and anything else kombu or Redis raise: the same outage
            self.metrics.broker_unreachable()
            if not self._down:
                self._down = True
                why = str(exc) if isinstance(exc, ReportctlError) else exception_line(exc)
                log_event(
                    self.log, logging.WARNING, "broker.unreachable",
                    f"{why}; reportctl_broker_up is 0 until it answers again",
                )  # fmt: skip
            return False
        self.metrics.broker_read(status.queued, len(status.workers))
        if self._down:
            self._down = False
            workers = len(status.workers)
            log_event(self.log, logging.INFO, "broker.reachable", "the broker answers again", workers=workers)
        return True

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for a poll in the background to finish."""
        if self._thread is not None:
            self._thread.join(timeout)


__all__ = ["BROKER_TIMEOUT", "CACHE_RESULTS", "BrokerPoll", "DaemonMetrics", "schedule_interval"]
