"""`reportctl runs list` and `runs show` on runs recorded through the store in a temporary project."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from conftest import CliResult
from reportctl.config import find_project
from reportctl.state import RunState, StateStore, open_store

Cli = Callable[..., CliResult]
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


@pytest.fixture
def store(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StateStore]:
    monkeypatch.delenv("REPORTCTL_STATE_URL", raising=False)
    with open_store(find_project()) as opened:
        yield opened


@pytest.fixture
def runs(store: StateStore, project: Path) -> dict[str, str]:
    done = store.create_run("weekly", run_id="20261128T090000Z-aaaaaa", parameters={"region": "eu"}, now=T0)
    folder = project / "out" / "weekly" / done.id
    folder.mkdir(parents=True)
    (folder / "weekly.csv").write_text("a\n1\n")
    store.transition(done.id, RunState.GENERATING, now=T0 + timedelta(seconds=1))
    store.transition(done.id, RunState.FORMATTING, now=T0 + timedelta(seconds=4))
    store.transition(done.id, RunState.DISTRIBUTING, now=T0 + timedelta(seconds=5))
    artifacts = [{"format": "csv", "path": "weekly.csv", "bytes": 2048, "sha256": "ab"}]
    store.transition(done.id, RunState.COMPLETED, artifacts=artifacts, output_dir=folder, now=T0 + timedelta(seconds=6))
    failed = store.create_run(
        "daily", run_id="20261128T100000Z-bbbbbb", trigger="schedule", now=T0 + timedelta(hours=1)
    )
    store.transition(failed.id, RunState.GENERATING, now=T0 + timedelta(hours=1))
    message = "source 'metrics' (sql): connection refused by the database server at db.example.com:5432 again"
    store.transition(failed.id, RunState.FAILED, error=message, now=T0 + timedelta(hours=1, seconds=2))
    return {"done": done.id, "failed": failed.id}


def test_list_json(cli: Cli, runs: dict[str, str]) -> None:
    result = cli("runs", "list", "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["id"], r["report"], r["state"]) for r in rows] == [
        (runs["failed"], "daily", "FAILED"),
        (runs["done"], "weekly", "COMPLETED"),
    ]
    assert rows[1]["parameters"] == {"region": "eu"} and rows[1]["duration_seconds"] == 5.0
    assert rows[1]["started_at"] == (T0 + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")


def test_list_filters(cli: Cli, runs: dict[str, str]) -> None:
    def ids(*args: str) -> list[str]:
        result = cli("runs", "list", "--json", *args)
        assert result.exit_code == 0, result.stderr
        return [r["id"] for r in json.loads(result.stdout)]

    assert ids("--report", "weekly") == [runs["done"]]
    assert ids("--state", "failed") == [runs["failed"]]
    assert ids("--since", "90m") == [runs["failed"]]
    assert ids("--since", (T0 - timedelta(minutes=1)).isoformat()) == [runs["failed"], runs["done"]]
    assert ids("--limit", "1") == [runs["failed"]]


def test_list_table(cli: Cli, runs: dict[str, str]) -> None:
    result = cli("runs", "list")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["RUN", "REPORT", "TRIGGER", "STATE", "STARTED", "DURATION", "ERROR"]
    assert runs["failed"] in lines[1] and "schedule" in lines[1] and "FAILED" in lines[1]
    assert lines[1].endswith("  source 'met...") and max(len(line) for line in lines) <= 100
    # times in the project's zone (UTC in the test project), with its abbreviation; to the minute in the list
    started = (T0 + timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M")
    assert lines[2].split()[:8] == [runs["done"], "weekly", "manual", "COMPLETED", *started.split(), "UTC", "5s"]


def test_list_shows_a_spec_error_message_first(
    cli: Cli, store: StateStore, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spec problem is recorded as 'FILE:LINE:COL: field: message'; the list leads with the message."""
    monkeypatch.setenv("COLUMNS", "160")
    run = store.create_run("weekly", run_id="20261128T090000Z-cccccc", now=T0)
    error = f"{project}/specs/weekly.yaml:3:8: title: unknown variable 'perod' (did you mean 'period'?)"
    store.transition(run.id, RunState.FAILED, error=error, now=T0 + timedelta(seconds=1))

    line = cli("runs", "list").stdout.splitlines()[1]

    assert line.endswith("  title: unknown variable 'perod' (did you mean 'period'?) (specs/weekly.yaml:3)")


def test_show_a_period_as_its_days_in_the_project_zone(
    cli: Cli, store: StateStore, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "reportctl.yaml").write_text("timezone: Europe/Berlin\n")
    period = {"name": "last_7_days", "start": "2026-11-09T00:00:00+01:00", "end": "2026-11-16T00:00:00+01:00"}
    store.create_run("weekly", run_id="20261116T080000Z-dddddd", parameters={"period": period}, now=T0)

    shown = cli("runs", "show", "20261116T080000Z").stdout

    assert "  period = last_7_days (2026-11-09 to 2026-11-15)" in shown
    started = T0.astimezone(ZoneInfo("Europe/Berlin")).strftime("%Y-%m-%d %H:%M:%S %Z")
    assert f"  SCHEDULED    {started}" in shown


def test_list_bad_options_are_usage_errors(cli: Cli, runs: dict[str, str]) -> None:
    result = cli("runs", "list", "--state", "DONE")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: --state: unknown run state 'DONE'; expected one of "
        "COMPLETED, COMPLETED_WITH_WARNINGS, DISTRIBUTING, FAILED, FORMATTING, GENERATING, SCHEDULED, SKIPPED"
    )
    result = cli("runs", "list", "--since", "yesterday")
    assert result.exit_code == 2 and "--since: expected an ISO time" in result.stderr


def test_list_with_no_runs(cli: Cli, store: StateStore) -> None:
    result = cli("runs", "list")
    assert (result.exit_code, result.stdout) == (0, "no runs recorded\n")


def test_show_by_prefix(cli: Cli, runs: dict[str, str], project: Path) -> None:
    result = cli("runs", "show", "20261128T09")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert f"run        {runs['done']}" in out and "report     weekly" in out and "state      COMPLETED" in out
    timeline = out.split("timeline\n")[1].split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in timeline] == [
        "SCHEDULED",
        "GENERATING",
        "FORMATTING",
        "DISTRIBUTING",
        "COMPLETED",
    ]
    assert [line.split()[-1] for line in timeline[:4]] == ["1s", "3s", "1s", "1s"]
    assert "  region = eu" in out
    assert f"  csv      2.0 KiB  {project / 'out' / 'weekly' / runs['done'] / 'weekly.csv'}" in out


def test_show_json_and_a_failure(cli: Cli, runs: dict[str, str]) -> None:
    result = cli("runs", "show", runs["failed"], "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["state"] == "FAILED" and data["error"].startswith("source 'metrics'")
    assert [(s["state"], s["seconds"]) for s in data["timeline"]] == [
        ("SCHEDULED", 0.0),
        ("GENERATING", 2.0),
        ("FAILED", None),
    ]
    text = cli("runs", "show", runs["failed"]).stdout
    assert "error\n  source 'metrics' (sql): connection refused" in text


def test_show_expired_artifacts_says_so(cli: Cli, runs: dict[str, str], store: StateStore) -> None:
    from reportctl.state.retention import record_files_deleted

    record_files_deleted(store, runs["done"], "artifacts deleted after 30m retention", datetime.now(UTC))
    result = cli("runs", "show", runs["done"])
    assert "artifacts (artifacts deleted after 30m retention on " in result.stdout


def test_show_unknown_and_ambiguous_runs(cli: Cli, runs: dict[str, str]) -> None:
    result = cli("runs", "show", "nope")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == f"error: no run 'nope'; the newest are: {runs['failed']}, {runs['done']}\n"
    result = cli("runs", "show", "2026")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: run '2026' is ambiguous: it matches ")
    assert len(result.stderr.splitlines()) == 1


def test_runs_outside_any_project_read_nothing_and_create_nothing(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REPORTCTL_STATE_URL", raising=False)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)

    listed = cli("runs", "list")
    shown = cli("runs", "show", "20261128T090000Z")

    assert (listed.exit_code, listed.stdout) == (0, "no runs recorded\n")
    assert cli("runs", "list", "--json").stdout == "[]\n"
    assert shown.exit_code == 1
    assert shown.stderr == (
        f"error: no runs are recorded in this project yet (no state store at {folder / '.reportctl' / 'state.db'})\n"
    )
    assert list(folder.iterdir()) == []
