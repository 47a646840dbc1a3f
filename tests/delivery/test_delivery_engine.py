"""Delivering runs end to end through the CLI: the ledger, retries, resumption, dry runs and secrets.

Peers are real: a local HTTP receiver that verifies Standard Webhooks signatures; the state store is the project's
SQLite file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from http_peers import HttpPeer, Reply, running
from smtp_server import smtp_server
from standardwebhooks.webhooks import Webhook

from conftest import CliResult, silence
from reportctl.config import find_project
from reportctl.state import RunState, open_store
from reportctl.state.ledger import DeliveryLedger

Cli = Callable[..., CliResult]
SECRET = "whsec_" + base64.b64encode(b"a signing key for the e2e tests!").decode()
REPORT = """\
apiVersion: reportctl/v1
name: health
title: "Health of {{ params.region }}"
parameters:
  region: {type: string, default: eu}
sources:
  metrics: {kind: sample, rows: 200, seed: 3}
datasets:
  by_service: {from: metrics, group_by: [service], aggregate: {samples: count()}}
sections:
  - {id: services, type: table, dataset: by_service}
outputs: [csv, json]
delivery:
"""


@pytest.fixture
def receiver() -> Iterator[HttpPeer]:
    with running(HttpPeer()) as peer:
        yield peer


@pytest.fixture
def write_spec(project: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    monkeypatch.delenv("REPORTCTL_STATE_URL", raising=False)

    def write(delivery: str) -> Path:
        path = project / "specs" / "health.yaml"
        path.write_text(REPORT + delivery)
        return path

    return write


def _show(cli: Cli, run_id: str) -> dict[str, Any]:
    result = cli("runs", "show", run_id, "--json")
    assert result.exit_code == 0, result.stderr
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


def _only_run(project: Path) -> str:
    (run,) = (project / "out" / "health").iterdir()
    return run.name


def _verified(received: list[Any]) -> list[dict[str, Any]]:
    """Each request's payload, after checking its Standard Webhooks signature."""
    return [Webhook(SECRET).verify(r.body, r.headers) for r in received]


def test_render_deliver_retries_a_500_and_records_every_recipient(
    cli: Cli, project: Path, write_spec: Callable[[str], Path], receiver: HttpPeer
) -> None:
    receiver.script("/flaky", Reply(500, "busy"), Reply(200))
    urls = [receiver.url("/flaky"), receiver.url("/steady")]
    spec = write_spec(f"  - {{channel: webhook, url: {json.dumps(urls)}, secret: '{SECRET}', backoff: 10ms}}\n")

    result = cli("render", str(spec), "--deliver")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "delivered webhook: 2 sent"
    run_id = _only_run(project)
    payloads = _verified(receiver.received())
    assert [p["type"] for p in payloads] == ["report.completed"] * 3
    assert {p["data"]["title"] for p in payloads} == {"Health of eu"}
    flaky = receiver.received("/flaky")
    assert flaky[0].header("webhook-id") == flaky[1].header("webhook-id"), "a retry is the same message"
    shown = _show(cli, run_id)
    assert shown["state"] == "COMPLETED"
    assert shown["deliveries"]["counts"] == {"webhook": {"sent": 2}}
    rows = {row["recipient"]: row for row in shown["deliveries"]["recipients"]}
    assert rows[urls[0]]["attempts"] == 2 and rows[urls[0]]["status"] == "sent"
    assert rows[urls[1]]["attempts"] == 1
    assert "delivered: webhook: 2 sent" in [t["detail"] for t in shown["timeline"]]

    again = cli("deliver", run_id)
    assert again.exit_code == 0, again.stderr
    assert len(receiver.received()) == 3, "a recipient already sent to is never sent to again"


def test_a_refusal_is_recorded_failed_exit_3_and_retry_failed_sends_it_once(
    cli: Cli, project: Path, write_spec: Callable[[str], Path], receiver: HttpPeer
) -> None:
    receiver.script("/gone", Reply(404, "no such hook"))
    spec = write_spec(f"  - {{channel: webhook, url: ['{receiver.url('/gone')}', '{receiver.url('/ok')}']}}\n")

    result = cli("render", str(spec), "--deliver")

    run_id = _only_run(project)
    assert result.exit_code == 3
    assert f"  failed   webhook    {receiver.url('/gone')}  404 Not Found: no such hook" in result.stdout
    assert result.stderr.strip() == (
        f"error: run {run_id}: not every recipient got the report (1 failed); `reportctl runs show {run_id}` lists"
        f" them, `reportctl deliver {run_id} --retry-failed` tries the failed ones again"
    )
    assert len(receiver.received("/gone")) == 1, "a 404 is not retried"
    assert _show(cli, run_id)["state"] == "COMPLETED", "the report itself was rendered"

    assert cli("deliver", run_id).exit_code == 3, "without --retry-failed a failed recipient stays failed"
    assert len(receiver.received("/gone")) == 1
    receiver.script("/gone", Reply(200))
    retried = cli("deliver", run_id, "--retry-failed")
    assert retried.exit_code == 0, retried.stderr
    assert len(receiver.received("/gone")) == 2 and len(receiver.received("/ok")) == 1
    assert _show(cli, run_id)["deliveries"]["counts"] == {"webhook": {"sent": 2}}


def test_a_missing_secret_fails_its_delivery_only_and_is_never_shown(
    cli: Cli, project: Path, write_spec: Callable[[str], Path], receiver: HttpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPORTCTL_SECRET_HOOK_PATH", "s3cr3t-path-token")
    spec = write_spec(
        f"  - {{id: signed, channel: webhook, url: '{receiver.url('/signed')}', secret: '${{secret:hook_key}}'}}\n"
        f"  - {{id: plain, channel: webhook, url: '{receiver.url('/')}${{secret:hook_path}}'}}\n"
    )
    monkeypatch.delenv("REPORTCTL_SECRET_HOOK_KEY", raising=False)

    result = cli("render", str(spec), "--deliver", "--json")

    assert result.exit_code == 3
    assert "s3cr3t-path-token" not in result.stdout + result.stderr
    document = json.loads(result.stdout)
    rows = {row["channel"]: row for row in document["delivery"]["recipients"]}
    assert rows["plain"]["status"] == "sent" and rows["plain"]["recipient"] == receiver.url("/***")
    assert rows["signed"]["recipient"] == "(delivery)" and rows["signed"]["status"] == "failed"
    assert "REPORTCTL_SECRET_HOOK_KEY" in rows["signed"]["response"]
    assert [r.path for r in receiver.received()] == ["/s3cr3t-path-token"]

    monkeypatch.setenv("REPORTCTL_SECRET_HOOK_KEY", SECRET)
    run_id = document["run_id"]
    retried = cli("deliver", run_id, "--retry-failed")
    assert retried.exit_code == 0, retried.stderr
    assert _verified(receiver.received("/signed"))[0]["data"]["run_id"] == run_id
    shown = _show(cli, run_id)
    assert shown["deliveries"]["counts"] == {"plain": {"sent": 1}, "signed": {"sent": 1}}
    assert "s3cr3t-path-token" not in json.dumps(shown)


def test_dry_run_sends_and_records_nothing(
    cli: Cli, project: Path, write_spec: Callable[[str], Path], receiver: HttpPeer
) -> None:
    spec = write_spec(f"  - {{channel: webhook, url: '{receiver.url('/hook')}'}}\n")

    result = cli("render", str(spec), "--deliver", "--dry-run")

    assert result.exit_code == 0, result.stderr
    assert "dry run: nothing was sent or recorded" in result.stdout
    assert "--- webhook: 1 recipient ---" in result.stdout
    assert f"POST {receiver.url('/hook')}" in result.stdout
    assert receiver.received() == []
    assert _show(cli, _only_run(project))["deliveries"]["recipients"] == []


def test_only_delivers_the_named_delivery(
    cli: Cli, project: Path, write_spec: Callable[[str], Path], receiver: HttpPeer
) -> None:
    spec = write_spec(
        f"  - {{id: ops, channel: webhook, url: '{receiver.url('/ops')}'}}\n"
        f"  - {{id: audit, channel: webhook, url: '{receiver.url('/audit')}'}}\n"
    )
    assert cli("render", str(spec)).exit_code == 0
    run_id = _only_run(project)

    result = cli("deliver", run_id, "--only", "audit")

    assert result.exit_code == 0, result.stderr
    assert [r.path for r in receiver.received()] == ["/audit"]
    unknown = cli("deliver", run_id, "--only", "slack")
    assert unknown.exit_code == 2
    assert (
        unknown.stderr.strip() == "error: --only: health has no delivery 'slack'; its deliveries: audit, ops, webhook"
    )


def test_a_failed_run_sends_its_failure_deliveries(
    cli: Cli, project: Path, write_spec: Callable[[str], Path], receiver: HttpPeer
) -> None:
    spec = write_spec(
        f"  - {{id: oncall, channel: webhook, url: '{receiver.url('/oncall')}', when: failure}}\n"
        f"  - {{id: readers, channel: webhook, url: '{receiver.url('/readers')}'}}\n"
    )
    spec.write_text(
        spec.read_text().replace(
            "{kind: sample, rows: 200, seed: 3}", "{kind: http, url: 'http://127.0.0.1:9/metrics', retries: 0}"
        )
    )

    result = cli("render", str(spec), "--deliver")

    assert result.exit_code == 1
    (request,) = receiver.received()
    assert request.path == "/oncall"
    payload = request.json()
    assert payload["type"] == "report.failed" and "127.0.0.1:9" in payload["data"]["error"]
    assert payload["data"]["artifacts"] == []


def test_recipients_a_stopped_process_was_sending_are_not_sent_again_unasked(
    cli: Cli, project: Path, write_spec: Callable[[str], Path], receiver: HttpPeer
) -> None:
    spec = write_spec(f"  - {{channel: webhook, url: '{receiver.url('/hook')}'}}\n")
    assert cli("render", str(spec), "--deliver", "--dry-run").exit_code == 0
    run_id = _only_run(project)
    # plan the row as a process would, and leave its claim as a process killed mid-send would
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    worker = f"{socket.gethostname()}:{dead.stdout.strip()}"
    with open_store(find_project()) as store:
        from reportctl.delivery.engine import DeliveryTarget, _key

        ledger = DeliveryLedger(store)
        target = DeliveryTarget.recorded(store.get_run(run_id))
        key = _key(run_id, "webhook", receiver.url("/hook"), sorted(a.sha256 for a in target.artifacts))
        from reportctl.state.ledger import PlannedRecipient

        (row,) = ledger.plan(run_id, "webhook", "webhook", [PlannedRecipient(receiver.url("/hook"), "to", key)])
        assert ledger.claim([row.id], worker, datetime.now(UTC)) == [row.id]

    result = cli("deliver", run_id)

    assert result.exit_code == 3
    assert f"when {worker} stopped (between " in result.stdout
    assert "recorded unknown rather than risk a second copy (--resend-unknown sends them again)" in result.stdout
    assert receiver.received() == []
    entry = _show(cli, run_id)["deliveries"]["recipients"][0]
    assert entry["status"] == "unknown"
    assert entry["response"].startswith(f"interrupted while sending: {worker} stopped between ")
    assert cli("deliver", run_id, "--retry-failed").exit_code == 3, "an unknown delivery is not a failed one"
    assert receiver.received() == []
    assert cli("deliver", run_id, "--resend-unknown").exit_code == 0
    assert len(receiver.received()) == 1


def test_a_run_being_delivered_by_a_live_process_is_left_alone(
    cli: Cli, project: Path, write_spec: Callable[[str], Path]
) -> None:
    write_spec("  - {channel: webhook, url: 'http://127.0.0.1:9/hook'}\n")
    with open_store(find_project()) as store:
        run = store.create_run("health", spec_path=str(project / "specs" / "health.yaml"))
        for state in (RunState.GENERATING, RunState.FORMATTING, RunState.DISTRIBUTING):
            store.transition(run.id, state)

    result = cli("deliver", run.id)

    assert result.exit_code == 1
    assert result.stderr.strip().startswith(f"error: run {run.id} is being delivered by ")


PEOPLE = """\
people:
  - {email: ada@example.com, teams: [sre]}
  - {email: grace@example.com, teams: [sre]}
  - {email: linus@example.org, teams: [platform]}
"""


def _email(server: Any, **options: Any) -> str:
    settings = {
        "channel": "email",
        "host": "127.0.0.1",
        "port": server.port,
        "security": "none",
        "from": "r@example.com",
    }
    settings |= options
    return f"  - {json.dumps(settings)}\n"


def test_acceptance_email_and_webhook_show_every_recipient_sent(
    cli: Cli, project: Path, write_spec: Callable[[str], Path], receiver: HttpPeer
) -> None:
    (project / "people.yaml").write_text(PEOPLE)
    with smtp_server() as server:
        spec = write_spec(
            _email(server, to=["team:sre", "cto@example.com"], cc=["team:platform"], attach=["csv"])
            + f"  - {{channel: webhook, url: '{receiver.url('/reports')}', secret: '{SECRET}'}}\n"
        )
        result = cli("render", str(spec), "--deliver")
        assert result.exit_code == 0, result.stderr
        run_id = _only_run(project)
        (message,) = server.messages
    assert sorted(message.rcpt_tos) == ["ada@example.com", "cto@example.com", "grace@example.com", "linus@example.org"]
    parsed = message.parsed()
    assert parsed["Subject"] == "Health of eu" and parsed["Cc"] == "linus@example.org"
    assert [part.get_filename() for part in parsed.iter_attachments()] == ["health.csv"]
    assert _verified(receiver.received())[0]["data"]["run_id"] == run_id
    shown = _show(cli, run_id)
    assert shown["deliveries"]["counts"] == {"email": {"sent": 4}, "webhook": {"sent": 1}}
    assert {(r["recipient"], r["role"]) for r in shown["deliveries"]["recipients"] if r["kind"] == "email"} == {
        ("ada@example.com", "to"),
        ("grace@example.com", "to"),
        ("cto@example.com", "to"),
        ("linus@example.org", "cc"),
    }
    assert (shown["deliveries"]["total"], shown["deliveries"]["sent"]) == (5, 5)
    text = cli("runs", "show", run_id).stdout
    assert "deliveries\n  sent to 5 of 5\n  email (email): 4 sent\n" in text
    assert "\n  webhook (webhook): 1 sent\n" in text


def test_a_refused_recipient_bounces_alone_and_an_empty_team_is_recorded(
    cli: Cli, project: Path, write_spec: Callable[[str], Path]
) -> None:
    (project / "people.yaml").write_text(PEOPLE + "lists:\n  nobody: []\n")
    with smtp_server(refuse=["grace@example.com"]) as server:
        spec = write_spec(_email(server, to=["team:sre", "list:nobody"]))
        result = cli("render", str(spec), "--deliver")
        received = [address for message in server.messages for address in message.rcpt_tos]
    assert result.exit_code == 3
    assert received == ["ada@example.com"]
    rows = {r["recipient"]: r for r in _show(cli, _only_run(project))["deliveries"]["recipients"]}
    assert rows["ada@example.com"]["status"] == "sent"
    assert rows["grace@example.com"]["status"] == "bounced" and "550 5.1.1" in rows["grace@example.com"]["response"]
    assert rows["list:nobody"]["status"] == "failed" and rows["list:nobody"]["attempts"] == 0
    assert "has no members in people.yaml" in rows["list:nobody"]["response"]
    run_id = _only_run(project)
    assert "\n  sent to 1 of 3 (1 bounced, 1 failed)\n" in cli("runs", "show", run_id).stdout
    retried = cli("deliver", run_id, "--retry-failed")
    assert retried.exit_code == 3, "the empty list is still empty, the bounce still a bounce"
    counts = _show(cli, run_id)["deliveries"]["counts"]
    assert counts == {"email": {"sent": 1, "bounced": 1, "failed": 1}}, "nothing left pending, nothing sent again"


CRASH_AFTER_FIRST_BATCH = """
import os, sys
import reportctl.delivery.sending as sending
send = sending._BatchSender.send
def send_then_die(self, batch):
    send(self, batch)
    os._exit(9)  # as kill -9 between two batches: the first is recorded sent, the rest never claimed
sending._BatchSender.send = send_then_die
from reportctl.cli import main
sys.argv = ["reportctl", "render", "--deliver", sys.argv[1]]
main()
"""


def _render_and_die_after_one_batch(spec: Path, project: Path) -> str:
    """``render --deliver`` in a process killed right after its first batch is recorded; the run's id."""
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_FIRST_BATCH, str(spec)], capture_output=True, check=False
    )
    assert crashed.returncode == 9, crashed.stderr.decode()
    return _only_run(project)


def test_a_crash_between_batches_resumes_with_the_rest_and_sends_nobody_twice(
    cli: Cli, project: Path, write_spec: Callable[[str], Path]
) -> None:
    addresses = [f"reader{n}@example.com" for n in range(5)]
    with smtp_server() as server:
        run_id = _render_and_die_after_one_batch(write_spec(_email(server, to=addresses, batch_size=2)), project)
        assert _show(cli, run_id)["state"] == "DISTRIBUTING"
        assert [m.rcpt_tos for m in server.messages] == [addresses[:2]]

        resumed = cli("deliver", run_id, "--retry-failed")

        assert resumed.exit_code == 0, resumed.stderr
        received = [address for message in server.messages for address in message.rcpt_tos]
    assert sorted(received) == sorted(addresses), "every reader got the report exactly once"
    shown = _show(cli, run_id)
    assert shown["state"] == "COMPLETED" and shown["deliveries"]["counts"] == {"email": {"sent": 5}}
    assert all(row["attempts"] == 1 for row in shown["deliveries"]["recipients"])


def test_a_scheduled_run_is_delivered_as_its_distributing_stage(
    cli: Cli, project: Path, write_spec: Callable[[str], Path], receiver: HttpPeer
) -> None:
    spec = write_spec(f"  - {{channel: webhook, url: '{receiver.url('/hook')}'}}\n")
    spec.write_text(spec.read_text() + "schedule: {cron: '0 9 * * *', timezone: UTC}\n")

    result = cli("schedule", "tick", "--now", "2026-11-28T09:00:30Z")

    assert result.exit_code == 0, result.stderr
    run_id = _only_run(project)
    assert receiver.received()[0].json()["data"]["run_id"] == run_id
    shown = _show(cli, run_id)
    assert [t["state"] for t in shown["timeline"]][-2:] == ["DISTRIBUTING", "COMPLETED"]
    assert shown["deliveries"]["counts"] == {"webhook": {"sent": 1}}


def test_doctor_reaches_each_channel_without_sending(
    cli: Cli, project: Path, write_spec: Callable[[str], Path], receiver: HttpPeer
) -> None:
    with smtp_server() as server:
        write_spec(
            _email(server, to=["ops@example.com"])
            + "  - {channel: webhook, url: 'https://hooks.reportctl.invalid/x'}\n"
            + f"  - {{id: again, channel: webhook, url: '{receiver.url('/hook')}'}}\n"
        )
        result = cli("doctor", "--json")
        assert server.messages == []
    checks = [c for c in json.loads(result.stdout) if c["name"] in ("email", "webhook")]
    assert [(c["name"], c["ok"]) for c in checks] == [("email", True), ("webhook", False), ("webhook", True)]
    assert checks[0]["detail"].startswith(f"specs/health.yaml delivery[0]: 127.0.0.1:{server.port} answered 220")
    assert "hooks.reportctl.invalid" in checks[1]["detail"]
    assert receiver.received() == []
    assert result.exit_code == 1, "an unreachable channel is a problem to fix"


@pytest.mark.parametrize("finisher", ["daemon", "tick"])
def test_the_scheduler_finishes_the_delivery_of_a_run_whose_worker_died(
    cli: Cli, project: Path, write_spec: Callable[[str], Path], finisher: str
) -> None:
    from datetime import timedelta

    from reportctl.schedule.daemon import Daemon

    addresses = [f"reader{n}@example.com" for n in range(4)]
    later = datetime.now(UTC) + timedelta(hours=1)
    with smtp_server() as server:
        run_id = _render_and_die_after_one_batch(write_spec(_email(server, to=addresses, batch_size=2)), project)
        with open_store(find_project()) as store:  # the worker is gone; its last beat ages past the timeout
            silence(store, run_id, silent_for=timedelta(hours=1), worker=store.get_run(run_id).worker or "")
        if finisher == "daemon":
            with open_store(find_project()) as store:
                daemon = Daemon(find_project(), store)
                assert daemon.reap() == [run_id]
                for thread in daemon.resuming:
                    thread.join(timeout=30)
        else:
            ticked = cli("schedule", "tick", "--now", later.isoformat())
            assert ticked.exit_code == 0, ticked.stderr
        received = sorted(address for message in server.messages for address in message.rcpt_tos)
    assert received == sorted(addresses)
    shown = _show(cli, run_id)
    assert shown["state"] == "COMPLETED" and shown["deliveries"]["counts"] == {"email": {"sent": 4}}
    assert "finishes the delivery" in shown["timeline"][-1]["detail"]


def test_s3_goes_first_and_the_other_channels_link_to_what_it_uploaded(
    cli: Cli, project: Path, write_spec: Callable[[str], Path], receiver: HttpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import requests
    from s3_server import REGION, running_moto_server

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with running_moto_server() as s3, smtp_server() as server:
        s3.client().create_bucket(Bucket="reports")
        spec = write_spec(
            _email(server, to=["ops@example.com"], attach=["csv"], max_attachment_size="10B")
            + f"  - {{channel: webhook, url: '{receiver.url('/hook')}'}}\n"
            + f"  - {{channel: s3, url: 's3://reports/{{{{ name }}}}/', endpoint_url: '{s3.endpoint}'}}\n"
        )
        result = cli("render", str(spec), "--deliver")
        assert result.exit_code == 0, result.stderr
        (request,) = receiver.received()
        artifacts = {a["format"]: a for a in request.json()["data"]["artifacts"]}
        with requests.get(artifacts["csv"]["url"], timeout=10) as download:
            assert download.status_code == 200
            assert hashlib.sha256(download.content).hexdigest() == artifacts["csv"]["sha256"]
        body = server.messages[0].parsed().get_body(("plain",)).get_content()
        assert artifacts["csv"]["url"] in body, "too large to attach (10 B), so the email links to the upload"
    rows = _show(cli, _only_run(project))["deliveries"]["recipients"]
    assert [(r["channel"], r["status"]) for r in rows] == [("email", "sent"), ("s3", "sent"), ("webhook", "sent")]


def test_five_webhooks_at_once_on_sqlite_and_postgresql(
    cli: Cli,
    project: Path,
    write_spec: Callable[[str], Path],
    receiver: HttpPeer,
    store_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paths = [f"/hook/{n}" for n in range(20)]
    for path in paths[:3]:
        receiver.script(path, Reply(503), Reply(200))
    urls = [receiver.url(path) for path in paths]
    spec = write_spec(f"  - {{channel: webhook, url: {json.dumps(urls)}, concurrency: 5, backoff: 10ms}}\n")
    monkeypatch.setenv("REPORTCTL_STATE_URL", store_url)

    result = cli("render", str(spec), "--deliver", "--json")

    assert result.exit_code == 0, result.stderr
    assert sorted(r.path for r in receiver.received()) == sorted(paths + paths[:3])
    rows = json.loads(result.stdout)["delivery"]["recipients"]
    assert {row["recipient"]: row["attempts"] for row in rows} == {url: 2 if n < 3 else 1 for n, url in enumerate(urls)}
    assert {row["status"] for row in rows} == {"sent"} and all(row["claimed_by"] is None for row in rows)
