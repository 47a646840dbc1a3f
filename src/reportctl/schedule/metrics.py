"""Prometheus metrics of the daemon: runs by state, run durations, queue depth per priority, last success per report,
whether it holds the scheduler lease, and (``executor: celery``) what the broker says: runs waiting and workers.

Each ``DaemonMetrics`` has a registry of its own, so tests and benchmarks can make as many as they like. The broker
is read by ``BrokerPoll`` from the daemon's housekeeping loop, never on a scrape: a scrape only reads numbers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reportctl.schedule.logs import log_event

if TYPE_CHECKING:
    from reportctl.config import Project

BROKER_TIMEOUT = 1.0
"""Seconds the workers get to answer a poll (the broker's own connection retries come on top)."""


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
        self.broker_up: Any = None
        self.workers: Any = None
        """``reportctl_broker_up`` and ``reportctl_workers``: registered by the first broker poll, so a daemon that
        renders locally exports no broker it does not have."""
        self._waiting_here: dict[str, int] = {}
        self._waiting_broker: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: Any = None

    def run_finished(self, report: str, state: str, *, duration: float | None = None, at: float | None = None) -> None:
        """Count a run that ended in ``state``; a completed one also sets the report's last success time."""
        self.runs.labels(report=report, state=state).inc()
        if duration is not None:
            self.duration.labels(report=report).observe(duration)
        if state == "COMPLETED" and at is not None:
            self.last_success.labels(report=report).set(at)

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


__all__ = ["BROKER_TIMEOUT", "BrokerPoll", "DaemonMetrics"]
