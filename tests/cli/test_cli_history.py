"""`reportctl history` and `render --rev` in real git repositories built here, commit by commit."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from conftest import CliResult
from gitrepo import BASE, GitRepo, spec_text

Cli = Callable[..., CliResult]
EPOCH = "1764500000"  # 2025-11-30T10:53:20Z


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    """Four commits: spec and base; a stricter threshold; the base alone; a commit touching neither."""
    repo = GitRepo(tmp_path / "reports")
    repo.write("specs/base/ops.yaml", BASE)
    repo.write("specs/health.yaml", spec_text("Health v1"))
    repo.commit("first version", date="2026-11-01T10:00:00+00:00")
    repo.write("specs/health.yaml", spec_text("Health v2", threshold="0.005"))
    repo.commit("only samples over 0.5% errors", date="2026-11-02T11:30:00+00:00")
    repo.write("specs/base/ops.yaml", BASE.replace("rows: 400", "rows: 900"))
    repo.commit("base: a larger sample", date="2026-11-03T09:15:00+00:00")
    repo.write("README.md", "reports\n")
    repo.commit("a readme", date="2026-11-04T08:00:00+00:00")
    monkeypatch.chdir(repo.root)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    return repo


def _short(repo: GitRepo, rev: str) -> str:
    return repo.git("rev-parse", "--short", rev)


def test_history_lists_the_commits_of_the_spec_and_its_base_newest_first(
    cli: Cli, repo: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    result = cli("history", "specs/health.yaml")
    assert (result.exit_code, result.stderr) == (0, "")
    first, second, third = (_short(repo, r) for r in ("HEAD~3", "HEAD~2", "HEAD~1"))
    assert result.stdout.splitlines() == [
        "COMMIT   DATE              AUTHOR        MESSAGE                        CHANGED",
        f"{third}  2026-11-03 09:15  Ada Lovelace  base: a larger sample          specs/base/ops.yaml",
        f"{second}  2026-11-02 11:30  Ada Lovelace  only samples over 0.5% errors  specs/health.yaml",
        f"{first}  2026-11-01 10:00  Ada Lovelace  first version                  specs/base/ops.yaml, "
        "specs/health.yaml",
    ]


def test_history_json(cli: Cli, repo: GitRepo) -> None:
    result = cli("history", "specs/health.yaml", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["files"] == ["specs/health.yaml", "specs/base/ops.yaml"] and data["shallow"] is False
    assert data["versions"][0] == {
        "commit": repo.git("rev-parse", "HEAD~1"),
        "short": _short(repo, "HEAD~1"),
        "author": "Ada Lovelace",
        "email": "ada@example.com",
        "date": "2026-11-03T09:15:00+00:00",
        "message": "base: a larger sample",
        "files": ["specs/base/ops.yaml"],
    }
    assert [v["message"] for v in data["versions"]] == [
        "base: a larger sample",
        "only samples over 0.5% errors",
        "first version",
    ]


def test_history_follows_a_renamed_spec(cli: Cli, repo: GitRepo) -> None:
    repo.git("mv", "specs/health.yaml", "specs/service-health.yaml")
    repo.commit("rename the spec", date="2026-11-05T08:00:00+00:00")
    data = json.loads(cli("history", "specs/service-health.yaml", "--json").stdout)
    assert [(v["message"], v["files"]) for v in data["versions"]] == [
        ("rename the spec", ["specs/service-health.yaml"]),
        ("base: a larger sample", ["specs/base/ops.yaml"]),
        ("only samples over 0.5% errors", ["specs/health.yaml"]),
        ("first version", ["specs/base/ops.yaml", "specs/health.yaml"]),
    ]


def test_history_in_a_shallow_clone_says_older_versions_may_be_missing(
    cli: Cli, repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone = tmp_path / "clone"
    repo.git("clone", "-q", "--depth", "1", f"file://{repo.root}", str(clone))
    monkeypatch.chdir(clone)
    result = cli("history", "specs/health.yaml")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[1:] == [
        f"{_short(repo, 'HEAD')}  2026-11-04 08:00  Ada Lovelace  a readme  specs/base/ops.yaml, specs/health.yaml"
    ]  # the shallow root holds every file, so git names it as adding them
    assert result.stderr == (
        "note: older versions may be missing; this is a shallow clone without that history: fetch it with "
        "`git fetch --unshallow` (in GitHub Actions, actions/checkout with fetch-depth: 0)\n"
    )


def test_history_and_rev_need_git_and_everything_else_works(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "plain"
    (folder / "specs" / "base").mkdir(parents=True)
    (folder / "reportctl.yaml").write_text("timezone: UTC\n")
    (folder / "specs" / "base" / "ops.yaml").write_text(BASE)
    (folder / "specs" / "health.yaml").write_text(spec_text())
    monkeypatch.chdir(folder)
    spec = folder / "specs" / "health.yaml"
    expected = (
        f"error: {spec}: not in a git repository; history, --rev, diff and replay need git (everything else works "
        "without it)\n"
    )
    assert (cli("history", "specs/health.yaml").stderr, cli("history", "specs/health.yaml").exit_code) == (expected, 1)
    assert cli("render", "specs/health.yaml", "--rev", "HEAD").stderr == expected
    rendered = cli("render", "specs/health.yaml", "--json")
    assert rendered.exit_code == 0, rendered.stderr
    run = json.loads(rendered.stdout)
    assert (run["git_commit"], run["git_dirty"], run["revision"]) == (None, None, None)


def test_render_rev_renders_each_version_and_records_it(cli: Cli, repo: GitRepo) -> None:
    (repo.root / "specs" / "health.yaml").write_text(spec_text("Uncommitted", threshold="0.5"))
    outputs = {}
    for rev in ("HEAD~3", "HEAD~2", "HEAD"):
        result = cli("render", "specs/health.yaml", "--rev", rev, "--json")
        assert result.exit_code == 0, result.stderr
        run = json.loads(result.stdout)
        assert (run["git_commit"], run["git_dirty"], run["revision"]) == (repo.git("rev-parse", rev), False, rev)
        manifest = json.loads(Path(run["manifest"]).read_text())
        assert manifest["spec"]["git_commit"] == run["git_commit"] and manifest["spec"]["revision"] == rev
        outputs[rev] = pl.read_csv(Path(run["directory"]) / "health.csv", comment_prefix="#")
        document = json.loads((Path(run["directory"]) / "health.json").read_text())
        assert document["report"]["title"] == ("Health v1" if rev == "HEAD~3" else "Health v2")
    # v1 counts every sample; v2 only those over 0.5% errors; HEAD has the base's larger sample
    samples = {rev: frame["samples"].cast(pl.Int64).sum() for rev, frame in outputs.items()}
    assert (samples["HEAD~3"], samples["HEAD~2"], samples["HEAD"]) == (400, 4, 5)
    shown = cli("runs", "show", run["run_id"])  # the last, at HEAD
    assert "specs/health.yaml at HEAD (hash " in shown.stdout
    assert f"commit {repo.git('rev-parse', 'HEAD')[:12]})" in shown.stdout


def test_a_working_tree_render_records_a_dirty_base(cli: Cli, repo: GitRepo) -> None:
    clean = json.loads(cli("render", "specs/health.yaml", "--json", "--no-state").stdout)
    assert (clean["git_commit"], clean["git_dirty"]) == (repo.git("rev-parse", "HEAD"), False)
    (repo.root / "specs" / "base" / "ops.yaml").write_text(BASE.replace("seed: 7", "seed: 8"))
    dirty = json.loads(cli("render", "specs/health.yaml", "--json", "--no-state").stdout)
    assert (dirty["git_commit"], dirty["git_dirty"]) == (repo.git("rev-parse", "HEAD"), True)
    manifest = json.loads(Path(dirty["manifest"]).read_text())
    assert manifest["spec"]["git_dirty"] is True and manifest["spec"]["revision"] is None


def test_render_rev_bad_input(cli: Cli, repo: GitRepo) -> None:
    unknown = cli("render", "specs/health.yaml", "--rev", "v9")
    assert unknown.exit_code == 1
    assert unknown.stderr == (
        f"error: unknown revision 'v9' in {repo.root.resolve()}; give a branch, tag or commit (`git log --oneline` "
        "lists commits)\n"
    )
    repo.write("specs/latency.yaml", spec_text().replace("name: health", "name: latency"))
    commit = repo.commit("latency", date="2026-11-05T08:00:00+00:00")
    missing = cli("render", "specs/latency.yaml", "--rev", "HEAD~1")
    assert missing.exit_code == 1
    assert missing.stderr == (
        f"error: {(repo.root / 'specs/latency.yaml').resolve()}: did not exist at revision HEAD~1 "
        f"({repo.git('rev-parse', 'HEAD~1')[:12]}); `reportctl history` lists its versions\n"
    )
    assert cli("render", "specs/latency.yaml", "--rev", commit[:10], "--no-state").exit_code == 0
