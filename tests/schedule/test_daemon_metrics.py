"""The daemon's Prometheus metrics that say who leads, what waits and who works, read back with a real scrape.

The lease gauges come from real daemon processes sharing a PostgreSQL store; the broker's from ``BrokerPoll`` and a
real daemon on the machine's Redis, with queues of their own (a random prefix) and workers stopped by process id.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_celery_executor import T

from celery_workers import make_celery_project, running_worker
from conftest import CliResult
from daemon_process import DaemonProcess
from reportctl.config import find_project
from reportctl.schedule.metrics import BrokerPoll, DaemonMetrics

Cli = Callable[..., CliResult]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
BROKER_LOG = "reportctl.test.broker"
LEASE_CONFIG = "timezone: UTC\nstate: {scheduler_lease: 3s}\n"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _scrape(port: int) -> Samples:
    """Every sample served on ``port``, read by prometheus_client's own parser: (name, labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def _lease(port: int) -> tuple[float, float]:
    samples = _scrape(port)
    return samples[("reportctl_scheduler_leader", ())], samples[("reportctl_scheduler_lease_token", ())]


def _logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str]]:
    """What the poll logged: level, event and message of each line."""
    mine = [record for record in caplog.records if record.name == BROKER_LOG]
    return [(record.levelname, getattr(record, "event", ""), record.getMessage()) for record in mine]


def _depth(samples: Samples, priority: str) -> float:
    return samples[("reportctl_queue_depth", (("priority", priority),))]


class MetricsDaemon(DaemonProcess):
    """A ``reportctl schedule daemon --metrics-port PORT``, its JSON log lines read as they come."""

    def __init__(self, project: Path, port: int) -> None:
        super().__init__(project, "--metrics-port", str(port))
        self.port = port


def test_the_leader_gauge_and_token_follow_the_scheduler_lease(
    project: Path, pg_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A leader frozen past its lease (SIGSTOP: a paused VM) is taken over; thawed, it reports itself a standby."""
    monkeypatch.setenv("REPORTCTL_STATE_URL", pg_store_url)
    (project / "reportctl.yaml").write_text(LEASE_CONFIG)
    daemons: list[MetricsDaemon] = []
    try:
        first = MetricsDaemon(project, _free_port())
        daemons.append(first)
        first.wait_for("daemon.leading")
        assert _lease(first.port) == (1.0, 1.0)
        second = MetricsDaemon(project, _free_port())
        daemons.append(second)
        second.wait_for("daemon.standby")
        assert _lease(second.port) == (0.0, 1.0)  # a standby shows the token of the lease it waits for

        os.kill(first.pid, signal.SIGSTOP)
        second.wait_for("daemon.took_over", timeout=30)
        assert _lease(second.port) == (1.0, 2.0)
        os.kill(first.pid, signal.SIGCONT)
        standby = first.wait_for("daemon.standby", timeout=30)
        assert standby["token"] == 2
        assert _lease(first.port) == (0.0, 2.0)
    finally:
        for daemon in daemons:
            if daemon.process.poll() is None:
                os.kill(daemon.pid, signal.SIGCONT)
            daemon.stop()


@pytest.fixture
def celery_project(project: Path, pg_store_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``executor: celery`` with queues of this test's own, runs in a PostgreSQL store."""
    return make_celery_project(project, pg_store_url, monkeypatch)


@contextmanager
def served() -> Iterator[tuple[DaemonMetrics, int]]:
    metrics, port = DaemonMetrics(), _free_port()
    metrics.serve(port)
    try:
        yield metrics, port
    finally:
        metrics.close()


def test_the_broker_poll_counts_the_run_waiting_and_the_worker_that_takes_it(
    cli: Cli, celery_project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=BROKER_LOG)
    with served() as (metrics, port):
        poll = BrokerPoll(find_project(celery_project), metrics, logging.getLogger(BROKER_LOG))
        assert cli("schedule", "tick", "--now", T).exit_code == 0  # no worker runs: the fire waits in its queue
        assert poll.poll()
        samples = _scrape(port)
        assert (samples[("reportctl_broker_up", ())], samples[("reportctl_workers", ())]) == (1.0, 0.0)
        assert (_depth(samples, "critical"), _depth(samples, "standard")) == (0.0, 1.0)

        with running_worker(celery_project, "metrics@test"):
            deadline = time.monotonic() + 60
            while True:  # until the worker answers the poll and has taken the run
                assert poll.poll()
                samples = _scrape(port)
                if samples[("reportctl_workers", ())] == 1.0 and _depth(samples, "standard") == 0.0:
                    break
                assert time.monotonic() < deadline, f"the worker never answered or took the run: {samples}"
    assert not _logged(caplog)


def test_an_unreachable_broker_is_broker_up_0_and_one_log_line_per_outage(
    celery_project: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused connection costs the broker client seconds of retries: the poll runs beside the daemon's loop."""
    caplog.set_level(logging.INFO, logger=BROKER_LOG)
    dead = f"redis://127.0.0.1:{_free_port()}/0"
    monkeypatch.setenv("REPORTCTL_BROKER_URL", dead)
    from reportctl.schedule import celery_broker

    asked, answer = threading.Event(), threading.Event()
    real = celery_broker.broker_status

    def slow_broker_status(*args: Any, **kwargs: Any) -> Any:  # the broker client retrying a refused connection
        asked.set()
        answer.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(celery_broker, "broker_status", slow_broker_status)
    with served() as (metrics, port):
        poll = BrokerPoll(find_project(celery_project), metrics, logging.getLogger(BROKER_LOG))
        metrics.queued("critical", 1)  # a fire waiting for a thread of the daemon still counts
        assert poll.start()  # returns at once: the poll runs beside the daemon's loop
        assert asked.wait(10)
        assert not poll.start()  # one poll at a time: the loop never piles them up behind a slow broker
        answer.set()
        poll.join(timeout=60)
        monkeypatch.setattr(celery_broker, "broker_status", real)
        assert not poll.poll()  # the outage goes on: no second line
        samples = _scrape(port)
        assert (samples[("reportctl_broker_up", ())], samples[("reportctl_workers", ())]) == (0.0, 0.0)
        assert _depth(samples, "critical") == 1.0
        ((level, event, message),) = _logged(caplog)
        assert (level, event) == ("WARNING", "broker.unreachable")
        assert message.startswith(f"the broker {dead} does not answer: ")
        assert message.endswith("Connection refused; reportctl_broker_up is 0 until it answers again")

        monkeypatch.delenv("REPORTCTL_BROKER_URL")
        assert poll.poll()
        assert _scrape(port)[("reportctl_broker_up", ())] == 1.0
        assert [event for _level, event, _message in _logged(caplog)][1:] == ["broker.reachable"]


def test_queue_depth_adds_the_fires_waiting_in_the_daemon_to_the_runs_waiting_in_the_broker() -> None:
    with served() as (metrics, port):
        metrics.queued("standard", 1)
        metrics.broker_read({"critical": 2, "standard": 3}, workers=4)
        samples = _scrape(port)
        assert (_depth(samples, "critical"), _depth(samples, "standard")) == (2.0, 4.0)
        assert samples[("reportctl_workers", ())] == 4.0
        metrics.queued("standard", -1)
        assert _depth(_scrape(port), "standard") == 3.0
        metrics.broker_unreachable()  # what waits in the broker is unknown now
        samples = _scrape(port)
        assert (_depth(samples, "critical"), _depth(samples, "standard")) == (0.0, 0.0)


def test_a_daemon_that_renders_locally_exports_no_broker() -> None:
    with served() as (_metrics, port):
        names = {name for name, _labels in _scrape(port)}
    assert "reportctl_scheduler_leader" in names
    assert not names & {"reportctl_broker_up", "reportctl_workers"}


def test_the_daemon_polls_the_broker_from_its_loop(celery_project: Path) -> None:
    """A real daemon with ``executor: celery`` and no worker: its catch-up fire waits in the queue, and the daemon's
    own poll (at start, then every 15 s) says so."""
    spec = celery_project / "specs" / "hourly.yaml"
    spec.write_text(spec.read_text().replace('cron: "0 * * * *"', 'cron: "* * * * *"'))
    daemon = MetricsDaemon(celery_project, _free_port())
    try:
        daemon.wait_for("run.queued")
        deadline = time.monotonic() + 40
        while (samples := _scrape(daemon.port)).get(("reportctl_queue_depth", (("priority", "standard"),))) != 1.0:
            assert time.monotonic() < deadline, f"no poll saw the queued run: {samples}"
            time.sleep(0.5)
        assert (samples[("reportctl_broker_up", ())], samples[("reportctl_workers", ())]) == (1.0, 0.0)
        assert samples[("reportctl_scheduler_leader", ())] == 1.0
    finally:
        daemon.stop()
    assert not daemon.events("broker.unreachable"), [e["message"] for e in daemon.events("broker.unreachable")]
