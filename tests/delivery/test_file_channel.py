"""The file channel: the outbox layout, the .eml read back, idempotent rewrites and an unwritable outbox."""

from __future__ import annotations

from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from reportctl.delivery.base import ChannelCheckError, DeliveryContext, PermanentFailure
from reportctl.delivery.file import FileChannel, OutboxOptions

Make = Callable[..., DeliveryContext]
RUN_ID = "20261128T090000Z-ab12"
FILES = ["server-health.pdf", "server-health.xlsx", "latency.csv"]


def file_channel(context: DeliveryContext, **values: Any) -> FileChannel:
    return FileChannel(OutboxOptions.model_validate({"channel": "file", **values}), context)


def read_eml(path: Path) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert isinstance(message, EmailMessage)
    return message


def test_outbox_holds_the_files_manifest_and_message(delivery_context: Make) -> None:
    context = delivery_context()
    assert context.directory is not None
    (context.directory / "manifest.json").write_text(f'{{"run": "{RUN_ID}"}}\n')
    channel = file_channel(context, to=["ada@example.com", "team:platform"], bcc="cto@example.com")
    outcomes = channel.send(channel.recipients())
    folder = context.project.root / "outbox" / "server-health" / RUN_ID
    assert sorted(p.name for p in folder.iterdir()) == sorted([*FILES, "manifest.json", "message.eml"])
    for name in [*FILES, "manifest.json"]:
        assert (folder / name).read_bytes() == (context.directory / name).read_bytes()
    assert {a: (o.status, o.response) for a, o in outcomes.items()} == {
        address: ("sent", f"wrote {folder / 'message.eml'}")
        for address in ["ada@example.com", "linus@example.org", "cto@example.com"]
    }


def test_message_eml_is_the_email_with_every_artifact_attached(delivery_context: Make) -> None:
    context = delivery_context()
    channel = file_channel(context, to=["ada@example.com", "grace@example.com"], cc="linus@example.org")
    first = channel.recipients()[0]
    channel.send([first])  # a partial batch still writes the message everyone gets
    message = read_eml(context.project.root / "outbox" / "server-health" / RUN_ID / "message.eml")
    assert message["To"] == "ada@example.com, grace@example.com"
    assert message["Cc"] == "linus@example.org"
    assert message["Subject"] == "Server health"
    assert message["X-Reportctl-Run"] == RUN_ID
    plain = message.get_body(("plain",))
    assert isinstance(plain, EmailMessage) and "- latency.csv, 32 B, attached" in plain.get_content()
    assert isinstance(message.get_body(("html",)), EmailMessage)
    assert context.directory is not None
    attachments = {part.get_filename(): part.get_payload(decode=True) for part in message.iter_attachments()}
    assert attachments == {name: (context.directory / name).read_bytes() for name in FILES}


def test_without_recipients_the_outbox_itself_is_the_recipient(delivery_context: Make, tmp_path: Path) -> None:
    outbox = tmp_path / "elsewhere" / "mail"
    channel = file_channel(delivery_context(), path=str(outbox), attach=["pdf"])
    (recipient,) = channel.recipients()
    assert recipient.address == f"file:{outbox}"
    assert channel.send([recipient])[recipient.address].status == "sent"
    message = read_eml(outbox / "server-health" / RUN_ID / "message.eml")
    assert message["To"] == "undisclosed-recipients:;"
    assert [part.get_filename() for part in message.iter_attachments()] == ["server-health.pdf"]


def test_second_send_rewrites_identical_files(delivery_context: Make) -> None:
    context = delivery_context()
    channel = file_channel(context, to="ada@example.com")
    folder = context.project.root / "outbox" / "server-health" / RUN_ID
    channel.send(channel.recipients())
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    again = file_channel(context, to="ada@example.com")
    again.send(again.recipients())
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no temporary files left behind either


def test_unwritable_outbox_is_a_permanent_failure(delivery_context: Make) -> None:
    context = delivery_context()
    blocker = context.project.root / "outbox"
    blocker.write_text("a file where the outbox folder should be\n")
    channel = file_channel(context)
    with pytest.raises(PermanentFailure, match=r"cannot write to the outbox .*outbox.*: (Not a directory|File exists)"):
        channel.send(channel.recipients())
    with pytest.raises(ChannelCheckError, match="is a file, not a folder; set path to a folder"):
        FileChannel.check(channel.options, context.project)


def test_check_says_where_the_outbox_is(delivery_context: Make) -> None:
    context = delivery_context()
    options = OutboxOptions.model_validate({"channel": "file"})
    outbox = context.project.root / "outbox"
    assert FileChannel.check(options, context.project) == f"outbox {outbox} will be created in {context.project.root}"
    assert not outbox.exists()
    outbox.mkdir()
    assert FileChannel.check(options, context.project) == f"outbox {outbox} exists and is writable"


def test_preview_lists_the_files_and_the_message(delivery_context: Make) -> None:
    context = delivery_context()
    channel = file_channel(context, to="ada@example.com")
    preview = channel.preview(channel.recipients())
    assert preview.startswith(f"Would write {context.project.root / 'outbox' / 'server-health' / RUN_ID}/message.eml")
    assert "To: ada@example.com" in preview and "latency.csv  text/csv  32 B" in preview
    assert not (context.project.root / "outbox").exists()


def test_options_validate_recipients() -> None:
    with pytest.raises(ValueError, match="'team:' is not a valid reference"):
        OutboxOptions.model_validate({"channel": "file", "to": "team:"})
    assert OutboxOptions.model_validate({"channel": "file"}).to == []
