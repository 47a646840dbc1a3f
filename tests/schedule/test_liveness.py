"""Liveness, not clocks: a run is reaped as 'worker lost' only when it is silent by the store's clock and, when it
ran on this host, its process is gone. ``schedule tick --now`` plans fires; it is never a clock for liveness."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import CliResult, silence
from reportctl.state import RunState, StateStore
from reportctl.state.liveness import worker_alive_here
from slow_source import SLOW_SPEC, SlowSource

Cli = Callable[..., CliResult]
HOST = socket.gethostname()
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def generating(store: StateStore, report: str) -> str:
    run = store.create_run(report, now=T0)
    store.transition(run.id, RunState.GENERATING, now=T0)
    return run.id


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process of this host that stays alive until the test stops it by its pid."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield process
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_a_silent_run_whose_process_lives_here_is_not_reaped(store_url: str, sleeper: subprocess.Popen[bytes]) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait(timeout=30)
    with StateStore(store_url) as store:
        alive, gone = generating(store, "alive"), generating(store, "gone")
        elsewhere, fresh = generating(store, "elsewhere"), generating(store, "fresh")
        silence(store, alive, worker=f"{HOST}:{sleeper.pid}")
        silence(store, gone, worker=f"{HOST}:{ended.pid}")
        silence(store, elsewhere)  # another host: its silence is all we can know
        silence(store, fresh, worker="elsewhere.invalid:4243", silent_for=timedelta(seconds=5))
        assert sorted(run.report for run in store.reap_lost(timedelta(minutes=2))) == ["elsewhere", "gone"]
        assert store.get_run(alive).state is RunState.GENERATING
        assert store.get_run(fresh).state is RunState.GENERATING
        os.kill(sleeper.pid, signal.SIGKILL)
        sleeper.wait(timeout=10)
        (reaped,) = store.reap_lost(timedelta(minutes=2))
        assert (reaped.id, reaped.state) == (alive, RunState.FAILED)
        assert reaped.error is not None and reaped.error.startswith("worker lost (no heartbeat since ")
        assert reaped.error.endswith(f"from {HOST}:{sleeper.pid})")


def test_a_run_waiting_in_the_broker_is_not_reaped_whatever_became_of_the_daemon_that_claimed_it(
    store_url: str,
) -> None:
    """With executor: celery a claimed run waits in Redis, where nobody beats for it: a standby that took over from
    the daemon that claimed it must leave it to the worker that gets its message (a lost message is sent again by
    queue_stranded). Locally, nobody else would ever render it: it is reaped."""
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait(timeout=30)
    with StateStore(store_url) as store:
        waiting = store.create_run("waiting", now=T0)
        rendering = generating(store, "rendering")
        for run_id in (waiting.id, rendering):
            silence(store, run_id, worker=f"{HOST}:{ended.pid}")
        (reaped,) = store.reap_lost(timedelta(minutes=2), queued=True)
        assert reaped.id == rendering
        assert store.get_run(waiting.id).state is RunState.SCHEDULED
        (reaped,) = store.reap_lost(timedelta(minutes=2))
        assert (reaped.id, reaped.state) == (waiting.id, RunState.FAILED)


def test_which_workers_are_alive_here(sleeper: subprocess.Popen[bytes]) -> None:
    assert worker_alive_here(f"{HOST}:{os.getpid()}")
    assert worker_alive_here(f"{HOST}:{sleeper.pid}")
    assert worker_alive_here(f"{HOST}:1"), "pid 1 exists, whether or not this user may signal it"
    assert not worker_alive_here(f"elsewhere.invalid:{os.getpid()}")
    assert not worker_alive_here(None) and not worker_alive_here("garbage") and not worker_alive_here(f"{HOST}:0")
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:  # exited but not yet waited for: signal 0 still finds it, /proc says it is a zombie
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        while Path(f"/proc/{zombie.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert datetime.now(UTC) < deadline, "the child never exited"
            threading.Event().wait(0.01)
        assert not worker_alive_here(f"{HOST}:{zombie.pid}")
    finally:
        zombie.wait(timeout=10)
    assert not worker_alive_here(f"{HOST}:{zombie.pid}")


def test_heartbeats_are_stamped_by_the_store_clock_not_the_callers(store_url: str) -> None:
    with StateStore(store_url) as store:
        run_id = generating(store, "weekly")  # created and started "at" T0, a time given by the caller
        started = store.get_run(run_id)
        assert started.created_at == T0 and started.started_at == T0
        assert started.heartbeat_at is not None and abs(started.heartbeat_at - store.clock()) < timedelta(minutes=1)
        silence(store, run_id, worker=started.worker or "", silent_for=timedelta(hours=1))
        assert store.heartbeat(run_id)
        beaten = store.get_run(run_id).heartbeat_at
        assert beaten is not None and abs(beaten - store.clock()) < timedelta(minutes=1)


def test_a_tick_planned_ahead_does_not_fail_a_run_that_is_rendering(
    cli: Cli, project: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported bug: `schedule tick --now <10 minutes ahead>` while a tick's run was rendering marked that run
    FAILED 'worker lost', and the live tick then exited 1 ("run ... is FAILED and cannot move to FAILED")."""
    monkeypatch.setenv("REPORTCTL_STATE_URL", store_url)
    (project / "reportctl.yaml").write_text("timezone: UTC\ncache: {enabled: false}\n")
    slow = SlowSource()
    (project / "specs" / "hourly.yaml").write_text(SLOW_SPEC.replace("URL", slow.url))
    command = [sys.executable, "-m", "reportctl", "schedule", "tick", "--json"]
    live = subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert slow.asked.wait(60), "the live tick never asked its source"
        with StateStore(store_url) as store:  # (the fire an hour before, if within its grace, is recorded SKIPPED)
            (rendering,) = store.list_runs(report="hourly", state=RunState.GENERATING)
        assert rendering.worker == f"{HOST}:{live.pid}"
        ahead = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
        planned = cli("schedule", "tick", "--now", ahead, "--json")
        assert planned.exit_code == 0, planned.stderr
        assert all(fire["state"] != "FAILED" for fire in json.loads(planned.stdout)["fires"])
        with StateStore(store_url) as store:
            assert store.get_run(rendering.id).state is RunState.GENERATING
        slow.release.set()
        out, err = live.communicate(timeout=120)
    finally:
        slow.close()
        if live.poll() is None:
            os.kill(live.pid, signal.SIGKILL)
            live.communicate(timeout=10)
    assert live.returncode == 0, err
    fires = {fire["run_id"]: fire["state"] for fire in json.loads(out)["fires"]}
    assert fires[rendering.id] == "COMPLETED" and "FAILED" not in fires.values()
    with StateStore(store_url) as store:
        states = {run.id: run.state for run in store.list_runs(report="hourly")}
    assert states[rendering.id] is RunState.COMPLETED
    assert RunState.FAILED not in states.values()
