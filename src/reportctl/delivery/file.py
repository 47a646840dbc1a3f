"""The ``file`` channel: the run's files and its email, as ``message.eml``, in an outbox folder.

The embedded default: a newcomer sees a full delivery, with the exact message recipients would get, and no server.
Each run goes to ``<outbox>/<report>/<run-id>/``; every file is written to a temporary name and renamed into place,
so no reader ever sees half a file, and writing again gives the same bytes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from reportctl.atomic import replacing
from reportctl.delivery.base import (
    ChannelCheckError,
    ChannelOptions,
    DeliveryContext,
    Outcome,
    PermanentFailure,
    Recipient,
)
from reportctl.delivery.keys import segment_problem
from reportctl.delivery.message import (
    MessageOptions,
    attached_formats,
    compose_message,
    describe_message,
    render_content,
    resolve_recipients,
)

if TYPE_CHECKING:
    from email.message import EmailMessage

    from reportctl.config import Project

MESSAGE_NAME = "message.eml"
MANIFEST_NAME = "manifest.json"


class OutboxOptions(MessageOptions):
    """Options of the ``file`` channel; recipients are optional and only shape the written message."""

    channel: Literal["file"] = Field(description="Writes the files and the email (message.eml) into an outbox folder.")
    path: str = Field(
        default="outbox", description="The outbox folder, relative to the project root; each run goes to REPORT/RUN/."
    )


class FileChannel:
    """Copies a run's artifacts and writes its message into the outbox, all recipients at once."""

    PLUGIN_NAME: ClassVar[str] = "file"
    Options: ClassVar[type[ChannelOptions]] = OutboxOptions
    PUBLISHES: ClassVar[bool] = False
    RESEND_EFFECT: ClassVar[str] = "the outbox files were written again in place, so nothing is there twice"

    def __init__(self, options: OutboxOptions, context: DeliveryContext) -> None:
        self.options = options
        self.context = context
        self.batch_size = 100_000
        self.concurrency = 1
        self.rate_limit: float | None = None
        self.outbox = outbox_folder(options, context.project.root)

    def recipients(self) -> list[Recipient]:
        resolved = resolve_recipients(self.options, self.context.people, self.context.audience)
        return resolved or [Recipient(f"file:{self.outbox}")]

    def send(self, batch: Sequence[Recipient]) -> Mapping[str, Outcome]:
        folder = self._folder()
        message = self._message()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for source, name in self._files():
                with source.open("rb") as original, replacing(folder / name) as copy:
                    shutil.copyfileobj(original, copy)
            with replacing(folder / MESSAGE_NAME) as eml:
                eml.write(message.as_bytes())
        except OSError as exc:
            where = exc.filename or folder
            raise PermanentFailure(f"cannot write to the outbox {where}: {exc.strerror or exc}") from None
        response = f"wrote {folder / MESSAGE_NAME}"
        return {recipient.address: Outcome("sent", response) for recipient in batch}

    def preview(self, batch: Sequence[Recipient]) -> str:
        folder = self._folder()
        files = ", ".join(name for _, name in self._files()) or "no files"
        return f"Would write {folder / MESSAGE_NAME} and copy {files}\n\n" + describe_message(
            self._message(), self._addressees()
        )

    def links(self) -> Mapping[str, str]:
        return {}

    def close(self) -> None:
        pass

    @classmethod
    def check(cls, options: OutboxOptions, project: Project) -> str:
        """The outbox exists and is writable, or its nearest existing parent is; nothing is created."""
        outbox = outbox_folder(options, project.root)
        existing = outbox
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise ChannelCheckError(f"outbox {outbox}: {existing} is a file, not a folder; set path to a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ChannelCheckError(f"outbox {outbox}: {existing} is not writable; fix its permissions or set path")
        if existing == outbox:
            return f"outbox {outbox} exists and is writable"
        return f"outbox {outbox} will be created in {existing}"

    def _folder(self) -> Path:
        """``<outbox>/<report>/<run-id>``, refused (nothing written) when a name or a file would land outside it."""
        names = [self.context.report, self.context.run_id, *(name for _, name in self._files())]
        for name in names:
            problem = "is empty" if not name else ("contains '/'" if "/" in name else segment_problem(name))
            if problem:
                shown = name if len(name) <= 60 else name[:57] + "..."
                raise PermanentFailure(
                    f"delivery {self.options.name}: path: the outbox name {shown!r} {problem}, so it would leave "
                    f"{self.outbox}; fix the report, run or file name that produced it"
                )
        return self.outbox / self.context.report / self.context.run_id

    def _addressees(self) -> list[Recipient]:
        """Everyone the delivery is addressed to, so the .eml is the message each of them would get."""
        return [r for r in self.recipients() if r.problem is None and not r.address.startswith("file:")]

    def _message(self) -> EmailMessage:
        content = render_content(
            self.context, self.options, attach=attached_formats(self.options, self.context), max_attachment_size=None
        )
        return compose_message(self.context, self.options, self._addressees(), content)

    def _files(self) -> list[tuple[Path, str]]:
        """(source, name in the outbox) for every artifact and the run's manifest."""
        files = [(a.path, a.path.name) for a in self.context.artifacts]
        directory = self.context.directory
        if directory is not None and (directory / MANIFEST_NAME).is_file():
            files.append((directory / MANIFEST_NAME, MANIFEST_NAME))
        return files


def outbox_folder(options: OutboxOptions, root: Path) -> Path:
    path = Path(options.path).expanduser()
    return (path if path.is_absolute() else root / path).resolve()
