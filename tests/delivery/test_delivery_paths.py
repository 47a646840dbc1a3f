"""Keys and outbox paths built from templates stay under their literal prefix: the s3 channel against the
module's moto_server, and the file channel's outbox.

Decided and pinned here: a key is not URL-decoded by S3, but '%2e%2e' is refused anyway (a CDN, website or sync
tool in front of the bucket may decode it); a segment whose NFKC form is '..' (fullwidth full stops) is refused."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import ValidationError
from s3_server import MotoServer

from reportctl.delivery.base import DeliveryContext, PermanentFailure
from reportctl.delivery.file import FileChannel, OutboxOptions
from reportctl.delivery.keys import contained, static_prefix
from reportctl.delivery.s3 import S3Channel, S3Options

pytestmark = pytest.mark.usefixtures("aws_environment")

Make = Callable[..., DeliveryContext]
TEMPLATE = "s3://{bucket}/reports/{{{{ params.team }}}}/"

ESCAPES = {
    "parent": ("../../other-bucket/x", "'..' segment (the folder above)"),
    "percent-encoded parent": ("%2e%2e/x", "'%2e%2e' segment (the folder above)"),
    "fullwidth parent": ("\uff0e\uff0e/x", "segment (the folder above)"),
    "current folder": ("./x", "'.' segment (the same folder)"),
    "absolute": ("/etc", "is an absolute path"),
    "backslash": ("..\\x", "contains a backslash"),
    "nul": ("a\x00b", "contains a NUL character"),
    "control character": ("a\x1bb", "contains a control character"),
    "newline": ("a\nb", "contains a control character"),
}


@pytest.fixture
def channel(s3: MotoServer) -> Iterator[Callable[..., S3Channel]]:
    made: list[S3Channel] = []

    def make(context: DeliveryContext, **options: Any) -> S3Channel:
        values = {"channel": "s3", "id": "archive", "endpoint_url": s3.endpoint, **options}
        made.append(S3Channel(S3Options.model_validate(values), context))
        return made[-1]

    yield make
    for each in made:
        each.close()


@pytest.mark.parametrize("team, problem", ESCAPES.values(), ids=ESCAPES.keys())
def test_a_parameter_that_leaves_the_prefix_fails_the_recipient_and_uploads_nothing(
    team: str,
    problem: str,
    channel: Callable[..., S3Channel],
    delivery_context: Make,
    bucket: str,
    peer: Any,
) -> None:
    s3 = channel(delivery_context(parameters={"team": team}), url=TEMPLATE.format(bucket=bucket))

    [recipient] = s3.recipients()

    assert recipient.problem is not None
    assert recipient.problem.startswith("delivery archive: url: rendered to ")
    assert problem in recipient.problem
    assert recipient.problem.endswith("so fix the parameter or template value that produced it")
    assert "\n" not in recipient.problem and "\x00" not in recipient.problem
    assert peer.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    with pytest.raises(PermanentFailure):
        s3.links()


def test_a_plain_value_and_dots_inside_a_name_are_uploaded(
    channel: Callable[..., S3Channel], delivery_context: Make, bucket: str, peer: Any
) -> None:
    s3 = channel(delivery_context(parameters={"team": "v1..2-é"}), url=TEMPLATE.format(bucket=bucket))
    [recipient] = s3.recipients()

    outcome = s3.send([recipient])[recipient.address]

    assert outcome.status == "sent"
    keys = [o["Key"] for o in peer.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys and all(key.startswith("reports/v1..2-é/") for key in keys)


def test_a_long_rendered_value_is_shortened(channel: Callable[..., S3Channel], delivery_context: Make) -> None:
    s3 = channel(delivery_context(parameters={"team": "../" + "x" * 500}), url=TEMPLATE.format(bucket="reports"))

    [recipient] = s3.recipients()

    assert recipient.problem is not None and len(recipient.problem) < 300
    assert "...'" in recipient.problem


@pytest.mark.parametrize("url", ["s3://reports/../{{ name }}/", "s3://reports/a/./{{ name }}/", "s3://reports/../x/"])
def test_validate_refuses_a_literal_segment_that_escapes(url: str) -> None:
    with pytest.raises(ValidationError, match="segment"):
        S3Options.model_validate({"channel": "s3", "url": url})


def test_validate_accepts_a_parameter_inside_a_segment() -> None:
    options = S3Options.model_validate({"channel": "s3", "url": "s3://reports/team-{{ params.team }}/"})

    assert options.url == "s3://reports/team-{{ params.team }}/"


def test_the_check_starts_at_the_segment_the_template_begins_in() -> None:
    assert static_prefix("s3://reports/team-{{ params.team }}/") == "s3://reports/team-"
    assert contained("s3://reports/team-a/", "s3://reports/team-{{ x }}/", "url") == "s3://reports/team-a/"
    with pytest.raises(PermanentFailure, match=r"'\.\.' segment"):
        contained("s3://reports/team-/../../x/", "s3://reports/team-{{ x }}/", "url")
    with pytest.raises(PermanentFailure, match="does not start with its literal part 's3://reports/'"):
        contained("s3://other/x/", "s3://reports/{{ x }}/", "url")


def file_channel(context: DeliveryContext) -> FileChannel:
    return FileChannel(OutboxOptions.model_validate({"channel": "file", "id": "outbox"}), context)


@pytest.mark.parametrize(
    "overrides, problem",
    [
        ({"report": ".."}, "'..' segment"),
        ({"report": "a/../../b"}, "contains '/'"),
        ({"run_id": "run\x00x"}, "contains a NUL character"),
        ({"run_id": "\uff0e\uff0e"}, "segment (the folder above)"),
        ({"run_id": "run\\..\\x"}, "contains a backslash"),
    ],
    ids=["parent", "slash", "nul", "fullwidth", "backslash"],
)
def test_the_outbox_refuses_names_that_leave_it_and_writes_nothing(
    overrides: dict[str, str], problem: str, delivery_context: Make
) -> None:
    context = delivery_context(**overrides)
    channel = file_channel(context)

    with pytest.raises(PermanentFailure) as caught:
        channel.send(channel.recipients())
    with pytest.raises(PermanentFailure):
        channel.preview(channel.recipients())

    message = str(caught.value)
    assert message.startswith("delivery outbox: path: the outbox name ")
    assert problem in message and "\n" not in message
    assert not (context.project.root / "outbox").exists()


def test_the_outbox_refuses_an_artifact_whose_name_is_a_control_character(delivery_context: Make) -> None:
    context = delivery_context()
    [first, *rest] = context.artifacts
    renamed = first.path.with_name("bad\x07.pdf")
    first.path.rename(renamed)
    context = delivery_context(artifacts=(dataclasses.replace(first, path=renamed), *rest))
    channel = file_channel(context)

    with pytest.raises(PermanentFailure, match=r"'bad\\x07.pdf' contains a control character"):
        channel.send(channel.recipients())
    assert not (context.project.root / "outbox").exists()
