"""`reportctl schedule tick` against a real state store (SQLite and PostgreSQL): exactly once, no bursts."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import CliResult, silence
from reportctl.config import find_project
from reportctl.schedule.tick import run_tick
from reportctl.state import RunState, StateStore

Cli = Callable[..., CliResult]
HOURLY = """\
apiVersion: reportctl/v1
name: hourly
sources:
  metrics: {kind: sample, rows: 200}
sections:
  - {id: t, type: table, dataset: metrics}
outputs: [csv]
schedule: {cron: "0 * * * *", timezone: UTC, misfire_grace: 30m, overlap: OVERLAP, retries: RETRIES}
"""
T = "2026-11-30T09:05:00+00:00"


@pytest.fixture
def hourly(project: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REPORTCTL_STATE_URL", store_url)
    spec = project / "specs" / "hourly.yaml"
    spec.write_text(HOURLY.replace("OVERLAP", "skip").replace("RETRIES", "0"))
    return spec


def _runs(cli: Cli) -> list[dict[str, object]]:
    result = cli("runs", "list", "--json")
    assert result.exit_code == 0, result.stderr
    runs: list[dict[str, object]] = json.loads(result.stdout)
    return runs


def test_a_tick_runs_the_due_fire_once(cli: Cli, hourly: Path) -> None:
    first = cli("schedule", "tick", "--now", T, "--json")
    assert first.exit_code == 0, first.stderr
    (fire,) = json.loads(first.stdout)["fires"]
    assert (fire["report"], fire["scheduled"], fire["state"]) == ("hourly", "2026-11-30T09:00:00+00:00", "COMPLETED")
    (run,) = _runs(cli)
    assert run["state"] == "COMPLETED" and run["trigger"] == "schedule"
    assert run["artifacts"] and run["scheduled_for"] == "2026-11-30T09:00:00Z"
    again = cli("schedule", "tick", "--now", T)
    assert (again.exit_code, again.stdout) == (0, f"nothing due at {T}\n")
    assert len(_runs(cli)) == 1


def test_a_restart_after_downtime_runs_the_latest_fire_once(cli: Cli, hourly: Path) -> None:
    assert cli("schedule", "tick", "--now", "2026-11-30T04:05:00+00:00").exit_code == 0
    # down from 04:05 to 09:05: fires at 05:00 .. 09:00 fell due; only 09:00 is within the 30 minute grace
    result = cli("schedule", "tick", "--now", T, "--json")
    fires = json.loads(result.stdout)["fires"]
    assert [(f["scheduled"], f["state"]) for f in fires] == [
        ("2026-11-30T08:00:00+00:00", "SKIPPED"),
        ("2026-11-30T09:00:00+00:00", "COMPLETED"),
    ]
    assert fires[0]["detail"].startswith("missed 4 fires")
    states = sorted(str(r["state"]) for r in _runs(cli))
    assert states == ["COMPLETED", "COMPLETED", "SKIPPED"]


def test_overlap_skip_holds_across_processes(cli: Cli, hourly: Path, store_url: str) -> None:
    a_minute_ago = datetime.fromisoformat(T) - timedelta(minutes=1)
    with StateStore(store_url) as store:  # another machine's run of the same report, still working
        other = store.create_run("hourly", trigger="manual", now=a_minute_ago)
        store.transition(other.id, RunState.GENERATING, now=a_minute_ago)
    result = cli("schedule", "tick", "--now", T, "--json")
    (fire,) = json.loads(result.stdout)["fires"]
    assert fire["state"] == "SKIPPED"
    assert fire["detail"] == f"overlap: skip; run {other.id} of this report is still GENERATING"


def test_a_lost_worker_is_reaped_and_does_not_block_its_report(cli: Cli, hourly: Path, store_url: str) -> None:

    with StateStore(store_url) as store:
        stale = store.create_run("hourly", trigger="manual", now=datetime(2026, 11, 30, 8, tzinfo=UTC))
        store.transition(stale.id, RunState.GENERATING, now=datetime(2026, 11, 30, 8, tzinfo=UTC))
        # lost: silent for an hour by the store's clock, on another host (liveness is never judged by --now)
        silence(store, stale.id, silent_for=timedelta(hours=1))
    result = cli("schedule", "tick", "--now", T, "--json")
    (fire,) = json.loads(result.stdout)["fires"]
    assert fire["state"] == "COMPLETED"
    with StateStore(store_url) as store:
        reaped = store.get_run(stale.id)
    assert reaped.state is RunState.FAILED
    assert reaped.error is not None and reaped.error.startswith("worker lost")


def test_two_ticks_at_once_run_each_fire_once(hourly: Path, store_url: str) -> None:
    command = [sys.executable, "-m", "reportctl", "schedule", "tick", "--now", T, "--json"]
    ticks = [
        subprocess.Popen(command, cwd=hourly.parents[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [tick.communicate(timeout=120) for tick in ticks]
    assert all(tick.returncode == 0 for tick in ticks), [err for _, err in results]
    outputs = [json.loads(out) for out, _ in results]
    states = sorted(f["state"] for output in outputs for f in output["fires"])
    assert states == ["CLAIMED", "COMPLETED"]
    with StateStore(store_url) as store:
        assert [r.state for r in store.list_runs(report="hourly")] == [RunState.COMPLETED]


def test_retryable_failures_are_retried_with_backoff(project: Path, store_url: str) -> None:
    spec = project / "specs" / "hourly.yaml"
    unreachable = "{kind: http, url: 'http://127.0.0.1:9/x', timeout: 1s, retries: 0}"
    spec.write_text(
        HOURLY.replace("OVERLAP", "skip").replace("RETRIES", "2").replace("{kind: sample, rows: 200}", unreachable)
    )
    slept: list[float] = []
    with StateStore(store_url) as store:
        outcomes, problems = run_tick(find_project(spec), store, datetime.fromisoformat(T), sleep=slept.append)
        runs = store.list_runs(report="hourly")
    assert problems == []
    assert [o.state for o in outcomes] == ["FAILED"]
    assert slept == [1, 2]
    assert sorted((r.trigger, r.attempt, r.state) for r in runs) == [
        ("retry", 2, RunState.FAILED),
        ("retry", 3, RunState.FAILED),
        ("schedule", 1, RunState.FAILED),
    ]
    assert all("connection refused" in (r.error or "") for r in runs)


def test_the_schedule_parameters_and_time_reach_the_run(cli: Cli, hourly: Path) -> None:
    hourly.write_text(
        HOURLY.replace("OVERLAP", "skip")
        .replace("RETRIES", "0")
        .replace("name: hourly", "name: hourly\nparameters:\n  period: {type: period, default: last_7_days}")
        .replace("retries: 0}", "retries: 0, parameters: {period: yesterday}}")
    )
    assert cli("schedule", "tick", "--now", T).exit_code == 0
    (run,) = _runs(cli)
    period = run["parameters"]["period"]  # type: ignore[index]
    assert period["name"] == "yesterday"  # the schedule's parameters, resolved at the scheduled time
    assert period["start"] == "2026-11-29T00:00:00+00:00"
    assert timedelta(hours=24) == datetime.fromisoformat(period["end"]) - datetime.fromisoformat(period["start"])


def test_reports_due_together_render_in_worker_processes_once_each(cli: Cli, hourly: Path) -> None:
    for name, priority in (("second", "standard"), ("urgent", "critical")):
        text = HOURLY.replace("OVERLAP", "skip").replace("RETRIES", "0").replace("name: hourly", f"name: {name}")
        (hourly.parent / f"{name}.yaml").write_text(
            text.replace("timezone: UTC,", f"timezone: UTC, priority: {priority},")
        )
    first = cli("schedule", "tick", "--now", T, "--json", "--jobs", "2")
    assert first.exit_code == 0, first.stderr
    fires = json.loads(first.stdout)["fires"]
    # the critical report was due first; every report's fire ran once, each in a worker with its own store connection
    assert [(f["report"], f["state"]) for f in fires] == [
        ("urgent", "COMPLETED"),
        ("hourly", "COMPLETED"),
        ("second", "COMPLETED"),
    ]
    runs = _runs(cli)
    assert sorted(str(r["report"]) for r in runs) == ["hourly", "second", "urgent"]
    assert all(r["state"] == "COMPLETED" for r in runs)
    again = cli("schedule", "tick", "--now", T, "--jobs", "2")
    assert (again.exit_code, again.stdout) == (0, f"nothing due at {T}\n")
    assert len(_runs(cli)) == 3
