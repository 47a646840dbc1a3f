"""A schedule's `rev:` pin: each fire (tick and daemon) renders the spec as at the pinned revision."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import CliResult
from gitrepo import BASE, GitRepo, spec_text
from reportctl.config import find_project
from reportctl.schedule.daemon import Daemon
from reportctl.schedule.tick import render_fire
from reportctl.state import RunState, StateStore

Cli = Callable[..., CliResult]
SCHEDULE = 'schedule: {cron: "0 9 * * *", timezone: UTC, misfire_grace: 30m}\n'
T = "2026-11-30T09:05:00+00:00"


def _pinned(title: str, rev: str) -> str:
    return spec_text(title) + SCHEDULE.replace("misfire_grace: 30m", f"misfire_grace: 30m, rev: {rev}")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    """v1 is tagged; main then changes the title and pins the schedule to v1; the working tree edits it again."""
    repo = GitRepo(tmp_path / "reports")
    repo.write("specs/base/ops.yaml", BASE)
    repo.write("specs/health.yaml", spec_text("Health v1") + SCHEDULE)
    repo.commit("first version", date="2026-11-01T10:00:00+00:00")
    repo.git("tag", "v1")
    repo.write("specs/health.yaml", _pinned("Health v2", "v1"))
    repo.commit("v2 on main, the schedule stays on v1", date="2026-11-02T10:00:00+00:00")
    repo.write("specs/health.yaml", _pinned("Uncommitted", "v1"))
    monkeypatch.chdir(repo.root)
    monkeypatch.setenv("REPORTCTL_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    return repo


def _title(directory: str) -> str:
    document = json.loads((Path(directory) / "health.json").read_text())
    title: str = document["report"]["title"]
    return title


def test_schedule_list_shows_the_pinned_revision(cli: Cli, repo: GitRepo) -> None:
    result = cli("schedule", "list", "--now", "2026-11-30T08:00:00+00:00")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [
        "NAME    CRON       TIMEZONE  PRIORITY  REV  NEXT                       NEXT (UTC)                 PLANNED",
        "health  0 9 * * *  UTC       standard  v1   2026-11-30T09:00:00+00:00  2026-11-30T09:00:00+00:00"
        "  2026-11-30T09:00:00+00:00",
    ]
    assert json.loads(cli("schedule", "list", "--json").stdout)[0]["rev"] == "v1"


def test_a_tick_renders_the_pinned_revision(cli: Cli, repo: GitRepo) -> None:
    result = cli("schedule", "tick", "--now", T, "--json")
    assert result.exit_code == 0, result.stderr
    (fire,) = json.loads(result.stdout)["fires"]
    assert fire["state"] == "COMPLETED", fire
    assert _title(fire["detail"]) == "Health v1"
    (run,) = json.loads(cli("runs", "list", "--json").stdout)
    assert (run["revision"], run["git_commit"], run["git_dirty"]) == ("v1", repo.git("rev-parse", "v1"), False)


def test_a_pin_to_an_unknown_revision_fails_the_fire_with_the_reason(cli: Cli, repo: GitRepo) -> None:
    repo.write("specs/health.yaml", _pinned("Health v2", "v9"))
    result = cli("schedule", "tick", "--now", T, "--json")
    (fire,) = json.loads(result.stdout)["fires"]
    assert fire["state"] == "FAILED"
    assert fire["detail"] == (
        f"unknown revision 'v9' in {repo.root.resolve()}; give a branch, tag or commit "
        "(`git log --oneline` lists commits)"
    )


def test_the_daemon_renders_the_pinned_revision_and_follows_a_new_pin(repo: GitRepo, tmp_path: Path) -> None:
    now = datetime(2026, 11, 30, 9, 5, tzinfo=UTC)
    with StateStore(f"sqlite:///{tmp_path / 'state.db'}") as store:
        daemon = Daemon(find_project(repo.root), store, clock=lambda: now, render=render_fire, sleep=lambda _s: None)
        daemon.start(now)
        (outcome,) = daemon.dispatch_due(now)
        assert outcome.state == "COMPLETED" and _title(outcome.detail or "") == "Health v1"
        repo.git("tag", "v2", "HEAD")
        repo.write("specs/health.yaml", _pinned("Uncommitted", "v2"))  # the release: move the pin
        daemon.reload(now)
        later = datetime(2026, 12, 1, 9, 5, tzinfo=UTC)
        (outcome,) = daemon.dispatch_due(later)
        assert outcome.state == "COMPLETED" and _title(outcome.detail or "") == "Health v2"
        runs = {(r.scheduled_for, r.revision, r.git_commit, r.state) for r in store.list_runs(report="health")}
        assert runs == {
            (datetime(2026, 11, 30, 9, tzinfo=UTC), "v1", repo.git("rev-parse", "v1"), RunState.COMPLETED),
            (datetime(2026, 12, 1, 9, tzinfo=UTC), "v2", repo.git("rev-parse", "v2"), RunState.COMPLETED),
        }
