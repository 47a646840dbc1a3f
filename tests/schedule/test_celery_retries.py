"""``retries`` with ``executor: celery``: a source that failed to answer is tried again under the same run record."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from celery_workers import make_celery_project, running_worker
from conftest import CliResult
from delivery.http_peers import HttpPeer, Reply, running
from reportctl.state import RunState, StateStore
from reportctl.state.models import RunRecord, StateChange

Cli = Callable[..., CliResult]
FLAKY_SPEC = """\
apiVersion: reportctl/v1
name: hourly
sources:
  metrics: {kind: http, url: "URL", timeout: 10s, retries: 0}
sections:
  - {id: t, type: table, dataset: metrics}
outputs: [csv]
schedule: {cron: "0 * * * *", timezone: UTC, misfire_grace: 30m, retries: RETRIES}
"""
T = "2026-11-30T09:05:00+00:00"
ROWS = [{"service": "api", "latency_ms": 120}]


def _fire(
    cli: Cli, project: Path, store_url: str, retries: int, *replies: Reply
) -> tuple[RunRecord, list[StateChange]]:
    """Tick once with the source answering ``replies`` in turn and a worker running until the run ends: the one
    run recorded for the fire, and its timeline."""
    with running(HttpPeer()) as source, StateStore(store_url) as store:
        source.script("/metrics", *replies)
        spec = FLAKY_SPEC.replace("URL", source.url("/metrics")).replace("RETRIES", str(retries))
        (project / "specs" / "hourly.yaml").write_text(spec)
        with running_worker(project, "w1@test"):
            ticked = cli("schedule", "tick", "--now", T, "--json")
            assert ticked.exit_code == 0, ticked.stderr
            (fire,) = json.loads(ticked.stdout)["fires"]
            deadline = time.monotonic() + 90
            while not store.get_run(fire["run_id"]).state.terminal:
                assert time.monotonic() < deadline, f"run {fire['run_id']} did not end within 90 s"
                time.sleep(0.3)
        (run,) = store.list_runs(report="hourly")  # one record for the fire, whatever its attempts
        return run, store.timeline(run.id)


def test_a_retry_after_a_source_failure_is_the_same_run_s_next_attempt(
    cli: Cli, project: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_celery_project(project, store_url, monkeypatch)
    run, timeline = _fire(cli, project, store_url, 1, Reply(503), Reply(200, ROWS))
    assert (run.state, run.attempt, run.trigger) == (RunState.COMPLETED, 2, "schedule")
    assert [change.state.value for change in timeline] == [
        "SCHEDULED", "GENERATING", "SCHEDULED", "GENERATING", "FORMATTING", "DISTRIBUTING", "COMPLETED"
    ]  # fmt: skip
    retried = timeline[2].detail or ""
    assert retried.startswith("attempt 1 failed: ") and "503" in retried
    assert retried.endswith("; tried again in 1 s")


def test_a_source_failing_past_its_retries_fails_the_one_run(
    cli: Cli, project: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_celery_project(project, store_url, monkeypatch)
    run, timeline = _fire(cli, project, store_url, 1, Reply(503))
    assert (run.state, run.attempt) == (RunState.FAILED, 2)
    assert [change.state.value for change in timeline] == [
        "SCHEDULED",
        "GENERATING",
        "SCHEDULED",
        "GENERATING",
        "FAILED",
    ]
    assert "503" in (run.error or "")
