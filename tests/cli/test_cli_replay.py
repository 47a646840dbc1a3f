"""`reportctl replay RUN`: a recorded run rendered again from its commit, parameters, run time and snapshot.

The spec aggregates with count() and max() only: the float sums of a parallel group-by are combined in varying
order today (issue 9, item 6), which would make a replay report noise rather than a real difference.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult
from gitrepo import BASE, GitRepo, committed_project, spec_text

Cli = Callable[..., CliResult]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    return committed_project(tmp_path / "reports", monkeypatch, "Health v1")


def _render(cli: Cli, *args: str) -> dict[str, Any]:
    result = cli("render", "specs/health.yaml", "-f", "csv,json,html,md", "--json", *args)
    assert result.exit_code == 0, result.stderr
    run: dict[str, Any] = json.loads(result.stdout)
    return run


def _recorded(run: dict[str, Any]) -> dict[str, str]:
    return {Path(a["path"]).name: a["sha256"] for a in run["artifacts"]}


def test_replay_renders_the_run_again_byte_identical(cli: Cli, repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _render(cli, "--save-snapshot", "snap", "-p", "period=last_30_days")
    commit = repo.git("rev-parse", "HEAD")
    # later: the spec moves on, the clock moves on, the live data moves on; none of it reaches the replay
    repo.write("specs/health.yaml", spec_text("Health v2", threshold="0.005"))
    repo.commit("v2", date="2026-11-02T10:00:00+00:00")
    repo.write("specs/base/ops.yaml", BASE.replace("seed: 7", "seed: 8"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1790000000")
    result = cli("replay", run["run_id"][:20])
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        f"replayed {run['run_id']} (health) at commit {commit[:12]} on the snapshot {repo.root.resolve() / 'snap'}",
        "identical  health.csv",
        "identical  health.html",
        "identical  health.json",
        "identical  health.md",
        "4 of 4 files byte-identical",
    ]
    data = json.loads(cli("replay", run["run_id"], "--json").stdout)
    assert (data["identical"], data["commit"], data["directory"]) == (True, commit, None)
    assert {f["path"]: f["original"] for f in data["files"]} == _recorded(run)


def test_a_replay_that_differs_names_the_file_and_exits_1(cli: Cli, repo: GitRepo, tmp_path: Path) -> None:
    run = _render(cli, "--save-snapshot", "snap")
    # project settings are read from the working tree, not the commit: another report zone changes the files
    (repo.root / "reportctl.yaml").write_text("timezone: Europe/Berlin\n")
    kept = tmp_path / "replayed"
    result = cli("replay", run["run_id"], "-o", str(kept))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[1] == "identical  health.csv"  # a plain CSV of counts does not say its zone
    assert lines[3].startswith("different  health.json (sha256 ")
    assert lines[3].endswith(f", the run recorded {_recorded(run)['health.json'][:12]})")
    assert lines[-1] == f"1 of 4 files byte-identical; kept in {kept / 'health' / run['run_id']}"
    assert '"timezone":"Europe/Berlin"' in (kept / "health" / run["run_id"] / "health.json").read_text()


def test_a_run_without_a_snapshot_is_not_replayed(cli: Cli, repo: GitRepo) -> None:
    run = _render(cli)
    result = cli("replay", run["run_id"])
    assert (result.exit_code, result.stderr) == (
        1,
        f"error: run {run['run_id']} saved no data snapshot, and the live sources have moved on since; render with "
        "--save-snapshot DIR, or set snapshots: true in reportctl.yaml, to make runs replayable\n",
    )


def test_a_run_from_a_dirty_tree_replays_only_while_the_tree_hashes_the_same(cli: Cli, repo: GitRepo) -> None:
    repo.write("specs/health.yaml", spec_text("Uncommitted"))
    run = _render(cli, "--save-snapshot", "snap")
    assert run["git_dirty"] is True
    same = cli("replay", run["run_id"])
    assert same.exit_code == 0, same.stdout + same.stderr
    assert same.stdout.splitlines()[0].startswith(f"replayed {run['run_id']} (health) at the working tree on ")
    repo.git("checkout", "--", "specs/health.yaml")
    gone = cli("replay", run["run_id"])
    assert gone.exit_code == 1
    assert gone.stderr.startswith(
        f"error: run {run['run_id']} was rendered from a dirty tree (local edits against commit "
        f"{repo.git('rev-parse', 'HEAD')[:12]}), and {repo.root.resolve() / 'specs/health.yaml'} with its bases no "
        "longer hashes the same ("
    )
    assert gone.stderr.endswith("; its spec cannot be recovered\n")


def test_a_run_at_a_revision_replays_at_its_commit(cli: Cli, repo: GitRepo) -> None:
    repo.write("specs/health.yaml", spec_text("Health v2"))
    repo.commit("v2", date="2026-11-02T10:00:00+00:00")
    run = _render(cli, "--rev", "HEAD~1", "--save-snapshot", "snap")
    result = cli("replay", run["run_id"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"at commit {repo.git('rev-parse', 'HEAD~1')[:12]} " in result.stdout.splitlines()[0]


def test_a_project_that_keeps_snapshots_makes_every_run_replayable(cli: Cli, repo: GitRepo) -> None:
    repo.write("reportctl.yaml", "timezone: UTC\nsnapshots: true\n")
    repo.write("specs/health.yaml", spec_text("Health v1") + 'schedule: {cron: "0 9 * * *", timezone: UTC}\n')
    repo.commit("keep a snapshot of every run; schedule the report", date="2026-11-02T10:00:00+00:00")
    ticked = cli("schedule", "tick", "--now", "2026-11-30T09:05:00+00:00", "--json")
    (fire,) = json.loads(ticked.stdout)["fires"]
    assert fire["state"] == "COMPLETED", fire
    folder = Path(fire["detail"])
    assert json.loads((folder / "snapshot" / "manifest.json").read_text())["run_id"] == fire["run_id"]
    assert json.loads((folder / "manifest.json").read_text())["snapshot"] == str(folder / "snapshot")
    assert not any(
        Path(a["path"]).parts[0] == "snapshot" for a in json.loads((folder / "manifest.json").read_text())["artifacts"]
    )
    replayed = cli("replay", fire["run_id"])
    assert replayed.exit_code == 0, replayed.stdout + replayed.stderr
    assert replayed.stdout.splitlines()[-1] == "2 of 2 files byte-identical"
