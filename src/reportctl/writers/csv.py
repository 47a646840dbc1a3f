"""The CSV writer: one RFC 4180 file per table with raw values, which any reader opens with its defaults.

The first line is the header of column names (not labels); records end in CRLF; fields are quoted when they
hold the separator, a quote or a line break. Datetimes are ISO-8601 (with offset when aware, in the report's time
zone) and durations are seconds, since CSV has no type for either. What a CSV cannot say (title, parameters,
time zone, labels, row counts) is in the run's ``manifest.json``; ``metadata: header`` writes it before the
header as ``# key: value`` lines instead, for readers that skip comments (``polars.read_csv(path,
comment_prefix="#")``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import field_validator

from reportctl.document import Document, Period, TableBlock
from reportctl.formats import ISO_DATETIME_OFFSET, export_frame, machine_value
from reportctl.writers.base import WriterOptions, writing
from reportctl.writers.compression import CompressibleOptions, compressed_output, compressed_path

if TYPE_CHECKING:
    import polars as pl


class CsvOptions(CompressibleOptions):
    """Options of the ``csv`` output: the field separator, ``metadata: header`` for ``#`` comment lines with
    the run's metadata before the header (the default, ``none``, keeps the file plain RFC 4180), and ``compress``."""

    format: Literal["csv"] = "csv"
    separator: str = ","
    metadata: Literal["none", "header"] = "none"

    @field_validator("metadata", mode="before")
    @classmethod
    def _yes_is_header(cls, value: Any) -> Any:
        """``true``/``false``, as earlier versions took them, mean ``header``/``none``."""
        return {True: "header", False: "none"}.get(value, value) if isinstance(value, bool) else value

    @field_validator("separator")
    @classmethod
    def _one_plain_character(cls, value: str) -> str:
        if len(value.encode()) != 1 or value in '"#\r\n':
            raise ValueError(f"separator must be one ASCII character, not a quote, '#' or newline: {value!r}")
        return value


class CsvWriter:
    """Writes ``<report>.csv`` for a single table, else ``<report>.<table id>.csv`` per table (``.csv.gz`` or
    ``.csv.zst`` when compressed)."""

    PLUGIN_NAME: ClassVar[str] = "csv"
    CHART_IMAGES: ClassVar[frozenset[str]] = frozenset()
    Options: ClassVar[type[WriterOptions]] = CsvOptions

    def __init__(self, options: Any = None) -> None:
        valid = isinstance(options, CsvOptions)
        self.options: CsvOptions = options if valid else CsvOptions.model_validate(options or {})

    def write(self, document: Document, directory: Path) -> list[Path]:
        """Write one CSV file per table into ``directory``; a document without tables writes nothing."""
        tables = document.tables()
        paths = []
        for table in tables:
            stem = document.info.name if len(tables) == 1 else f"{document.info.name}.{table.id}"
            path = compressed_path(directory / f"{stem}.csv", self.options.compress)
            self._write_table(document, table, path)
            paths.append(path)
        return paths

    def _write_table(self, document: Document, table: TableBlock, path: Path) -> None:
        with writing(path, "csv", f" (table '{table.id}')"):
            frame = table.frame.select([c.name for c in table.columns]) if table.columns else table.frame
            frame = export_frame(frame, document.info.timezone, "csv")
            options: dict[str, Any] = {
                "separator": self.options.separator,
                "line_terminator": "\r\n",
                "quote_style": _quote_style(frame),
                "datetime_format": ISO_DATETIME_OFFSET,
            }
            if self.options.metadata != "header" and self.options.compress is None:
                frame.write_csv(path, **options)  # polars writes a path itself, without Python's file object
                return
            with compressed_output(path, self.options.compress) as file:
                if self.options.metadata == "header":
                    file.write(_metadata(document, table, frame.height).encode())
                    file.flush()
                frame.write_csv(file, **options)  # in chunks of about 512 KB: a stream, never the whole file


def _metadata(document: Document, table: TableBlock, rows: int) -> str:
    """The ``# key: value`` lines (None values left out), escaped so that no value can start a line."""
    info = document.info
    fields: list[tuple[str, Any]] = [
        ("report", info.name),
        ("title", info.title),
        ("generated_at", info.generated_at.isoformat()),
        ("timezone", info.timezone),
        ("spec_hash", info.spec_hash),
        *((f"parameter.{p.name}", p.value) for p in document.parameters),
        ("table", table.id),
        ("table_title", table.title),
        ("rows", rows),
    ]
    return "".join(f"# {key}: {_comment_text(value)}\n" for key, value in fields if value is not None)


def _comment_text(value: Any) -> str:
    if isinstance(value, Period):
        text = str(value)
    else:
        plain = machine_value(value)
        if plain is None:
            text = ""
        elif isinstance(plain, str):
            text = plain
        else:
            text = json.dumps(plain, ensure_ascii=False)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def _quote_style(frame: pl.DataFrame) -> Literal["necessary", "non_numeric"]:
    """Quote text when the first column could start a line with '#', which readers would skip as a comment."""
    import polars as pl

    if not frame.width:
        return "necessary"
    first = frame.columns[0]
    column = frame.get_column(first)
    textual = column.dtype in (pl.String, pl.Categorical) or isinstance(column.dtype, pl.Enum)
    if first.startswith("#") or (textual and column.cast(pl.String).str.starts_with("#").any()):
        return "non_numeric"
    return "necessary"
