"""Prometheus metrics of the daemon: runs by state, run durations, queue depth per priority, last success per report.

Each ``DaemonMetrics`` has a registry of its own, so tests and benchmarks can make as many as they like.
"""

from __future__ import annotations

from typing import Any


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
        self.queue_depth.labels(priority=priority).inc(change)

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


__all__ = ["DaemonMetrics"]
