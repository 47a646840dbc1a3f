"""The JSON writer: the whole document in ``<report>.json``, tables with raw rows and a numeric summary.

The document's skeleton is written with ``json``; each table's rows are streamed into the same file by polars
(``DataFrame.write_ndjson``, its lines joined into an array), so a million rows never become Python dicts nor
one array in memory. With ``indent`` the skeleton is
pretty-printed while each ``rows`` array stays on one line. Same document, byte-identical file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from reportctl.document import Block, ChartBlock, Document, KpiBlock, PlaceholderBlock, TableBlock, TextBlock
from reportctl.formats import export_frame, machine_value
from reportctl.writers.base import WriterOptions, writing
from reportctl.writers.compression import CompressibleOptions, compressed_output, compressed_path
from reportctl.writers.display import kpi_text

if TYPE_CHECKING:
    import polars as pl


@dataclass(frozen=True)
class _Rows:
    """A placeholder in the skeleton for rows that polars writes."""

    frame: pl.DataFrame


class JsonOptions(CompressibleOptions):
    """Options of the ``json`` output: ``indent`` pretty-prints everything but the rows; ``compress``."""

    format: Literal["json"] = "json"
    indent: int | None = Field(default=None, ge=0, le=16)


class JsonWriter:
    """Writes ``<report>.json`` (``.json.gz``, ``.json.zst`` when compressed): report info, parameters and every
    section with its data."""

    PLUGIN_NAME: ClassVar[str] = "json"
    CHART_IMAGES: ClassVar[frozenset[str]] = frozenset()
    Options: ClassVar[type[WriterOptions]] = JsonOptions

    def __init__(self, options: Any = None) -> None:
        valid = isinstance(options, JsonOptions)
        self.options: JsonOptions = options if valid else JsonOptions.model_validate(options or {})

    def write(self, document: Document, directory: Path) -> list[Path]:
        """Write ``<report name>.json`` into ``directory``."""
        path = compressed_path(directory / f"{document.info.name}.json", self.options.compress)
        with writing(path, "json"):
            skeleton = _skeleton(document)
            rows = path.with_name(f".{path.name}.rows")
            with compressed_output(path, self.options.compress) as file:
                _dump(file, skeleton, self.options.indent, 0, rows)
                file.write(b"\n")
        return [path]


def _skeleton(document: Document) -> dict[str, Any]:
    info = document.info
    return {
        "report": {
            "name": info.name,
            "title": info.title,
            "description": info.description,
            "version": info.version,
            "owner": info.owner,
            "labels": dict(sorted(info.labels.items())),
            "generated_at": info.generated_at.isoformat(),
            "timezone": info.timezone,
            "locale": document.style.locale,
            "spec_path": info.spec_path,
            "spec_hash": info.spec_hash,
        },
        "parameters": {p.name: machine_value(p.value) for p in document.parameters},
        "sections": [_section(block, info.timezone, document.style.locale) for block in document.blocks],
        # only when sections failed (on_error: placeholder), so a clean report's JSON is as it always was
        **({"warnings": [f.as_dict() for f in document.failures()]} if document.failures() else {}),
    }


def _section(block: Block, timezone: str, locale: str) -> dict[str, Any]:
    head: dict[str, Any] = {"id": block.id, "type": block.kind, "title": block.title}
    if isinstance(block, PlaceholderBlock):  # a failed section (on_error: placeholder): what failed, and why
        return {**head, "type": block.section_type, "failed": True, "error": block.error, "markdown": block.markdown}
    if isinstance(block, TextBlock):
        return {**head, "markdown": block.markdown}
    if isinstance(block, KpiBlock):
        items = [
            {
                "label": item.label,
                "value": machine_value(item.value),
                "display": kpi_text(item, timezone, locale),
                "format": item.format,
                "description": item.description,
            }
            for item in block.items
        ]
        return {**head, "items": items}
    if isinstance(block, TableBlock):
        frame = block.frame.select([c.name for c in block.columns]) if block.columns else block.frame
        columns = [
            {"name": c.name, "label": c.label, "format": c.format, "formula": c.formula, "note": c.note}
            for c in block.columns
        ]
        return {
            **head,
            "columns": columns,
            "row_count": frame.height,
            "summary": _summary(frame),
            "rows": _Rows(export_frame(frame, timezone, "json")),
        }
    chart: ChartBlock = block
    return {
        **head,
        "chart": chart.chart,
        "x": chart.x,
        "y": list(chart.y),
        "series": chart.series,
        "stacked": chart.stacked,
        "x_label": chart.x_label,
        "y_label": chart.y_label,
        "format": chart.format,
        "rows": _Rows(export_frame(chart.frame, timezone, "json")),
    }


def _summary(frame: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """Mean, min, max and sample std of each numeric column; nulls and NaN are left out."""
    import polars as pl

    numeric = [(name, dtype) for name, dtype in frame.schema.items() if dtype.is_numeric()]
    if not numeric:
        return {}
    exprs = []
    for index, (name, dtype) in enumerate(numeric):
        column = pl.col(name).cast(pl.Float64) if dtype.is_decimal() else pl.col(name)
        column = column.fill_nan(None) if dtype.is_float() or dtype.is_decimal() else column
        for stat in ("mean", "min", "max", "std"):
            exprs.append(getattr(column, stat)().alias(f"{index}.{stat}"))
    values = frame.select(exprs).row(0, named=True)
    return {
        name: {stat: machine_value(values[f"{index}.{stat}"]) for stat in ("mean", "min", "max", "std")}
        for index, (name, _) in enumerate(numeric)
    }


def _write_rows(file: IO[bytes], frame: pl.DataFrame, part: Path | None = None) -> None:
    """The rows as a JSON array, streamed. ``write_json`` builds the whole array in memory (250 MB more at a
    million rows), so polars writes NDJSON beside the file instead and its lines are joined with commas: the same
    bytes (a newline inside a value is escaped, so every raw newline ends a row), in less time. ``part`` is that
    file's place, by default beside ``file`` (a compressor has no name of its own, so its caller says)."""
    part = part or Path(file.name).with_name(f".{Path(file.name).name}.rows")
    try:
        frame.write_ndjson(part)
        file.write(b"[")
        with part.open("rb") as rows:
            ahead = b""
            while chunk := rows.read(1 << 20):
                if ahead:
                    file.write(ahead)
                body = chunk.replace(b"\n", b",")
                ahead = body[-1:]  # held back: the file's last newline becomes the closing bracket, not a comma
                file.write(body[:-1])
        file.write(b"]")
    finally:
        part.unlink(missing_ok=True)


def _dump(file: IO[bytes], value: Any, indent: int | None, level: int, rows: Path) -> None:
    """Write ``value`` as JSON, handing ``_Rows`` to polars; formatted like ``json.dumps`` with ``indent``."""
    if isinstance(value, _Rows):
        _write_rows(file, value.frame, rows)
        return
    if not isinstance(value, dict | list) or not value:
        file.write(json.dumps(value, ensure_ascii=False, allow_nan=False).encode())
        return
    is_dict = isinstance(value, dict)
    opening, closing = ("{", "}") if is_dict else ("[", "]")
    inner = "" if indent is None else "\n" + " " * indent * (level + 1)
    outer = "" if indent is None else "\n" + " " * indent * level
    items = value.items() if isinstance(value, dict) else enumerate(value)
    file.write(opening.encode())
    for position, (key, item) in enumerate(items):
        prefix = ("," if position else "") + inner
        if is_dict:
            prefix += json.dumps(str(key), ensure_ascii=False) + (":" if indent is None else ": ")
        file.write(prefix.encode())
        _dump(file, item, indent, level + 1, rows)
    file.write((outer + closing).encode())
