"""Two writers as a third party would ship them, registered through entry points by ``test_json_schema.py``.

``docx`` declares ``format`` as its own Literal; ``odt`` leaves it a plain ``str`` (pydantic's discriminated union
refused that, and ``reportctl schema`` failed with a PydanticUserError for every user who installed it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from reportctl.document import Document
from reportctl.writers.base import WriterOptions


class DocxOptions(WriterOptions):
    format: Literal["docx"] = "docx"
    page_size: Literal["A4", "Letter"] = "A4"


class OdtOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str = "odt"
    page_size: Literal["A4", "Letter"] = "A4"


class _TitleWriter:
    CHART_IMAGES: ClassVar[frozenset[str]] = frozenset()
    Options: ClassVar[type[BaseModel]]

    def __init__(self, options: Any = None) -> None:
        self.options = options if isinstance(options, self.Options) else self.Options.model_validate(options or {})

    def write(self, document: Document, directory: Path) -> list[Path]:
        path = directory / f"{document.info.name}.{self.options.model_dump()['format']}"
        path.write_text(document.info.title)
        return [path]


class DocxWriter(_TitleWriter):
    PLUGIN_NAME: ClassVar[str] = "docx"
    Options: ClassVar[type[BaseModel]] = DocxOptions


class OdtWriter(_TitleWriter):
    PLUGIN_NAME: ClassVar[str] = "odt"
    Options: ClassVar[type[BaseModel]] = OdtOptions
