"""The ``email`` channel: the report's message over SMTP, with STARTTLS or implicit TLS and authentication.

One ``send`` is one SMTP transaction: one message whose envelope holds every address of the batch. The connection
stays open across batches. Answers map to outcomes per recipient: a 5xx on RCPT bounces that recipient only, a 4xx
asks for a retry; failures of the whole transaction raise ``TemporaryFailure`` or ``PermanentFailure``.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import ByteSize, Field, ValidationError, ValidatorFunctionWrapHandler, field_validator, model_validator

from reportctl.delivery.base import (
    ChannelCheckError,
    ChannelOptions,
    DeliveryContext,
    Outcome,
    PermanentFailure,
    Recipient,
    TemporaryFailure,
)
from reportctl.delivery.message import (
    MessageContent,
    MessageOptions,
    attached_formats,
    compose_message,
    describe_message,
    render_content,
    resolve_recipients,
)
from reportctl.delivery.recipients import RecipientEntry
from reportctl.spec.types import PositiveDuration

if TYPE_CHECKING:
    from email.message import EmailMessage

    from reportctl.config import Project

_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


class EmailOptions(MessageOptions):
    """Options of the ``email`` channel."""

    channel: Literal["email"] = Field(description="Sends the report as an email over SMTP.")
    to: list[RecipientEntry] = Field(
        min_length=1, description="Recipients: addresses, team:NAME or list:NAME; a single string is one."
    )
    host: str = Field(default="localhost", description="The SMTP server's host name.")
    port: int | None = Field(
        default=None, ge=1, le=65535, description="The SMTP port; default 587 for starttls, 465 for tls, 25 for none."
    )
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls",
        description="starttls upgrades a plain connection (port 587), tls is TLS from the start (port 465), none "
        "sends in the clear (only for a server you trust on your network).",
    )
    username: str | None = Field(default=None, description="Login name, when the server requires authentication.")
    password: str | None = Field(
        default=None, repr=False, description="Login password; write ${secret:NAME} rather than the value."
    )
    verify: bool = Field(default=True, description="Verify the server's TLS certificate; false only for testing.")
    ca_file: str | None = Field(
        default=None, description="A CA bundle (PEM) for a server whose certificate a private CA signed."
    )
    timeout: PositiveDuration = Field(
        default=timedelta(seconds=30), description="Limit for connecting and for each answer of the server."
    )
    batch_size: int = Field(default=100, ge=1, le=1000, description="Recipients per message envelope.")
    rate_limit: float = Field(default=100, gt=0, description="Recipients per second, at most.")
    max_attachment_size: ByteSize = Field(
        default="10MB",
        validate_default=True,
        description="A file above this size is sent as a link instead of attached (10MB, 25MiB, ...).",
    )

    @field_validator("max_attachment_size", mode="wrap")
    @classmethod
    def _size(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise ValueError(f"expected a size such as 10MB or 25MiB, got {value!r}") from None

    @model_validator(mode="after")
    def _sender_is_set(self) -> EmailOptions:
        if self.from_ is None:
            raise ValueError(
                "from: a sender is required to send email; set from: 'Reports <reports@example.com>' on this "
                "delivery, or channels: {email: {from: ...}} in reportctl.yaml for every email delivery"
            )
        return self

    @model_validator(mode="after")
    def _password_needs_username(self) -> EmailOptions:
        if self.password is not None and not self.username:
            raise ValueError("password is set but username is not; set both, or neither for a server without login")
        return self

    @property
    def smtp_port(self) -> int:
        return self.port or _DEFAULT_PORTS[self.security]

    @property
    def server(self) -> str:
        return f"{self.host}:{self.smtp_port}"


class EmailChannel:
    """Sends one message per batch over a connection kept open for the whole delivery."""

    PLUGIN_NAME: ClassVar[str] = "email"
    Options: ClassVar[type[ChannelOptions]] = EmailOptions
    PUBLISHES: ClassVar[bool] = False
    RESEND_EFFECT: ClassVar[str] = (
        "each message went again with the Message-ID of the first, by which mail systems can drop the copy"
    )

    def __init__(self, options: EmailOptions, context: DeliveryContext) -> None:
        self.options = options
        self.context = context
        self.batch_size = options.batch_size
        self.concurrency = 1
        self.rate_limit: float | None = options.rate_limit
        self._smtp: smtplib.SMTP | None = None
        self._content: MessageContent | None = None

    def recipients(self) -> list[Recipient]:
        return resolve_recipients(self.options, self.context.people, self.context.audience)

    def send(self, batch: Sequence[Recipient]) -> Mapping[str, Outcome]:
        data = self._message(batch).as_bytes()
        try:
            return self._transaction(batch, data)
        except (smtplib.SMTPException, OSError) as exc:
            self._forget()  # after an error mid-transaction the session state is unknown
            raise _failure(exc, self.options) from None

    def preview(self, batch: Sequence[Recipient]) -> str:
        return describe_message(self._message(batch), batch)

    def links(self) -> Mapping[str, str]:
        return {}

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            _quit(smtp)

    @classmethod
    def check(cls, options: EmailOptions, project: Project) -> str:
        """Connect, greet, upgrade to TLS and log in as configured, then QUIT; nothing is sent."""
        from reportctl.secrets import SecretError, resolve_secrets

        try:
            secrets = {k: resolve_secrets(v) for k in ("username", "password") if (v := getattr(options, k))}
        except SecretError as exc:
            raise ChannelCheckError(str(exc)) from None
        options = options.model_copy(update=secrets)
        try:
            smtp, notes = _connect(options, project.root)
        except (TemporaryFailure, PermanentFailure) as exc:
            raise ChannelCheckError(str(exc)) from None
        _quit(smtp)
        return f"{options.server} {', '.join(notes)}"

    def _message(self, batch: Sequence[Recipient]) -> EmailMessage:
        if self._content is None:
            self._content = render_content(
                self.context,
                self.options,
                attach=attached_formats(self.options, self.context),
                max_attachment_size=int(self.options.max_attachment_size),
            )
        return compose_message(self.context, self.options, batch, self._content)

    def _transaction(self, batch: Sequence[Recipient], data: bytes) -> dict[str, Outcome]:
        smtp = self._mail_from(len(data))
        outcomes: dict[str, Outcome] = {}
        accepted: list[Recipient] = []
        for recipient in batch:
            code, reply = smtp.rcpt(recipient.destination)
            if code in (250, 251):
                accepted.append(recipient)
            else:
                outcomes[recipient.address] = Outcome("retry" if code < 500 else "bounced", _reply(code, reply))
        if not accepted:
            _reset(smtp)
            return outcomes
        answer: bytes | str
        try:
            code, answer = smtp.data(data)
        except smtplib.SMTPDataError as exc:  # DATA itself refused, before the message was sent
            code, answer = exc.smtp_code, exc.smtp_error
        if code != 250:
            _reset(smtp)
        # DATA's answer holds for everyone accepted; those refused at RCPT keep their own answer.
        status: Literal["sent", "retry", "failed"] = "sent" if code == 250 else "retry" if code < 500 else "failed"
        for recipient in accepted:
            outcomes[recipient.address] = Outcome(status, _reply(code, answer))
        return outcomes

    def _mail_from(self, size: int) -> smtplib.SMTP:
        """A connection whose MAIL FROM was accepted; one the server dropped since the last batch is reopened once."""
        reused = self._smtp is not None
        smtp = self._connection()
        try:
            code, reply = smtp.mail(self.options.sender, _mail_options(smtp, size))
        except smtplib.SMTPServerDisconnected:
            if not reused:
                raise
            code, reply = 421, b"connection closed"
        if code == 421 and reused:  # idle connections are closed by servers: not a failure of this batch
            self._forget()
            smtp = self._connection()
            code, reply = smtp.mail(self.options.sender, _mail_options(smtp, size))
        if code != 250:
            _reset(smtp)
            problem = (
                f"SMTP server {self.options.server} refused the sender {self.options.sender}: {_reply(code, reply)}"
            )
            if code < 500:
                raise TemporaryFailure(problem)
            raise PermanentFailure(f"{problem}; check `from` (the server may allow only your own address)")
        return smtp

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            self._smtp, _ = _connect(self.options, self.context.project.root)
        return self._smtp

    def _forget(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()


class _GreetedSMTP(smtplib.SMTP):
    """Remembers the server's greeting, for ``doctor``."""

    greeting = ""

    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None) -> tuple[int, bytes]:
        code, message = super().connect(host, port, source_address)
        self.greeting = _reply(code, message)
        return code, message


class _GreetedSMTPOverTLS(_GreetedSMTP, smtplib.SMTP_SSL):
    pass


def _connect(options: EmailOptions, root: Path) -> tuple[smtplib.SMTP, list[str]]:
    """An open, greeted, secured and logged-in connection, with what happened on the way (for ``doctor``)."""
    smtp: _GreetedSMTP | None = None
    seconds = options.timeout.total_seconds()
    try:
        tls = _tls_context(options, root) if options.security != "none" else None
        if options.security == "tls":
            smtp = _GreetedSMTPOverTLS(options.host, options.smtp_port, timeout=seconds, context=tls)
        else:
            smtp = _GreetedSMTP(options.host, options.smtp_port, timeout=seconds)
        notes = [f"answered {smtp.greeting}"]
        smtp.ehlo_or_helo_if_needed()
        if options.security == "starttls":
            if not smtp.has_extn("starttls"):
                raise PermanentFailure(
                    f"SMTP server {options.server} does not offer STARTTLS; set security: none for a plaintext server "
                    "you trust, or security: tls for one that speaks TLS from the start (port 465)"
                )
            smtp.starttls(context=tls)
            smtp.ehlo()
            notes.append("STARTTLS")
        elif options.security == "tls":
            notes.append("TLS")
        if options.username:
            smtp.login(options.username, options.password or "")
            notes.append(f"authenticated as {options.username}")
        return smtp, notes
    except BaseException as exc:
        if smtp is not None:
            smtp.close()
        if isinstance(exc, smtplib.SMTPException | OSError):
            raise _failure(exc, options) from None
        raise


def _tls_context(options: EmailOptions, root: Path) -> ssl.SSLContext:
    cafile = None
    if options.ca_file:
        cafile = Path(options.ca_file).expanduser()
        cafile = cafile if cafile.is_absolute() else root / cafile
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise PermanentFailure(f"ca_file {cafile}: cannot load it as a PEM CA bundle: {reason}") from None
    if not options.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _failure(exc: BaseException, options: EmailOptions) -> TemporaryFailure | PermanentFailure:
    """The whole-batch failure ``exc`` means, with what to fix; never the password."""
    server = options.server
    if isinstance(exc, TemporaryFailure | PermanentFailure):
        return exc
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        problem = (
            f"SMTP server {server} rejected the login of '{options.username}': {_reply(exc.smtp_code, exc.smtp_error)}"
        )
        if exc.smtp_code < 500:
            return TemporaryFailure(problem)
        return PermanentFailure(f"{problem}; check username and the password's secret (reportctl secrets set NAME)")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return PermanentFailure(
            f"SMTP server {server} does not offer AUTH on this connection; use security: starttls or tls, "
            "or remove username and password"
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(exc.__context__, TimeoutError):
        exc = exc.__context__  # smtplib reports a server too slow to answer as a disconnection
    elif isinstance(exc, smtplib.SMTPServerDisconnected):
        return TemporaryFailure(f"SMTP server {server} closed the connection: {exc}")
    if isinstance(exc, smtplib.SMTPConnectError):
        return TemporaryFailure(f"SMTP server {server} refused the connection: {_reply(exc.smtp_code, exc.smtp_error)}")
    if isinstance(exc, smtplib.SMTPResponseException):
        problem = f"SMTP server {server} answered {_reply(exc.smtp_code, exc.smtp_error)}"
        return TemporaryFailure(problem) if exc.smtp_code < 500 else PermanentFailure(problem)
    if isinstance(exc, smtplib.SMTPException):
        return PermanentFailure(f"SMTP server {server}: {exc}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return PermanentFailure(
            f"cannot verify the TLS certificate of SMTP server {server}: {exc.verify_message}; set ca_file to the "
            "CA bundle that signed it, or verify: false for a server you trust"
        )
    if isinstance(exc, ssl.SSLError):
        return PermanentFailure(
            f"TLS with SMTP server {server} failed ({exc.reason or exc}); check security: tls is for port 465, "
            "starttls for 587"
        )
    cannot_reach = f"cannot reach SMTP server {server}"
    if isinstance(exc, ConnectionRefusedError):
        return TemporaryFailure(f"{cannot_reach}: connection refused; check host and port, and that it runs")
    if isinstance(exc, TimeoutError):
        seconds = options.timeout.total_seconds()
        return TemporaryFailure(f"{cannot_reach}: no answer within {seconds:g}s; check host, port and firewalls")
    if isinstance(exc, socket.gaierror):
        return TemporaryFailure(f"{cannot_reach}: cannot resolve '{options.host}'; check host")
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return TemporaryFailure(f"{cannot_reach}: {reason}")


def _mail_options(smtp: smtplib.SMTP, size: int) -> list[str]:
    # Announcing the size lets the server refuse a too-large message before it is transferred.
    return [f"SIZE={size}"] if smtp.has_extn("size") else []


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return " ".join(f"{code} {text}".split())


def _reset(smtp: smtplib.SMTP) -> None:
    try:
        smtp.rset()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        smtp.close()
