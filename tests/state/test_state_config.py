"""Where the state store lives: REPORTCTL_STATE_URL, ``state.url`` in reportctl.yaml (with secrets), the default."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from reportctl.config import ProjectConfig, find_project
from reportctl.errors import SpecError
from reportctl.state import NoStateStore, StateStoreError, open_store, state_url


def test_the_default_is_a_sqlite_file_in_the_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPORTCTL_STATE_URL", raising=False)
    assert state_url(find_project()) == f"sqlite:///{project / '.reportctl' / 'state.db'}"
    open_store(find_project()).close()
    assert (project / ".reportctl" / "state.db").is_file()


def test_the_config_url_takes_secrets_and_relative_sqlite_paths(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPORTCTL_STATE_URL", raising=False)
    (project / "reportctl.yaml").write_text("state:\n  url: postgresql://report:${secret:state_pw}@db/reports\n")
    monkeypatch.setenv("REPORTCTL_SECRET_STATE_PW", "hunter2")
    assert state_url(find_project()) == "postgresql://report:hunter2@db/reports"
    (project / "reportctl.yaml").write_text("state:\n  url: sqlite:///var/state.db\n")
    assert state_url(find_project()) == f"sqlite:///{project / 'var' / 'state.db'}"


def test_the_environment_overrides_the_config(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "reportctl.yaml").write_text("state:\n  url: sqlite:///ignored.db\n")
    monkeypatch.setenv("REPORTCTL_STATE_URL", "sqlite:////tmp/elsewhere.db")
    assert state_url(find_project()) == "sqlite:////tmp/elsewhere.db"


def test_state_settings_have_defaults_and_are_checked(project: Path) -> None:
    state = ProjectConfig().state
    assert (state.url, state.history, state.retention, state.heartbeat_timeout) == (
        None,
        100,
        timedelta(days=30),
        timedelta(minutes=2),
    )
    (project / "reportctl.yaml").write_text("state:\n  history: 10\n  retention: 7d\n  heartbeat_timeout: 30s\n")
    state = find_project().config.state
    assert (state.history, state.retention, state.heartbeat_timeout) == (10, timedelta(days=7), timedelta(seconds=30))
    (project / "reportctl.yaml").write_text("state:\n  histroy: 10\n")
    with pytest.raises(SpecError, match="histroy"):
        find_project()


def test_a_bad_url_is_a_clear_error(tmp_path: Path) -> None:
    from reportctl.state import StateStore

    with pytest.raises(StateStoreError, match="not a database URL"):
        StateStore("not a url")
    with pytest.raises(StateStoreError, match=r"sqlite:///.*/missing/state.db: cannot connect: unable to open"):
        StateStore(f"sqlite:///{tmp_path / 'missing' / 'state.db'}")


def test_an_explicit_sqlite_url_gets_its_folder_made(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``state: {url: sqlite:///.reportctl/state.db}`` written out works like leaving it out."""
    monkeypatch.delenv("REPORTCTL_STATE_URL", raising=False)
    (project / "reportctl.yaml").write_text("state:\n  url: sqlite:///.reportctl/state.db\n")
    open_store(find_project()).close()
    assert (project / ".reportctl" / "state.db").is_file()


def test_reading_never_creates_a_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPORTCTL_STATE_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # no reportctl.yaml: the default store would be ./.reportctl/state.db
    with pytest.raises(NoStateStore, match=r"^no runs are recorded in this project yet \(no state store at "):
        open_store(find_project(), create=False)
    assert list(tmp_path.iterdir()) == []
