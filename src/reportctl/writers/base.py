"""What a writer plugin is."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from reportctl.document import Document


class WriterOptions(BaseModel):
    """Options common to every writer; a writer extends this with its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str


class Writer(Protocol):
    """Turns a ``Document`` into files. Register it under the entry-point group ``reportctl.writers``.

    ``write`` puts its files into ``directory`` (a private folder of this run, renamed into place only when
    every writer succeeded) and returns their paths. It never prints.
    """

    PLUGIN_NAME: ClassVar[str]
    Options: ClassVar[type[WriterOptions]]

    def __init__(self, options: Any) -> None: ...

    def write(self, document: Document, directory: Path) -> list[Path]: ...
