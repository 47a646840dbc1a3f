"""A process killed while it sends: its recipients become ``unknown``, are sent again only on request, and the copy
carries the id of the first send so its receiver can drop it.

The sender is a real ``reportctl render --deliver`` in a child process, killed with SIGKILL by its pid while its
send is in the peer's hands: an SMTP server that has the whole message but holds back its answer, or an HTTP
receiver that holds the request. Both record what arrived, so the tests compare what the receiver saw twice.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from http_peers import FakeSlack, HttpPeer, Reply, running
from smtp_server import HOST, ReceivedMessage, RecordingHandler, free_port, smtp_server
from standardwebhooks.webhooks import Webhook

from conftest import CliResult
from reportctl.config import find_project
from reportctl.state import open_store
from reportctl.state.ledger import DeliveryLedger

Cli = Callable[..., CliResult]
SECRET = "whsec_" + base64.b64encode(b"a key for the crash-resend tests").decode()
REPORT = """\
apiVersion: reportctl/v1
name: health
title: Health
sources:
  metrics: {kind: sample, rows: 50, seed: 3}
datasets:
  by_service: {from: metrics, group_by: [service], aggregate: {samples: count()}}
sections:
  - {id: services, type: table, dataset: by_service}
outputs: [csv]
delivery:
"""
RENDER_AND_DELIVER = "import sys; from reportctl.cli import main; sys.argv = ['reportctl', *sys.argv[1:]]; main()"


@dataclass
class HoldingHandler(RecordingHandler):
    """Records every message; holds back the answer to the first DATA whose envelope includes ``hold_for`` until
    ``release`` is set, and defers each address of ``defer_once`` (450) at its first RCPT only."""

    hold_for: str = ""
    defer_once: set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)
    held: list[ReceivedMessage] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.defer_once:
            self.defer_once.discard(address)
            return f"450 4.2.1 <{address}>: Mailbox busy, try again later"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.held or self.hold_for not in envelope.rcpt_tos:
            return await super().handle_DATA(server, session, envelope)
        content = envelope.original_content or b""
        self.held.append(ReceivedMessage(str(envelope.mail_from), list(envelope.rcpt_tos), content, session.peer))
        while not self.release.is_set():
            await asyncio.sleep(0.02)
        return "451 4.3.0 answered too late: the sender is gone"


@contextmanager
def holding_smtp_server(hold_for: str, defer_once: set[str] | None = None) -> Iterator[tuple[int, HoldingHandler]]:
    """(port, handler) of an SMTP server on 127.0.0.1 that holds the first message to ``hold_for`` unanswered."""
    handler = HoldingHandler(hold_for=hold_for, defer_once=set(defer_once or ()))
    port = free_port()
    controller = Controller(handler, hostname=HOST, port=port, server_hostname="smtp.test", ident="test")
    controller.start()
    try:
        yield port, handler
    finally:
        handler.release.set()
        controller.stop()


@pytest.fixture
def write_spec(project: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    monkeypatch.delenv("REPORTCTL_STATE_URL", raising=False)

    def write(delivery: str) -> Path:
        path = project / "specs" / "health.yaml"
        path.write_text(REPORT + delivery)
        return path

    return write


def _email(port: int, **options: Any) -> str:
    # the peer holds its answer until the sender is killed: a long timeout keeps a slow machine from giving up first
    settings = {"channel": "email", "host": HOST, "port": port, "security": "none", "from": "r@example.com"}
    settings["timeout"] = "60s"
    return f"  - {json.dumps(settings | options)}\n"


def _killed_while_sending(spec: Path, arrived: Callable[[], bool]) -> int:
    """Run ``render --deliver SPEC`` in a child process and kill it with SIGKILL as soon as ``arrived()`` says its send
    reached the peer (which holds it unanswered); the dead child's pid."""
    child = subprocess.Popen(
        [sys.executable, "-c", RENDER_AND_DELIVER, "render", "--deliver", str(spec)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not arrived() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        reached = arrived()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        _, errors = child.communicate()  # reaped: its pid is gone, as after a crash
    assert reached, f"the send never reached the peer: {errors.decode()}"
    assert child.returncode == -signal.SIGKILL
    return child.pid


def _only_run(project: Path) -> str:
    (run,) = (project / "out" / "health").iterdir()
    return run.name


def _show(cli: Cli, run_id: str) -> dict[str, Any]:
    result = cli("runs", "show", run_id, "--json")
    assert result.exit_code == 0, result.stderr
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


def _rows(cli: Cli, run_id: str) -> dict[str, dict[str, Any]]:
    return {row["recipient"]: row for row in _show(cli, run_id)["deliveries"]["recipients"]}


def _has_outcome(project: Path, recipient: str) -> bool:
    """Whether the ledger holds an outcome for ``recipient`` yet (the run's only one, read from the state store)."""
    runs = list((project / "out" / "health").glob("*"))
    if not runs:
        return False
    with open_store(find_project()) as store:
        entries = DeliveryLedger(store).entries(runs[0].name)
    return any(e.recipient == recipient and e.status != "pending" for e in entries)


def test_an_email_in_flight_when_its_sender_is_killed_is_unknown_and_resent_only_on_request(
    cli: Cli, project: Path, write_spec: Callable[[str], Path]
) -> None:
    readers = ["ada@example.com", "grace@example.com"]
    with holding_smtp_server(hold_for="ada@example.com") as (port, server):
        spec = write_spec(_email(port, to=readers))
        pid = _killed_while_sending(spec, lambda: bool(server.held))
        run_id = _only_run(project)
        worker = f"{socket.gethostname()}:{pid}"

        plain = cli("deliver", run_id)

        assert plain.exit_code == 3
        assert f"note: 2 recipients were being sent to when {worker} stopped (between " in plain.stdout
        assert "recorded unknown rather than risk a second copy (--resend-unknown sends them again)" in plain.stdout
        assert plain.stdout.count("  unknown  email      ") == 2
        assert plain.stderr.strip() == (
            f"error: run {run_id}: not every recipient is known to have got the report (2 unknown); `reportctl runs"
            f" show {run_id}` lists them, `reportctl deliver {run_id} --resend-unknown` sends the unknown ones again"
            " (they may have it)"
        )
        rows = _rows(cli, run_id)
        assert {row["status"] for row in rows.values()} == {"unknown"}
        response = rows["ada@example.com"]["response"]
        assert response.startswith(f"interrupted while sending: {worker} stopped between ")
        assert response.endswith(f"(`reportctl deliver {run_id} --resend-unknown` sends it again)")
        assert all(row["attempts"] == 1 and row["claimed_by"] is None for row in rows.values())
        shown = _show(cli, run_id)
        assert shown["state"] == "COMPLETED" and shown["deliveries"]["unknown"] == 2
        assert shown["deliveries"]["counts"] == {"email": {"unknown": 2}}
        text = cli("runs", "show", run_id).stdout
        assert "\n  sent to 0 of 2 (2 unknown)\n" in text
        assert (
            f"\n  2 unknown (a process stopped while sending; it may have arrived): `reportctl deliver {run_id}" in text
        )

        dry = cli("deliver", run_id, "--dry-run")
        assert "not sent again: ada@example.com (unknown), grace@example.com (unknown)" in dry.stdout

        retried = cli("deliver", run_id, "--retry-failed")

        assert retried.exit_code == 3
        assert server.messages == [], "--retry-failed does not send what may have arrived"
        assert (
            "note: --retry-failed leaves alone the 2 recipients whose delivery is unknown (a process stopped while"
            " sending to them, so they may have it already); --resend-unknown sends them again"
        ) in retried.stdout

        resent = cli("deliver", run_id, "--resend-unknown")

        assert resent.exit_code == 0, resent.stderr
        (first,) = server.held
        (again,) = server.messages
        assert again.parsed()["Message-ID"] == first.parsed()["Message-ID"]
        assert again.data == first.data, "the same message, byte for byte"
        assert again.rcpt_tos == first.rcpt_tos == readers
        assert (
            "note: email: tried again the 2 recipients whose first send may have arrived; each message went again"
            " with the Message-ID of the first, by which mail systems can drop the copy"
        ) in resent.stdout
        rows = _rows(cli, run_id)
        assert {(row["status"], row["attempts"]) for row in rows.values()} == {("sent", 2)}

        assert cli("deliver", run_id, "--resend-unknown", "--retry-failed").exit_code == 0
        assert len(server.messages) == 1, "a recipient sent to is never sent to again"


def test_unknown_recipients_go_again_as_the_message_they_were_first_sent_in(
    cli: Cli, project: Path, write_spec: Callable[[str], Path]
) -> None:
    a, b, c, d = (f"{name}@example.com" for name in ("ada", "bob", "cyd", "dee"))
    # ada is deferred once and given up on (failed); [ada, bob] reaches bob; [cyd, dee] is in flight at the kill
    with holding_smtp_server(hold_for=c, defer_once={a}) as (port, server):
        spec = write_spec(_email(port, to=[a, b, c, d], batch_size=2, retries=0))
        _killed_while_sending(spec, lambda: bool(server.held))
        run_id = _only_run(project)
        assert [m.rcpt_tos for m in server.messages] == [[b]]
        assert cli("deliver", run_id).exit_code == 3
        statuses = {address: row["status"] for address, row in _rows(cli, run_id).items()}
        assert statuses == {a: "failed", b: "sent", c: "unknown", d: "unknown"}

        result = cli("deliver", run_id, "--retry-failed", "--resend-unknown")

        assert result.exit_code == 0, result.stderr
        (held,) = server.held
        first, *resent = server.messages
        assert sorted(m.rcpt_tos for m in resent) == [[a], [c, d]], "not [ada, cyd] and [dee]: those are new messages"
        (copy,) = [m for m in resent if m.rcpt_tos == [c, d]]
        assert copy.parsed()["Message-ID"] == held.parsed()["Message-ID"]
        (retry,) = [m for m in resent if m.rcpt_tos == [a]]
        assert retry.parsed()["Message-ID"] not in (held.parsed()["Message-ID"], first.parsed()["Message-ID"])
    assert {row["status"] for row in _rows(cli, run_id).values()} == {"sent"}


def test_a_webhook_in_flight_when_its_sender_is_killed_is_resent_with_the_same_webhook_id(
    cli: Cli, project: Path, write_spec: Callable[[str], Path]
) -> None:
    with running(HttpPeer()) as receiver:
        receiver.script("/held", Reply(hang=60), Reply(200))
        receiver.script("/gone", Reply(404, "no such hook"))
        urls = [receiver.url("/held"), receiver.url("/gone")]
        spec = write_spec(f"  - {{channel: webhook, url: {json.dumps(urls)}, secret: '{SECRET}', timeout: 60s}}\n")
        # killed once /held is in the receiver's hands and /gone's 404 is recorded
        _killed_while_sending(spec, lambda: bool(receiver.received("/held")) and _has_outcome(project, urls[1]))
        run_id = _only_run(project)
        receiver.script("/gone", Reply(200))

        retried = cli("deliver", run_id, "--retry-failed")

        assert retried.exit_code == 3
        assert len(receiver.received("/gone")) == 2, "the failed one is sent again"
        assert len(receiver.received("/held")) == 1, "the one that may have arrived is not"
        assert "--retry-failed leaves alone the 1 recipient whose delivery is unknown" in retried.stdout
        assert f"`reportctl deliver {run_id} --resend-unknown` sends the unknown ones again" in retried.stderr
        assert _rows(cli, run_id)[urls[0]]["status"] == "unknown"

        resent = cli("deliver", run_id, "--resend-unknown")

        assert resent.exit_code == 0, resent.stderr
        first, again = receiver.received("/held")
        assert again.header("webhook-id") == first.header("webhook-id")
        assert Webhook(SECRET).verify(again.body, again.headers) == Webhook(SECRET).verify(first.body, first.headers)
        assert "each request went again with the webhook-id of the first, by which receivers drop" in resent.stdout
    assert _show(cli, run_id)["deliveries"]["counts"] == {"webhook": {"sent": 2}}


def test_resending_to_slack_posts_again_and_says_so(cli: Cli, project: Path, write_spec: Callable[[str], Path]) -> None:
    with running(FakeSlack("xoxb-test")) as slack:
        slack.script(FakeSlack.WEBHOOK_PATH, Reply(hang=60))
        spec = write_spec(f"  - {{channel: slack, webhook_url: '{slack.webhook_url}', timeout: 60s}}\n")
        _killed_while_sending(spec, lambda: bool(slack.received(FakeSlack.WEBHOOK_PATH)))
        run_id = _only_run(project)
        slack.script(FakeSlack.WEBHOOK_PATH)  # answered as Slack does from now on
        assert cli("deliver", run_id, "--retry-failed").exit_code == 3
        assert len(slack.received(FakeSlack.WEBHOOK_PATH)) == 1

        resent = cli("deliver", run_id, "--resend-unknown")

        assert resent.exit_code == 0, resent.stderr
        first, again = slack.received(FakeSlack.WEBHOOK_PATH)
        assert again.json() == first.json(), "the same post, which Slack shows a second time"
        assert (
            "note: slack: tried again the 1 recipient whose first send may have arrived; Slack has no id by which a"
            " repeated post is dropped, so those channels may show the report twice"
        ) in resent.stdout


def test_a_later_delivery_tells_the_run_time_the_first_one_did(
    cli: Cli, project: Path, write_spec: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    subject = "Health on {{ run.date }}"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764320400")  # 2025-11-28 09:00 UTC: the run's time, not the clock's
    with smtp_server() as server:
        spec = write_spec(_email(server.port, to=["ada@example.com"], subject=subject))
        assert cli("render", str(spec), "--deliver").exit_code == 0
        monkeypatch.delenv("SOURCE_DATE_EPOCH")
        write_spec(_email(server.port, to=["ada@example.com", "grace@example.com"], subject=subject))

        later = cli("deliver", _only_run(project))

        assert later.exit_code == 0, later.stderr
        first, second = (message.parsed() for message in server.messages)
    assert second["To"] == "grace@example.com", "ada already has it"
    assert (first["Date"], first["Subject"]) == ("Fri, 28 Nov 2025 09:00:00 +0000", "Health on 2025-11-28")
    assert (second["Date"], second["Subject"]) == (first["Date"], first["Subject"])
