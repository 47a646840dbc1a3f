"""The ``slack`` channel: a message through an incoming webhook, or through a bot token with files attached.

A bot uploads with Slack's external upload flow (``files.getUploadURLExternal``, the bytes to the URL it returns,
then one ``files.completeUploadExternal`` sharing them all to the channel); ``files.upload`` is retired. Slack answers
errors as HTTP 200 with ``{"ok": false, "error": ...}``, read here into outcomes per channel.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from reportctl.delivery.base import (
    ChannelCheckError,
    ChannelOptions,
    DeliveryContext,
    Outcome,
    PermanentFailure,
    Recipient,
)
from reportctl.delivery.http_client import SessionPerThread, http_outcome, resolve_host, retry_after, transport_outcome
from reportctl.errors import ReportctlError
from reportctl.secrets import SECRET_REFERENCE, SecretError, redact, resolve_secrets
from reportctl.spec.types import PositiveDuration

if TYPE_CHECKING:
    import requests

    from reportctl.config import Project
    from reportctl.run_record import Artifact

_CHANNEL_ID = re.compile(r"^[A-Z][A-Z0-9]{5,}$")
_SECTION_LIMIT = 3000
"""Characters Slack takes in a section block's text."""
_CHANNEL_ERRORS = frozenset({"channel_not_found", "not_in_channel", "is_archived"})
_TOKEN_ERRORS = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"})
_TEMPORARY_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class SlackOptions(ChannelOptions):
    """Options of the ``slack`` channel: exactly one of ``webhook_url`` and ``token``."""

    channel: Literal["slack"] = Field(description="Posts a summary to Slack, by incoming webhook or bot token.")
    webhook_url: str | None = Field(
        default=None, description="An incoming webhook URL, usually ${secret:NAME}; posts text and links only."
    )
    token: str | None = Field(
        default=None, description="A bot token (xoxb-...), usually ${secret:NAME}; needs chat:write, files:write."
    )
    to: list[str] = Field(
        default_factory=list, description="Channel ids (C0123456789) the bot posts to; required with token."
    )
    attach: list[str] = Field(
        default_factory=list, description="Formats uploaded as files (bot token only), e.g. [pdf, xlsx]."
    )
    text: str | None = Field(
        default=None,
        description="The message, a template in Slack mrkdwn; default: title, run and status, a line per artifact.",
    )
    api_url: str = Field(default="https://slack.com/api", description="The Web API's base URL; another for GovSlack.")
    timeout: PositiveDuration = Field(default=timedelta(seconds=10), description="Limit for each wait on Slack.")

    @field_validator("webhook_url", "api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not SECRET_REFERENCE.search(value) and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("expected an https:// URL (or ${secret:NAME})")
        return value

    @field_validator("to")
    @classmethod
    def _channel_ids(cls, value: list[str]) -> list[str]:
        for channel in value:
            if not _CHANNEL_ID.match(channel):
                raise ValueError(
                    f"'{channel}' is not a Slack channel id; copy the id (like C0123456789) from the bottom of the "
                    "channel's details in Slack"
                )
            if value.count(channel) > 1:
                raise ValueError(f"'{channel}' is listed more than once")
        return value

    @model_validator(mode="after")
    def _one_way_to_post(self) -> Self:
        if (self.webhook_url is None) == (self.token is None):
            both = "both are set" if self.token is not None else "neither is set"
            raise ValueError(
                f"set exactly one of webhook_url (an incoming webhook) and token (a bot token, xoxb-...); {both}"
            )
        if self.webhook_url is not None and self.to:
            raise ValueError("to: an incoming webhook posts to its own channel; remove to, or use token instead")
        if self.webhook_url is not None and self.attach:
            raise ValueError(
                "attach: an incoming webhook cannot upload files, only post links; use token (a bot token) to attach"
            )
        if self.token is not None and not self.to:
            raise ValueError("to: a bot token needs the channel ids to post to, e.g. to: [C0123456789]")
        return self


class _Stop(Exception):
    """Ends a bot delivery to one channel early with the outcome Slack's answer means."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.response)
        self.outcome = outcome


class SlackChannel:
    """A Slack message per channel (bot) or one through the incoming webhook, at Slack's pace of one a second."""

    PLUGIN_NAME: ClassVar[str] = "slack"
    Options: ClassVar[type[ChannelOptions]] = SlackOptions
    PUBLISHES: ClassVar[bool] = False
    RESEND_EFFECT: ClassVar[str] = (
        "Slack has no id by which a repeated post is dropped, so those channels may show the report twice"
    )

    def __init__(self, options: SlackOptions, context: DeliveryContext) -> None:
        self.options = options
        self.context = context
        self.batch_size = 1
        self.concurrency = 1
        self.rate_limit: float | None = 1.0
        self._sessions = SessionPerThread()

    def recipients(self) -> list[Recipient]:
        url = self.options.webhook_url
        if url is None:
            return [Recipient(address=f"slack:{channel}") for channel in self.options.to]
        try:
            target = resolve_secrets(url)
        except SecretError as exc:
            return [Recipient(address="slack:webhook", problem=str(exc))]
        return [Recipient(address=f"slack:webhook {urlsplit(target).hostname}/…", target=target)]

    def send(self, batch: Sequence[Recipient]) -> Mapping[str, Outcome]:
        """Post to each recipient: one attempt, an outcome per recipient; ``PermanentFailure`` for a refused token."""
        text = self.message_text()
        outcomes = {}
        for recipient in batch:
            try:
                if self.options.webhook_url is not None:
                    outcomes[recipient.address] = self._post_to_webhook(recipient.destination, text)
                else:
                    outcomes[recipient.address] = self._post_as_bot(recipient.address.removeprefix("slack:"), text)
            except _Stop as stop:
                outcomes[recipient.address] = stop.outcome
        return outcomes

    def preview(self, batch: Sequence[Recipient]) -> str:
        text = self.message_text()
        lines: list[str] = []
        for recipient in batch:
            if lines:
                lines.append("")
            if self.options.webhook_url is not None:
                lines.append(f"POST {recipient.address}")
                lines.append(json.dumps(self.message(text), indent=2, ensure_ascii=False))
                continue
            channel = recipient.address.removeprefix("slack:")
            files = self._attachments()
            if not files:
                lines.append(f"chat.postMessage to {channel}")
                lines.append(json.dumps({"channel": channel, **self.message(text)}, indent=2, ensure_ascii=False))
                continue
            for artifact in files:
                lines.append(f"files.getUploadURLExternal, then upload {artifact.path.name} ({_size(artifact.bytes)})")
            lines.append(f"files.completeUploadExternal to {channel} with the comment:")
            lines.append(text)
        return "\n".join(lines)

    def links(self) -> Mapping[str, str]:
        return {}

    def close(self) -> None:
        self._sessions.close()

    @classmethod
    def check(cls, options: SlackOptions, project: Project) -> str:
        """Resolve the webhook's host, or ask ``auth.test`` who the token is; nothing is posted."""
        try:
            if options.webhook_url is not None:
                return redact(resolve_host(resolve_secrets(options.webhook_url), "slack webhook_url"))
            token = resolve_secrets(options.token or "")
        except SecretError as exc:
            raise ChannelCheckError(f"slack: {exc}") from None
        import requests

        url = options.api_url.rstrip("/") + "/auth.test"
        timeout = options.timeout.total_seconds()
        with requests.Session() as session:
            try:
                with session.post(url, headers=_bearer(token), timeout=(timeout, timeout)) as response:
                    status, answer = response.status_code, _json(response)
            except requests.RequestException as exc:
                problem = transport_outcome(exc, url, timeout).response
                raise ChannelCheckError(f"slack: auth.test: {problem}; check api_url and the network") from None
        if answer is None or status != 200:
            raise ChannelCheckError(f"slack: auth.test answered HTTP {status}, not Slack's JSON; check api_url")
        if not answer.get("ok"):
            error = answer.get("error", "unknown error")
            raise ChannelCheckError(f"slack: auth.test: {error}; check token (a bot token, xoxb-...)")
        return f"slack bot '{answer.get('user', '?')}' in team '{answer.get('team', '?')}'"

    def message_text(self) -> str:
        """The message in mrkdwn, from ``text`` or the default summary; ``PermanentFailure`` for a broken template."""
        if self.options.text is None:
            return self._default_text()
        try:
            return self.context.render(self.options.text, where="slack text")
        except ReportctlError as exc:
            raise PermanentFailure(str(exc)) from None

    def message(self, text: str) -> dict[str, Any]:
        """Fallback text for notifications, and blocks: the text as a section, then where it came from."""
        shown = text if len(text) <= _SECTION_LIMIT else text[: _SECTION_LIMIT - 1] + "…"
        about = f"reportctl · {_escape(self.context.report)} · {self.context.now.isoformat(timespec='minutes')}"
        return {
            "text": text,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": shown}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": about}]},
            ],
        }

    def _default_text(self) -> str:
        from reportctl.delivery.message import compression_note, failed_sections_line

        context = self.context
        lines = [f"*{_escape(context.title)}* — run {context.run_id} {context.status}"]
        warning = failed_sections_line(context)  # sections rendered as placeholders (on_error: placeholder)
        lines += [f":warning: {_escape(warning)}"] if warning else []
        if context.status == "failed":
            lines.append("> " + _escape(context.error or "no error message").replace("\n", "\n> "))
        for artifact in context.artifacts:
            name, link = _escape(artifact.path.name), context.link(artifact)
            shown = f"<{link}|{name}>" if link else name
            lines.append(f"• {shown} ({_size(artifact.bytes)}{compression_note(artifact)})")
        if context.encryption is not None:  # which files are sealed, and how the password comes (never what it is)
            lines.append(_escape(context.encryption.note()))
        return "\n".join(lines)

    def _post_to_webhook(self, url: str, text: str) -> Outcome:
        response = self._request(url, "POST", json=self.message(text))
        with response:
            outcome = http_outcome(response, url)
        if response.status_code in (403, 404, 410):
            hint = "the webhook was removed or its channel archived; create a new one and update webhook_url"
            return Outcome(outcome.status, f"{outcome.response}; {hint}")
        return outcome

    def _post_as_bot(self, channel: str, text: str) -> Outcome:
        files = self._attachments()
        if not files:
            answer = self._api("chat.postMessage", channel, json={"channel": channel, **self.message(text)})
            return Outcome("sent", f"posted to {channel} (ts {answer.get('ts', '?')})")
        uploaded = []
        for artifact in files:
            content = _read(artifact)
            form = {"filename": artifact.path.name, "length": str(len(content))}
            answer = self._api("files.getUploadURLExternal", channel, data=form)
            upload_url, file_id = answer.get("upload_url"), answer.get("file_id")
            if not isinstance(upload_url, str) or not isinstance(file_id, str):
                raise _Stop(Outcome("failed", "files.getUploadURLExternal answered without upload_url and file_id"))
            self._upload(upload_url, content, artifact.path.name)
            uploaded.append({"id": file_id, "title": artifact.path.name})
        self._api(
            "files.completeUploadExternal",
            channel,
            json={"files": uploaded, "channel_id": channel, "initial_comment": text},
        )
        ids = ", ".join(f["id"] for f in uploaded)
        return Outcome("sent", f"posted to {channel} with {len(uploaded)} files ({ids})")

    def _upload(self, url: str, content: bytes, name: str) -> None:
        # The upload URL carries its own authorisation; the token stays with slack.com.
        headers = {"Content-Type": "application/octet-stream"}
        response = self._request(url, "POST", data=content, headers=headers, token=False)
        with response:
            outcome = http_outcome(response, url)
        if outcome.status != "sent":
            raise _Stop(Outcome(outcome.status, f"uploading {name}: {outcome.response}", outcome.retry_after))

    def _api(self, method: str, channel: str, **body: Any) -> dict[str, Any]:
        """Slack's answer to a Web API call when ok; else ``_Stop`` with its outcome, or ``PermanentFailure``."""
        url = self.options.api_url.rstrip("/") + "/" + method
        if "json" in body:
            # Slack warns about JSON bodies without a charset; requests' json= sends none.
            body["data"] = json.dumps(body.pop("json"), ensure_ascii=False).encode()
            body["headers"] = {"Content-Type": "application/json; charset=utf-8"}
        response = self._request(url, "POST", **body)
        with response:
            wait = retry_after(response.headers.get("Retry-After"))
            if response.status_code != 200:
                outcome = http_outcome(response, url)
                raise _Stop(Outcome(outcome.status, f"{method}: {outcome.response}", outcome.retry_after))
            answer = _json(response)
        if answer is None:
            raise _Stop(Outcome("failed", f"{method}: the answer is not Slack's JSON; check api_url"))
        if answer.get("ok"):
            return answer
        error = str(answer.get("error", "unknown error"))
        if error in _TOKEN_ERRORS:
            raise PermanentFailure(f"{method}: Slack refused the token ({error}); check token (a bot token, xoxb-...)")
        if error in _TEMPORARY_ERRORS:
            raise _Stop(Outcome("retry", f"{method}: {error}", wait))
        if error in _CHANNEL_ERRORS:
            fix = (
                f"unarchive {channel} or remove it from to"
                if error == "is_archived"
                else f"invite the bot to {channel} (/invite @your-bot) or correct the channel id"
            )
            raise _Stop(Outcome("failed", f"{method}: {error}; {fix}"))
        if error == "missing_scope":
            needed = answer.get("needed", "a scope")
            fix = f"add {needed} to the Slack app's bot scopes and reinstall it"
            raise _Stop(Outcome("failed", f"{method}: missing_scope; {fix}"))
        raise _Stop(Outcome("failed", f"{method}: {error}"))

    def _request(self, url: str, method: str, token: bool = True, **kwargs: Any) -> requests.Response:
        """The response to one request, or ``_Stop`` with the outcome of a transport failure."""
        import requests

        timeout = self.options.timeout.total_seconds()
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers.update(_bearer(self._token()))
        try:
            return self._sessions.get().request(
                method, url, headers=headers, timeout=(timeout, timeout), allow_redirects=False, **kwargs
            )
        except requests.RequestException as exc:
            raise _Stop(transport_outcome(exc, url, timeout)) from None

    def _token(self) -> str:
        if self.options.webhook_url is not None:
            return ""
        try:
            return resolve_secrets(self.options.token or "")
        except SecretError as exc:
            raise PermanentFailure(f"token: {exc}") from None

    def _attachments(self) -> list[Artifact]:
        found = (self.context.artifact(format) for format in self.options.attach)
        return [artifact for artifact in found if artifact is not None]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _json(response: requests.Response) -> dict[str, Any] | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _read(artifact: Artifact) -> bytes:
    try:
        return artifact.path.read_bytes()
    except OSError as exc:
        raise PermanentFailure(f"cannot read {artifact.path} to attach it: {exc.strerror}") from None


def _escape(text: str) -> str:
    """``text`` safe inside mrkdwn: Slack reads <, > and & as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _size(count: int) -> str:
    from reportctl.formats import format_bytes

    return format_bytes(count)
