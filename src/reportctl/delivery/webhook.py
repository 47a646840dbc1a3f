"""The ``webhook`` channel: a JSON POST about the run to each URL, signed per the Standard Webhooks scheme.

Receivers verify ``webhook-signature`` (HMAC-SHA256 over ``{webhook-id}.{webhook-timestamp}.{body}``) with any
Standard Webhooks library, and de-duplicate by ``webhook-id``, which stays the same across retries of a delivery.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from reportctl.delivery.base import (
    ChannelCheckError,
    ChannelOptions,
    DeliveryContext,
    Outcome,
    PermanentFailure,
    Recipient,
)
from reportctl.delivery.http_client import SessionPerThread, http_outcome, resolve_host, transport_outcome, user_agent
from reportctl.digests import json_value
from reportctl.secrets import SECRET_REFERENCE, SecretError, redact, resolve_secrets
from reportctl.spec.types import PositiveDuration

if TYPE_CHECKING:
    from reportctl.config import Project

SECRET_PREFIX = "whsec_"
_SIGNATURE_HEADERS = frozenset({"webhook-id", "webhook-timestamp", "webhook-signature"})
_RESERVED_HEADERS = _SIGNATURE_HEADERS | {"content-type", "content-length"}


class WebhookOptions(ChannelOptions):
    """Options of the ``webhook`` channel."""

    channel: Literal["webhook"] = Field(description="POSTs the run's metadata as signed JSON to one or more URLs.")
    url: str | list[str] = Field(
        description="One http(s) URL or a list; a URL may contain ${secret:NAME} (shown as *** in the ledger)."
    )
    secret: str | None = Field(
        default=None,
        description="Standard Webhooks signing key, whsec_ followed by base64, usually ${secret:NAME}; "
        "without it requests carry webhook-id and webhook-timestamp but no signature.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers; values may contain ${secret:NAME}."
    )
    timeout: PositiveDuration = Field(
        default=timedelta(seconds=10), description="Limit for connecting and for each wait on the receiver."
    )
    concurrency: int = Field(default=5, ge=1, le=20, description="Requests in flight at once.")

    @property
    def urls(self) -> list[str]:
        return [self.url] if isinstance(self.url, str) else list(self.url)

    @field_validator("url")
    @classmethod
    def _http_urls(cls, value: str | list[str]) -> str | list[str]:
        urls = [value] if isinstance(value, str) else value
        if not urls:
            raise ValueError("expected at least one URL")
        for url in urls:
            if SECRET_REFERENCE.search(url):
                continue
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"expected an http:// or https:// URL, got '{url}'")
        twice = sorted({u for u in urls if urls.count(u) > 1})
        if twice:
            raise ValueError(f"'{twice[0]}' is listed more than once")
        return value

    @field_validator("headers")
    @classmethod
    def _own_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header '{name}' is set by reportctl; remove it")
        return value


class WebhookChannel:
    """POSTs one JSON event per URL, up to ``concurrency`` at once; each URL is a recipient in the ledger."""

    PLUGIN_NAME: ClassVar[str] = "webhook"
    Options: ClassVar[type[ChannelOptions]] = WebhookOptions
    PUBLISHES: ClassVar[bool] = False
    RESEND_EFFECT: ClassVar[str] = (
        "each request went again with the webhook-id of the first, by which receivers drop the copy"
    )

    def __init__(self, options: WebhookOptions, context: DeliveryContext) -> None:
        self.options = options
        self.context = context
        self.batch_size = 1
        self.concurrency = options.concurrency
        self.rate_limit: float | None = None
        # The run's time, not the attempt's: every attempt, every URL and a resend days later get the same body.
        self.occurred = context.now.astimezone(UTC)
        self._sessions = SessionPerThread()

    def recipients(self) -> list[Recipient]:
        result: list[Recipient] = []
        for url in self.options.urls:
            try:
                target = resolve_secrets(url)
            except SecretError as exc:
                result.append(Recipient(address=url, problem=str(exc)))
                continue
            address = redact(target)
            # URLs that differ only in their secrets look alike once masked; the ledger needs them apart.
            seen = sum(1 for r in result if r.address == address or r.address.startswith(address + " ("))
            result.append(Recipient(address=f"{address} ({seen + 1})" if seen else address, target=target))
        return result

    def send(self, batch: Sequence[Recipient]) -> Mapping[str, Outcome]:
        """POST the event to each recipient's URL; one attempt, an outcome per URL, never an exception for HTTP."""
        import requests

        key = self._signing_key()
        headers = self._headers()
        body = self.body()
        timeout = self.options.timeout.total_seconds()
        session = self._sessions.get()
        outcomes = {}
        for recipient in batch:
            url = recipient.destination
            signed = {**headers, **self.signature_headers(recipient, body, key, int(time.time()))}
            try:
                response = session.post(
                    url, data=body, headers=signed, timeout=(timeout, timeout), allow_redirects=False
                )
            except requests.RequestException as exc:
                outcomes[recipient.address] = transport_outcome(exc, url, timeout)
                continue
            with response:
                outcomes[recipient.address] = http_outcome(response, url)
        return outcomes

    def preview(self, batch: Sequence[Recipient]) -> str:
        lines: list[str] = []
        for recipient in batch:
            if lines:
                lines.append("")
            headers = {
                "Content-Type": "application/json",
                "User-Agent": user_agent(),
                **{name: redact(value) for name, value in self.options.headers.items()},
                "webhook-id": self.message_id(recipient),
                "webhook-timestamp": "<time of sending>",
            }
            if self.options.secret:
                headers["webhook-signature"] = "v1,<computed at send>"
            lines.append(f"POST {recipient.address}")
            lines.extend(f"{name}: {value}" for name, value in headers.items())
            lines.append("")
            lines.append(json.dumps(self.payload(), indent=2, sort_keys=True, ensure_ascii=False, default=json_value))
        return "\n".join(lines)

    def links(self) -> Mapping[str, str]:
        return {}

    def close(self) -> None:
        self._sessions.close()

    @classmethod
    def check(cls, options: WebhookOptions, project: Project) -> str:
        """Resolve each URL's host name, and check the signing key decodes; nothing is sent."""
        found = []
        for url in options.urls:
            try:
                target = resolve_secrets(url)
            except SecretError as exc:
                raise ChannelCheckError(f"webhook url: {exc}") from None
            found.append(resolve_host(target, "webhook url"))
        if options.secret:
            try:
                signing_key(resolve_secrets(options.secret))
            except SecretError as exc:
                raise ChannelCheckError(f"webhook secret: {exc}") from None
            except PermanentFailure as exc:
                raise ChannelCheckError(f"webhook {exc}") from None
        return redact("; ".join(found))

    def payload(self) -> dict[str, Any]:
        """The event: what the run was, how it ended, and its artifacts with checksums and links."""
        from reportctl.delivery.message import failed_sections

        context = self.context
        return {
            "type": "report.completed" if context.status == "completed" else "report.failed",
            "timestamp": self.occurred.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "data": {
                "run_id": context.run_id,
                "report": context.report,
                "title": context.title,
                "status": context.status,
                "error": context.error,
                "parameters": dict(context.parameters),
                "generated_at": context.now.isoformat(),
                "artifacts": [
                    {
                        "format": a.format,
                        "name": a.path.name,
                        "bytes": a.bytes,
                        "sha256": a.sha256,
                        "url": context.link(a),
                    }
                    for a in context.artifacts
                ],
            }
            # an encrypted delivery's receiver learns which files are sealed and how the password travels
            | ({"encryption": context.encryption.as_dict()} if context.encryption is not None else {})
            # sections rendered as placeholders (on_error: placeholder): [{section, error}]
            | ({"warnings": warnings} if (warnings := failed_sections(context)) else {}),
        }

    def body(self) -> bytes:
        """The payload as sent: compact UTF-8 JSON with sorted keys, so its signature is reproducible."""
        text = json.dumps(self.payload(), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=json_value)
        return text.encode()

    def message_id(self, recipient: Recipient) -> str:
        """The same for every attempt of this delivery to this URL, in any process, and when a send that may have
        arrived is made again (``deliver --resend-unknown``): made of what identifies its ledger row (run, delivery,
        URL), so receivers can drop copies."""
        seed = "\n".join((self.context.run_id, self.options.name, recipient.destination))
        return "msg_" + hashlib.sha256(seed.encode()).hexdigest()[:32]

    def signature_headers(self, recipient: Recipient, body: bytes, key: bytes | None, timestamp: int) -> dict[str, str]:
        message_id = self.message_id(recipient)
        headers = {"webhook-id": message_id, "webhook-timestamp": str(timestamp)}
        if key is not None:
            signed = f"{message_id}.{timestamp}.".encode() + body
            digest = hmac.new(key, signed, hashlib.sha256).digest()
            headers["webhook-signature"] = "v1," + base64.b64encode(digest).decode()
        return headers

    def _signing_key(self) -> bytes | None:
        if self.options.secret is None:
            return None
        try:
            return signing_key(resolve_secrets(self.options.secret))
        except SecretError as exc:
            raise PermanentFailure(f"secret: {exc}") from None

    def _headers(self) -> dict[str, str]:
        try:
            extra = {name: resolve_secrets(value) for name, value in self.options.headers.items()}
        except SecretError as exc:
            raise PermanentFailure(f"headers: {exc}") from None
        return {**extra, "Content-Type": "application/json"}


def signing_key(secret: str) -> bytes:
    """The HMAC key in a Standard Webhooks secret (``whsec_`` + base64); ``PermanentFailure`` naming the option."""
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        # Some providers hand out unpadded base64; the padding carries no information.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise PermanentFailure(
            "secret: not a Standard Webhooks signing key; expected whsec_ followed by base64, e.g. from "
            "`python -c 'import base64,os; print(\"whsec_\" + base64.b64encode(os.urandom(24)).decode())'`"
        )
    return key
