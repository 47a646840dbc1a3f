"""The email channel against a real aiosmtpd server on 127.0.0.1: messages are read back and parsed."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from smtp_server import free_port, self_signed_certificate, silent_server, smtp_server

from reportctl.config import Project, ProjectConfig
from reportctl.delivery.base import (
    ChannelCheckError,
    DeliveryContext,
    Outcome,
    PermanentFailure,
    Recipient,
    TemporaryFailure,
)
from reportctl.delivery.email import EmailChannel, EmailOptions
from reportctl.delivery.message import compose_message, markdown_html, render_content

Make = Callable[..., DeliveryContext]
RUN_ID = "20261128T090000Z-ab12"
CONTENT_TYPES = {
    "server-health.pdf": "application/pdf",
    "server-health.xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "latency.csv": "text/csv",
}


SENDER = "Reports <reports@example.com>"


def email_options(port: int, **values: Any) -> EmailOptions:
    settings = {"channel": "email", "to": ["ada@example.com"], "host": "127.0.0.1", "port": port, "from": SENDER}
    return EmailOptions.model_validate({"security": "none", "timeout": "5s", **settings, **values})


@contextmanager
def email_channel(options: EmailOptions, context: DeliveryContext) -> Iterator[EmailChannel]:
    channel = EmailChannel(options, context)
    try:
        yield channel
    finally:
        channel.close()


def deliver(channel: EmailChannel) -> dict[str, Outcome]:
    """What the engine does, without retries: every recipient, batch by batch."""
    recipients = channel.recipients()
    outcomes: dict[str, Outcome] = {}
    for start in range(0, len(recipients), channel.batch_size):
        outcomes.update(channel.send(recipients[start : start + channel.batch_size]))
    return outcomes


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


def test_message_read_back_has_parts_attachments_and_headers(delivery_context: Make) -> None:
    context = delivery_context()
    with smtp_server() as server:
        options = email_options(
            server.port,
            to=["ada@example.com", "team:platform"],
            cc="grace@example.com",
            bcc=["cto@example.com"],
            attach=["pdf", "xlsx", "csv"],
            reply_to="SRE <sre@example.com>",
            subject="{{ title }} for {{ params.region }}",
            **{"from": "Reports <reports@example.com>"},
        )
        with email_channel(options, context) as channel:
            outcomes = deliver(channel)
            assert channel.send(channel.recipients())  # a resend of the same batch
    assert {address: o.status for address, o in outcomes.items()} == {
        "ada@example.com": "sent",
        "linus@example.org": "sent",
        "grace@example.com": "sent",
        "cto@example.com": "sent",
    }
    assert outcomes["ada@example.com"].response == "250 2.0.0 OK queued as Q1"
    first, again = server.messages
    assert first.mail_from == "reports@example.com"
    assert first.rcpt_tos == ["ada@example.com", "linus@example.org", "grace@example.com", "cto@example.com"]
    message = first.parsed()
    assert message["To"] == "ada@example.com, linus@example.org"
    assert message["Cc"] == "grace@example.com"
    assert message["Bcc"] is None and b"cto@example.com" not in first.data
    assert message["From"] == "Reports <reports@example.com>"
    assert message["Reply-To"] == "SRE <sre@example.com>"
    assert message["Subject"] == "Server health for eu"
    assert message["Date"] == "Sat, 28 Nov 2026 09:00:00 +0000"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Reportctl-Run"] == RUN_ID
    assert re.fullmatch(r"<reportctl\.[0-9a-f]{32}@example\.com>", message["Message-ID"])
    assert again.parsed()["Message-ID"] == message["Message-ID"]
    assert message.get_content_type() == "multipart/mixed"
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert isinstance(plain, EmailMessage) and isinstance(html, EmailMessage)
    assert "# Server health" in plain.get_content()
    assert "- server-health.pdf, 2.4 KiB, attached" in plain.get_content()
    assert "<h1 style=" in html.get_content()
    attachments = {part.get_filename(): part for part in message.iter_attachments()}
    assert sorted(attachments) == sorted(CONTENT_TYPES)
    for name, part in attachments.items():
        assert part.get_content_type() == CONTENT_TYPES[name]
        assert part.get_payload(decode=True) == (context.directory or Path()).joinpath(name).read_bytes()


def test_message_id_depends_on_run_delivery_and_addresses(delivery_context: Make) -> None:
    context = delivery_context()
    options = email_options(1, to=["ada@example.com", "grace@example.com"])
    content = render_content(context, options, attach=[], max_attachment_size=None)
    ada, grace = Recipient("ada@example.com"), Recipient("grace@example.com")

    def message_id(recipients: Sequence[Recipient], run_id: str = RUN_ID, id: str | None = None) -> str:
        changed = options.model_copy(update={"id": id})
        return str(compose_message(delivery_context(run_id=run_id), changed, recipients, content)["Message-ID"])

    assert message_id([ada, grace]) == message_id([grace, ada])
    assert message_id([ada]) != message_id([ada, grace])
    assert message_id([ada]) != message_id([ada], run_id="other-run")
    assert message_id([ada]) != message_id([ada], id="weekly_mail")
    rewritten = compose_message(context, options, [ada, grace], content).as_bytes()
    assert rewritten == compose_message(context, options, [ada, grace], content).as_bytes()


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_html_part_escapes_raw_html_and_styles_every_element() -> None:
    page = markdown_html("Hello <script>alert(1)</script>\n\n| a | b |\n|---|--:|\n| 1 | 2 |\n\n[x](https://e.com)\n")
    parser = _Tags()
    parser.feed(page)
    tags = dict(parser.tags)
    assert "script" not in tags and "&lt;script&gt;" in page
    assert all(attrs.get("style") for tag, attrs in parser.tags if tag in {"p", "table", "th", "td", "a"})
    cells = [str(attrs["style"]) for tag, attrs in parser.tags if tag == "td"]
    assert "text-align:right" in cells[1] and "padding" in cells[1]  # a right-aligned cell keeps its alignment
    assert tags["a"]["href"] == "https://e.com"


def test_a_number_in_the_message_table_never_breaks_from_its_unit() -> None:
    page = markdown_html("| service | p95 |\n|---|--:|\n| checkout | 536.4 ms |\n")
    parser = _Tags()
    parser.feed(page)
    name, number = (str(attrs["style"]) for tag, attrs in parser.tags if tag == "td")
    assert "white-space:nowrap" in number
    assert "white-space" not in name  # text may wrap


def test_batches_share_one_connection_and_address_only_their_recipients(delivery_context: Make) -> None:
    to = ["ada@example.com", "grace@example.com", "linus@example.org", "cto@example.com", "eve@example.net"]
    with (
        smtp_server() as server,
        email_channel(email_options(server.port, to=to, batch_size=2, attach=[]), delivery_context()) as channel,
    ):
        outcomes = deliver(channel)
    assert [o.status for o in outcomes.values()] == ["sent"] * 5
    assert [m.rcpt_tos for m in server.messages] == [to[0:2], to[2:4], to[4:]]
    assert [m.parsed()["To"] for m in server.messages] == [", ".join(to[0:2]), ", ".join(to[2:4]), to[4]]
    assert len({m.peer for m in server.messages}) == 1


def test_reconnects_once_when_the_server_dropped_the_connection(delivery_context: Make) -> None:
    with smtp_server() as server:
        options = email_options(server.port, to=["ada@example.com", "grace@example.com"], batch_size=1)
        with email_channel(options, delivery_context()) as channel:
            first, second = channel.recipients()
            assert channel.send([first])[first.address].status == "sent"
            server.drop_connections()
            assert channel.send([second])[second.address].status == "sent"
    assert [m.rcpt_tos for m in server.messages] == [["ada@example.com"], ["grace@example.com"]]
    assert len({m.peer for m in server.messages}) == 2


def test_refused_recipient_bounces_while_the_others_are_sent(delivery_context: Make) -> None:
    to = ["ada@example.com", "nobody@example.com", "grace@example.com", "busy@example.com"]
    with (
        smtp_server(refuse={"nobody@example.com"}, defer={"busy@example.com"}) as server,
        email_channel(email_options(server.port, to=to), delivery_context()) as channel,
    ):
        outcomes = deliver(channel)
    assert {a: o.status for a, o in outcomes.items()} == {
        "ada@example.com": "sent",
        "nobody@example.com": "bounced",
        "grace@example.com": "sent",
        "busy@example.com": "retry",
    }
    assert outcomes["nobody@example.com"].response.startswith("550 5.1.1 <nobody@example.com>")
    assert outcomes["busy@example.com"].response.startswith("450 4.2.1")
    (message,) = server.messages
    assert message.rcpt_tos == ["ada@example.com", "grace@example.com"]


def test_temporary_data_failure_asks_for_a_retry_that_then_succeeds(delivery_context: Make) -> None:
    with smtp_server(fail_data=1) as server:
        options = email_options(server.port, to=["ada@example.com", "grace@example.com"])
        with email_channel(options, delivery_context()) as channel:
            first = deliver(channel)
            second = deliver(channel)
    assert [(o.status, o.response) for o in first.values()] == [
        ("retry", "451 4.3.0 Temporary local problem, try again")
    ] * 2
    assert [o.status for o in second.values()] == ["sent", "sent"]
    assert server.handler.data_attempts == 2 and len(server.messages) == 1


def test_refused_sender_fails_the_batch_permanently(delivery_context: Make) -> None:
    with (
        smtp_server(refuse_senders={"reports@example.com"}) as server,
        email_channel(email_options(server.port), delivery_context()) as channel,
        pytest.raises(PermanentFailure, match=r"refused the sender reports@example.com: 553 .*check `from`"),
    ):
        deliver(channel)
    assert server.messages == []


def test_unreachable_server_is_a_temporary_failure(delivery_context: Make) -> None:
    port = free_port()
    with email_channel(email_options(port), delivery_context()) as channel, pytest.raises(TemporaryFailure) as raised:
        deliver(channel)
    assert str(raised.value).startswith(f"cannot reach SMTP server 127.0.0.1:{port}: connection refused")


def test_silent_server_times_out_as_a_temporary_failure(delivery_context: Make) -> None:
    with (
        silent_server() as port,
        email_channel(email_options(port, timeout="200ms"), delivery_context()) as channel,
        pytest.raises(TemporaryFailure, match=r"no answer within 0\.2s; check host, port and firewalls"),
    ):
        deliver(channel)


def test_starttls_and_login_against_a_self_signed_server(
    delivery_context: Make, certificate: tuple[Path, Path]
) -> None:
    cert, _ = certificate
    with smtp_server(auth=("bob", "s3cret-pass"), starttls=certificate) as server:
        options = email_options(
            server.port, security="starttls", ca_file=str(cert), username="bob", password="s3cret-pass"
        )
        with email_channel(options, delivery_context()) as channel:
            outcomes = deliver(channel)
    assert outcomes["ada@example.com"].status == "sent"
    assert server.messages[0].parsed()["To"] == "ada@example.com"


def test_implicit_tls(delivery_context: Make, certificate: tuple[Path, Path]) -> None:
    with smtp_server(implicit_tls=certificate) as server:
        options = email_options(server.port, security="tls", ca_file=str(certificate[0]))
        with email_channel(options, delivery_context()) as channel:
            assert deliver(channel)["ada@example.com"].status == "sent"
    assert len(server.messages) == 1


def test_wrong_password_is_permanent_and_never_shown(delivery_context: Make, certificate: tuple[Path, Path]) -> None:
    with smtp_server(auth=("bob", "s3cret-pass"), starttls=certificate) as server:
        options = email_options(
            server.port, security="starttls", ca_file=str(certificate[0]), username="bob", password="wrong-pass-123"
        )
        with email_channel(options, delivery_context()) as channel, pytest.raises(PermanentFailure) as raised:
            deliver(channel)
    assert "rejected the login of 'bob': 535" in str(raised.value)
    assert "wrong-pass-123" not in str(raised.value) and "password" in str(raised.value)
    assert server.messages == []


def test_unverifiable_certificate_names_ca_file_and_verify(
    delivery_context: Make, certificate: tuple[Path, Path]
) -> None:
    with smtp_server(starttls=certificate) as server:
        with (
            email_channel(email_options(server.port, security="starttls"), delivery_context()) as channel,
            pytest.raises(PermanentFailure, match=r"cannot verify the TLS certificate.*ca_file.*verify: false"),
        ):
            deliver(channel)
        with email_channel(email_options(server.port, security="starttls", verify=False), delivery_context()) as ch:
            assert deliver(ch)["ada@example.com"].status == "sent"


def test_starttls_required_but_not_offered(delivery_context: Make) -> None:
    with (
        smtp_server() as server,
        email_channel(email_options(server.port, security="starttls"), delivery_context()) as channel,
        pytest.raises(PermanentFailure, match="does not offer STARTTLS; set security: none"),
    ):
        deliver(channel)


def test_large_file_goes_as_a_link(delivery_context: Make) -> None:
    link = "https://files.example.com/server-health.xlsx?sig=abc"
    context = delivery_context(links={"xlsx": link})
    with smtp_server() as server:
        options = email_options(server.port, attach=["pdf", "xlsx"], max_attachment_size="5KB")
        with email_channel(options, context) as channel:
            assert deliver(channel)["ada@example.com"].status == "sent"
    message = server.messages[0].parsed()
    assert [part.get_filename() for part in message.iter_attachments()] == ["server-health.pdf"]
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert isinstance(plain, EmailMessage) and isinstance(html, EmailMessage)
    assert f"[server-health.xlsx](<{link}>), 10.0 KiB, linked (too large to attach)" in plain.get_content()
    assert 'href="https://files.example.com/server-health.xlsx?sig=abc"' in html.get_content()


def test_large_file_without_a_link_fails_with_the_fix(delivery_context: Make) -> None:
    with smtp_server() as server:
        options = email_options(server.port, attach=["xlsx"], max_attachment_size="5KB")
        with email_channel(options, delivery_context()) as channel, pytest.raises(PermanentFailure) as raised:
            deliver(channel)
    assert str(raised.value) == (
        "server-health.xlsx (10.0 KiB) is above the delivery.email.max_attachment_size of 4.9 KiB and has no link; "
        "add an s3 delivery before it, or set artifact_base_url in reportctl.yaml, or raise max_attachment_size"
    )
    assert server.messages == []


def test_failed_run_says_so_without_attachments(delivery_context: Make) -> None:
    context = delivery_context(status="failed", error="source 'metrics' timed out after 30s")
    with (
        smtp_server() as server,
        email_channel(email_options(server.port, subject="FAILED: {{ title }}"), context) as channel,
    ):
        deliver(channel)
    message = server.messages[0].parsed()
    assert message["Subject"] == "FAILED: Server health"
    assert list(message.iter_attachments()) == []
    plain = message.get_body(("plain",))
    assert isinstance(plain, EmailMessage)
    assert "failed, run 20261128T090000Z-ab12" in plain.get_content()
    assert "source 'metrics' timed out after 30s" in plain.get_content()


def test_preview_shows_headers_text_and_attachment_sizes_without_sending(delivery_context: Make) -> None:
    options = email_options(free_port(), bcc=["cto@example.com"], attach=["pdf", "xlsx"])
    with email_channel(options, delivery_context()) as channel:
        preview = channel.preview(channel.recipients())
    assert "To: ada@example.com\n" in preview and "Bcc" not in preview
    assert "Envelope: ada@example.com (to), cto@example.com (bcc)" in preview
    assert "Subject: Server health\n" in preview
    assert "server-health.pdf  application/pdf  2.4 KiB" in preview
    assert "server-health.xlsx" in preview and "10.0 KiB" in preview
    assert not re.search(r"[A-Za-z0-9+/]{60,}", preview)


def test_check_reaches_the_server_and_sends_nothing(certificate: tuple[Path, Path], tmp_path: Path) -> None:
    project = Project(tmp_path, ProjectConfig(), None)
    (tmp_path / "ca.pem").write_bytes(certificate[0].read_bytes())
    with smtp_server(auth=("bob", "s3cret-pass"), starttls=certificate) as server:
        options = email_options(
            server.port, security="starttls", ca_file="ca.pem", username="bob", password="s3cret-pass"
        )
        found = EmailChannel.check(options, project)
    assert found == f"127.0.0.1:{server.port} answered 220 smtp.test test, STARTTLS, authenticated as bob"
    assert server.messages == [] and server.handler.data_attempts == 0


def test_check_against_a_closed_port_names_the_fix(tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(ChannelCheckError, match=f"127.0.0.1:{port}: connection refused; check host and port"):
        EmailChannel.check(email_options(port), Project(tmp_path, ProjectConfig(), None))


def test_recipients_keep_an_address_once_in_its_first_role(delivery_context: Make) -> None:
    options = email_options(1, to=["ada@example.com"], cc=["team:backend-sre"], bcc=["grace@example.com", "team:x"])
    recipients = EmailChannel(options, delivery_context()).recipients()
    assert [(r.address, r.role) for r in recipients] == [
        ("ada@example.com", "to"),
        ("grace@example.com", "cc"),
        ("team:x", "bcc"),
    ]
    assert recipients[-1].problem is not None and "team 'x' is not in people.yaml" in recipients[-1].problem


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"to": "ada@"}, "'ada@' has no domain after '@'"),
        ({"to": ["ada@example.com", "team:"]}, "'team:' is not a valid reference; write team:NAME or list:NAME"),
        ({"cc": ["grace.example.com"]}, "is not an email address (no '@')"),
        ({"to": []}, "at least 1 item"),
        ({"from": "Reports <reports@>"}, "'reports@' has no domain after '@'"),
        ({"password": "x"}, "password is set but username is not"),
        ({"batch_size": 0}, "greater than or equal to 1"),
        ({"max_attachment_size": "ten"}, "expected a size such as 10MB or 25MiB, got 'ten'"),
    ],
)
def test_options_reject_bad_values(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        email_options(25, **values)


def test_options_defaults() -> None:
    options = EmailOptions.model_validate({"channel": "email", "to": "team:backend-sre", "from": SENDER})
    assert options.to == ["team:backend-sre"]
    assert (options.smtp_port, options.security, options.sender, options.batch_size) == (
        587,
        "starttls",
        "reports@example.com",
        100,
    )
    assert options.max_attachment_size == 10_000_000
    assert (
        EmailOptions.model_validate({"channel": "email", "to": "a@b.co", "security": "tls", "from": SENDER}).smtp_port
        == 465
    )


def test_sending_email_needs_a_configured_sender() -> None:
    with pytest.raises(ValidationError, match=re.escape("from: a sender is required to send email; set from: '")):
        EmailOptions.model_validate({"channel": "email", "to": "a@b.co"})
