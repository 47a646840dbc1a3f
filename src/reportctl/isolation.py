"""Isolated sections (``on_error: placeholder``): which sections a failed source or dataset takes down, whether a
run may go on without them, and the placeholder a failed section renders as.

A section with ``on_error: fail`` (the default, or the project's ``on_error``) fails the run as before; one with
``placeholder`` becomes a ``PlaceholderBlock`` naming the section and what failed, in one redacted line, and the run
ends COMPLETED_WITH_WARNINGS.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from reportctl.document import ChartBlock, ChartImage, Document, PlaceholderBlock
from reportctl.errors import ReportctlError, SpecError, exception_line
from reportctl.spec.loader import LoadedSpec
from reportctl.spec.models import ChartSection, KpisSection, TableSection, TextSection

if TYPE_CHECKING:
    import polars as pl


def on_error(loaded: LoadedSpec, section: Any) -> Literal["fail", "placeholder"]:
    """The section's ``on_error``, else the project's."""
    chosen: Literal["fail", "placeholder"] | None = getattr(section, "on_error", None)
    return chosen or loaded.project.config.on_error


def any_placeholder(loaded: LoadedSpec) -> bool:
    """Whether any section of the spec may become a placeholder (then the run reads its data isolated)."""
    return any(on_error(loaded, section) == "placeholder" for section in loaded.spec.sections)


def error_line(error: BaseException) -> str:
    """An error as one line with secrets and URL passwords removed, as every error shown is."""
    from reportctl.secrets import mask_url_passwords, redact

    if isinstance(error, SpecError) and error.problems:  # the section's own field, without the spec's file path
        text = "; ".join(f"{p.path}: {p.message}" if p.path else p.message for p in error.problems)
    else:
        text = str(error) if isinstance(error, ReportctlError) else exception_line(error)
    return redact(mask_url_passwords(" ".join(text.split())))


def placeholder(section: Any, error: str) -> PlaceholderBlock:
    """The block a failed section (a spec section or a document block) renders as: which section and why, in
    words every writer shows as text."""
    kind = str(getattr(section, "type", None) or getattr(section, "kind", "section"))
    text = f"**Section '{section.id}' could not be rendered** ({kind}): {error}"
    return PlaceholderBlock(section.id, section.title, text, error=error, section_type=kind)


def section_reads(loaded: LoadedSpec, section: Any, names: Iterable[str]) -> set[str]:
    """The sources and datasets a section reads directly: a table's or chart's dataset, and the names a KPI
    expression or a text template mentions (a mention counts, so nothing a section might read is missed)."""
    if isinstance(section, TableSection | ChartSection):
        return {section.dataset}
    texts: list[str] = []
    if isinstance(section, KpisSection):
        texts = [item.value for item in section.items]
    elif isinstance(section, TextSection):
        texts = [section.template]
    return {name for name in names if any(re.search(rf"\b{re.escape(name)}\b", text) for text in texts)}


def upstream(loaded: LoadedSpec, names: Iterable[str]) -> set[str]:
    """``names`` and every source and dataset they read, through datasets and ``sql:`` datasets."""
    from reportctl.data.pipeline import dataset_references

    datasets = loaded.spec.datasets
    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in datasets:
            pending.extend(ref for _, ref in dataset_references(datasets[name]))
    return seen


def failed_input(
    loaded: LoadedSpec, section: Any, failures: Mapping[str, BaseException]
) -> tuple[str, BaseException] | None:
    """The first failed source or dataset the section reads (directly or through datasets), with its error."""
    if not failures:
        return None
    names = [*loaded.sources, *loaded.spec.datasets]
    direct = section_reads(loaded, section, names)
    for name in sorted(direct):
        if name in failures:
            return name, failures[name]
    for name in sorted(upstream(loaded, direct)):
        if name in failures:
            return name, failures[name]
    return None


def check_data_failures(loaded: LoadedSpec, failures: Mapping[str, BaseException]) -> None:
    """Raise the first failure no placeholder section can absorb: a source or dataset that a ``fail`` section
    reads, or that no section reads (it fails the run as it always did)."""
    readers: dict[str, list[str]] = {name: [] for name in failures}
    names = [*loaded.sources, *loaded.spec.datasets]
    for section in loaded.spec.sections:
        for name in upstream(loaded, section_reads(loaded, section, names)):
            if name in readers:
                readers[name].append(on_error(loaded, section))
    for name, error in failures.items():
        if not readers[name] or "fail" in readers[name]:
            raise error


def compute_isolated(
    loaded: LoadedSpec,
    values: Mapping[str, Any],
    now: datetime,
    timings: dict[str, float],
    snapshot: Path | None,
    **options: Any,
) -> tuple[dict[str, pl.DataFrame], dict[str, BaseException]]:
    """``run_data.compute_datasets``, and the sources and datasets that failed: collected only when sections may
    become placeholders, and only those whose every reader is one (any other failure is raised, as without
    isolation)."""
    from reportctl.run_data import compute_datasets

    failures: dict[str, BaseException] | None = {} if any_placeholder(loaded) else None
    frames = compute_datasets(loaded, values, now, timings, snapshot, failures=failures, **options)
    if failures:
        check_data_failures(loaded, failures)
    return frames, failures or {}


def what_failed(name: str, error: BaseException) -> str:
    """The placeholder's reason for a section whose source or dataset failed."""
    line = error_line(error)
    if line.startswith((f"source '{name}'", f"dataset '{name}'")):
        return line
    kind = "source" if name == getattr(error, "source", None) else "dataset"
    return f"{kind} '{name}' failed: {line}"


def placeholder_charts(loaded: LoadedSpec) -> frozenset[str]:
    """The ids of the chart sections that become placeholders when they cannot be exported."""
    return frozenset(
        section.id
        for section in loaded.spec.sections
        if isinstance(section, ChartSection) and on_error(loaded, section) == "placeholder"
    )


def without_failed_charts(
    document: Document,
    charts: Sequence[ChartBlock],
    formats: Collection[str],
    isolated: Collection[str],
    error: BaseException,
) -> tuple[Document, dict[str, ChartImage]]:
    """After exporting ``charts`` together failed with ``error``: each exported alone, the ones that fail replaced
    by placeholders (``error`` raised again when one of them is not ``isolated``). With no browser, none is tried."""
    from reportctl.chart_export import BrowserMissingError, export_charts
    from reportctl.charts import ChartError

    images: dict[str, ChartImage] = {}
    failed: dict[str, str] = {}
    for chart in charts:
        try:
            if isinstance(error, BrowserMissingError):
                raise error
            images.update(
                export_charts([chart], formats, timezone=document.info.timezone, locale=document.style.locale)
            )
        except ChartError as exc:
            if chart.id not in isolated:
                raise
            failed[chart.id] = f"cannot export the chart: {error_line(exc)}"
    blocks = tuple(
        placeholder(block, failed[block.id]) if isinstance(block, ChartBlock) and block.id in failed else block
        for block in document.blocks
    )
    return dataclasses.replace(document, blocks=blocks), images
