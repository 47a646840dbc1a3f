"""What a writer plugin is."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from reportctl.document import Document
from reportctl.errors import RenderError


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


@contextmanager
def writing(path: Path, writer: str, detail: str = "") -> Iterator[Path]:
    """A writer's work on ``path``: any failure deletes the half-written file and becomes one ``RenderError`` line
    naming the writer and the file (polars panics included, which are not ``Exception``s)."""
    from polars.exceptions import PanicException

    try:
        yield path
    except (Exception, PanicException) as exc:
        path.unlink(missing_ok=True)
        cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RenderError(f"{writer}: cannot write {path.name}{detail}: {cause}") from exc
