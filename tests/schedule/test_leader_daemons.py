"""Two `reportctl schedule daemon` processes on one PostgreSQL-backed project: one fires, the other stands by.

Real processes, a per-minute cron and a 3 s lease: the leader is killed with SIGKILL by its pid, the standby takes
over within the lease and catches up; every minute's fire is recorded once, none twice and none lost. A third
daemon then takes over from a leader stopped with SIGTERM, which releases the lease on its way out.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import CliResult
from daemon_process import DaemonProcess
from reportctl.config import find_project
from reportctl.doctor import check_scheduler
from reportctl.schedule.daemon import DAEMON_TICK, Daemon
from reportctl.state import RunState, StateStore
from reportctl.state.leader import LeaseHolder
from reportctl.state.models import SchedulerLease

Cli = Callable[..., CliResult]
HOST = socket.gethostname()
SPEC = """\
apiVersion: reportctl/v1
name: minutely
sources:
  metrics: {kind: sample, rows: 20}
sections:
  - {id: t, type: table, dataset: metrics}
outputs: [csv]
schedule: {cron: "* * * * *", timezone: UTC, misfire_grace: 1h, overlap: skip}
"""
CONFIG = "timezone: UTC\nstate: {scheduler_lease: 3s, heartbeat_timeout: 5s}\n"
# generous: a fire comes once a minute, and two daemons share two cores with their render workers
FIRE_WAIT = 150.0


def test_a_standby_takes_over_from_a_killed_leader_and_no_fire_is_lost_or_doubled(
    cli: Cli, project: Path, pg_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPORTCTL_STATE_URL", pg_store_url)
    (project / "reportctl.yaml").write_text(CONFIG)
    (project / "specs" / "minutely.yaml").write_text(SPEC)
    daemons: list[DaemonProcess] = []
    orphans: list[int] = []
    try:
        first = DaemonProcess(project)
        daemons.append(first)
        leading = first.wait_for("daemon.leading")
        assert leading["message"].startswith(f"leader: holding the scheduler lease as {HOST}:{first.pid} (token 1)")
        second = DaemonProcess(project)
        daemons.append(second)
        standby = second.wait_for("daemon.standby")
        held_by_first = f"{HOST}:{first.pid} (token 1) until "
        assert standby["message"].startswith(f"standby: the scheduler lease is held by {held_by_first}")
        _the_leader_is_named(cli, project, first.pid)

        ran_first = first.wait_for("run.completed", timeout=FIRE_WAIT)
        orphans += first.descendants()
        os.kill(first.pid, signal.SIGKILL)
        first.process.wait(timeout=30)
        took_over = second.wait_for("daemon.took_over", timeout=30)
        assert f"took over the scheduler lease as {HOST}:{second.pid} (token 2)" in took_over["message"]
        ran_second = second.wait_for("run.completed", timeout=FIRE_WAIT)
        assert ran_second["run_id"] != ran_first["run_id"]

        # a leader stopped cleanly releases the lease: a third daemon standing by takes over at its next try
        third = DaemonProcess(project)
        daemons.append(third)
        third.wait_for("daemon.standby")
        os.kill(second.pid, signal.SIGTERM)
        assert second.process.wait(timeout=60) == 0
        second.wait_for("daemon.lease_released")
        handed = third.wait_for("daemon.took_over", timeout=30)
        assert f"{HOST}:{third.pid} (token 3)" in handed["message"]
        os.kill(third.pid, signal.SIGTERM)
        assert third.process.wait(timeout=60) == 0
    finally:
        for daemon in daemons:
            daemon.stop()
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    _every_fire_is_recorded_once(pg_store_url, first, second, [ran_first["run_id"], ran_second["run_id"]])


def _the_leader_is_named(cli: Cli, project: Path, pid: int) -> None:
    """While a daemon leads, a tick from cron fires nothing and says who does; status and doctor name the leader."""
    ticked = cli("schedule", "tick", "--json")
    assert ticked.exit_code == 0, ticked.stderr
    tick = json.loads(ticked.stdout)
    assert tick["fires"] == [] and tick["leader"]["holder"].startswith(f"{HOST}:{pid}/")
    plain = cli("schedule", "tick")
    assert plain.exit_code == 0
    assert plain.stdout.startswith(f"nothing fired: the scheduler lease is held by {HOST}:{pid} (token 1) until ")
    status = json.loads(cli("schedule", "status", "--json").stdout)["leader"]
    assert (status["token"], status["live"]) == (1, True)
    assert status["holder"].startswith(f"{HOST}:{pid}/")
    shown = cli("schedule", "status")
    assert shown.exit_code == 0 and shown.stdout.startswith(f"leader: {HOST}:{pid} (token 1) until ")
    (doctor,) = check_scheduler(project)
    assert (doctor.name, doctor.ok) == ("leader", True)
    assert doctor.detail.startswith(f"{HOST}:{pid} (token 1) until ")


def _every_fire_is_recorded_once(url: str, first: DaemonProcess, second: DaemonProcess, ran: list[str]) -> None:
    with StateStore(url) as store:
        runs = [run for run in store.list_runs(report="minutely", limit=1000) if run.trigger == "schedule"]
    assert {run.id for run in runs} >= set(ran)
    minutes = sorted(run.scheduled_for for run in runs if run.scheduled_for is not None)
    assert len(minutes) == len(runs) == len(set(minutes)), "each minute's fire is recorded once"
    expected = [minutes[0] + timedelta(minutes=n) for n in range(len(minutes))]
    assert minutes == expected, "no minute between the first and the last fire is missing"
    assert {run.state for run in runs} <= {RunState.COMPLETED, RunState.SKIPPED}
    # whatever the killed leader had claimed, the new leader found claimed instead of running it again
    firsts = {record["run_id"] for record in first.events("run.completed")}
    seconds = {record["run_id"] for record in second.events("run.completed")}
    assert not firsts & seconds


HOURLY = SPEC.replace("minutely", "hourly").replace("* * * * *", "0 * * * *")
NOW = datetime(2026, 11, 30, 9, 5, tzinfo=UTC)


def _walk_through(store: StateStore, loaded: Any, run_id: str, *, parameters: dict[str, str], now: datetime) -> Any:
    for state in (RunState.GENERATING, RunState.FORMATTING, RunState.DISTRIBUTING, RunState.COMPLETED):
        store.transition(run_id, state)
    return SimpleNamespace(run_id=run_id, directory=Path("out"))


def test_only_the_holder_fires_and_a_deposed_leader_records_nothing(project: Path, store_url: str) -> None:
    """In one process with an injected clock: the standby fires nothing; after the lease passes to it, it catches
    up from the watermark; the old leader, not yet aware (its hold still looks valid to it), has its claim refused
    by the store and stands by without recording anything."""
    (project / "specs" / "hourly.yaml").write_text(HOURLY)
    clock = [NOW]
    with StateStore(store_url) as store:
        daemons = []
        for _ in range(2):
            lease = LeaseHolder(store, timedelta(seconds=15))
            daemon = Daemon(
                find_project(project), store, clock=lambda: clock[0], render=_walk_through, lease=lease,
                sleep=lambda _seconds: None,
            )  # fmt: skip
            daemons.append((daemon, lease))
        (old, old_lease), (new, new_lease) = daemons
        old.start(NOW, leading=old_lease.acquire().holder == old_lease.holder)
        new.start(NOW, leading=new_lease.acquire().holder == new_lease.holder)
        assert (old.leading, new.leading) == (True, False)
        assert new.dispatch_due(NOW) == []
        assert [o.state for o in old.dispatch_due(NOW)] == ["COMPLETED"]
        old.save_watermark(NOW)

        with store._session(write=True) as session:  # the old leader stalls past its lease, by the store's clock
            session.execute(sa.update(SchedulerLease).values(expires_at=store.clock() - timedelta(seconds=1)))
        assert new_lease.acquire().token == 2
        later = NOW + timedelta(hours=1)
        clock[0] = later
        new.take_over(later)
        assert old.leading, "the old leader has not renewed yet: it still believes it leads"
        assert old.dispatch_due(later) == [], "its claim carried token 1 and was refused"
        assert not old.leading
        assert [(o.scheduled.hour, o.state) for o in new.dispatch_due(later)] == [(10, "COMPLETED")]
        runs = store.list_runs(report="hourly")
        assert sorted((r.scheduled_for.hour, r.state) for r in runs if r.scheduled_for) == [
            (9, RunState.COMPLETED),
            (10, RunState.COMPLETED),
        ]
        assert store.last_tick(DAEMON_TICK) == NOW


def test_a_tick_yields_to_a_live_leader_and_fires_once_its_lease_has_expired(
    cli: Cli, project: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPORTCTL_STATE_URL", store_url)
    (project / "specs" / "hourly.yaml").write_text(HOURLY)
    with StateStore(store_url) as store:
        leader = LeaseHolder(store, timedelta(seconds=15))
        leader.acquire()
        yielded = cli("schedule", "tick", "--now", NOW.isoformat())
        assert yielded.exit_code == 0, yielded.stderr
        assert yielded.stdout.startswith(
            f"nothing fired: the scheduler lease is held by {HOST}:{os.getpid()} (token 1)"
        )
        assert store.list_runs() == []
        leader.release()
        ticked = cli("schedule", "tick", "--now", (NOW + timedelta(hours=1)).isoformat(), "--json")
        assert ticked.exit_code == 0, ticked.stderr
        output = json.loads(ticked.stdout)
        assert output["leader"] is None
        # released (or expired): ticks fire again
        assert [(fire["scheduled"], fire["state"]) for fire in output["fires"]] == [
            ("2026-11-30T10:00:00+00:00", "COMPLETED")
        ]
        shown = cli("schedule", "status")
        assert shown.stdout.startswith(f"leader: none: the last holder, {HOST}:{os.getpid()} (token 1), expired ")


def test_status_without_a_state_store(cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPORTCTL_STATE_URL", raising=False)
    result = cli("schedule", "status")
    assert (result.exit_code, result.stdout) == (
        0,
        "leader: none (no daemon has run on this state store)\ndaemon watermark: never\n",
    )
    assert not (project / ".reportctl").exists()
