"""Retention (``retention:`` in a spec, ``state.history``/``retention``/``archive`` in reportctl.yaml): runs beyond
``keep_runs`` are forgotten with their files and ledger rows but never while active or delivering; files past their
age are deleted, or archived to a real S3 API (moto_server on 127.0.0.1) and linked from ``runs show``; a failed
upload deletes nothing, and a prune cut short resumes. ``runs prune --dry-run`` changes nothing."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import update

from conftest import CliResult
from delivery.s3_server import MotoServer
from reportctl.config import ProjectConfig, find_project
from reportctl.retention import BackgroundPrune, prune, prune_report
from reportctl.spec.retention import Retention, RetentionPolicy, retention_policy
from reportctl.state import RunState, StateStore, open_store
from reportctl.state import audit as audit_log
from reportctl.state.ledger import DeliveryLedger, PlannedRecipient
from reportctl.state.models import Run
from reportctl.state.retention import record_archived

Cli = Callable[..., CliResult]
pytestmark = pytest.mark.usefixtures("aws_environment")

REPORT = """\
apiVersion: reportctl/v1
name: health
sources:
  metrics: {kind: sample, rows: 200, seed: 3}
datasets:
  by_service: {from: metrics, group_by: [service], aggregate: {samples: count()}}
sections:
  - {id: services, type: table, dataset: by_service}
outputs: [{format: csv, compress: gzip}, json]
"""
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_state_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPORTCTL_STATE_URL", raising=False)


def write_spec(project: Path, retention: str | None = None) -> Path:
    path = project / "specs" / "health.yaml"
    path.write_text(REPORT + (f"retention: {retention}\n" if retention else ""))
    return path


def render(cli: Cli, spec: Path) -> str:
    result = cli("render", str(spec), "--json")
    assert result.exit_code == 0, result.stderr
    run_id: str = json.loads(result.stdout)["run_id"]
    return run_id


def backdate(project: Path, run_id: str, days: int) -> None:
    """Make the run as old as ``days``: created and finished that long ago."""
    with open_store(find_project(project)) as store, store._session(write=True) as session:
        moment = datetime.now(UTC) - timedelta(days=days)
        session.execute(update(Run).where(Run.id == run_id).values(created_at=moment, finished_at=moment))


def prune_json(cli: Cli, *options: str, code: int = 0) -> dict[str, Any]:
    result = cli("runs", "prune", "--json", *options)
    assert result.exit_code == code, result.stderr
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


def run_ids(cli: Cli) -> list[str]:
    return [run["id"] for run in json.loads(cli("runs", "list", "--json").stdout)]


def test_dry_run_lists_what_would_go_and_changes_nothing_then_prune_forgets(cli: Cli, project: Path) -> None:
    spec = write_spec(project)
    first, second, newest = (render(cli, spec) for _ in range(3))
    for age, run_id in ((3, first), (2, second), (1, newest)):
        backdate(project, run_id, age)
    write_spec(project, "{keep_runs: 1, artifacts: null}")

    planned = prune_json(cli, "--dry-run")

    assert planned["dry_run"] is True
    assert [(r["run"], r["action"]) for r in planned["runs"]] == [(first, "forget"), (second, "forget")]
    assert all(r["files"] == 2 and r["bytes"] > 0 for r in planned["runs"])
    assert planned["totals"] == {
        "forgotten": 2, "archived": 0, "deleted": 0, "files": 4, "bytes": sum(r["bytes"] for r in planned["runs"]),
    }  # fmt: skip
    assert planned["policies"] == {"health": "keep 1 run, files for ever"}
    assert sorted(run_ids(cli)) == sorted([first, second, newest])
    assert (project / "out" / "health" / first / "health.csv.gz").is_file()

    text = cli("runs", "prune")
    assert text.exit_code == 0, text.stderr
    assert text.stdout.splitlines()[-1].startswith("forgot 2 runs, archived the files of 0 runs, deleted the files")
    assert run_ids(cli) == [newest]
    assert sorted(p.name for p in (project / "out" / "health").iterdir()) == [newest]
    with open_store(find_project(project)) as store:  # the audit log, append-only, still tells of them
        assert {e.run_id for e in audit_log.events(store, report="health")} >= {first, second}
    assert prune_json(cli)["runs"] == [], "nothing more to do"


def _run(store: StateStore, report: str, at: datetime, state: RunState = RunState.COMPLETED) -> str:
    run_id = store.create_run(report, now=at).id
    steps = {
        RunState.SCHEDULED: [],
        RunState.FAILED: [RunState.GENERATING, RunState.FAILED],
        RunState.COMPLETED: [RunState.GENERATING, RunState.FORMATTING, RunState.DISTRIBUTING, RunState.COMPLETED],
    }
    for step in steps[state]:
        store.transition(run_id, step, now=at)
    return run_id


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
def test_active_runs_and_runs_still_delivering_are_never_forgotten(store_url: str, project: Path) -> None:
    with StateStore(store_url) as store:
        plain = _run(store, "weekly", T0)
        waiting = _run(store, "weekly", T0 + timedelta(minutes=1))  # its recipient still pending
        sending = _run(store, "weekly", T0 + timedelta(minutes=2))  # a batch being sent right now
        active = _run(store, "weekly", T0 + timedelta(minutes=3), RunState.SCHEDULED)
        failed = _run(store, "weekly", T0 + timedelta(minutes=4), RunState.FAILED)
        ledger = DeliveryLedger(store)
        ledger.plan(waiting, "email", "email", [PlannedRecipient("a@x.org", "to", "k-a")])
        [row] = ledger.plan(sending, "email", "email", [PlannedRecipient("b@x.org", "to", "k-b")])
        ledger.claim([row.id], "host:1", T0)
        sent = ledger.plan(plain, "email", "email", [PlannedRecipient("c@x.org", "to", "k-c")])
        ledger.record([(sent[0].id, "sent", "250 ok")], None)
        policy = RetentionPolicy("weekly", 0, None, None)

        done = prune_report(store, find_project(project), policy)

        assert sorted(r.run_id for r in done.runs) == sorted([plain, failed])
        assert {r.id for r in store.list_runs("weekly")} == {waiting, sending, active}
        assert ledger.entries(plain) == [], "the ledger rows went with their run"
        ledger.record([(row.id, "sent", "250 ok")], "host:1")
        ledger.record([(e.id, "sent", "250 ok") for e in ledger.entries(waiting)], None)
        assert {r.run_id for r in prune_report(store, find_project(project), policy).runs} == {waiting, sending}
        assert [r.id for r in store.list_runs("weekly")] == [active]


def test_files_past_their_age_are_deleted_and_the_run_stays(cli: Cli, project: Path) -> None:
    spec = write_spec(project, "{artifacts: 2d}")
    old, recent = render(cli, spec), render(cli, spec)
    backdate(project, old, 3)
    backdate(project, recent, 1)

    done = prune_json(cli)

    assert [(r["run"], r["action"]) for r in done["runs"]] == [(old, "delete")]
    assert not (project / "out" / "health" / old).exists()
    assert (project / "out" / "health" / recent / "health.json").is_file()
    shown = cli("runs", "show", old).stdout
    assert "artifacts (artifacts deleted after 2d retention on " in shown
    assert sorted(run_ids(cli)) == sorted([old, recent])


def configure_archive(project: Path, s3: MotoServer, bucket: str) -> None:
    (project / "reportctl.yaml").write_text(
        f"timezone: UTC\nstate:\n  archive: {{url: 's3://{bucket}/archive/', endpoint_url: '{s3.endpoint}', "
        "link_expiry: 1h}\n"
    )


def test_archive_moves_the_files_to_s3_and_runs_show_links_them(
    cli: Cli, project: Path, s3: MotoServer, bucket: str, peer: Any
) -> None:
    configure_archive(project, s3, bucket)
    spec = write_spec(project, "{artifacts: 1d}")
    run_id = render(cli, spec)
    folder = project / "out" / "health" / run_id
    written = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}
    backdate(project, run_id, 2)

    done = prune_json(cli)

    where = f"s3://{bucket}/archive/health/{run_id}/"
    assert [(r["run"], r["action"], r["archive"]) for r in done["runs"]] == [(run_id, "archive", where)]
    listed = peer.list_objects_v2(Bucket=bucket, Prefix=f"archive/health/{run_id}/")["Contents"]
    keys = {item["Key"].rpartition("/")[2] for item in listed}
    assert {"health.csv.gz", "health.json", "manifest.json"} <= keys
    for name in ("health.csv.gz", "health.json", "manifest.json"):
        body = peer.get_object(Bucket=bucket, Key=f"archive/health/{run_id}/{name}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == written[name]
    assert not folder.exists()

    shown = json.loads(cli("runs", "show", run_id, "--json", "--links").stdout)
    assert shown["archive_url"] == where and shown["archived_at"]
    for artifact in shown["artifacts"]:
        assert artifact["archive"] == where + Path(artifact["path"]).name
        assert "X-Amz-Expires=3600" in artifact["archive_link"]
        with requests.get(artifact["archive_link"], timeout=10) as download:
            assert download.status_code == 200
            assert hashlib.sha256(download.content).hexdigest() == artifact["sha256"]
    text = cli("runs", "show", run_id).stdout
    assert f"artifacts archived to {where} after 1d retention" in text
    assert f"{where}health.csv.gz" in text and f"archived          {where}" in text


def test_a_failed_upload_deletes_nothing_and_the_next_prune_archives(
    cli: Cli, project: Path, s3: MotoServer, bucket: str, peer: Any
) -> None:
    missing = bucket + "-gone"
    configure_archive(project, s3, missing)
    spec = write_spec(project, "{artifacts: 1d}")
    run_id = render(cli, spec)
    backdate(project, run_id, 2)

    failed = cli("runs", "prune")

    assert failed.exit_code == 1
    assert f"run {run_id} (health): files not archived, nothing deleted: " in failed.stderr
    assert f"bucket '{missing}' does not exist" in failed.stderr
    assert failed.stderr.rstrip().endswith("1 run could not be archived; their files were kept")
    assert (project / "out" / "health" / run_id / "health.csv.gz").is_file()
    shown = json.loads(cli("runs", "show", run_id, "--json").stdout)
    assert shown["archive_url"] is None and shown["artifacts_deleted_at"] is None

    peer.create_bucket(Bucket=missing)
    done = prune_json(cli)
    assert [(r["run"], r["action"]) for r in done["runs"]] == [(run_id, "archive")]
    assert not (project / "out" / "health" / run_id).exists()


def test_a_prune_stopped_after_recording_the_archive_deletes_the_files_next_time(cli: Cli, project: Path) -> None:
    spec = write_spec(project, "{artifacts: 1d, archive: 's3://nowhere-bucket/kept/'}")
    run_id = render(cli, spec)
    backdate(project, run_id, 2)
    where = f"s3://nowhere-bucket/kept/health/{run_id}/"
    with open_store(find_project(project)) as store:  # uploaded and recorded, then the process died
        record = store.get_run(run_id)
        archived = [{**a, "archive": where + str(a["path"])} for a in record.artifacts]
        record_archived(store, run_id, where, archived, datetime.now(UTC))

    done = prune_json(cli)  # no upload is tried again: that bucket does not even exist

    assert [(r["run"], r["action"], r["archive"]) for r in done["runs"]] == [(run_id, "archive", where)]
    assert not (project / "out" / "health" / run_id).exists()
    assert f"artifacts archived to {where} after 1d retention" in cli("runs", "show", run_id).stdout


def test_each_run_applies_its_reports_keep_runs(cli: Cli, project: Path) -> None:
    spec = write_spec(project, "{keep_runs: 1}")
    render(cli, spec)
    newest = render(cli, spec)
    assert run_ids(cli) == [newest]


def test_the_spec_overrides_the_project_key_by_key_and_null_turns_a_part_off() -> None:
    config = ProjectConfig.model_validate(
        {"state": {"history": 50, "retention": "10d", "archive": "s3://cold-store/reports"}}
    )
    assert retention_policy("a", None, config) == RetentionPolicy(
        "a", 50, timedelta(days=10), "s3://cold-store/reports/"
    )
    some = Retention.model_validate({"keep_runs": 5, "archive": None})
    assert retention_policy("a", some, config) == RetentionPolicy("a", 5, timedelta(days=10), None)
    keep_all = Retention.model_validate({"keep_runs": None, "artifacts": None})
    assert retention_policy("a", keep_all, config).describe() == "keep every run, files for ever"
    assert (
        retention_policy("a", None, config).describe()
        == "keep 50 runs, files 10d then archived to s3://cold-store/reports/"
    )


@pytest.mark.parametrize(
    ("retention", "message"),
    [
        ("{keep_runs: -1}", "retention.keep_runs: "),
        ("{archive: 'https://example.com/x'}", "retention.archive: expected an s3://bucket/prefix/ URL"),
        ("{artifacts: soon}", "retention.artifacts: "),
        ("{keep: 3}", "retention.keep"),
    ],
)
def test_bad_retention_is_reported_with_its_position(cli: Cli, project: Path, retention: str, message: str) -> None:
    write_spec(project, retention)
    result = cli("validate", "specs/health.yaml")
    assert result.exit_code == 1
    assert "health.yaml:10:" in result.stderr + result.stdout and message in result.stderr + result.stdout


def test_the_daemons_hourly_prune_logs_what_it_did(cli: Cli, project: Path, caplog: pytest.LogCaptureFixture) -> None:
    spec = write_spec(project)
    old = render(cli, spec)
    backdate(project, old, 40)  # past the project's default 30d
    proj = find_project(project)
    with open_store(proj) as store:
        with caplog.at_level(logging.INFO, logger="test.retention"):
            done = BackgroundPrune(proj, store, logging.getLogger("test.retention")).run()
        assert done is not None and [(r.run_id, r.action) for r in done.runs] == [(old, "delete")]
        assert prune(store, proj, dry_run=True).runs == []
    assert [r.message for r in caplog.records] == [done.summary()]
    assert done.summary().startswith(
        "forgot 0 runs, archived the files of 0 runs, deleted the files of 1 run: 2 files, "
    )
