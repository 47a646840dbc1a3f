"""The webhook channel against a real receiver on 127.0.0.1 that verifies Standard Webhooks signatures."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from http_peers import HttpPeer, Reply, running
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook

from reportctl.config import Project, ProjectConfig
from reportctl.delivery.base import ChannelCheckError, DeliveryContext, PermanentFailure
from reportctl.delivery.webhook import WebhookChannel, WebhookOptions
from reportctl.secrets import resolve_secrets

SECRET = "whsec_" + base64.b64encode(b"reportctl test signing key, 32b!").decode()
MakeChannel = Callable[..., WebhookChannel]


@pytest.fixture
def receiver() -> Iterator[HttpPeer]:
    with running(HttpPeer()) as peer:
        yield peer


@pytest.fixture
def make_channel(delivery_context: Callable[..., DeliveryContext]) -> Iterator[MakeChannel]:
    """``make(context=None, **options)``: a webhook channel, closed after the test."""
    channels: list[WebhookChannel] = []

    def make(context: DeliveryContext | None = None, **options: Any) -> WebhookChannel:
        channel = WebhookChannel(
            WebhookOptions.model_validate({"channel": "webhook", **options}), context or delivery_context()
        )
        channels.append(channel)
        return channel

    yield make
    for channel in channels:
        channel.close()


def verified(request: Any) -> Any:
    """The payload, after the reference implementation has checked its signature."""
    return Webhook(SECRET).verify(request.body, request.headers)


def test_signed_event_verifies_and_carries_the_run(
    receiver: HttpPeer, make_channel: MakeChannel, delivery_context: Callable[..., DeliveryContext], tmp_path: Path
) -> None:
    project = Project(tmp_path, ProjectConfig(artifact_base_url="https://reports.example.com/out/"), None)
    channel = make_channel(delivery_context(project=project), url=receiver.url("/hook"), secret=SECRET)
    [recipient] = channel.recipients()

    outcomes = channel.send([recipient])

    assert list(outcomes) == [recipient.address] == [receiver.url("/hook")]
    assert outcomes[recipient.address].status == "sent"
    assert outcomes[recipient.address].response == "200 OK"
    [request] = receiver.received("/hook")
    payload = verified(request)
    assert request.body == json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert request.header("Content-Type") == "application/json"
    assert (request.header("User-Agent") or "").startswith("reportctl/")
    assert payload["type"] == "report.completed"
    assert datetime.fromisoformat(payload["timestamp"]).tzinfo is not None
    data = payload["data"]
    assert data["run_id"] == "20261128T090000Z-ab12"
    assert (data["report"], data["title"], data["status"], data["error"]) == (
        "server-health",
        "Server health",
        "completed",
        None,
    )
    assert data["parameters"] == {"region": "eu"}
    assert data["generated_at"] == "2026-11-28T09:00:00+00:00"
    files = {a["format"]: a for a in data["artifacts"]}
    assert set(files) == {"pdf", "xlsx", "csv"}
    directory = tmp_path / "out" / "server-health" / "20261128T090000Z-ab12"
    for artifact in files.values():
        content = (directory / artifact["name"]).read_bytes()
        assert artifact["sha256"] == hashlib.sha256(content).hexdigest()
        assert artifact["bytes"] == len(content)
        assert artifact["url"] == (
            f"https://reports.example.com/out/server-health/20261128T090000Z-ab12/{artifact['name']}"
        )


def test_an_encrypted_deliverys_event_says_what_is_sealed_and_no_url_leads_to_a_plain_file(
    receiver: HttpPeer, make_channel: MakeChannel, delivery_context: Callable[..., DeliveryContext], tmp_path: Path
) -> None:
    from reportctl.delivery.encrypted import EncryptedFile, EncryptedFiles

    project = Project(tmp_path, ProjectConfig(artifact_base_url="https://reports.example.com/out/"), None)
    sealed = EncryptedFiles((EncryptedFile("server-health.pdf", "pdf", "PDF AES-256"),), None, False)
    channel = make_channel(delivery_context(project=project, encryption=sealed), url=receiver.url("/h"), secret=SECRET)

    channel.send(channel.recipients())

    data = verified(receiver.received("/h")[0])["data"]
    assert data["encryption"] == {
        "files": [{"name": "server-health.pdf", "format": "pdf", "method": "PDF AES-256"}],
        "passwords": "per delivery",
        "password_travels": "sent separately",
        "left_out": [],
    }
    assert {a["url"] for a in data["artifacts"]} == {None}


def test_failed_run_is_a_report_failed_event(
    receiver: HttpPeer, make_channel: MakeChannel, delivery_context: Callable[..., DeliveryContext]
) -> None:
    context = delivery_context(status="failed", error="source 'db' timed out", artifacts=())
    channel = make_channel(context, url=receiver.url("/hook"), secret=SECRET)

    channel.send(channel.recipients())

    payload = verified(receiver.received("/hook")[0])
    assert payload["type"] == "report.failed"
    assert payload["data"]["error"] == "source 'db' timed out"
    assert payload["data"]["artifacts"] == []


def test_server_error_is_retried_under_the_same_webhook_id(receiver: HttpPeer, make_channel: MakeChannel) -> None:
    receiver.script("/hook", Reply(500, "boom\n  at handler"), Reply(200, "thanks"))
    channel = make_channel(url=receiver.url("/hook"), secret=SECRET)
    recipients = channel.recipients()

    first = channel.send(recipients)[recipients[0].address]
    second = channel.send(recipients)[recipients[0].address]

    assert (first.status, first.response) == ("retry", "500 Internal Server Error: boom at handler")
    assert (second.status, second.response) == ("sent", "200 OK")
    requests = receiver.received("/hook")
    assert len(requests) == 2
    assert requests[0].header("webhook-id") == requests[1].header("webhook-id")
    assert (requests[0].header("webhook-id") or "").startswith("msg_")
    assert verified(requests[0]) == verified(requests[1])


def test_each_url_gets_its_own_webhook_id(receiver: HttpPeer, make_channel: MakeChannel) -> None:
    channel = make_channel(url=[receiver.url("/a"), receiver.url("/b")], secret=SECRET)

    for recipient in channel.recipients():
        channel.send([recipient])

    ids = {r.path: r.header("webhook-id") for r in receiver.received()}
    assert set(ids) == {"/a", "/b"}
    assert ids["/a"] != ids["/b"]


@pytest.mark.parametrize(
    ("retry_after", "low", "high"),
    [
        pytest.param(lambda: "1", 1.0, 1.0, id="seconds"),
        # the date is made when the test runs, not when tests are collected (a long suite would pass it by)
        pytest.param(
            lambda: format_datetime(datetime.now(UTC) + timedelta(minutes=10), usegmt=True), 500, 600, id="date"
        ),
    ],
)
def test_too_many_requests_is_retried_after_what_the_receiver_asks(
    receiver: HttpPeer, make_channel: MakeChannel, retry_after: Callable[[], str], low: float, high: float
) -> None:
    receiver.script("/hook", Reply(429, "slow down", {"Retry-After": retry_after()}), Reply(200))
    channel = make_channel(url=receiver.url("/hook"))
    recipients = channel.recipients()

    first = channel.send(recipients)[recipients[0].address]
    second = channel.send(recipients)[recipients[0].address]

    assert first.status == "retry"
    assert first.response == "429 Too Many Requests: slow down"
    assert first.retry_after is not None
    assert low <= first.retry_after <= high
    assert second.status == "sent"


def test_a_hanging_receiver_times_out_and_is_retried(receiver: HttpPeer, make_channel: MakeChannel) -> None:
    receiver.script("/hook", Reply(hang=30))
    channel = make_channel(url=receiver.url("/hook"), timeout="200ms")
    recipients = channel.recipients()

    outcome = channel.send(recipients)[recipients[0].address]

    assert (outcome.status, outcome.response) == ("retry", "timed out after 0.2 s")
    assert len(receiver.received("/hook")) == 1


def test_refused_connection_is_retried(make_channel: MakeChannel) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = make_channel(url=f"http://127.0.0.1:{port}/hook")
    recipients = channel.recipients()

    outcome = channel.send(recipients)[recipients[0].address]

    assert (outcome.status, outcome.response) == ("retry", f"connection refused by 127.0.0.1:{port}")


def test_client_error_fails_without_retry(receiver: HttpPeer, make_channel: MakeChannel) -> None:
    receiver.script("/hook", Reply(404, {"error": "no such hook"}))
    channel = make_channel(url=receiver.url("/hook"))
    recipients = channel.recipients()

    outcome = channel.send(recipients)[recipients[0].address]

    assert (outcome.status, outcome.response) == ("failed", '404 Not Found: {"error": "no such hook"}')
    assert outcome.retry_after is None


def test_redirect_is_not_followed_and_names_its_target(receiver: HttpPeer, make_channel: MakeChannel) -> None:
    receiver.script("/hook", Reply(302, headers={"Location": "/hooks/v2"}))
    channel = make_channel(url=receiver.url("/hook"))
    recipients = channel.recipients()

    outcome = channel.send(recipients)[recipients[0].address]

    assert outcome.status == "failed"
    assert outcome.response == f"302 Found: redirects to {receiver.url('/hooks/v2')}; point url there"
    assert [r.path for r in receiver.received()] == ["/hook"]


def test_url_holding_a_secret_is_masked_in_the_ledger(
    receiver: HttpPeer, make_channel: MakeChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPORTCTL_SECRET_HOOK", "tok-b71c93e0")
    url = resolve_secrets(receiver.url("/hooks/${secret:HOOK}"))
    channel = make_channel(url=url, secret=SECRET)

    [recipient] = channel.recipients()
    outcome = channel.send([recipient])[recipient.address]

    assert recipient.address == receiver.url("/hooks/***")
    assert outcome.status == "sent"
    assert "tok-b71c93e0" not in outcome.response
    [request] = receiver.received()
    assert request.path == "/hooks/tok-b71c93e0"
    verified(request)


def test_urls_alike_once_masked_stay_apart_in_the_ledger(
    receiver: HttpPeer, make_channel: MakeChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPORTCTL_SECRET_HOOK_A", "tok-a-5d1e")
    monkeypatch.setenv("REPORTCTL_SECRET_HOOK_B", "tok-b-93f0")
    urls = [
        resolve_secrets(receiver.url("/hooks/${secret:HOOK_A}")),
        resolve_secrets(receiver.url("/hooks/${secret:HOOK_B}")),
    ]
    channel = make_channel(url=urls)

    first, second = channel.recipients()
    outcomes = {**channel.send([first]), **channel.send([second])}

    assert (first.address, second.address) == (receiver.url("/hooks/***"), receiver.url("/hooks/*** (2)"))
    assert [o.status for o in outcomes.values()] == ["sent", "sent"]
    assert sorted(r.path for r in receiver.received()) == ["/hooks/tok-a-5d1e", "/hooks/tok-b-93f0"]


def test_unset_secret_in_url_is_a_recipient_problem(make_channel: MakeChannel) -> None:
    channel = make_channel(url="https://hooks.example.com/${secret:REPORTCTL_TEST_UNSET_HOOK}")

    [recipient] = channel.recipients()

    assert recipient.problem is not None
    assert "REPORTCTL_SECRET_REPORTCTL_TEST_UNSET_HOOK" in recipient.problem


def test_send_is_safe_from_many_threads(receiver: HttpPeer, make_channel: MakeChannel) -> None:
    channel = make_channel(url=[receiver.url(f"/hook/{n}") for n in range(20)], secret=SECRET)
    recipients = channel.recipients()
    assert channel.concurrency == 5
    assert channel.batch_size == 1

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda r: channel.send([r]), recipients))

    assert all(result[r.address].status == "sent" for r, result in zip(recipients, results, strict=True))
    requests = receiver.received()
    assert sorted(r.path for r in requests) == sorted(f"/hook/{n}" for n in range(20))
    assert len({r.header("webhook-id") for r in requests}) == 20
    for request in requests:
        verified(request)


def test_without_secret_ids_and_timestamps_are_still_sent(receiver: HttpPeer, make_channel: MakeChannel) -> None:
    channel = make_channel(url=receiver.url("/hook"), headers={"X-Team": "sre"})

    channel.send(channel.recipients())

    [request] = receiver.received()
    assert (request.header("webhook-id") or "").startswith("msg_")
    assert (request.header("webhook-timestamp") or "").isdigit()
    assert request.header("webhook-signature") is None
    assert request.header("X-Team") == "sre"
    assert request.json()["data"]["run_id"] == "20261128T090000Z-ab12"


def test_secret_that_is_not_base64_fails_the_batch(receiver: HttpPeer, make_channel: MakeChannel) -> None:
    channel = make_channel(url=receiver.url("/hook"), secret="whsec_not base64!")

    with pytest.raises(PermanentFailure, match=r"^secret: not a Standard Webhooks signing key"):
        channel.send(channel.recipients())
    assert receiver.received() == []


def test_preview_shows_the_request_without_sending(receiver: HttpPeer, make_channel: MakeChannel) -> None:
    channel = make_channel(url=receiver.url("/hook"), secret=SECRET)

    text = channel.preview(channel.recipients())

    assert text.startswith(f"POST {receiver.url('/hook')}\n")
    assert "webhook-signature: v1,<computed at send>" in text
    assert "whsec_" not in text
    body = json.loads(text[text.index("\n{") :])
    assert body["data"]["run_id"] == "20261128T090000Z-ab12"
    assert receiver.received() == []


def test_check_resolves_hosts_without_sending(receiver: HttpPeer, tmp_path: Path) -> None:
    options = WebhookOptions(channel="webhook", url=receiver.url("/hook").replace("127.0.0.1", "localhost"))

    found = WebhookChannel.check(options, Project(tmp_path, ProjectConfig(), None))

    assert found.startswith("localhost resolves to ")
    assert receiver.received() == []


def test_check_names_a_host_that_does_not_resolve(tmp_path: Path) -> None:
    options = WebhookOptions(channel="webhook", url="https://hooks.reportctl.invalid/deliver")

    with pytest.raises(ChannelCheckError, match=r"host hooks\.reportctl\.invalid does not resolve"):
        WebhookChannel.check(options, Project(tmp_path, ProjectConfig(), None))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "ftp://example.com/x"}, "expected an http:// or https:// URL, got 'ftp://example.com/x'"),
        ({"url": []}, "expected at least one URL"),
        ({"url": ["https://a.example/x", "https://a.example/x"]}, "listed more than once"),
        ({"url": "https://a.example/x", "concurrency": 21}, "less than or equal to 20"),
        ({"url": "https://a.example/x", "headers": {"Webhook-Signature": "x"}}, "set by reportctl"),
        ({"url": "https://a.example/x", "timeout": "0s"}, "positive duration"),
    ],
)
def test_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WebhookOptions.model_validate({"channel": "webhook", **options})


def test_secret_reference_in_url_is_accepted_as_written() -> None:
    options = WebhookOptions.model_validate({"channel": "webhook", "url": "${secret:HOOK_URL}"})

    assert options.urls == ["${secret:HOOK_URL}"]
    assert options.concurrency == 5
    assert options.timeout == timedelta(seconds=10)
