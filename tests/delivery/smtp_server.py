"""A real SMTP server for tests: aiosmtpd on 127.0.0.1 in a thread, recording every message it accepts.

    with smtp_server(refuse={"bob@example.com"}) as server:
        ...send to 127.0.0.1:server.port...
        server.messages[0].parsed()["Subject"]

Options make it refuse a recipient (550) or a sender (553), defer a recipient (450), answer 451 to the first DATA,
require AUTH, and offer STARTTLS (or implicit TLS) with a self-signed certificate from ``self_signed_certificate``.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on right now (also what a test uses for an unreachable server)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) PEM files for localhost and 127.0.0.1; the certificate doubles as the client's ca_file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reportctl test SMTP")])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: Any
    """The client's (host, port): two values mean two connections."""

    def parsed(self) -> EmailMessage:
        message = BytesParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(message, EmailMessage)
        return message


@dataclass
class RecordingHandler:
    """Accepts and records messages, refusing or deferring what it was told to."""

    refuse: set[str] = field(default_factory=set)
    refuse_senders: set[str] = field(default_factory=set)
    defer: set[str] = field(default_factory=set)
    fail_data: int = 0
    """How many DATA commands to answer with 451 before accepting."""
    messages: list[ReceivedMessage] = field(default_factory=list)
    rcpt_times: list[float] = field(default_factory=list)
    """time.monotonic() of each RCPT accepted, for rate-limit measurements."""
    data_attempts: int = 0

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if address.lower() in self.refuse_senders:
            return f"553 5.7.1 <{address}>: Sender address rejected: not owned by user"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower() in self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if address.lower() in self.defer:
            return f"450 4.2.1 <{address}>: Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        self.rcpt_times.append(time.monotonic())
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_attempts += 1
        if self.fail_data > 0:
            self.fail_data -= 1
            return "451 4.3.0 Temporary local problem, try again"
        content = envelope.original_content or b""
        self.messages.append(ReceivedMessage(str(envelope.mail_from), list(envelope.rcpt_tos), content, session.peer))
        return f"250 2.0.0 OK queued as Q{len(self.messages)}"


class SmtpServer:
    """A running server: ``port``, the handler's ``messages``, and ``drop_connections`` to hang up on clients."""

    def __init__(self, controller: _RecordingController, handler: RecordingHandler) -> None:
        self.controller = controller
        self.handler = handler
        self.host = HOST
        self.port: int = controller.port

    @property
    def messages(self) -> list[ReceivedMessage]:
        return self.handler.messages

    def drop_connections(self) -> None:
        """Close every client connection from the server's side, as a server's idle timeout does."""

        async def close_all() -> None:
            for session in self.controller.sessions:
                if session.transport is not None and not session.transport.is_closing():
                    session.transport.close()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(close_all(), self.controller.loop).result(timeout=5)


class _RecordingController(Controller):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: list[SMTP] = []

    def factory(self) -> SMTP:
        server = super().factory()
        self.sessions.append(server)
        return server


@contextmanager
def smtp_server(
    *,
    refuse: Iterable[str] = (),
    refuse_senders: Iterable[str] = (),
    defer: Iterable[str] = (),
    fail_data: int = 0,
    auth: tuple[str, str] | None = None,
    starttls: tuple[Path, Path] | None = None,
    implicit_tls: tuple[Path, Path] | None = None,
) -> Iterator[SmtpServer]:
    """Run a recording server until the block ends.

    ``auth`` is (user, password): AUTH is offered (required when TLS is on). ``starttls`` / ``implicit_tls`` take
    the (certificate, key) of ``self_signed_certificate``.
    """
    handler = RecordingHandler(
        refuse={a.lower() for a in refuse},
        refuse_senders={a.lower() for a in refuse_senders},
        defer={a.lower() for a in defer},
        fail_data=fail_data,
    )
    kwargs: dict[str, Any] = {"hostname": HOST, "port": free_port(), "server_hostname": "smtp.test", "ident": "test"}
    tls = starttls or implicit_tls
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
        kwargs["ssl_context" if implicit_tls else "tls_context"] = context
    if auth is not None:

        def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
            given = (data.login.decode(), data.password.decode()) if isinstance(data, LoginPassword) else None
            return AuthResult(success=given == auth, handled=False)

        kwargs["authenticator"] = authenticate
        # aiosmtpd warns (an error under pytest) when AUTH is required in the clear; then it is only offered.
        kwargs["auth_required"] = tls is not None
        kwargs["auth_require_tls"] = tls is not None
    controller = _RecordingController(handler, **kwargs)
    controller.start()
    try:
        yield SmtpServer(controller, handler)
    finally:
        controller.stop()


@contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections but never answers, for timeouts."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(5)
        yield int(listener.getsockname()[1])
