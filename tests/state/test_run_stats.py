"""`reportctl runs stats`: counts, failure rates and duration percentiles per report and week, delivery success per
channel, and the trend flags, computed from runs recorded with known times."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import CliResult
from reportctl.state import RunState, StateStore
from reportctl.state.ledger import DeliveryLedger, PlannedRecipient
from reportctl.state.stats import percentile, run_stats

Cli = Callable[..., CliResult]
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)  # a Friday of ISO week 49


def _run(store: StateStore, report: str, at: datetime, seconds: float, state: str = "COMPLETED") -> str:
    run = store.create_run(report, trigger="schedule", now=at)
    if state == "SKIPPED":
        store.transition(run.id, RunState.SKIPPED, detail="overlap", now=at)
        return run.id
    store.transition(run.id, RunState.GENERATING, now=at)
    end = at + timedelta(seconds=seconds)
    if state == "FAILED":
        store.transition(run.id, RunState.FAILED, error="source down", now=end)
        return run.id
    for step in (RunState.FORMATTING, RunState.DISTRIBUTING, RunState.COMPLETED):
        store.transition(run.id, step, now=end)
    return run.id


@pytest.fixture
def recorded(project: Path) -> Path:
    (project / ".reportctl").mkdir()
    with StateStore(f"sqlite:///{project / '.reportctl' / 'state.db'}") as store:
        # weekly: two weeks ago 1 s a run, last week 1 s, this week 3 s (tripled against the previous 7 days)
        for days, seconds in [(16, 1.0), (15, 1.0), (10, 1.0), (9, 1.0), (8, 1.0), (3, 3.0), (2, 3.0), (1, 3.0)]:
            _run(store, "weekly", NOW - timedelta(days=days), seconds)
        _run(store, "weekly", NOW - timedelta(days=1, hours=1), 0, state="SKIPPED")
        # flaky: completes, then fails three times in a row
        ids = [_run(store, "flaky", NOW - timedelta(hours=h), 2.0, state) for h, state in
               [(30, "COMPLETED"), (20, "FAILED"), (10, "FAILED"), (5, "FAILED")]]  # fmt: skip
        ledger = DeliveryLedger(store)
        rows = ledger.plan(
            ids[0], "email", "email", [PlannedRecipient(f"p{i}@example.com", "to", f"k{i}") for i in range(4)]
        )
        ledger.record([(rows[0].id, "sent", "250"), (rows[1].id, "sent", "250"), (rows[2].id, "failed", "550")], None)
        _run(store, "old", NOW - timedelta(days=60), 1.0)  # before --since: not counted
    return project


def test_figures_per_report_and_week_with_their_flags(recorded: Path) -> None:
    with StateStore(f"sqlite:///{recorded / '.reportctl' / 'state.db'}") as store:
        stats = run_stats(store, since=NOW - timedelta(days=30), until=NOW)
    by_name = {r.report: r for r in stats.reports}
    assert sorted(by_name) == ["flaky", "weekly"]
    weekly = by_name["weekly"]
    assert (weekly.figures.runs, weekly.figures.completed, weekly.figures.skipped) == (9, 8, 1)
    assert weekly.figures.failure_rate == 0.0
    assert weekly.figures.p50_seconds == 1.0 and weekly.figures.p95_seconds == pytest.approx(3.0)
    assert list(weekly.weeks) == ["2026-W47", "2026-W48", "2026-W49"]
    assert weekly.weeks["2026-W49"].p50_seconds == 3.0
    assert weekly.flags == ["generation time 3.0x the previous 7 days (median 1.00 s -> 3.00 s)"]
    flaky = by_name["flaky"]
    assert flaky.figures.failure_rate == 0.75
    assert flaky.flags == ["failed 3 times in a row"]
    (email,) = stats.channels
    assert (email.channel, email.counts, email.success_rate) == ("email", {"sent": 2, "failed": 1, "pending": 1}, 2 / 3)


def test_the_command_prints_tables_json_and_a_page(cli: Cli, recorded: Path, tmp_path: Path) -> None:
    result = cli("runs", "stats", "--since", "2026-11-04")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["REPORT", "RUNS", "FAILED", "FAIL", "RATE", "P50", "P95", "FLAGS"]
    assert lines[2].split()[:4] == ["flaky", "4", "3", "75.0%"] and lines[2].endswith("failed 3 times in a row")
    assert "email    2     1       0        0        1        66.7%" in result.stdout
    data = json.loads(cli("runs", "stats", "--since", "2026-11-04", "--report", "weekly", "--json").stdout)
    assert [r["report"] for r in data["reports"]] == ["weekly"] and data["channels"] == []
    page = tmp_path / "stats.html"
    assert cli("runs", "stats", "--since", "2026-11-04", "--html", str(page)).exit_code == 0
    text = page.read_text()
    assert "p95 run duration per week" in text and "failed 3 times in a row" in text and "<script" in text


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([], 0.5) is None
    assert percentile([4.0], 0.95) == 4.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.95) == pytest.approx(3.85)
