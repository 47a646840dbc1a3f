"""The ``png`` and ``svg`` writers: every chart of the report as a picture file of its own.

The pictures are exported once per run, before the writers start (see ``CHART_IMAGES``); these writers only
save them, as ``<report>.<chart id>.png`` or ``.svg``. PNGs are at twice the CSS size, for sharp screens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from reportctl.document import Document
from reportctl.errors import RenderError
from reportctl.writers.base import WriterOptions


class PngOptions(WriterOptions):
    """Options of the ``png`` output (none besides the format)."""

    format: Literal["png"] = "png"


class SvgOptions(WriterOptions):
    """Options of the ``svg`` output (none besides the format)."""

    format: Literal["svg"] = "svg"


def _write_images(document: Document, directory: Path, kind: Literal["png", "svg"]) -> list[Path]:
    paths = []
    for chart in document.charts():
        image = document.chart_images.get(chart.id)
        data = getattr(image, kind, None) if image is not None else None
        if data is None:
            raise RenderError(f"{kind}: chart '{chart.id}' was not exported as {kind.upper()}")
        path = directory / f"{document.info.name}.{chart.id}.{kind}"
        try:
            path.write_bytes(data)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise RenderError(f"{kind}: cannot write {path.name} (chart '{chart.id}'): {exc.strerror}") from exc
        paths.append(path)
    return paths


class PngWriter:
    """Writes ``<report>.<chart id>.png`` per chart; a document without charts writes nothing."""

    PLUGIN_NAME: ClassVar[str] = "png"
    CHART_IMAGES: ClassVar[frozenset[str]] = frozenset({"png"})
    Options: ClassVar[type[WriterOptions]] = PngOptions

    def __init__(self, options: Any = None) -> None:
        valid = isinstance(options, PngOptions)
        self.options: PngOptions = options if valid else PngOptions.model_validate(options or {})

    def write(self, document: Document, directory: Path) -> list[Path]:
        """Save each chart's PNG into ``directory``."""
        return _write_images(document, directory, "png")


class SvgWriter:
    """Writes ``<report>.<chart id>.svg`` per chart; a document without charts writes nothing."""

    PLUGIN_NAME: ClassVar[str] = "svg"
    CHART_IMAGES: ClassVar[frozenset[str]] = frozenset({"svg"})
    Options: ClassVar[type[WriterOptions]] = SvgOptions

    def __init__(self, options: Any = None) -> None:
        valid = isinstance(options, SvgOptions)
        self.options: SvgOptions = options if valid else SvgOptions.model_validate(options or {})

    def write(self, document: Document, directory: Path) -> list[Path]:
        """Save each chart's SVG into ``directory``."""
        return _write_images(document, directory, "svg")
