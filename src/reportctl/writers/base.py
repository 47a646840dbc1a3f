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
    every writer succeeded) and returns their paths. It never prints. File names start with the report's name.
    The same document must give byte-identical files: embedded times come from ``document.info.generated_at``.
    """

    PLUGIN_NAME: ClassVar[str]
    Options: ClassVar[type[WriterOptions]]
    CHART_IMAGES: ClassVar[frozenset[str]]
    """Chart image formats ("png", "svg") this writer embeds; the run exports them once, before any writer runs,
    into ``Document.chart_images``. Empty for writers that draw charts themselves or not at all."""

    def __init__(self, options: Any) -> None: ...

    def write(self, document: Document, directory: Path) -> list[Path]: ...
