"""The slack channel against a fake Slack Web API and incoming webhook on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from http_peers import FakeSlack, Reply, running
from pydantic import ValidationError

from reportctl.config import Project, ProjectConfig
from reportctl.delivery.base import ChannelCheckError, DeliveryContext, PermanentFailure
from reportctl.delivery.slack import SlackChannel, SlackOptions

TOKEN = "xoxb-1234-5678-reportctltest"
CHANNEL = "C0123456789"
MakeChannel = Callable[..., SlackChannel]


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with running(FakeSlack(TOKEN)) as peer:
        yield peer


@pytest.fixture
def make_channel(slack: FakeSlack, delivery_context: Callable[..., DeliveryContext]) -> Iterator[MakeChannel]:
    """``make(context=None, **options)``: a slack channel talking to the fake, closed after the test."""
    channels: list[SlackChannel] = []

    def make(context: DeliveryContext | None = None, **options: Any) -> SlackChannel:
        values = {"channel": "slack", "api_url": slack.api_url, **options}
        channel = SlackChannel(SlackOptions.model_validate(values), context or delivery_context())
        channels.append(channel)
        return channel

    yield make
    for channel in channels:
        channel.close()


def test_incoming_webhook_posts_text_and_blocks(slack: FakeSlack, make_channel: MakeChannel) -> None:
    channel = make_channel(webhook_url=slack.webhook_url)
    [recipient] = channel.recipients()

    outcome = channel.send([recipient])[recipient.address]

    assert recipient.address == "slack:webhook 127.0.0.1/…"
    assert "webhooksecret" not in recipient.address
    assert (outcome.status, outcome.response) == ("sent", "200 OK")
    [message] = slack.messages
    lines = message["text"].splitlines()
    assert lines[0] == "*Server health* — run 20261128T090000Z-ab12 completed"
    assert lines[1:] == ["• server-health.pdf (2.4 KiB)", "• server-health.xlsx (10.0 KiB)", "• latency.csv (32 B)"]
    section, context = message["blocks"]
    assert section == {"type": "section", "text": {"type": "mrkdwn", "text": message["text"]}}
    assert context["type"] == "context"
    assert "server-health" in context["elements"][0]["text"]
    assert slack.received()[0].header("Authorization") is None


def test_default_text_links_artifacts_and_shows_a_failure(
    slack: FakeSlack, make_channel: MakeChannel, delivery_context: Callable[..., DeliveryContext], tmp_path: Path
) -> None:
    project = Project(tmp_path, ProjectConfig(artifact_base_url="https://reports.example.com/out"), None)
    context = delivery_context(project=project, status="failed", error="source 'db' <timed out>")
    channel = make_channel(context, webhook_url=slack.webhook_url)

    channel.send(channel.recipients())

    lines = slack.messages[0]["text"].splitlines()
    assert lines[0] == "*Server health* — run 20261128T090000Z-ab12 failed"
    assert lines[1] == "> source 'db' &lt;timed out&gt;"
    link = "https://reports.example.com/out/server-health/20261128T090000Z-ab12/latency.csv"
    assert lines[-1] == f"• <{link}|latency.csv> (32 B)"


@pytest.mark.parametrize(
    ("reply", "status", "response"),
    [
        (Reply(404, "no_service"), "failed", "404 Not Found: no_service; the webhook was removed"),
        (Reply(410, "channel_is_archived"), "failed", "410 Gone: channel_is_archived; the webhook was removed"),
        (Reply(503, "unavailable"), "retry", "503 Service Unavailable: unavailable"),
        (Reply(429, "rate_limited", {"Retry-After": "7"}), "retry", "429 Too Many Requests: rate_limited"),
    ],
)
def test_incoming_webhook_errors(
    slack: FakeSlack, make_channel: MakeChannel, reply: Reply, status: str, response: str
) -> None:
    slack.script(FakeSlack.WEBHOOK_PATH, reply)
    channel = make_channel(webhook_url=slack.webhook_url)
    [recipient] = channel.recipients()

    outcome = channel.send([recipient])[recipient.address]

    assert outcome.status == status
    assert outcome.response.startswith(response)
    assert outcome.retry_after == (7.0 if reply.status == 429 else None)


def test_bot_uploads_attachments_with_the_external_upload_flow(
    slack: FakeSlack, make_channel: MakeChannel, delivery_context: Callable[..., DeliveryContext]
) -> None:
    context = delivery_context()
    channel = make_channel(context, token=TOKEN, to=[CHANNEL], attach=["pdf", "xlsx"])
    [recipient] = channel.recipients()

    outcome = channel.send([recipient])[recipient.address]

    assert recipient.address == f"slack:{CHANNEL}"
    assert outcome.status == "sent"
    assert outcome.response == f"posted to {CHANNEL} with 2 files (F00000001, F00000002)"
    assert [r.path for r in slack.received()] == [
        "/api/files.getUploadURLExternal",
        "/upload/F00000001",
        "/api/files.getUploadURLExternal",
        "/upload/F00000002",
        "/api/files.completeUploadExternal",
    ]
    pdf, xlsx = context.artifact("pdf"), context.artifact("xlsx")
    assert pdf is not None
    assert xlsx is not None
    first, _, second, _, complete = slack.received()
    assert first.form() == {"filename": "server-health.pdf", "length": str(pdf.bytes)}
    assert second.form() == {"filename": "server-health.xlsx", "length": str(xlsx.bytes)}
    assert slack.uploads == {"F00000001": pdf.path.read_bytes(), "F00000002": xlsx.path.read_bytes()}
    assert all(r.header("Authorization") is None for r in slack.received() if r.path.startswith("/upload/"))
    assert complete.header("Authorization") == f"Bearer {TOKEN}"
    body = complete.json()
    assert body["files"] == [
        {"id": "F00000001", "title": "server-health.pdf"},
        {"id": "F00000002", "title": "server-health.xlsx"},
    ]
    assert body["channel_id"] == CHANNEL
    assert body["initial_comment"].startswith("*Server health* — run 20261128T090000Z-ab12 completed")


def test_bot_posts_a_message_without_attachments(slack: FakeSlack, make_channel: MakeChannel) -> None:
    channel = make_channel(token=TOKEN, to=[CHANNEL, "C0000000002"], text="Weekly {{ title }} for {{ params.region }}")
    recipients = channel.recipients()

    outcomes = [channel.send([r])[r.address] for r in recipients]

    assert [r.address for r in recipients] == [f"slack:{CHANNEL}", "slack:C0000000002"]
    assert [o.status for o in outcomes] == ["sent", "sent"]
    assert outcomes[0].response == f"posted to {CHANNEL} (ts 1700000000.000100)"
    assert [m["channel"] for m in slack.messages] == [CHANNEL, "C0000000002"]
    assert slack.messages[0]["text"] == "Weekly Server health for eu"
    assert slack.messages[0]["blocks"][0]["text"] == {"type": "mrkdwn", "text": "Weekly Server health for eu"}
    request = slack.received("/api/chat.postMessage")[0]
    assert request.header("Content-Type") == "application/json; charset=utf-8"
    assert channel.rate_limit == 1.0
    assert (channel.batch_size, channel.concurrency) == (1, 1)


def test_channel_the_bot_is_not_in_fails_for_that_channel_only(slack: FakeSlack, make_channel: MakeChannel) -> None:
    slack.channel_errors["C0000000404"] = "channel_not_found"
    channel = make_channel(token=TOKEN, to=["C0000000404", CHANNEL])
    missing, present = channel.recipients()

    failed = channel.send([missing])[missing.address]
    sent = channel.send([present])[present.address]

    assert failed.status == "failed"
    assert failed.response == (
        "chat.postMessage: channel_not_found; "
        "invite the bot to C0000000404 (/invite @your-bot) or correct the channel id"
    )
    assert sent.status == "sent"
    assert [m["channel"] for m in slack.messages] == [CHANNEL]


def test_refused_token_fails_the_whole_delivery(slack: FakeSlack, make_channel: MakeChannel) -> None:
    channel = make_channel(token="xoxb-revoked", to=[CHANNEL], attach=["pdf"])

    with pytest.raises(PermanentFailure, match=r"Slack refused the token \(invalid_auth\); check token") as caught:
        channel.send(channel.recipients())

    assert "xoxb-revoked" not in str(caught.value)
    assert [r.path for r in slack.received()] == ["/api/files.getUploadURLExternal"]
    assert slack.messages == []


@pytest.mark.parametrize("http_status", [429, 200])
def test_rate_limited_post_is_retried_after_what_slack_asks(
    slack: FakeSlack, make_channel: MakeChannel, http_status: int
) -> None:
    limited = Reply(http_status, {"ok": False, "error": "ratelimited"}, {"Retry-After": "3"})
    slack.script("/api/chat.postMessage", limited, Reply(200, {"ok": True, "ts": "1.2"}))
    channel = make_channel(token=TOKEN, to=[CHANNEL])
    recipients = channel.recipients()

    first = channel.send(recipients)[recipients[0].address]
    second = channel.send(recipients)[recipients[0].address]

    assert (first.status, first.retry_after) == ("retry", 3.0)
    assert "ratelimited" in first.response
    assert first.response.startswith("chat.postMessage: ")
    assert (second.status, second.response) == ("sent", f"posted to {CHANNEL} (ts 1.2)")


def test_preview_describes_the_upload_without_sending(slack: FakeSlack, make_channel: MakeChannel) -> None:
    channel = make_channel(token=TOKEN, to=[CHANNEL], attach=["pdf", "docx"])

    text = channel.preview(channel.recipients())

    assert "upload server-health.pdf (2.4 KiB)" in text
    assert "docx" not in text
    assert f"files.completeUploadExternal to {CHANNEL}" in text
    assert TOKEN not in text
    assert slack.received() == []


def test_check_asks_auth_test_who_the_bot_is(slack: FakeSlack, tmp_path: Path) -> None:
    project = Project(tmp_path, ProjectConfig(), None)
    options = SlackOptions(channel="slack", token=TOKEN, to=[CHANNEL], api_url=slack.api_url)

    assert SlackChannel.check(options, project) == "slack bot 'reportbot' in team 'Acme'"
    assert [r.path for r in slack.received()] == ["/api/auth.test"]

    wrong = options.model_copy(update={"token": "xoxb-wrong"})
    with pytest.raises(ChannelCheckError, match=r"auth\.test: invalid_auth; check token"):
        SlackChannel.check(wrong, project)
    assert slack.messages == []


def test_check_of_a_webhook_resolves_its_host_only(slack: FakeSlack, tmp_path: Path) -> None:
    options = SlackOptions(channel="slack", webhook_url=slack.webhook_url)

    found = SlackChannel.check(options, Project(tmp_path, ProjectConfig(), None))

    assert found == "127.0.0.1 resolves to 127.0.0.1"
    assert slack.received() == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "set exactly one of webhook_url .* and token .*; neither is set"),
        ({"webhook_url": "https://hooks.slack.com/services/x", "token": "${secret:SLACK}"}, "; both are set"),
        (
            {"webhook_url": "https://hooks.slack.com/services/x", "attach": ["pdf"]},
            "attach: an incoming webhook cannot upload files, only post links; use token",
        ),
        ({"webhook_url": "https://hooks.slack.com/services/x", "to": [CHANNEL]}, "remove to, or use token"),
        ({"token": "${secret:SLACK}"}, "to: a bot token needs the channel ids"),
        ({"token": "${secret:SLACK}", "to": ["#general"]}, "'#general' is not a Slack channel id"),
        ({"webhook_url": "hooks.slack.com/services/x"}, "expected an https:// URL"),
        ({"token": "${secret:SLACK}", "to": [CHANNEL, CHANNEL]}, "listed more than once"),
    ],
)
def test_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SlackOptions.model_validate({"channel": "slack", **options})


def test_an_encrypted_deliverys_default_text_says_how_the_password_travels(
    slack: FakeSlack, make_channel: MakeChannel, delivery_context: Callable[..., DeliveryContext]
) -> None:
    from reportctl.delivery.encrypted import EncryptedFile, EncryptedFiles

    sealed = EncryptedFiles((EncryptedFile("server-health.pdf", "pdf", "PDF AES-256"),), "by SMS", False)
    channel = make_channel(delivery_context(encryption=sealed), webhook_url=slack.webhook_url)

    channel.send(channel.recipients())

    assert slack.messages[0]["text"].splitlines()[-1] == (
        "Encrypted: server-health.pdf (PDF AES-256). The password is not in this message: it travels by SMS."
    )
