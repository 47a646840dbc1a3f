"""The shape of ``delivery`` entries, checked by ``validate`` now; sending them is the delivery stage's work."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from reportctl.spec.types import Duration, StrictModel


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class _Channel(StrictModel):
    when: Literal["always", "success", "failure"] = "success"


class EmailDelivery(_Channel):
    channel: Literal["email"]
    to: Annotated[list[str], Field(min_length=1, description="Addresses, team:NAME or list:NAME.")]
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list)
    subject: str = "{{ title }}"
    body: str | None = Field(default=None, description="A Markdown template for the message body.")
    attach: list[str] = Field(default_factory=list, description="Output formats to attach, e.g. [pdf, xlsx].")

    _lists = field_validator("to", "cc", "bcc", "attach", mode="before")(_as_list)


class WebhookDelivery(_Channel):
    channel: Literal["webhook"]
    url: str
    secret: str | None = Field(default=None, description="Signing key, usually ${secret:NAME}.")
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Duration = timedelta(seconds=10)


class SlackDelivery(_Channel):
    channel: Literal["slack"]
    webhook_url: str | None = None
    token: str | None = None
    to: list[str] = Field(default_factory=list, description="Slack channel ids, for bot-token uploads.")
    attach: list[str] = Field(default_factory=list)

    _lists = field_validator("to", "attach", mode="before")(_as_list)


class S3Delivery(_Channel):
    channel: Literal["s3"]
    url: str = Field(pattern=r"^s3://[^/]+(/.*)?$", description="s3://bucket/prefix/")
    endpoint_url: str | None = None
    sse: Literal["AES256", "aws:kms"] | None = None
    link_expiry: Duration = timedelta(days=7)


class FileDelivery(_Channel):
    channel: Literal["file"]
    path: str = Field(default="outbox", description="The outbox folder, relative to the project.")


DeliveryShape = Annotated[
    EmailDelivery | WebhookDelivery | SlackDelivery | S3Delivery | FileDelivery,
    Field(discriminator="channel"),
]
