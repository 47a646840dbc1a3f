"""A spec and its bases read from git at a revision, not from the working tree."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gitrepo import BASE, GitRepo, spec_text
from reportctl.errors import SpecError
from reportctl.runner import build_document
from reportctl.spec.loader import load_spec
from reportctl.spec.revisions import GitState, RevisionError, SpecNotAtRevision, load_spec_at, spec_git_state

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    """Three commits: the spec and its base; a new title; the base's sample grows (a base changing alone)."""
    repo = GitRepo(tmp_path / "reports")
    repo.write("specs/base/ops.yaml", BASE)
    repo.write("specs/health.yaml", spec_text("Health v1"))
    repo.commit("first version", date="2026-11-01T10:00:00+00:00")
    repo.write("specs/health.yaml", spec_text("Health v2"))
    repo.commit("new title", date="2026-11-02T10:00:00+00:00")
    repo.write("specs/base/ops.yaml", BASE.replace("rows: 400", "rows: 900"))
    repo.commit("more sample rows in the base", date="2026-11-03T10:00:00+00:00")
    repo.git("tag", "v1", "HEAD~2")
    return repo


def test_the_spec_and_its_base_are_read_as_at_each_revision(repo: GitRepo) -> None:
    spec = repo.root / "specs" / "health.yaml"
    (repo.root / "specs" / "health.yaml").write_text(spec_text("Uncommitted"))  # the working tree is not read
    first = load_spec_at(spec, "v1")
    second = load_spec_at(spec, "HEAD~1")
    head = load_spec_at(spec, "HEAD")
    assert [first.spec.title, second.spec.title, head.spec.title] == ["Health v1", "Health v2", "Health v2"]
    assert first.revision == repo.git("rev-parse", "v1") and len(first.revision) == 40
    assert [first.sources["metrics"].model_dump()["rows"], head.sources["metrics"].model_dump()["rows"]] == [400, 900]
    assert first.files == (spec.resolve(), (repo.root / "specs/base/ops.yaml").resolve())
    working = load_spec_at(spec, None)
    assert working.spec.title == "Uncommitted" and working.revision is None


def test_the_hash_is_taken_over_the_bytes_read_at_the_revision(repo: GitRepo) -> None:
    spec = repo.root / "specs" / "health.yaml"
    assert load_spec_at(spec, "HEAD").spec_hash == load_spec(spec).spec_hash  # a clean tree: the same bytes
    assert load_spec_at(spec, "HEAD~1").spec_hash != load_spec_at(spec, "HEAD").spec_hash  # only the base changed
    assert load_spec_at(spec, "HEAD~1").spec_hash != load_spec_at(spec, "v1").spec_hash


def test_build_document_renders_an_old_revision_without_writing_files(repo: GitRepo) -> None:
    spec = repo.root / "specs" / "health.yaml"
    old = build_document(load_spec_at(spec, "v1"), now=NOW)
    new = build_document(load_spec_at(spec, "HEAD"), now=NOW)
    assert (old.info.title, new.info.title) == ("Health v1", "Health v2")
    assert old.info.spec_hash == load_spec_at(spec, "v1").spec_hash
    assert not (repo.root / "out").exists()


def test_a_spec_missing_at_the_revision(repo: GitRepo) -> None:
    repo.write("specs/latency.yaml", spec_text().replace("name: health", "name: latency"))
    repo.commit("add latency", date="2026-11-04T10:00:00+00:00")
    with pytest.raises(SpecNotAtRevision) as caught:
        load_spec_at(repo.root / "specs" / "latency.yaml", "v1")
    commit = repo.git("rev-parse", "v1")
    assert str(caught.value) == (
        f"{(repo.root / 'specs/latency.yaml').resolve()}: did not exist at revision v1 ({commit[:12]}); "
        "`reportctl history` lists its versions"
    )


def test_a_base_missing_at_the_revision_names_the_revision(repo: GitRepo) -> None:
    repo.write("specs/other.yaml", spec_text().replace("base/ops.yaml", "base/new.yaml"))
    repo.write("specs/base/new.yaml", BASE)
    commit = repo.commit("a second base", date="2026-11-04T10:00:00+00:00")
    repo.git("rm", "-q", "specs/base/new.yaml")
    repo.commit("drop the second base", date="2026-11-05T10:00:00+00:00")
    assert load_spec_at(repo.root / "specs" / "other.yaml", commit).spec.name == "health"
    with pytest.raises(SpecError) as caught:
        load_spec_at(repo.root / "specs" / "other.yaml", "HEAD")
    head = repo.git("rev-parse", "HEAD")[:12]
    (problem,) = caught.value.problems
    assert str(problem) == (
        f"{(repo.root / 'specs/other.yaml').resolve()}@{head}:4:10: extends: base spec 'base/new.yaml' not found "
        f"next to other.yaml or in the project at revision {head}"
    )


def test_an_unknown_revision_suggests_a_close_name(repo: GitRepo) -> None:
    repo.git("tag", "release-1")
    with pytest.raises(RevisionError) as caught:
        load_spec_at(repo.root / "specs" / "health.yaml", "relase-1")
    assert str(caught.value) == (
        f"unknown revision 'relase-1' in {repo.root.resolve()} (did you mean 'release-1'?); give a branch, tag or "
        "commit (`git log --oneline` lists commits)"
    )
    with pytest.raises(RevisionError, match="is not a revision"):
        load_spec_at(repo.root / "specs" / "health.yaml", "--all")


def test_a_shallow_clone_says_how_to_fetch_the_history(repo: GitRepo, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    repo.git("clone", "-q", "--depth", "1", f"file://{repo.root}", str(clone))
    with pytest.raises(RevisionError) as caught:
        load_spec_at(clone / "specs" / "health.yaml", "HEAD~1")
    assert str(caught.value).endswith(
        "this is a shallow clone without that history: fetch it with `git fetch --unshallow` (in GitHub Actions, "
        "actions/checkout with fetch-depth: 0)"
    )
    assert load_spec_at(clone / "specs" / "health.yaml", "HEAD").spec.title == "Health v2"


def test_a_folder_that_is_not_a_git_repository(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    (folder / "specs" / "base").mkdir(parents=True)
    (folder / "specs" / "base" / "ops.yaml").write_text(BASE)
    (folder / "specs" / "health.yaml").write_text(spec_text())
    with pytest.raises(RevisionError) as caught:
        load_spec_at(folder / "specs" / "health.yaml", "HEAD")
    assert str(caught.value) == (
        f"{folder / 'specs' / 'health.yaml'}: not in a git repository; history, --rev, diff and replay need git "
        "(everything else works without it)"
    )
    assert load_spec_at(folder / "specs" / "health.yaml", None).spec.name == "health"


def test_a_problem_in_an_old_revision_points_into_that_revision(repo: GitRepo) -> None:
    repo.write("specs/health.yaml", spec_text().replace("type: table", "type: tabel"))
    repo.commit("typo", date="2026-11-04T10:00:00+00:00")
    repo.write("specs/health.yaml", spec_text("Fixed"))
    repo.commit("fix", date="2026-11-05T10:00:00+00:00")
    with pytest.raises(SpecError) as caught:
        load_spec_at(repo.root / "specs" / "health.yaml", "HEAD~1")
    at = f"{(repo.root / 'specs/health.yaml').resolve()}@{repo.git('rev-parse', 'HEAD~1')[:12]}:14:5"
    assert str(caught.value) == (
        f"{at}: sections[1]: unknown type 'tabel' (did you mean 'table'?); try one of: chart, kpis, table, text"
    )


def test_a_base_renamed_since_the_revision_is_read_under_its_old_name(repo: GitRepo) -> None:
    old = repo.git("rev-parse", "HEAD")
    repo.git("mv", "specs/base/ops.yaml", "specs/base/operations.yaml")
    repo.write("specs/health.yaml", spec_text("Health v3").replace("base/ops.yaml", "base/operations.yaml"))
    repo.commit("rename the base", date="2026-11-04T10:00:00+00:00")
    then = load_spec_at(repo.root / "specs" / "health.yaml", old)
    now = load_spec_at(repo.root / "specs" / "health.yaml", "HEAD")
    assert then.files[1].name == "ops.yaml" and not then.files[1].exists()  # only in git now
    assert now.files[1].name == "operations.yaml"
    assert (then.spec.title, now.spec.title) == ("Health v2", "Health v3")
    assert then.sources["metrics"] == now.sources["metrics"]


def test_the_git_state_covers_every_base(repo: GitRepo) -> None:
    spec = repo.root / "specs" / "health.yaml"
    head = repo.git("rev-parse", "HEAD")
    assert spec_git_state(load_spec(spec)) == GitState(head, False)
    (repo.root / "specs" / "base" / "ops.yaml").write_text(BASE.replace("seed: 7", "seed: 8"))
    assert spec_git_state(load_spec(spec)) == GitState(head, True)
    assert spec_git_state(load_spec_at(spec, "v1")) == GitState(repo.git("rev-parse", "v1"), False)
    repo.git("checkout", "--", "specs/base/ops.yaml")
    repo.write("specs/base/new.yaml", BASE)
    repo.write("specs/health.yaml", spec_text().replace("base/ops.yaml", "base/new.yaml"))
    repo.git("checkout", "--", "specs/health.yaml")  # the spec is clean again ...
    repo.write("specs/other.yaml", spec_text().replace("base/ops.yaml", "base/new.yaml"))
    other = load_spec(repo.root / "specs" / "other.yaml")
    assert spec_git_state(other) == GitState(head, True)  # ... but an untracked spec and base are not in the commit


def test_outside_git_there_is_no_git_state(tmp_path: Path) -> None:
    (tmp_path / "specs" / "base").mkdir(parents=True)
    (tmp_path / "specs" / "base" / "ops.yaml").write_text(BASE)
    (tmp_path / "specs" / "health.yaml").write_text(spec_text())
    assert spec_git_state(load_spec(tmp_path / "specs" / "health.yaml")) is None
