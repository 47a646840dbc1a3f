"""What a message shows of a report before its files are opened: the title, parameters, key figures, text
sections, the first chart as a picture and the first rows of the first table, as every writer displays them.

The preview is kept with the run (``manifest.json``'s ``preview``, the chart and logo as PNG files under
``preview/``), so a delivery made later, from the state store or by another process, shows the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reportctl.document import Document, KpiBlock, TextBlock
from reportctl.fonts import font_family
from reportctl.writers.display import display_cells, display_columns, generated_text, kpi_text, parameter_text

PREVIEW_ROWS = 10
"""Rows of the first table a message shows."""
PREVIEW_FOLDER = "preview"
MESSAGE_CHANNELS = frozenset({"email", "file"})
"""Channels that compose a message with the preview; a run delivering on one exports its first chart as PNG."""


def write_preview(document: Document, directory: Path) -> dict[str, Any]:
    """The preview of ``document`` as JSON data, its pictures written under ``directory/preview/``."""
    info, style = document.info, document.style
    timezone, locale = info.timezone, style.locale
    preview: dict[str, Any] = {
        "title": info.title,
        "description": info.description,
        "parameters": [[p.label, parameter_text(p, timezone, locale)] for p in document.parameters],
        "generated": generated_text(document),
        "accent": style.accent,
        "font": font_family(style.font) if style.font else None,
        "kpis": [
            {"label": item.label, "value": kpi_text(item, timezone, locale), "description": item.description}
            for block in document.blocks
            if isinstance(block, KpiBlock)
            for item in block.items
        ],
        "texts": [
            {"title": block.title, "markdown": block.markdown}
            for block in document.blocks
            if isinstance(block, TextBlock) and block.markdown.strip()
        ],
        "table": None,
        "chart": None,
        "logo": None,
    }
    tables = document.tables()
    if tables and tables[0].frame.height:
        table = tables[0]
        columns = display_columns(table)
        preview["table"] = {
            "title": table.title,
            "columns": [c.label for c in columns],
            "numeric": [c.numeric for c in columns],
            "rows": display_cells(table, columns, PREVIEW_ROWS, timezone, locale),
            "total": table.frame.height,
        }
    folder = directory / PREVIEW_FOLDER
    charts = [c for c in document.charts() if (image := document.chart_images.get(c.id)) and image.png]
    if charts:
        chart, image = charts[0], document.chart_images[charts[0].id]
        folder.mkdir(exist_ok=True)
        assert image.png is not None
        (folder / "chart.png").write_bytes(image.png)
        preview["chart"] = {"title": chart.title, "file": f"{PREVIEW_FOLDER}/chart.png", "width": image.width}
    if style.logo is not None and style.logo.suffix.lower() == ".png":  # mail clients do not show SVG
        folder.mkdir(exist_ok=True)
        (folder / "logo.png").write_bytes(style.logo.read_bytes())
        preview["logo"] = f"{PREVIEW_FOLDER}/logo.png"
    return preview
