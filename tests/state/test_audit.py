"""The audit log: migration 0008 on both backends, what renders, deliveries, fires and secrets leave in it, who is
named, ``reportctl audit``'s filters, retention by age, and a failed audit write that does not fail the run."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import CliResult
from delivery.http_peers import HttpPeer, running
from reportctl.config import find_project
from reportctl.state import RunState, StateStore, audit, open_store
from reportctl.state.migrations import create_state_engine, database_url
from store_migrations import migrate

Cli = Callable[..., CliResult]
T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
HOOK_SECRET = "whsec_" + base64.b64encode(b"the audit log must never hold me").decode()
REPORT = """\
apiVersion: reportctl/v1
name: health
parameters:
  region: {type: string, default: eu}
sources:
  metrics: {kind: sample, rows: 20, seed: 3}
sections:
  - {id: services, type: table, dataset: metrics}
outputs: [csv, json]
delivery:
  - {id: ops, channel: webhook, url: 'URL', secret: '${secret:HOOK}'}
"""
DAEMON_SPEC = """\
apiVersion: reportctl/v1
name: hourly
sources:
  metrics: {kind: sample, rows: 20}
sections:
  - {id: t, type: table, dataset: metrics}
outputs: [csv]
schedule: {cron: "0 * * * *", timezone: UTC, misfire_grace: 30m}
"""
NOW = datetime(2026, 11, 30, 9, 5, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_actor(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--actor`` sets REPORTCTL_ACTOR for the process: start each test without one and put it back after."""
    monkeypatch.setenv("REPORTCTL_ACTOR", "")
    monkeypatch.delenv("REPORTCTL_STATE_URL", raising=False)


@pytest.fixture
def receiver() -> Iterator[HttpPeer]:
    with running(HttpPeer()) as peer:
        yield peer


@pytest.fixture
def spec(project: Path, receiver: HttpPeer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REPORTCTL_SECRET_HOOK", HOOK_SECRET)
    path = project / "specs" / "health.yaml"
    path.write_text(REPORT.replace("URL", receiver.url("/hook")))
    return path


def _events(**filters: Any) -> list[audit.AuditEvent]:
    with open_store(find_project()) as store:
        return audit.events(store, **filters)


def _run_ids(project: Path) -> list[str]:
    return sorted(run.name for run in (project / "out" / "health").iterdir())


def test_0008_adds_the_version_columns_and_keeps_old_entries(store_url: str) -> None:
    migrate(store_url, "0007")
    engine = create_state_engine(database_url(store_url))
    try:
        with engine.connect() as connection, connection.begin():
            connection.execute(
                sa.text(
                    "INSERT INTO audit (at, actor, action, report, detail) VALUES (:at, 'ann', 'deliver', 'x', '{}')"
                ),
                {"at": T0.replace(tzinfo=None)},
            )
    finally:
        engine.dispose()
    with StateStore(store_url) as store:  # opening migrates to head
        assert audit.record(store, "render", actor="bo", report="x", spec_hash="abc", git_commit="f" * 40, now=T0)
        old, new = sorted(audit.events(store, report="x"), key=lambda event: event.id)
    assert (old.actor, old.action, old.spec_hash, old.git_commit, old.origin) == ("ann", "deliver", None, None, None)
    assert (new.actor, new.spec_hash, new.git_commit) == ("bo", "abc", "f" * 40)
    assert new.origin is not None and new.origin.endswith(f":{os.getpid()}")

    def audit_columns() -> set[str]:
        engine = create_state_engine(database_url(store_url))
        try:
            with engine.connect() as connection:
                return {c["name"] for c in sa.inspect(connection).get_columns("audit")}
        finally:
            engine.dispose()

    migrate(store_url, "0007", down=True)
    assert not {"spec_hash", "git_commit", "origin"} & audit_columns()
    migrate(store_url, "head")
    assert {"spec_hash", "git_commit", "origin"} <= audit_columns()


def test_render_and_deliver_record_who_what_and_secret_names_never_values(
    cli: Cli, project: Path, spec: Path, receiver: HttpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = cli("--actor", "alice", "render", str(spec), "--deliver", "--param", "region=us")
    assert result.exit_code == 0, result.stderr
    (run_id,) = _run_ids(project)
    rendered, delivery, trigger = _events()  # the render entry is written as the run ends, after its deliveries
    assert [e.action for e in (trigger, delivery, rendered)] == ["trigger", "delivery", "render"]
    assert {e.actor for e in (trigger, rendered, delivery)} == {"alice"}
    assert {e.run_id for e in (trigger, rendered, delivery)} == {run_id}
    assert trigger.detail["command"] == "render"
    assert rendered.spec_hash and rendered.spec_hash == trigger.spec_hash
    assert rendered.detail["status"] == "COMPLETED" and rendered.detail["parameters"] == {"region": "us"}
    assert rendered.detail["formats"] == ["csv", "json"] and rendered.detail["viewer"] is None
    assert rendered.detail["secrets"] == ["HOOK"]
    assert delivery.detail == {
        "delivery": "ops", "channel": "webhook", "recipients": [receiver.url("/hook")], "sent": 1, "failed": 0,
        "resend": False,
    }  # fmt: skip

    monkeypatch.setenv("REPORTCTL_ACTOR", "bob")  # the environment variable names the actor too
    again = cli("deliver", run_id, "--retry-failed")
    assert again.exit_code == 0, again.stderr
    newest = _events(actor="bob")
    assert [(e.action, e.detail.get("command"), e.detail.get("resend")) for e in newest] == [
        ("trigger", "deliver", None),
        ("delivery", None, True),
    ]

    monkeypatch.setenv("REPORTCTL_ACTOR", "")  # neither: the OS user
    assert cli("render", str(spec)).exit_code == 0
    assert {e.actor for e in _events(since=_events()[0].at)} == {audit.os_user()}

    with open_store(find_project()) as store, store._session() as session:
        every_row = [tuple(row) for row in session.execute(sa.text("SELECT * FROM audit"))]
    assert len(every_row) == 7
    assert HOOK_SECRET not in json.dumps(every_row, default=str)


def test_secrets_set_and_delete_are_recorded_by_name(cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring
    from keyring.backend import KeyringBackend

    class Memory(KeyringBackend):
        priority = 1  # type: ignore[assignment]
        kept: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.kept.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.kept[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self.kept.pop((service, username))

    previous = keyring.get_keyring()
    keyring.set_keyring(Memory())
    try:
        monkeypatch.setattr("sys.stdin", io.StringIO("s3cr3t-value\n"))
        assert cli("--actor", "carol", "secrets", "set", "db.password").exit_code == 0
        assert cli("--actor", "carol", "secrets", "delete", "db.password").exit_code == 0
    finally:
        keyring.set_keyring(previous)
    events = _events(action="secret")
    assert [(e.action, e.actor, e.detail) for e in events] == [
        ("secret.delete", "carol", {"secret": "db.password"}),
        ("secret.set", "carol", {"secret": "db.password"}),
    ]
    assert "s3cr3t-value" not in json.dumps([e.as_dict() for e in events])


def test_the_daemon_records_its_fires_and_skips_as_schedule(store_url: str, project: Path) -> None:
    from reportctl.schedule.daemon import Daemon
    from reportctl.schedule.tick import render_fire

    (project / "specs" / "hourly.yaml").write_text(DAEMON_SPEC)
    proj = find_project(project)
    with StateStore(store_url) as store:
        jobs = type("Jobs", (), {"schedule": lambda *a, **k: None, "unschedule": lambda *a, **k: None})()
        daemon = Daemon(proj, store, clock=lambda: NOW, jobs=jobs, render=render_fire, sleep=lambda _s: None)
        daemon.start(NOW)
        (ran,) = daemon.dispatch_due(NOW)
        assert ran.state == "COMPLETED"
        other = store.create_run("hourly", trigger="manual", now=NOW)
        store.transition(other.id, RunState.GENERATING, now=NOW)
        (skipped,) = daemon.dispatch_due(NOW + timedelta(hours=1))
        assert skipped.state == "SKIPPED"
        events = audit.events(store, report="hourly")
    by_action = {e.action: e for e in events}
    assert set(by_action) == {"trigger", "render", "trigger.skipped"}
    assert {e.actor for e in events} == {"schedule"}
    fired, rendered, gone = by_action["trigger"], by_action["render"], by_action["trigger.skipped"]
    assert fired.run_id == rendered.run_id == ran.run_id
    assert fired.detail == {
        "command": "schedule", "fire_time": "2026-11-30T09:00:00Z", "os_user": audit.os_user(), "executor": "local",
    }  # fmt: skip
    assert rendered.detail["status"] == "COMPLETED" and rendered.detail["trigger"] == "schedule"
    assert gone.run_id == skipped.run_id and gone.detail["fire_time"] == "2026-11-30T10:00:00Z"
    assert gone.detail["reason"] == f"overlap: skip; run {other.id} of this report is still GENERATING"


def test_audit_command_filters_newest_first_and_prints_json(cli: Cli, project: Path) -> None:
    now = datetime.now(UTC)
    with open_store(find_project()) as store:
        audit.record(store, "render", actor="ann", report="weekly", run_id="r1", now=now - timedelta(days=10))
        audit.record(store, "trigger.skipped", actor="schedule", report="weekly", now=now - timedelta(days=2))
        audit.record(
            store, "render", actor="bo", report="daily", run_id="r3", detail={"n": 1}, now=now - timedelta(hours=1)
        )

    def shown(*args: str) -> list[dict[str, Any]]:
        result = cli("audit", "--json", *args)
        assert result.exit_code == 0, result.stderr
        rows: list[dict[str, Any]] = json.loads(result.stdout)
        return rows

    assert [row["actor"] for row in shown()] == ["bo", "schedule", "ann"]
    assert [row["actor"] for row in shown("--since", "7d")] == ["bo", "schedule"]
    assert [row["actor"] for row in shown("--until", "1d")] == ["schedule", "ann"]
    assert [row["run_id"] for row in shown("--report", "weekly", "--actor", "ann")] == ["r1"]
    assert [row["action"] for row in shown("--action", "trigger")] == ["trigger.skipped"]
    assert [row["actor"] for row in shown("--limit", "1")] == ["bo"]
    assert shown("--actor", "bo")[0]["detail"] == {"n": 1} and shown("--actor", "bo")[0]["at"].endswith("Z")

    table = cli("audit", "--report", "daily")
    assert table.exit_code == 0
    assert table.stdout.splitlines()[0].split() == ["WHEN", "ACTOR", "ACTION", "REPORT", "RUN", "DETAIL"]
    assert table.stdout.splitlines()[1].split()[2:] == ["UTC", "bo", "render", "daily", "r3", "n=1"]
    bad = cli("audit", "--since", "last tuesday")
    assert bad.exit_code == 2
    assert "--since: expected an ISO time such as 2026-11-28T09:00 or a duration such as 7d, got 'last tuesday'" in (
        bad.stderr
    )


def test_record_policy_keeps_the_viewer_and_each_datasets_filter(store_url: str) -> None:
    with StateStore(store_url) as store:
        assert audit.record_policy(
            store,
            report="sales",
            run_id="r9",
            viewer="ann@example.com",
            filters={"orders": "region = 'EU'"},
            actor="ann",
        )
        (event,) = audit.events(store, action="policy")
    assert (event.report, event.run_id, event.actor) == ("sales", "r9", "ann")
    assert event.detail == {"viewer": "ann@example.com", "filters": {"orders": "region = 'EU'"}}


def test_retention_prunes_by_age_only(store_url: str, project: Path) -> None:
    from reportctl.state.recording import housekeeping

    (project / "reportctl.yaml").write_text("timezone: UTC\naudit: {retention: 400d}\n")
    proj = find_project(project)
    with StateStore(store_url) as store:
        now = store.clock()
        for age in (500, 401, 399, 1):
            audit.record(
                store, "render", actor="ann", report="weekly", detail={"age": age}, now=now - timedelta(days=age)
            )
        assert housekeeping(store, proj, "weekly")["pruned_audit"] == 2
        assert [e.detail["age"] for e in audit.events(store)] == [1, 399]
    (project / "reportctl.yaml").write_text("timezone: UTC\n")  # the default keeps every entry
    with StateStore(store_url) as store:
        assert housekeeping(store, find_project(project), "weekly")["pruned_audit"] == 0


def test_a_failed_audit_write_does_not_fail_the_run(
    cli: Cli, project: Path, spec: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert cli("render", str(spec)).exit_code == 0
    with open_store(find_project()) as store, store._session(write=True) as session:
        session.execute(sa.text("DROP TABLE audit"))
    with caplog.at_level(logging.WARNING, logger="reportctl.state.audit"):
        result = cli("render", str(spec), "--deliver")
    assert result.exit_code == 0, result.stderr
    with open_store(find_project()) as store:
        assert [run.state for run in store.list_runs(report="health")] == [RunState.COMPLETED] * 2
    assert any("audit entry render for" in message and "not recorded" in message for message in caplog.messages)


def test_a_run_rendered_elsewhere_keeps_the_actor_it_was_triggered_by(project: Path) -> None:
    """What a Celery worker does: ``render_recorded`` of a run queued (and its trigger recorded) by someone else."""
    from reportctl.spec.loader import load_spec
    from reportctl.state.recording import render_recorded

    (project / "specs" / "hourly.yaml").write_text(DAEMON_SPEC)
    loaded = load_spec(project / "specs" / "hourly.yaml")
    with open_store(find_project()) as store:
        run = store.create_run("hourly", trigger="manual", spec_hash=loaded.spec_hash, now=NOW)
        audit.record(store, "trigger", actor="dana", report="hourly", run_id=run.id, detail={"command": "render"})
        render_recorded(store, loaded, run.id, now=NOW)
        (rendered,) = audit.events(store, action="render")
    assert (rendered.actor, rendered.run_id, rendered.detail["status"]) == ("dana", run.id, "COMPLETED")
    assert audit.current_actor() == audit.os_user(), "the run's actor does not outlive the run"
