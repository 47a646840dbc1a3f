"""The schedule daemon's core, driven with an injected clock and no threads of its own (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from reportctl.config import Project, find_project
from reportctl.schedule import ScheduledSpec, fire_times, planned_time
from reportctl.schedule.apscheduler_trigger import PlannedFireTrigger
from reportctl.schedule.daemon import CUT_OFF, DAEMON_TICK, Daemon
from reportctl.schedule.tick import render_fire, run_tick
from reportctl.state import RunState, StateStore, StateStoreError

SPEC = """\
apiVersion: reportctl/v1
name: NAME
sources:
  metrics: {kind: sample, rows: 20}
sections:
  - {id: t, type: table, dataset: metrics}
outputs: [csv]
schedule: {cron: "CRON", timezone: UTC, misfire_grace: 30m, PRIORITY timeout: 10m}
"""
NOW = datetime(2026, 11, 30, 9, 5, tzinfo=UTC)


def write_spec(folder: Path, name: str, cron: str = "0 * * * *", priority: str = "standard") -> Path:
    path = folder / "specs" / f"{name}.yaml"
    text = SPEC.replace("NAME", name).replace("CRON", cron).replace("PRIORITY", f"priority: {priority},")
    path.write_text(text)
    return path


class Jobs:
    """A JobControl that remembers what the daemon asked for."""

    def __init__(self) -> None:
        self.scheduled: dict[str, tuple[str, bool]] = {}
        self.calls: list[tuple[str, str]] = []

    def schedule(self, spec: ScheduledSpec, trigger: PlannedFireTrigger, *, run_now: bool) -> None:
        self.scheduled[spec.name] = (spec.cron, run_now)
        self.calls.append(("schedule", spec.name))

    def unschedule(self, name: str) -> None:
        self.scheduled.pop(name, None)
        self.calls.append(("unschedule", name))


def stub_render(store: StateStore, loaded: Any, run_id: str, *, parameters: dict[str, str], now: datetime) -> Any:
    """Walk the run through its states without rendering anything."""
    for state in (RunState.GENERATING, RunState.FORMATTING, RunState.DISTRIBUTING, RunState.COMPLETED):
        store.transition(run_id, state)
    return SimpleNamespace(run_id=run_id, directory=Path("out"))


@pytest.fixture
def store(store_url: str) -> Iterator[StateStore]:
    with StateStore(store_url) as opened:
        yield opened


@pytest.fixture
def proj(project: Path) -> Project:
    return find_project(project)


def make_daemon(proj: Project, store: StateStore, **options: Any) -> tuple[Daemon, Jobs]:
    jobs = Jobs()
    options.setdefault("render", stub_render)
    options.setdefault("sleep", lambda _seconds: None)
    return Daemon(proj, store, clock=lambda: NOW, jobs=jobs, **options), jobs


# --- the APScheduler trigger ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("cron", ["30 2 * * *", "0 * * * *", "*/20 * * * *"])
@pytest.mark.parametrize("start", [datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 10, 23, tzinfo=UTC)])
def test_the_trigger_fires_at_planned_times_across_berlin_dst(cron: str, start: datetime) -> None:
    spec = SimpleNamespace(name="dst", cron=cron, timezone="Europe/Berlin", jitter=timedelta(minutes=5))
    trigger = PlannedFireTrigger(spec)  # type: ignore[arg-type]
    end = start + timedelta(days=4)
    # a fire scheduled before ``start`` whose jitter plans it after is still to come
    scheduled = fire_times(cron, "Europe/Berlin", start - spec.jitter, until=end)
    planned = [planned_time("dst", s, spec.jitter).astimezone(UTC) for s in scheduled]
    expected = [p for p in planned if start < p <= end]
    got: list[datetime] = []
    previous: datetime | None = None
    while True:
        fire = trigger.get_next_fire_time(previous, start)
        if fire is None or fire > end:
            break
        got.append(fire)
        previous = fire
    assert got == expected
    assert all(a < b for a, b in pairwise(got))  # strictly increasing: no fire repeats
    assert trigger.submitted == got[-1]


# --- reload --------------------------------------------------------------------------------------------------------


def test_reload_adds_reschedules_keeps_and_drops(proj: Project, store: StateStore) -> None:
    write_spec(proj.root, "alpha")
    beta = write_spec(proj.root, "beta")
    gamma = write_spec(proj.root, "gamma", priority="critical")
    daemon, jobs = make_daemon(proj, store)
    daemon.start(NOW)
    assert set(jobs.scheduled) == {"alpha", "beta", "gamma"}
    write_spec(proj.root, "delta")
    write_spec(proj.root, "alpha", cron="30 * * * *")
    beta.write_text(
        beta.read_text().replace("0 * * * *", "0 25 * * *")
    )  # invalid: the last valid version keeps running
    gamma.unlink()
    jobs.calls.clear()
    result = daemon.reload(NOW)
    assert (result.added, result.rescheduled, result.kept, result.removed) == (
        ["delta"],
        ["alpha"],
        ["beta"],
        ["gamma"],
    )
    assert sorted(jobs.calls) == [("schedule", "alpha"), ("schedule", "delta"), ("unschedule", "gamma")]
    assert daemon.specs["alpha"].cron == "30 * * * *" and daemon.specs["beta"].cron == "0 * * * *"
    (problem,) = result.problems
    assert str(problem).startswith(f"{beta}:8:")


def test_an_invalid_cron_or_zone_skips_that_spec_only(proj: Project, store: StateStore) -> None:
    write_spec(proj.root, "good")
    write_spec(proj.root, "bad-cron", cron="61 * * * *")
    zone = write_spec(proj.root, "bad-zone")
    zone.write_text(zone.read_text().replace("timezone: UTC", "timezone: Mars/Olympus"))
    daemon, _jobs = make_daemon(proj, store)
    result = daemon.start(NOW)
    assert list(daemon.specs) == ["good"]
    assert len(result.problems) == 2


def test_a_changed_spec_that_keeps_its_schedule_is_not_rescheduled(proj: Project, store: StateStore) -> None:
    path = write_spec(proj.root, "alpha")
    daemon, jobs = make_daemon(proj, store)
    daemon.start(NOW)
    path.write_text(path.read_text().replace("rows: 20", "rows: 30"))
    jobs.calls.clear()
    result = daemon.reload(NOW)
    assert (result.changed, result.rescheduled, jobs.calls) == (["alpha"], [], [])


# --- fires ---------------------------------------------------------------------------------------------------------


def test_a_daemon_and_a_tick_at_the_same_fire_run_it_once(proj: Project, store: StateStore) -> None:
    write_spec(proj.root, "hourly")
    daemon, _jobs = make_daemon(proj, store, render=render_fire)  # a real render
    daemon.start(NOW)
    ran = daemon.dispatch_due(NOW)
    ticked, _problems = run_tick(proj, store, NOW)
    assert [o.state for o in ran] == ["COMPLETED"]
    assert [o.state for o in ticked] == ["CLAIMED"]
    assert [r.state for r in store.list_runs(report="hourly")] == [RunState.COMPLETED]


def test_a_fire_runs_once_and_a_restart_catches_up_once(proj: Project, store: StateStore) -> None:
    write_spec(proj.root, "hourly")
    store.set_last_tick(DAEMON_TICK, NOW - timedelta(hours=5))
    daemon, jobs = make_daemon(proj, store)
    daemon.start(NOW)
    assert jobs.scheduled["hourly"] == ("0 * * * *", True)  # missed while down: the job runs at once
    outcomes = daemon.dispatch_due(NOW)
    assert [(o.scheduled.hour, o.state) for o in outcomes] == [(8, "SKIPPED"), (9, "COMPLETED")]
    assert daemon.dispatch_due(NOW + timedelta(minutes=1)) == []
    assert daemon.save_watermark(NOW) == NOW
    restarted, _jobs = make_daemon(proj, store)
    restarted.start(NOW)
    assert restarted.dispatch_due(NOW + timedelta(minutes=1)) == []
    assert len(store.list_runs(report="hourly")) == 2


def test_a_first_fire_that_waited_past_its_grace_is_recorded_skipped(proj: Project, store: StateStore) -> None:
    """A daemon that never ticked before, whose job for the 10:00 fire only got a worker at 10:40 (a full pool)."""
    write_spec(proj.root, "hourly")
    daemon, _jobs = make_daemon(proj, store)
    daemon.start(NOW + timedelta(minutes=40))  # 09:45: nothing due
    (outcome,) = daemon.dispatch_due(datetime(2026, 11, 30, 10, 40, tzinfo=UTC))
    assert (outcome.scheduled.hour, outcome.state) == (10, "SKIPPED")
    assert outcome.detail == "missed 1 fire (the latest 40m late), past misfire_grace 30m"
    assert [run.state.value for run in store.list_runs(report="hourly")] == ["SKIPPED"]


def test_a_first_start_runs_the_latest_fire_within_its_grace_and_records_no_earlier_one(
    proj: Project, store: StateStore
) -> None:
    """Every 10 minutes with a 30-minute grace, first started at 09:05: the 09:00 fire runs as a catch-up; the
    08:40 and 08:50 fires, from before the daemon existed, are no one's loss and leave no SKIPPED record."""
    write_spec(proj.root, "often", cron="*/10 * * * *")
    daemon, _jobs = make_daemon(proj, store)
    daemon.start(NOW)
    (outcome,) = daemon.dispatch_due(NOW)
    assert (outcome.scheduled.minute, outcome.state) == (0, "COMPLETED")
    assert [run.state.value for run in store.list_runs(report="often")] == ["COMPLETED"]


def test_fires_coalesced_into_a_later_one_say_so(proj: Project, store: StateStore) -> None:
    """Down from 08:55 to 09:25 with a 30-minute grace: 09:20 runs, 09:00 and 09:10 were not past their grace."""
    write_spec(proj.root, "often", cron="*/10 * * * *")
    store.set_last_tick(DAEMON_TICK, datetime(2026, 11, 30, 8, 55, tzinfo=UTC))
    daemon, _jobs = make_daemon(proj, store)
    now = datetime(2026, 11, 30, 9, 25, tzinfo=UTC)
    daemon.start(now)
    skipped, ran = daemon.dispatch_due(now)
    assert (skipped.state, skipped.detail) == (
        "SKIPPED",
        "missed 2 fires (the latest 15m late), a later fire ran in their place",
    )
    assert (ran.scheduled.minute, ran.state) == (20, "COMPLETED")


def test_overlap_skip_is_recorded_with_the_reason(proj: Project, store: StateStore) -> None:
    write_spec(proj.root, "hourly")
    other = store.create_run("hourly", trigger="manual", now=NOW - timedelta(minutes=1))
    store.transition(other.id, RunState.GENERATING, now=NOW - timedelta(minutes=1))
    daemon, _jobs = make_daemon(proj, store)
    daemon.start(NOW)
    (outcome,) = daemon.dispatch_due(NOW)
    assert (outcome.state, outcome.detail) == (
        "SKIPPED",
        f"overlap: skip; run {other.id} of this report is still GENERATING",
    )


def test_a_claim_is_retried_while_the_store_is_down(
    proj: Project, store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_spec(proj.root, "hourly")
    real_claim, failures = store.claim_fire_noting_active, [2]

    def flaky_claim(*args: Any, **kwargs: Any) -> Any:
        if failures[0]:
            failures[0] -= 1
            raise StateStoreError("state store: connection refused")
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(store, "claim_fire_noting_active", flaky_claim)
    slept: list[float] = []
    daemon, _jobs = make_daemon(proj, store, sleep=slept.append)
    daemon.start(NOW)
    assert [o.state for o in daemon.dispatch_due(NOW)] == ["COMPLETED"]
    assert slept == [1.0, 2.0]
    assert len(store.list_runs(report="hourly")) == 1


def test_a_fire_past_its_grace_while_the_store_is_down_is_not_run(
    proj: Project, store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_spec(proj.root, "hourly")

    def down(*_args: Any, **_kwargs: Any) -> Any:
        raise StateStoreError("state store: connection refused")

    clock = [NOW]
    daemon, _jobs = make_daemon(
        proj, store, sleep=lambda seconds: clock.__setitem__(0, clock[0] + timedelta(seconds=seconds))
    )
    daemon.clock = lambda: clock[0]
    daemon.start(NOW)
    monkeypatch.setattr(store, "claim_fire_noting_active", down)
    assert daemon.dispatch_due(NOW) == []
    assert clock[0] - NOW > timedelta(minutes=25)  # kept retrying until the 30 minute grace (from 09:00) ran out


def blocking_render(release: threading.Event) -> Any:
    def render(store: StateStore, loaded: Any, run_id: str, *, parameters: dict[str, str], now: datetime) -> Any:
        store.transition(run_id, RunState.GENERATING)
        release.wait(10)
        return stub_render_rest(store, run_id)

    return render


def stub_render_rest(store: StateStore, run_id: str) -> Any:
    for state in (RunState.FORMATTING, RunState.DISTRIBUTING, RunState.COMPLETED):
        store.transition(run_id, state)
    return SimpleNamespace(run_id=run_id, directory=Path("out"))


def _dispatch_in_thread(daemon: Daemon) -> tuple[threading.Thread, list[Any]]:
    outcomes: list[Any] = []
    thread = threading.Thread(target=lambda: outcomes.extend(daemon.dispatch_due(NOW)))
    thread.start()
    # until the render has moved its run to GENERATING: a timeout recorded before that would race with it
    for _ in range(500):
        if daemon.running() and all(daemon.store.get_run(r).state is not RunState.SCHEDULED for r in daemon.running()):
            break
        threading.Event().wait(0.01)
    return thread, outcomes


def test_a_run_past_its_timeout_is_failed_and_records_nothing_after(proj: Project, store: StateStore) -> None:
    write_spec(proj.root, "hourly")
    release = threading.Event()
    daemon, _jobs = make_daemon(proj, store, render=blocking_render(release))
    daemon.start(NOW)
    thread, outcomes = _dispatch_in_thread(daemon)
    (run_id,) = daemon.running()
    assert daemon.check_timeouts(NOW + timedelta(minutes=9)) == []
    assert daemon.check_timeouts(NOW + timedelta(minutes=11)) == [run_id]
    release.set()
    thread.join(10)
    run = store.get_run(run_id)
    assert (run.state, run.error) == (RunState.FAILED, "timed out after 10m")
    assert [(o.state, o.detail) for o in outcomes] == [("FAILED", "timed out after 10m")]


def test_runs_still_going_after_the_grace_are_recorded_as_cut_off(proj: Project, store: StateStore) -> None:
    write_spec(proj.root, "hourly")
    release = threading.Event()
    daemon, _jobs = make_daemon(proj, store, render=blocking_render(release))
    daemon.start(NOW)
    thread, _outcomes = _dispatch_in_thread(daemon)
    daemon.stopping.set()
    (run_id,) = daemon.cut_off(NOW)
    assert daemon.dispatch_due(NOW + timedelta(hours=1)) == []  # stopping: nothing new starts
    release.set()
    thread.join(10)
    run = store.get_run(run_id)
    assert (run.state, run.error) == (RunState.FAILED, CUT_OFF)


def test_a_critical_report_is_dispatched_first(proj: Project, store: StateStore) -> None:
    write_spec(proj.root, "a-standard")
    write_spec(proj.root, "z-critical", priority="critical")
    daemon, _jobs = make_daemon(proj, store)
    daemon.start(NOW)
    assert [o.report for o in daemon.dispatch_due(NOW)] == ["z-critical", "a-standard"]
