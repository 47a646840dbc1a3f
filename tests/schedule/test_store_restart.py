"""The state store's PostgreSQL crashes under a running `reportctl schedule daemon` and comes back.

Real processes, by pid: a PostgreSQL of the test's own (``own_postgres``), killed with SIGKILL (postmaster and
backends together, as when its machine dies) across a minute boundary of a per-minute cron, then started again on the
same port and data directory. The daemon survives: it cannot renew its 3 s scheduler lease, says so, fires nothing
while the store is down, holds the lease again once the store answers and catches up the minute it missed. Every
minute from the first fire to the last is recorded once, none doubled and none lost.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_leader_daemons import CONFIG, SPEC

from daemon_process import DaemonProcess
from own_postgres import own_postgres
from reportctl.schedule.daemon import DAEMON_TICK
from reportctl.state import RunState, StateStore
from reportctl.state.lifecycle import TERMINAL_STATES
from reportctl.state.models import RunRecord
from slow_source import SLOW_SPEC, SlowSource

FIRE_WAIT = 90.0
LEASE_SECONDS = 3.0
# the store goes down at least this long before a minute boundary, so the lease has surely lapsed when it fires
DOWN_BEFORE_BOUNDARY = 6.0
DOWN_AFTER_BOUNDARY = 3.0
# the reaper ends a run whose worker went silent for heartbeat_timeout (5 s): well within this
RUN_END_WAIT = 30.0


def test_the_daemon_survives_a_postgresql_crash_and_catches_up_the_minute_it_missed(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "reportctl.yaml").write_text(CONFIG)
    (project / "specs" / "minutely.yaml").write_text(SPEC)
    with own_postgres() as postgres:
        monkeypatch.setenv("REPORTCTL_STATE_URL", postgres.url)
        daemon = DaemonProcess(project)
        orphans: list[int] = []
        try:
            daemon.wait_for("daemon.leading")
            _watermark_saved(postgres.url)  # else a crash right after the start would lose the fires it misses
            # the latest minute within misfire_grace is a catch-up: it runs at once
            first = daemon.wait_for("run.completed", timeout=FIRE_WAIT)

            postgres.crash()
            crashed = datetime.now(UTC)
            lost = daemon.wait_for("daemon.lease_lost", timeout=LEASE_SECONDS * 3)
            assert lost["level"] == "warning"
            assert lost["message"].startswith(
                "cannot renew the scheduler lease, firing nothing until it is held again: state store "
            )
            assert "connection refused" in lost["message"].lower()
            missed = _next_minute(crashed + timedelta(seconds=DOWN_BEFORE_BOUNDARY))
            _sleep_until(missed + timedelta(seconds=DOWN_AFTER_BOUNDARY))
            assert daemon.process.poll() is None, "the daemon died while its store was down"
            fired = [r for r in daemon.events("run.completed") if datetime.fromisoformat(r["time"]) > crashed]
            assert not fired, "nothing fires while the store is down"

            postgres.start()
            back = daemon.wait_for("daemon.took_over", timeout=LEASE_SECONDS * 3)
            # nobody held the lease meanwhile: the same token
            again = r"leader again: holding the scheduler lease as \S+ \(token 1\) until \S+; catching up missed fires"
            assert re.fullmatch(again, back["message"]), back["message"]
            caught_up = _completed(daemon, missed)
            assert caught_up["run_id"] != first["run_id"]
            orphans += daemon.descendants()
            os.kill(daemon.pid, signal.SIGTERM)
            assert daemon.process.wait(timeout=60) == 0
            daemon.wait_for("daemon.stopped")  # reads every line it logged
        finally:
            daemon.stop()
            for pid in orphans:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        assert not daemon.events("job.error") and not daemon.events("fire.lost"), daemon.seen
        with StateStore(postgres.url) as store:
            runs = [run for run in store.list_runs(report="minutely", limit=1000) if run.trigger == "schedule"]
            skipped_reasons = {
                run.id: store.timeline(run.id)[-1].detail or "" for run in runs if run.state == RunState.SKIPPED
            }
    by_id = {run.id: run for run in runs}
    assert by_id[caught_up["run_id"]].scheduled_for == missed, "the minute that fell in the outage ran afterwards"
    assert by_id[caught_up["run_id"]].state == RunState.COMPLETED
    minutes = sorted(run.scheduled_for for run in runs if run.scheduled_for is not None)
    assert len(minutes) == len(runs) == len(set(minutes)), "each minute's fire is recorded once"
    assert minutes == [minutes[0] + timedelta(minutes=n) for n in range(len(minutes))], "no minute is missing"
    assert minutes[0] == by_id[first["run_id"]].scheduled_for
    for run in runs:
        # an outage that spans two minutes (a crash late in a minute): the earlier is SKIPPED, the later ran instead
        assert run.state in {RunState.COMPLETED, RunState.SKIPPED}, (run.scheduled_for, run.state, run.error)
        if run.state == RunState.SKIPPED:
            assert skipped_reasons[run.id].startswith("missed "), skipped_reasons[run.id]


def test_a_run_whose_store_crashed_mid_run_ends_recorded_once_the_store_is_back(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run is GENERATING (its source holds its answer) when PostgreSQL is killed; the source answers while the
    store is down, so the render worker cannot record its next state. Once the store is back the run ends recorded,
    COMPLETED or FAILED with its error, never left active for ever."""
    (project / "reportctl.yaml").write_text(CONFIG)
    slow = SlowSource()
    (project / "specs" / "hourly.yaml").write_text(SLOW_SPEC.replace("URL", slow.url))
    with own_postgres() as postgres:
        monkeypatch.setenv("REPORTCTL_STATE_URL", postgres.url)
        daemon = DaemonProcess(project)
        orphans: list[int] = []
        try:
            started = daemon.wait_for("run.started", timeout=FIRE_WAIT)  # the hour's fire, caught up at once
            assert slow.asked.wait(30), "the run never asked its source"
            postgres.crash()
            daemon.wait_for("daemon.lease_lost", timeout=LEASE_SECONDS * 3)
            slow.release.set()
            time.sleep(LEASE_SECONDS * 2)  # the run tries to record its next state while the store is down
            assert daemon.process.poll() is None, "the daemon died while its store was down"
            postgres.start()
            daemon.wait_for("daemon.took_over", timeout=LEASE_SECONDS * 3)
            with StateStore(postgres.url) as store:
                run = _ended(store, started["run_id"], within=RUN_END_WAIT)
                timeline = store.timeline(run.id)
            orphans += daemon.descendants()
            os.kill(daemon.pid, signal.SIGTERM)
            assert daemon.process.wait(timeout=60) == 0
            daemon.wait_for("daemon.stopped")  # reads every line it logged
        finally:
            daemon.stop()
            slow.close()
            for pid in orphans:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    # the render worker's heartbeat broke off the run when the store went; the daemon recorded it once it was back
    assert run.state == RunState.FAILED, (run.state, timeline)
    assert run.error is not None and "connection refused" in run.error.lower(), run.error
    (failed,) = daemon.events("run.failed")
    assert failed["run_id"] == run.id
    retries = [r for r in daemon.events("store.retry") if r["run_id"] == run.id]
    assert retries and f"recording run {run.id} FAILED again in 1s" in retries[0]["message"]


def _ended(store: StateStore, run_id: str, *, within: float) -> RunRecord:
    """The run once it has ended, or as it stands after ``within`` seconds."""
    deadline = time.monotonic() + within
    while (run := store.get_run(run_id)).state not in TERMINAL_STATES and time.monotonic() < deadline:
        time.sleep(0.5)
    return run


def _completed(daemon: DaemonProcess, scheduled: datetime) -> dict[str, object]:
    """The daemon's ``run.completed`` record for the fire of ``scheduled`` (a fire that was due just before the
    crash may complete first: its record is skipped)."""
    while True:
        record = daemon.wait_for("run.completed", timeout=FIRE_WAIT)
        if datetime.fromisoformat(str(record["scheduled"])) == scheduled:
            return record


def _watermark_saved(url: str) -> None:
    """Wait (3 s at most: the daemon saves every 10 s after its first) until the leader has saved its watermark."""
    deadline = time.monotonic() + 3
    with StateStore(url) as store:
        while store.last_tick(DAEMON_TICK) is None:
            assert time.monotonic() < deadline, "the leader saved no watermark within 3 s of leading"
            time.sleep(0.1)


def _next_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _sleep_until(moment: datetime) -> None:
    # the outage must span a real minute boundary of the daemon's cron; no injected clock reaches another process
    time.sleep(max((moment - datetime.now(UTC)).total_seconds(), 0.0))
