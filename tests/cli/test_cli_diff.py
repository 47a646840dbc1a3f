"""``reportctl diff`` in real git repositories: the acceptance case on the demo spec, exit codes, added and deleted
specs, parameters, data snapshots, and the errors (unknown revision, no git)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CliResult
from gitrepo import BASE, GitRepo, spec_text

DEMO = Path(__file__).parents[2] / "specs"
Cli = Callable[..., CliResult]


@pytest.fixture(autouse=True)
def _fixed_run_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1795000000")  # 2026-11-19: both sides read the same period


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    """The small spec and its base, committed twice: the second commit raises the threshold of the `where`."""
    repo = GitRepo(tmp_path / "reports")
    repo.write("specs/base/ops.yaml", BASE)
    repo.write("specs/health.yaml", spec_text("Health"))
    repo.commit("first version", date="2026-11-01T10:00:00+00:00")
    repo.write("specs/health.yaml", spec_text("Health", threshold="0.005"))
    repo.commit("only services with errors", date="2026-11-02T10:00:00+00:00")
    monkeypatch.chdir(repo.root)
    return repo


def test_acceptance_a_demo_pull_request_in_markdown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli) -> None:
    """Two commits of the demo spec: a column renamed, a `where` threshold raised, a template reworded. The comment
    names all three and the totals that changed."""
    repo = GitRepo(tmp_path / "demo")
    shutil.copytree(DEMO, repo.root / "specs", dirs_exist_ok=True)
    path = repo.root / "specs" / "server-health.yaml"
    demo = path.read_text()
    assert "dataset: breaches" in demo  # the demo's table of breaches: the `where` threshold reaches it
    repo.commit("server health report")
    edited = (
        demo.replace("p95_latency", "p95_ms")
        .replace("where: worst_error > 0.01", "where: worst_error > 0.02")
        .replace("error rate at least once.", "error rate at least once this week.")
    )
    path.write_text(edited)
    repo.commit("p95 in ms, breaches from 2%, clearer summary")
    monkeypatch.chdir(repo.root)

    result = cli("diff", "specs/server-health.yaml", "--base", "HEAD~1", "--format", "markdown")

    assert result.exit_code == 0, result.stderr
    comment = result.stdout
    assert comment.startswith("### `specs/server-health.yaml`: ")
    assert "| column name | p95\\_latency | p95\\_ms (same position) |" in comment  # the renamed column
    assert "| dataset breaches: where | worst\\_error \\> 0.01 | worst\\_error \\> 0.02 |" in comment  # the threshold
    assert "+error rate at least once this week." in comment  # the new wording, in the text's diff
    assert "-error rate at least once." in comment
    totals = comment[comment.index("| Total | Base | Head | Change |") :].split("\n\n")[0].splitlines()[2:]
    assert {row.split(" | ")[0] for row in totals} >= {"| Samples total", "| p95 latency total"}
    for row in totals:
        _, base, head, change = row.strip("| ").split(" | ")
        assert base != head and change[0] in "+-"
    assert "<details><summary>" in comment
    with_code = cli("diff", "specs/server-health.yaml", "--base", "HEAD~1", "--exit-code")
    assert with_code.exit_code == 1
    assert "dataset breaches: where: worst_error > 0.01 -> worst_error > 0.02" in with_code.stdout


def test_exit_code_one_on_change_and_zero_when_identical(repo: GitRepo, cli: Cli) -> None:
    changed = cli("diff", "specs/health.yaml", "--base", "HEAD~1", "--exit-code")
    assert changed.exit_code == 1, changed.stderr
    assert "dataset by_service: where: error_rate > 0.0 -> error_rate > 0.005" in changed.stdout
    assert cli("diff", "specs/health.yaml", "--base", "HEAD~1").exit_code == 0  # without --exit-code: success

    same = cli("diff", "specs/health.yaml", "--base", "HEAD", "--exit-code")
    assert (same.exit_code, same.stderr) == (0, "")
    assert same.stdout == "specs/health.yaml: HEAD -> working tree\nno change a reader would see\n"


def test_head_revision_and_the_working_tree(repo: GitRepo, cli: Cli) -> None:
    repo.write("specs/health.yaml", spec_text("Health, edited"))
    result = cli("diff", "specs/health.yaml", "--base", "HEAD~1", "--head", "HEAD", "--format", "json")
    data = json.loads(result.stdout)
    assert (data["base_ref"], data["head_ref"]) == ("HEAD~1", "HEAD")
    assert data["report"] == []  # the title edit is only in the working tree
    working = json.loads(cli("diff", "specs/health.yaml", "--base", "HEAD", "--format", "json").stdout)
    assert working["head_ref"] == "working tree"
    assert working["report"][0] | {"kind": "value"} == {
        "field": "title",
        "base": "Health",
        "head": "Health, edited",
        "delta": None,
        "base_value": "Health",
        "head_value": "Health, edited",
        "kind": "value",
    }


def test_a_spec_added_at_head(repo: GitRepo, cli: Cli) -> None:
    repo.write("specs/new.yaml", spec_text("New report").replace("name: health", "name: new"))
    repo.commit("a new report")
    result = cli("diff", "specs/new.yaml", "--base", "HEAD~1", "--head", "HEAD", "--format", "markdown", "--exit-code")
    assert result.exit_code == 1, result.stderr
    assert result.stdout.startswith(
        "### `specs/new.yaml`: added: the spec does not exist at HEAD\\~1; 2 sections added\n"
    )
    assert "| `services` | table | added: table, " in result.stdout
    assert "| outputs |  | added: csv, json |" in result.stdout


def test_a_spec_deleted(repo: GitRepo, cli: Cli) -> None:
    (repo.root / "specs" / "health.yaml").unlink()
    in_tree = cli("diff", "specs/health.yaml", "--base", "HEAD")
    assert in_tree.exit_code == 0, in_tree.stderr
    assert "removed: the spec does not exist in the working tree; 2 sections removed" in in_tree.stdout
    repo.commit("retire the report")
    committed = json.loads(
        cli("diff", "specs/health.yaml", "--base", "HEAD~1", "--head", "HEAD", "--format", "json").stdout
    )
    assert committed["status"] == "removed"
    assert [s["status"] for s in committed["sections"]] == ["removed", "removed"]


def test_a_spec_in_neither_revision(repo: GitRepo, cli: Cli) -> None:
    result = cli("diff", "specs/nothing.yaml", "--base", "HEAD")
    assert result.exit_code == 1
    assert "specs/nothing.yaml: the spec exists neither at HEAD nor at the working tree" in result.stderr


def test_changed_cells_with_their_keys_and_max_cells(repo: GitRepo, cli: Cli) -> None:
    repo.write("specs/health.yaml", spec_text("Health"))  # as at HEAD~1
    repo.write("specs/base/ops.yaml", BASE.replace("seed: 7", "seed: 8"))  # other data: the same services, other counts
    result = cli("diff", "specs/health.yaml", "--base", "HEAD~1", "--max-cells", "2", "--format", "json")
    table = json.loads(result.stdout)["sections"][-1]["table"]
    assert table["key"] == ["service"]
    assert table["key_how"] == "the leading column Service"
    assert table["cells_changed"] > 2 and len(table["cells"]) == 2
    assert [name for name, _ in table["cells"][0]["key"]] == ["Service"]
    assert json.loads(result.stdout)["data"] == [
        {
            "field": "source metrics: seed",
            "base": "7",
            "head": "8",
            "delta": None,
            "base_value": "7",
            "head_value": "8",
            "kind": "value",
        }
    ]


def test_parameters_reach_both_versions(repo: GitRepo, cli: Cli) -> None:
    week = cli("diff", "specs/health.yaml", "--base", "HEAD~1", "-p", "period=last_30_days", "--format", "json")
    assert week.exit_code == 0, week.stderr
    typo = cli("diff", "specs/health.yaml", "--base", "HEAD~1", "-p", "perod=last_30_days")
    assert typo.exit_code == 1
    assert "unknown parameter 'perod' (did you mean 'period'?); the spec has: period" in typo.stderr
    bad = cli("diff", "specs/health.yaml", "--base", "HEAD~1", "-p", "period")
    assert bad.exit_code == 2 and "-p expects KEY=VALUE" in bad.stderr


def test_both_versions_read_a_data_snapshot(repo: GitRepo, cli: Cli) -> None:
    saved = cli("render", "specs/health.yaml", "--no-state", "--save-snapshot", "snap", "-o", "out")
    assert saved.exit_code == 0, saved.stderr
    repo.write("specs/base/ops.yaml", BASE.replace("seed: 7", "seed: 8"))  # live data changes; the snapshot does not
    live = json.loads(cli("diff", "specs/health.yaml", "--base", "HEAD", "--format", "json").stdout)
    assert live["sections"], "other live data changes the table"
    snapshot = cli("diff", "specs/health.yaml", "--base", "HEAD", "--data-snapshot", "snap", "--format", "json")
    data = json.loads(snapshot.stdout)
    assert data["sections"] == []  # the same snapshot on both sides: only the spec's own edit remains
    assert [c["field"] for c in data["data"]] == ["source metrics: seed"]


def test_an_unknown_revision_is_one_line_and_a_json_error(repo: GitRepo, cli: Cli) -> None:
    result = cli("diff", "specs/health.yaml", "--base", "v9")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: unknown revision 'v9'")
    as_json = cli("diff", "specs/health.yaml", "--base", "v9", "--format", "json")
    error = json.loads(as_json.stdout)["error"]
    assert error["exit_code"] == 1 and error["message"].startswith("unknown revision 'v9'")


def test_an_invalid_version_names_its_revision_and_line(repo: GitRepo, cli: Cli) -> None:
    repo.write("specs/health.yaml", spec_text("Health").replace("group_by: [service]", "group_by: [servce]"))
    result = cli("diff", "specs/health.yaml", "--base", "HEAD", "--format", "json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["message"].startswith("at working tree: ")
    assert "servce" in error["message"] and error["problems"][0]["line"] == 9


def test_outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "health.yaml").write_text(spec_text())
    monkeypatch.chdir(tmp_path)
    result = cli("diff", "specs/health.yaml", "--base", "HEAD")
    assert result.exit_code == 1
    assert "not in a git repository; history, --rev, diff and replay need git" in result.stderr


def test_a_base_spec_compares_its_settings_and_data(repo: GitRepo, cli: Cli) -> None:
    repo.write("specs/base/ops.yaml", BASE.replace("rows: 400", "rows: 900").replace("[csv, json]", "[csv, xlsx]"))
    result = cli("diff", "specs/base/ops.yaml", "--base", "HEAD", "--exit-code")
    assert result.exit_code == 1, result.stderr
    assert result.stdout.splitlines()[2:] == [
        "",
        "schedule, outputs, deliveries, parameters",
        "  outputs: added xlsx; removed json",
        "",
        "data",
        "  source metrics: rows: 400 -> 900",
    ]


def test_a_shallow_clone_says_how_to_fetch_the_history(
    repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    clone = tmp_path / "clone"
    repo.git("clone", "-q", "--depth", "1", f"file://{repo.root}", str(clone))
    monkeypatch.chdir(clone)
    result = cli("diff", "specs/health.yaml", "--base", "HEAD~1")
    assert result.exit_code == 1
    assert "git fetch --unshallow" in result.stderr


# --- several specs: a folder, or the project's spec folders ----------------------------------------------------


def _second_report(repo: GitRepo) -> None:
    """A second report on the same base, committed."""
    repo.write("specs/uptime.yaml", spec_text("Uptime").replace("name: health", "name: uptime"))
    repo.commit("uptime report", date="2026-11-03T10:00:00+00:00")


def test_a_change_to_a_base_shows_in_every_report_built_on_it(repo: GitRepo, cli: Cli) -> None:
    _second_report(repo)
    repo.write("specs/base/ops.yaml", BASE.replace("rows: 400", "rows: 300"))

    result = cli("diff", "--base", "HEAD", "--format", "markdown", "--exit-code")

    assert result.exit_code == 1, result.stderr
    headings = [line for line in result.stdout.splitlines() if line.startswith("### ")]
    # the abstract base itself is not a report: its effect is shown in the two that extend it
    assert [h.split(":")[0] for h in headings] == ["### `specs/health.yaml`", "### `specs/uptime.yaml`"]
    assert "source metrics: rows | 400 | 300 |" in result.stdout


def test_only_the_specs_a_change_touches_are_compared(repo: GitRepo, cli: Cli) -> None:
    _second_report(repo)
    repo.write("specs/uptime.yaml", spec_text("Uptime, daily").replace("name: health", "name: uptime"))

    result = cli("diff", "specs", "--base", "HEAD", "--format", "json")

    assert result.exit_code == 0, result.stderr
    compared = json.loads(result.stdout)
    assert compared["changed"] is True
    assert [report["spec"] for report in compared["reports"]] == ["specs/uptime.yaml"]
    assert compared["errors"] == []


def test_a_spec_deleted_since_the_base_is_listed_as_removed(repo: GitRepo, cli: Cli) -> None:
    _second_report(repo)
    repo.git("rm", "-q", "specs/uptime.yaml")
    repo.commit("uptime goes", date="2026-11-04T10:00:00+00:00")

    result = cli("diff", "--base", "HEAD~1", "--head", "HEAD", "--format", "json")

    assert result.exit_code == 0, result.stderr
    [removed] = json.loads(result.stdout)["reports"]
    assert (removed["spec"], removed["status"]) == ("specs/uptime.yaml", "removed")


def test_nothing_touched_says_so(repo: GitRepo, cli: Cli) -> None:
    result = cli("diff", "--base", "HEAD", "--exit-code")

    assert result.exit_code == 0, result.stderr
    assert result.stdout == "No spec changed between HEAD and the working tree.\n"


def test_one_spec_that_cannot_be_compared_does_not_hide_the_others(repo: GitRepo, cli: Cli) -> None:
    _second_report(repo)
    repo.write("specs/health.yaml", spec_text("Health").replace("from: metrics", "from: metrcs"))
    repo.write("specs/uptime.yaml", spec_text("Uptime, daily").replace("name: health", "name: uptime"))

    result = cli("diff", "--base", "HEAD", "--format", "markdown")

    assert result.exit_code == 1
    assert "### `specs/uptime.yaml`: " in result.stdout
    assert "### `specs/health.yaml`: cannot be compared" in result.stdout
    assert result.stderr.startswith("error: specs/health.yaml: at working tree: ")
    assert "unknown source or dataset 'metrcs' (did you mean 'metrics'?)" in result.stderr
