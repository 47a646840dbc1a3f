"""`reportctl doctor` says what is missing and how to fix it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CliResult

Cli = Callable[..., CliResult]


def test_doctor_lists_every_check(cli: Cli, project: Path) -> None:
    result = cli("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert list(checks) == ["python", "plugins", "fonts", "charts", "project", "state", "keyring"]
    assert checks["state"]["ok"] and checks["state"]["detail"] == (
        f"sqlite:///{project}/.reportctl/state.db (not created yet: the first render creates it)"
    )
    assert not (project / ".reportctl").exists()  # a check reads; it creates no state store
    assert checks["python"]["ok"] and checks["fonts"]["ok"] and checks["plugins"]["ok"]
    assert checks["project"]["detail"] == f"{project}/reportctl.yaml is valid"
    assert result.exit_code == 0


def test_doctor_explains_a_missing_browser(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("REPORTCTL_BROWSER", str(tmp_path / "missing"))
    result = cli("doctor")
    lines = result.stdout.splitlines()
    charts = lines.index(next(line for line in lines if line.split()[1] == "charts"))
    assert lines[charts].startswith("warning  charts")
    assert lines[charts + 1].strip().startswith("fix: install chromium-headless-shell")
    assert result.exit_code == 0  # reports without charts still render


def test_doctor_fails_on_invalid_project_settings(cli: Cli, project: Path) -> None:
    (project / "reportctl.yaml").write_text("timezone: Nowhere/Land\n")
    result = cli("doctor")
    assert result.exit_code == 1
    assert "MISSING  project  " in result.stdout
    assert "fix: fix " in result.stdout


def test_doctor_reports_an_unreachable_state_store(cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPORTCTL_STATE_URL", "postgresql://report:pw@127.0.0.1:9/reports")
    result = cli("doctor")
    assert result.exit_code == 1
    line = next(line for line in result.stdout.splitlines() if " state " in line)
    assert line.startswith("MISSING  state    state store postgresql+psycopg://report:***@127.0.0.1:9/reports")
    assert "pw" not in result.stdout
