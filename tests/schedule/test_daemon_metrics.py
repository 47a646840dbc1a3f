"""The daemon's Prometheus metrics that say who leads, what waits and who works, read back with a real scrape.

The lease gauges come from real daemon processes sharing a PostgreSQL store; the broker's from ``BrokerPoll`` and a
real daemon on the machine's Redis, with queues of their own (a random prefix) and workers stopped by process id.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_celery_executor import T

from celery_workers import make_celery_project, running_worker
from conftest import CliResult
from daemon_process import DaemonProcess
from reportctl.config import find_project
from reportctl.schedule.daemon import Daemon
from reportctl.schedule.metrics import BrokerPoll, DaemonMetrics, schedule_interval
from reportctl.schedule.metrics_store import StoreReadings
from reportctl.schedule.workers import RenderWorkers
from reportctl.state import RunState, StateStore, open_store
from reportctl.state.ledger import DeliveryLedger, PlannedRecipient

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
def sqlite_store(project: Path) -> Iterator[StateStore]:
    """The project's own store (embedded SQLite), which the daemon's worker processes open too."""
    with open_store(find_project(project)) as store:
        yield store


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


# --- what a daemon's reports look like: specs, next fires, cache reads, deliveries, last success -------------------

NOW = datetime(2026, 11, 30, 9, 5, tzinfo=UTC)
SPEC = """\
apiVersion: reportctl/v1
name: NAME
sources:
  orders: {kind: sql, url: "sqlite:///app.db", query: "SELECT id, amount FROM orders ORDER BY id"}
sections:
  - {id: t, type: table, dataset: orders}
outputs: [csv]
schedule: {cron: "CRON", timezone: Europe/Berlin, misfire_grace: 30m, enabled: ENABLED}
delivery:
  - {channel: file, path: outbox, to: [ops@example.com, cto@example.com]}
"""


def _write_spec(project: Path, name: str, cron: str = "0 * * * *", *, enabled: bool = True) -> Path:
    path = project / "specs" / f"{name}.yaml"
    path.write_text(SPEC.replace("NAME", name).replace("CRON", cron).replace("ENABLED", str(enabled).lower()))
    return path


def _orders_db(project: Path) -> None:
    with sqlite3.connect(project / "app.db") as db:
        db.execute("CREATE TABLE orders (id INTEGER, amount REAL)")
        db.executemany("INSERT INTO orders VALUES (?, ?)", [(1, 10.5), (2, 20.0)])


def _labelled(samples: Samples, name: str, label: str) -> dict[str, float]:
    """The samples of ``name`` by the value of their one label ``label``."""
    return {dict(labels)[label]: value for (found, labels), value in samples.items() if found == name}


def test_a_reload_publishes_the_specs_their_validity_and_next_fires(project: Path, sqlite_store: StateStore) -> None:
    _write_spec(project, "hourly")
    daily = _write_spec(project, "daily", "30 7 * * 1-5")
    _write_spec(project, "paused", enabled=False)
    (project / "specs" / "typo.yaml").write_text(SPEC.replace("sections:", "sectoins:"))
    with served() as (metrics, port):
        daemon = Daemon(find_project(project), sqlite_store, clock=lambda: NOW, metrics=metrics)
        daemon.start(NOW)
        samples = _scrape(port)
        specs = _labelled(samples, "reportctl_specs", "state")
        assert specs == {"scheduled": 2.0, "invalid": 1.0, "disabled": 1.0}
        assert _labelled(samples, "reportctl_spec_valid", "report") == {"hourly": 1.0, "daily": 1.0, "typo": 0.0}
        next_fires = _labelled(samples, "reportctl_next_fire_timestamp_seconds", "report")
        # 09:05 UTC is 10:05 in Berlin: hourly at 11:00 Berlin, the weekday report on Tuesday at 07:30 Berlin
        assert next_fires == {
            "hourly": datetime(2026, 11, 30, 10, 0, tzinfo=UTC).timestamp(),
            "daily": datetime(2026, 12, 1, 6, 30, tzinfo=UTC).timestamp(),
        }
        intervals = _labelled(samples, "reportctl_schedule_interval_seconds", "report")
        assert intervals == {"hourly": 3600.0, "daily": 3 * 86400.0}  # Friday to Monday

        (project / "specs" / "hourly.yaml").write_text(SPEC.replace("sections:", "sectoins:").replace("NAME", "hourly"))
        daily.unlink()
        daemon.reload(NOW)
        samples = _scrape(port)
        assert _labelled(samples, "reportctl_specs", "state") == {"scheduled": 1.0, "invalid": 2.0, "disabled": 1.0}
        # hourly keeps its last valid version scheduled; daily is gone, with its series
        assert _labelled(samples, "reportctl_spec_valid", "report") == {"hourly": 0.0, "typo": 0.0}
        assert set(_labelled(samples, "reportctl_next_fire_timestamp_seconds", "report")) == {"hourly"}
        assert set(_labelled(samples, "reportctl_schedule_interval_seconds", "report")) == {"hourly"}


@pytest.mark.parametrize(
    ("cron", "day", "interval"),
    [
        ("* * * * *", date(2026, 12, 4), 60),
        ("0,50 * * * *", date(2026, 12, 4), 50 * 60),
        ("*/5 9-17 * * 1-5", date(2026, 12, 4), (2 * 24 + 15) * 3600 + 5 * 60),  # Friday 17:55 to Monday 09:00
        ("0 9 * * MON", date(2026, 12, 4), 7 * 86400),
        ("0 9 1 * *", date(2026, 12, 4), 31 * 86400),  # the 1st of December to the 1st of January
        ("0 0 30 2 *", date(2026, 12, 4), None),
    ],
)
def test_the_schedule_interval_is_the_longest_gap_between_fires(cron: str, day: date, interval: float | None) -> None:
    assert schedule_interval(cron, day) == interval


def test_runs_in_worker_processes_bring_their_cache_reads_back_and_set_the_last_success(
    project: Path, sqlite_store: StateStore
) -> None:
    """The real path: each run renders in a worker process of the daemon, which says how its sources were read."""
    _orders_db(project)
    _write_spec(project, "orders", "* * * * *")
    proj = find_project(project)
    workers = RenderWorkers(proj)
    clock = [NOW]
    try:
        with served() as (metrics, port):
            daemon = Daemon(proj, sqlite_store, clock=lambda: clock[0], render=workers, metrics=metrics)
            daemon.start(NOW)
            for minute in (0, 1):  # the second run finds the first one's query result in the cache
                clock[0] = NOW + timedelta(minutes=minute)
                (outcome,) = daemon.dispatch_due(clock[0])
                assert outcome.state == "COMPLETED", outcome.detail
            samples = _scrape(port)
    finally:
        workers.close()
    assert _labelled(samples, "reportctl_cache_requests_total", "result") == {"hit": 1.0, "miss": 1.0}
    assert samples[("reportctl_last_success_timestamp_seconds", (("report", "orders"),))] == clock[0].timestamp()
    assert samples[("reportctl_runs_total", (("report", "orders"), ("state", "COMPLETED")))] == 2.0


def _finished_run(store: StateStore, report: str, statuses: list[str], *, trigger: str = "schedule") -> str:
    """A run of ``report`` that went through its states, with one ledger row per status in ``statuses``."""
    run = store.create_run(report, trigger=trigger)
    for state in (RunState.GENERATING, RunState.FORMATTING, RunState.DISTRIBUTING, RunState.COMPLETED):
        store.transition(run.id, state)
    ledger = DeliveryLedger(store)
    planned = [PlannedRecipient(f"r{i}@example.com", "to", f"{run.id}:{i}") for i in range(len(statuses))]
    entries = ledger.plan(run.id, "ops-mail", "email", planned)
    ledger.record(
        [(e.id, status, "") for e, status in zip(entries, statuses, strict=True) if status != "pending"], None
    )
    return run.id


def _deliveries(metrics: DaemonMetrics) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["report"], s.labels["channel"], s.labels["result"]): s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == "reportctl_deliveries_total"
    }


def test_ledger_rows_count_once_when_they_reach_a_final_status(sqlite_store: StateStore) -> None:
    metrics, leading = DaemonMetrics(), [True]
    readings = StoreReadings(sqlite_store, metrics, logging.getLogger(BROKER_LOG), leading=lambda: leading[0])
    earlier = _finished_run(sqlite_store, "before", ["sent"])  # finished before the daemon started: not counted
    assert readings.restore()
    run_id = _finished_run(sqlite_store, "weekly", ["sent", "bounced", "pending"])
    _finished_run(sqlite_store, "weekly", ["failed"], trigger="manual")  # `render --deliver`: not the daemon's
    assert readings.read()
    assert _deliveries(metrics) == {("weekly", "email", "sent"): 1.0, ("weekly", "email", "bounced"): 1.0}

    ledger = DeliveryLedger(sqlite_store)
    pending = [entry.id for entry in ledger.entries(run_id) if entry.status == "pending"]
    ledger.record([(pending[0], "failed", "550 no such user")], None)  # the row a retry was still sending
    assert readings.read()
    assert readings.read()  # read again: nothing new
    assert _deliveries(metrics) == {
        ("weekly", "email", "sent"): 1.0,
        ("weekly", "email", "bounced"): 1.0,
        ("weekly", "email", "failed"): 1.0,
    }

    leading[0] = False  # a standby reads alike and counts nothing
    _finished_run(sqlite_store, "weekly", ["sent"])
    assert readings.read()
    assert _deliveries(metrics)[("weekly", "email", "sent")] == 1.0
    assert sqlite_store.get_run(earlier).state == RunState.COMPLETED


def test_a_restarted_daemon_shows_the_last_success_from_the_store(sqlite_store: StateStore) -> None:
    _finished_run(sqlite_store, "weekly", [])
    failed = sqlite_store.create_run("weekly", trigger="schedule")
    sqlite_store.transition(failed.id, RunState.FAILED, error="the database is down")
    (completed,) = sqlite_store.list_runs(report="weekly", state="COMPLETED")
    with served() as (metrics, port):
        assert StoreReadings(sqlite_store, metrics, logging.getLogger(BROKER_LOG), leading=lambda: True).restore()
        samples = _scrape(port)
    assert completed.finished_at is not None
    assert samples[("reportctl_last_success_timestamp_seconds", (("report", "weekly"),))] == pytest.approx(
        completed.finished_at.timestamp()
    )


def test_a_running_daemon_counts_its_deliveries_and_a_restarted_one_knows_the_last_success(project: Path) -> None:
    """Real daemon processes: the run renders and delivers in a worker process, the daemon reads its ledger rows in
    its housekeeping loop; the next daemon starts with the last success already known."""
    _orders_db(project)
    spec = _write_spec(project, "orders")  # hourly: the start catches up the latest fire, once
    spec.write_text(spec.read_text().replace("misfire_grace: 30m", "misfire_grace: 2h"))
    first = MetricsDaemon(project, _free_port())
    try:
        first.wait_for("run.completed")
        deadline = time.monotonic() + 60
        while not (delivered := _labelled(_scrape(first.port), "reportctl_deliveries_total", "result")):
            assert time.monotonic() < deadline, "the daemon never counted the run's deliveries"
            time.sleep(0.5)
        assert delivered == {"sent": 2.0}
    finally:
        first.stop()
    second = MetricsDaemon(project, _free_port())
    try:
        second.wait_for("daemon.started")
        samples = _scrape(second.port)
    finally:
        second.stop()
    with open_store(find_project(project)) as store:
        (latest, *_older) = store.list_runs(report="orders", state="COMPLETED")
    assert latest.finished_at is not None
    success = samples[("reportctl_last_success_timestamp_seconds", (("report", "orders"),))]
    assert success == pytest.approx(latest.finished_at.timestamp())
