"""reportctl in CI: GitHub annotations placed from the repository root, JSON errors on stdout, the pre-commit
hook and the example GitHub Actions workflow (its reportctl commands checked against the real command line)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from test_cli_project import BAD  # a spec with one problem, at 6:44

from conftest import CliResult

Cli = Callable[..., CliResult]
ROOT = Path(__file__).resolve().parents[2]


def _git_repository(folder: Path) -> Path:
    folder.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    return folder


# --- validate --format github ----------------------------------------------------------------------------


def test_annotations_name_files_from_the_top_of_the_git_repository(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = _git_repository(tmp_path / "repo")
    project = repository / "reports"
    (project / "specs").mkdir(parents=True)
    (project / "reportctl.yaml").write_text("timezone: UTC\n")
    (project / "specs" / "bad.yaml").write_text(BAD)
    monkeypatch.chdir(project / "specs")  # wherever validate runs from

    result = cli("validate", "bad.yaml", "--format", "github")

    assert (result.exit_code, result.stdout) == (
        1,
        "::error file=reports/specs/bad.yaml,line=6,col=44,title=reportctl validate::"
        "sections[0].colums: unknown key 'colums' (did you mean 'columns'?)\n",
    )


def test_annotations_escape_properties_and_message(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repository = _git_repository(tmp_path / "repo")
    (repository / "specs").mkdir()
    spec = repository / "specs" / "odd, name: 100%.yaml"
    spec.write_text('apiVersion: reportctl/v1\nname: odd\n"50%,\\r\\nrest": 1\n')  # a key with CR LF in it
    monkeypatch.chdir(tmp_path)

    result = cli("validate", str(spec), "--format", "github")

    assert result.exit_code == 1
    [annotation] = result.stdout.splitlines()  # one line: CR and LF are escaped
    assert annotation.startswith(
        "::error file=specs/odd%2C name%3A 100%25.yaml,line=3,col=1,title=reportctl validate::"
        "50%25,%0D%0Arest: unknown key '50%25,%0D%0Arest'; valid keys: "
    )


# --- JSON errors on stdout -------------------------------------------------------------------------------


def test_render_json_with_a_bad_spec_prints_an_error_object(cli: Cli, project: Path) -> None:
    spec = project / "specs" / "bad.yaml"
    spec.write_text(BAD)

    result = cli("render", str(spec), "--json", "--no-state")

    assert result.exit_code == 1
    first = f"{spec}:6:44: sections[0].colums: unknown key 'colums' (did you mean 'columns'?)"
    assert result.stderr.splitlines() == [f"error: {first}"]
    assert json.loads(result.stdout) == {
        "error": {
            "message": first,
            "exit_code": 1,
            "problems": [
                {
                    "file": str(spec),
                    "line": 6,
                    "column": 44,
                    "path": "sections[0].colums",
                    "message": "unknown key 'colums' (did you mean 'columns'?)",
                    "severity": "error",
                }
            ],
        }
    }


def test_render_json_with_a_missing_file_prints_an_error_object(cli: Cli, project: Path) -> None:
    missing = project / "specs" / "nope.yaml"

    result = cli("render", str(missing), "--json")

    assert result.exit_code == 1
    assert result.stderr == f"error: {missing}: file not found\n"
    error = json.loads(result.stdout)["error"]
    assert error["message"] == f"{missing}: file not found"
    assert error["problems"] == [
        {
            "file": str(missing),
            "line": None,
            "column": None,
            "path": "",
            "message": "file not found",
            "severity": "error",
        }
    ]


def test_render_json_usage_error_exits_2_with_an_error_object(cli: Cli, project: Path) -> None:
    spec = project / "specs" / "bad.yaml"
    spec.write_text(BAD)

    result = cli("render", str(spec), "--json", "--no-state", "--deliver")

    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"] == {
        "message": "--deliver records each recipient in the state store's ledger; drop --no-state",
        "exit_code": 2,
        "problems": [],
    }


def test_render_without_json_prints_nothing_on_stdout_on_failure(cli: Cli, project: Path) -> None:
    result = cli("render", str(project / "specs" / "nope.yaml"))
    assert (result.exit_code, result.stdout) == (1, "")


def test_validate_json_reports_a_file_that_cannot_be_read(cli: Cli, project: Path) -> None:
    unreadable = project / "specs" / "latin1.yaml"
    unreadable.write_bytes("name: caf\xe9\n".encode("latin-1"))

    result = cli("validate", str(unreadable), "--format", "json")

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert report["files"][0]["problems"] == [
        {
            "file": str(unreadable),
            "line": 1,
            "column": 10,
            "path": "",
            "message": "not UTF-8 text: byte 0xE9 starts no valid UTF-8 character (invalid continuation byte); "
            "save the file as UTF-8",
            "severity": "error",
        }
    ]


def test_validate_json_error_raised_outside_the_files_is_an_error_object(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a folder that cannot be listed: the error escapes the per-file checks
    def unlistable(paths: list[Path]) -> list[Path]:
        raise PermissionError(13, "Permission denied", str(paths[0]))

    monkeypatch.setattr("reportctl.cli.validate.find_yaml", unlistable)

    result = cli("validate", str(project / "specs"), "--format", "json")

    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["exit_code"] == 1
    assert error["message"].startswith("internal error: PermissionError: [Errno 13] Permission denied")


# --- pre-commit ------------------------------------------------------------------------------------------


def _commands() -> dict[str, Any]:
    from reportctl.cli import app

    group = typer.main.get_command(app)
    return dict(group.commands)  # type: ignore[attr-defined]


def _options(command: Any) -> set[str]:
    return {opt for param in command.params for opt in [*param.opts, *param.secondary_opts] if opt.startswith("-")}


def test_pre_commit_hook_runs_reportctl_validate_on_spec_files(cli: Cli) -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert [hook["id"] for hook in hooks] == ["reportctl-validate"]
    hook = hooks[0]
    assert (hook["language"], hook["pass_filenames"]) == ("python", True)
    program, command, *options = shlex.split(hook["entry"])
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert program in scripts
    assert command in _commands()
    assert set(options) <= _options(_commands()[command])

    def picked(path: str) -> bool:
        return bool(re.search(hook["files"], path)) and not re.search(hook["exclude"], path)

    assert [p for p in ("specs/a.yaml", "reports/specs/base/ops.yml", "reportctl.yaml") if not picked(p)] == []
    assert [p for p in ("specs/people.yaml", ".github/workflows/ci.yml", "compose.yaml") if picked(p)] == []

    # what pre-commit runs for a commit touching the demo specs
    files = [f for f in sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").rglob("*.yaml")) if picked(f)]
    assert "specs/error-budget.yaml" in files
    result = cli(command, *options, *(str(ROOT / f) for f in files))
    assert result.exit_code == 0, result.stdout


# --- the example workflow --------------------------------------------------------------------------------


_COMMAND_POSITION = ("!", "if", "then", "do", "&&", "||", ";", "|")  # words after which a command starts
_COMMAND_END = (">", "2>", "|", ";", "&&", "||")


def _workflow_invocations() -> Iterator[list[str]]:
    """Every reportctl command line in the workflow's run steps (shell continuations joined)."""
    workflow = yaml.safe_load((ROOT / "examples" / "ci" / "reportctl.yml").read_text())
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "").replace("\\\n", " ")
            for line in script.splitlines():
                words = shlex.split(line, comments=True)
                for i, word in enumerate(words):
                    if word == "reportctl" and (i == 0 or words[i - 1] in _COMMAND_POSITION):
                        rest = words[i:]
                        yield rest[: next((j for j, w in enumerate(rest) if w in _COMMAND_END), len(rest))]


def test_workflow_checks_out_history_and_comments_once() -> None:
    text = (ROOT / "examples" / "ci" / "reportctl.yml").read_text()
    workflow = yaml.safe_load(text)
    steps = workflow["jobs"]["reports"]["steps"]
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0
    assert workflow["permissions"]["pull-requests"] == "write"
    assert "No spec changed between" in text  # what diff prints when no report is touched: no comment then
    assert "--method PATCH" in text and "--method POST" in text  # the bot's comment is updated, not repeated


def test_workflow_runs_real_validate_commands() -> None:
    from reportctl.cli.validate import Format

    invocations = [words for words in _workflow_invocations() if words[1] == "validate"]
    assert invocations == [["reportctl", "validate", "--format", "github"]]
    command = _commands()["validate"]
    for words in invocations:
        assert {w for w in words if w.startswith("-")} <= _options(command)
        assert words[words.index("--format") + 1] in {f.value for f in Format}


def test_workflow_runs_real_diff_commands() -> None:
    invocations = [words for words in _workflow_invocations() if words[1] == "diff"]
    assert invocations == [["reportctl", "diff", "--base", "origin/$BASE", "--format", "markdown"]]
    options = _options(_commands()["diff"])
    for words in invocations:
        assert {w for w in words if w.startswith("-")} <= options
