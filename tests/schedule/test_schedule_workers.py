"""The daemon's runs in worker processes: a real render in a spawned worker, a timeout that kills the worker's
process group, a crash recorded as FAILED, errors that keep their class across the pipe (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reportctl.config import Project, find_project
from reportctl.errors import SourceError, SpecError
from reportctl.schedule.daemon import Daemon
from reportctl.schedule.workers import RenderWorkers
from reportctl.state import RunState, StateStore

NOW = datetime(2026, 11, 30, 9, 5, tzinfo=UTC)
SPEC = """\
apiVersion: reportctl/v1
name: NAME
sources:
  metrics: SOURCE
sections:
  - {id: t, type: table, dataset: metrics}
outputs: [csv]
schedule: {cron: "0 * * * *", timezone: UTC, misfire_grace: 30m, timeout: 10m}
"""


@pytest.fixture
def proj(project: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("REPORTCTL_STATE_URL", store_url)  # the workers, spawned, open the same store
    return find_project(project)


@pytest.fixture
def store(store_url: str) -> Iterator[StateStore]:
    with StateStore(store_url) as opened:
        yield opened


@pytest.fixture
def workers(proj: Project) -> Iterator[RenderWorkers]:
    pool = RenderWorkers(proj)
    yield pool
    pool.close()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An HTTP endpoint that accepts connections and never answers: a source that hangs."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/metrics"
    stop.set()
    thread.join(5)
    for connection in held:
        connection.close()
    listener.close()


def write_spec(proj: Project, name: str, source: str) -> None:
    (proj.root / "specs" / f"{name}.yaml").write_text(SPEC.replace("NAME", name).replace("SOURCE", source))


def make_daemon(proj: Project, store: StateStore, workers: RenderWorkers, clock: list[datetime]) -> Daemon:
    return Daemon(proj, store, clock=lambda: clock[0], render=workers, sleep=lambda _seconds: None)


def test_a_run_renders_in_a_worker_process_that_stays_for_the_next(
    proj: Project, store: StateStore, workers: RenderWorkers
) -> None:
    write_spec(proj, "hourly", "{kind: sample, rows: 20}")
    clock = [NOW]
    daemon = make_daemon(proj, store, workers, clock)
    daemon.start(NOW)
    (first,) = daemon.dispatch_due(NOW)
    clock[0] = NOW + timedelta(hours=1)
    (second,) = daemon.dispatch_due(clock[0])
    assert (first.state, second.state) == ("COMPLETED", "COMPLETED")
    runs = [store.get_run(outcome.run_id or "") for outcome in (first, second)]
    assert all(run.state is RunState.COMPLETED for run in runs)
    workers_seen = {run.worker for run in runs}
    assert len(workers_seen) == 1  # one worker process rendered both
    (worker,) = workers_seen
    assert worker is not None and not worker.endswith(f":{os.getpid()}")
    csv = Path(first.detail) / "hourly.csv"
    assert len(csv.read_text().splitlines()) == 21


def test_a_run_past_its_timeout_is_stopped_with_its_process(
    proj: Project, store: StateStore, workers: RenderWorkers, silent_server: str
) -> None:
    write_spec(proj, "hanging", f"{{kind: http, url: '{silent_server}', timeout: 5m, retries: 0}}")
    clock = [NOW]
    daemon = make_daemon(proj, store, workers, clock)
    daemon.start(NOW)
    outcomes: list[Any] = []
    thread = threading.Thread(target=lambda: outcomes.extend(daemon.dispatch_due(NOW)))
    thread.start()
    run_id, pid = _rendering(workers, store)
    assert daemon.check_timeouts(NOW + timedelta(minutes=9)) == []
    assert daemon.check_timeouts(NOW + timedelta(minutes=11)) == [run_id]
    thread.join(30)
    assert not thread.is_alive()
    assert not _alive(pid)  # really stopped, not left running until its next state change
    run = store.get_run(run_id)
    assert (run.state, run.error) == (RunState.FAILED, "timed out after 10m")
    assert [(o.state, o.detail) for o in outcomes] == [("FAILED", "timed out after 10m")]
    # the next run gets a fresh worker
    write_spec(proj, "hanging", "{kind: sample, rows: 5}")
    clock[0] = NOW + timedelta(hours=1)
    (next_run,) = daemon.dispatch_due(clock[0])
    assert next_run.state == "COMPLETED"


def test_a_worker_that_dies_mid_run_leaves_a_failed_run(
    proj: Project, store: StateStore, workers: RenderWorkers, silent_server: str
) -> None:
    write_spec(proj, "hanging", f"{{kind: http, url: '{silent_server}', timeout: 5m, retries: 0}}")
    daemon = make_daemon(proj, store, workers, [NOW])
    daemon.start(NOW)
    outcomes: list[Any] = []
    thread = threading.Thread(target=lambda: outcomes.extend(daemon.dispatch_due(NOW)))
    thread.start()
    run_id, pid = _rendering(workers, store)
    os.kill(pid, 9)  # the OOM killer, say
    thread.join(30)
    run = store.get_run(run_id)
    assert run.state is RunState.FAILED
    assert run.error == f"worker process {pid} ended unexpectedly (exit code -9) while rendering run {run_id}"
    assert [o.state for o in outcomes] == ["FAILED"]


def test_errors_cross_the_pipe_as_their_own_class() -> None:
    error = pickle.loads(pickle.dumps(SourceError("db", "sqlite", "no such table: orders", option="query")))
    assert isinstance(error, SourceError)
    assert (str(error), error.source, error.option) == ("source 'db' (sqlite): no such table: orders", "db", "query")
    spec_error = pickle.loads(pickle.dumps(SpecError([])))
    assert isinstance(spec_error, SpecError) and spec_error.problems == []


def _rendering(workers: RenderWorkers, store: StateStore) -> tuple[str, int]:
    """The run a worker is rendering, once it has moved past SCHEDULED (waiting on its source), and its pid."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for run_id, pid in workers.pids().items():
            if store.get_run(run_id).state is RunState.GENERATING:
                return run_id, pid
        time.sleep(0.05)
    raise AssertionError("no run started rendering within 60 s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
