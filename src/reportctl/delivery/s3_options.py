"""The ``s3`` channel's options and the rules for what an s3:// location and its objects look like."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Literal, NamedTuple

from pydantic import Field, field_validator, model_validator

from reportctl.delivery.base import (
    ChannelOptions,
    media_type,
)
from reportctl.extras import missing_extra
from reportctl.s3_settings import S3Connection

if TYPE_CHECKING:
    pass

PART_SIZE = 8 * 1024 * 1024
"""Files above this go up as a multipart upload, in parts of this size."""
MANIFEST = "manifest"

_TEMPLATE_MARKS = ("{{", "{%", "${")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")


class S3Options(ChannelOptions, S3Connection):
    """Options of the ``s3`` channel."""

    channel: Literal["s3"] = Field(description="Uploads the artifacts to S3 or an S3-compatible store.")
    url: str = Field(
        description="Where the files go, s3://bucket/prefix/; a template, e.g. s3://reports/{{ name }}/{{ run.date }}/."
    )
    formats: list[str] | None = Field(
        default=None,
        description="Which artifacts to upload (pdf, xlsx, ..., manifest); default all of them and manifest.json.",
    )

    @model_validator(mode="after")
    def _boto3_is_installed(self) -> S3Options:
        problem = missing_extra("boto3", "the s3 channel")
        if problem:
            raise ValueError(problem)
        return self

    @field_validator("url")
    @classmethod
    def _s3_url(cls, value: str) -> str:
        text = value.strip()
        if not is_template(text):
            parse_location(text)
            return value
        from reportctl.templating import check_template

        problem = check_template(text, where="the template")
        if problem:
            raise ValueError(problem)
        if not text.startswith(("s3://", *_TEMPLATE_MARKS)):
            raise ValueError(f"expected an s3://bucket/prefix/ URL, got '{value}'")
        bucket = text.removeprefix("s3://").partition("/")[0]
        if text.startswith("s3://") and not is_template(bucket):
            _check_bucket(bucket)
        from reportctl.delivery.keys import template_problem

        problem = template_problem(text.removeprefix("s3://"))
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, value: list[str] | None) -> list[str] | None:
        from reportctl.plugins import WRITERS, plugin_names, unknown_plugin_message

        for name in value or ():
            if name != MANIFEST and name not in plugin_names(WRITERS):
                raise ValueError(f"{unknown_plugin_message(WRITERS, name)}, or manifest")
        return value


class Location(NamedTuple):
    """A bucket and a key prefix that is empty or ends with '/'."""

    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_location(url: str) -> Location:
    """``url`` as bucket and prefix; ValueError says what is wrong with it."""
    if not url.startswith("s3://"):
        raise ValueError(f"expected an s3://bucket/prefix/ URL, got '{url}'")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    _check_bucket(bucket)
    if "//" in f"/{prefix}":
        raise ValueError(f"'{url}' has an empty path segment ('//'); was a template value empty?")
    from reportctl.delivery.keys import segment_problem

    problem = next(filter(None, map(segment_problem, prefix.split("/"))), None)
    if problem:
        raise ValueError(f"the key prefix {problem}; write the url without it")
    return Location(bucket, prefix if not prefix or prefix.endswith("/") else prefix + "/")


def _check_bucket(bucket: str) -> None:
    rules = "3 to 63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit"
    if not bucket:
        raise ValueError("the url names no bucket; write s3://bucket/prefix/")
    if not (3 <= len(bucket) <= 63 and _BUCKET.match(bucket)) or ".." in bucket:
        raise ValueError(f"'{bucket}' is not a valid bucket name: {rules}")
    try:
        ipaddress.IPv4Address(bucket)
    except ValueError:
        return
    raise ValueError(f"'{bucket}' is not a valid bucket name: it must not look like an IP address")


def is_template(text: str) -> bool:
    return any(mark in text for mark in _TEMPLATE_MARKS)


def content_type(name: str) -> str:
    """The Content-Type an artifact is served with; text types say they are UTF-8."""
    kind = media_type(name)
    return f"{kind}; charset=utf-8" if kind.startswith("text/") else kind
