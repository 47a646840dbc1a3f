"""What an encrypted delivery sends: password-protected copies of the run's files, one set per password.

The engine gives a delivery with ``encrypt`` one group of recipients per password (each recipient with a password
of their own alone, everyone else together) and, for each group, a ``DeliveryContext`` whose artifacts are that
group's encrypted copies in a temporary folder inside the run's folder. Channels send what their context holds, so
none of them knows about encryption. The run's own files are never touched; the copies go once the delivery is done.
An encrypted context has no manifest (its preview holds the report's figures in the clear) and no links (a link
leads to the plain file).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportctl.errors import DeliveryError
from reportctl.spec.delivery import NATIVELY_ENCRYPTED

if TYPE_CHECKING:
    from reportctl.delivery.base import Channel, ChannelOptions, DeliveryContext, Recipient
    from reportctl.run_record import Artifact
    from reportctl.spec.delivery import EncryptOptions
    from reportctl.state.ledger import DeliveryLedger


class EncryptionError(DeliveryError):
    """A delivery's files cannot be encrypted: a password's secret is not set, or a file cannot be read."""


@dataclass(frozen=True)
class EncryptedFile:
    """One file as recipients get it: its name, what it is, and what it holds when it is a ZIP."""

    name: str
    format: str
    method: str
    contains: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"name": self.name, "format": self.format, "method": self.method}
        return {**record, "contains": list(self.contains)} if self.contains else record


@dataclass(frozen=True)
class EncryptedFiles:
    """What a message says about an encrypted delivery: which files are protected, and how the password comes."""

    files: tuple[EncryptedFile, ...]
    password_travels: str | None
    per_recipient: bool
    left_out: tuple[str, ...] = ()
    """Files of the run this delivery does not send, having no way to encrypt them (not listed in ``zip``)."""

    def note(self) -> str:
        """A paragraph for the message; it names the files and the way the password travels, never the password."""
        shown = []
        for file in self.files:
            holds = f", holding {', '.join(file.contains)}" if file.contains else ""
            shown.append(f"{file.name} ({file.method}{holds})")
        way = f"it travels {self.password_travels.strip()}" if self.password_travels else "it is sent separately"
        lines = [f"Encrypted: {'; '.join(shown) if shown else 'no files'}. The password is not in this message: {way}."]
        if self.left_out:
            lines.append(f"Not sent, as they cannot be encrypted: {', '.join(self.left_out)}.")
        return "\n\n".join(lines)

    def ledger_note(self) -> str:
        """For the ledger's response: the files and methods, never the password."""
        return "encrypted: " + ", ".join(f"{f.name} ({f.method})" for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": [f.as_dict() for f in self.files],
            "passwords": "per recipient" if self.per_recipient else "per delivery",
            "password_travels": self.password_travels or "sent separately",
            "left_out": list(self.left_out),
        }


@dataclass(frozen=True)
class PasswordGroup:
    """Recipients who share a password, so one set of encrypted copies (and one message) serves them all."""

    password: str
    owner_password: str | None
    """PDF: the password that lifts the permissions; None for a random one per file."""
    addresses: frozenset[str] | None
    """Lower-case addresses of a recipient with a password of their own; None for everyone else."""

    def holds(self, recipient: Recipient) -> bool:
        return self.addresses is None or recipient.address.lower() in self.addresses


def password_groups(
    options: ChannelOptions, recipients: Sequence[Recipient]
) -> tuple[list[Recipient], list[PasswordGroup]]:
    """The recipients (one without any password marked not sendable) and their password groups.

    Every secret ``encrypt`` names is resolved first: a missing one is an ``EncryptionError`` naming the delivery and
    the field, and nothing of the delivery is sent.
    """
    from reportctl.secrets import SecretError, resolve_secrets

    encrypt = options.encrypt
    assert encrypt is not None

    def resolve(reference: str, field: str) -> str:
        try:
            return resolve_secrets(reference)
        except SecretError as exc:
            raise EncryptionError(f"delivery {options.name}: encrypt.{field}: {exc}") from None

    own = {address: resolve(ref, f"passwords.{address}") for address, ref in encrypt.passwords.items()}
    shared = resolve(encrypt.password, "password") if encrypt.password is not None else None
    owner = resolve(encrypt.owner_password, "owner_password") if encrypt.owner_password is not None else None
    groups = [PasswordGroup(password, owner, frozenset({address})) for address, password in own.items()]
    if shared is not None:
        groups.append(PasswordGroup(shared, owner, None))
    if shared is not None:
        return list(recipients), groups
    problem = "encrypt.passwords has no password for {} and encrypt.password is not set"
    checked = [
        r if r.problem or r.address.lower() in own else replace(r, problem=problem.format(r.address))
        for r in recipients
    ]
    return checked, groups


def encrypted_context(
    context: DeliveryContext, encrypt: EncryptOptions, group: PasswordGroup, folder: Path
) -> DeliveryContext:
    """``context`` with its artifacts replaced by copies in ``folder`` protected by ``group``'s password."""
    from reportctl.encryption import METHODS, encrypt_pdf, encrypt_xlsx, zip_encrypted

    artifacts: list[Artifact] = []
    files: list[EncryptedFile] = []
    zipped = [a for a in context.artifacts if a.format in encrypt.zip]
    try:
        for artifact in context.artifacts:
            target = folder / artifact.path.name
            if artifact.format == "pdf" and "pdf" not in encrypt.zip:
                encrypt_pdf(
                    artifact.path,
                    target,
                    password=group.password,
                    owner_password=group.owner_password,
                    permissions=encrypt.permissions,
                )
            elif artifact.format == "xlsx" and "xlsx" not in encrypt.zip:
                encrypt_xlsx(artifact.path, target, password=group.password)
            else:
                continue
            artifacts.append(_artifact(artifact.format, target))
            files.append(EncryptedFile(target.name, artifact.format, METHODS[artifact.format]))
        if zipped:
            target = folder / f"{context.report}.zip"
            zip_encrypted([a.path for a in zipped], target, password=group.password)
            artifacts.append(_artifact("zip", target))
            files.append(EncryptedFile(target.name, "zip", METHODS["zip"], tuple(a.path.name for a in zipped)))
    except OSError as exc:
        what = exc.filename or "a file"
        raise EncryptionError(f"cannot encrypt {what} of run {context.run_id}: {exc.strerror or exc}") from None
    sent = {a.path.name for a in zipped} | {f.name for f in files}
    note = EncryptedFiles(
        tuple(files),
        encrypt.password_travels,
        per_recipient=bool(encrypt.passwords),
        left_out=tuple(a.path.name for a in context.artifacts if a.path.name not in sent),
    )
    return replace(context, artifacts=tuple(artifacts), directory=folder, links={}, encryption=note)


def encrypted_options(options: ChannelOptions) -> ChannelOptions:
    """``options`` with the zipped formats named in ``attach`` or ``formats`` (s3) replaced by ``zip``, the one
    file that carries them, so a channel that picks files by format finds it."""
    encrypt = options.encrypt
    assert encrypt is not None
    updates = {}
    for name in ("attach", "formats"):
        chosen = getattr(options, name, None)
        if isinstance(chosen, list):
            renamed = ["zip" if f in encrypt.zip and f not in NATIVELY_ENCRYPTED else f for f in chosen]
            updates[name] = list(dict.fromkeys(renamed))
    return options.model_copy(update=updates) if updates else options


GroupChannels = list[tuple[PasswordGroup, "Channel", "DeliveryContext"]]
"""A delivery's password groups, each with its channel over the context holding the group's encrypted copies."""


def encrypted_channels(
    options: ChannelOptions, context: DeliveryContext, recipients: list[Recipient], cleanup: ExitStack
) -> tuple[list[Recipient], GroupChannels]:
    """For a delivery with ``encrypt``: its recipients (one without a password not sendable) and a channel per
    password group that holds any of them, its copies in a folder inside the run's that ``cleanup`` removes."""
    from reportctl.delivery.engine import with_secrets
    from reportctl.plugins import CHANNELS, load_plugin

    if options.encrypt is None:
        return recipients, []
    recipients, groups = password_groups(options, recipients)
    wanted = {id(_group_of(groups, r)) for r in recipients if not r.problem}
    channels: GroupChannels = []
    for group in groups:
        if id(group) not in wanted:
            continue
        try:
            folder = Path(tempfile.mkdtemp(prefix=f".encrypted-{options.name}-", dir=context.directory))
        except OSError as exc:
            raise EncryptionError(
                f"delivery {options.name}: cannot make a folder for the encrypted files in {context.directory}: "
                f"{exc.strerror or exc}"
            ) from None
        cleanup.callback(shutil.rmtree, folder, ignore_errors=True)
        encrypted = encrypted_context(context, options.encrypt, group, folder)
        channel: Channel = load_plugin(CHANNELS, options.channel)(with_secrets(encrypted_options(options)), encrypted)
        cleanup.callback(channel.close)
        channels.append((group, channel, encrypted))
    return recipients, channels


def _group_of(groups: Sequence[PasswordGroup], recipient: Recipient) -> PasswordGroup | None:
    """The first group that holds ``recipient``: their own password before the delivery's."""
    return next((group for group in groups if group.holds(recipient)), None)


def channel_for(encrypted: GroupChannels, recipient: Recipient) -> Channel:
    """The channel carrying ``recipient``'s copies (for a dry run's preview)."""
    group = _group_of([g for g, _, _ in encrypted], recipient)
    return next(channel for g, channel, _ in encrypted if g is group)


def send_encrypted(
    ledger: DeliveryLedger,
    encrypted: GroupChannels,
    options: ChannelOptions,
    context: DeliveryContext,
    todo: Sequence[list[tuple[int, Recipient]]],
    worker: str,
) -> None:
    """Each password group's recipients through the channel that carries the group's copies: a recipient with a
    password of their own gets a message of their own. The ledger and the manifest say what went encrypted."""
    from reportctl.delivery.sending import send_all

    groups = [group for group, _, _ in encrypted]
    for group, channel, copies in encrypted:
        batches = [[(row, r) for row, r in batch if _group_of(groups, r) is group] for batch in todo]
        send_all(ledger, channel, options, [batch for batch in batches if batch], worker)
        assert copies.encryption is not None
        ledger.note_sent([row for batch in batches for row, _ in batch], copies.encryption.ledger_note())
    first = encrypted[0][2].encryption
    if first is not None and any(todo):
        record_in_manifest(context.directory, options.name, first)


def record_in_manifest(directory: Path | None, delivery: str, note: EncryptedFiles) -> None:
    """Say in the run's manifest.json that ``delivery`` went encrypted (files, methods, how the password travels);
    written atomically, never with a password."""
    manifest = directory / "manifest.json" if directory is not None else None
    if manifest is None or not manifest.is_file():
        return
    document = json.loads(manifest.read_text(encoding="utf-8"))
    document.setdefault("encrypted_deliveries", {})[delivery] = note.as_dict()
    temporary = manifest.with_name(f".{manifest.name}.{secrets.token_hex(4)}.tmp")
    try:
        temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, manifest)
    finally:
        temporary.unlink(missing_ok=True)


def _artifact(format: str, path: Path) -> Artifact:
    import hashlib

    from reportctl.run_record import Artifact

    data = path.read_bytes()
    return Artifact(format, path, len(data), hashlib.sha256(data).hexdigest())
