"""A ``ReportDiff`` as text for a terminal, Markdown for a pull-request comment, or JSON for machines."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Literal

from reportctl.formats import format_number
from reportctl.review.model import Change, MembersChange, ReportDiff, SectionDiff, TableDiff, TextChange, ValueChange

DiffFormat = Literal["text", "markdown", "json"]
KIND_NAMES = {"text": "text", "kpis": "KPIs", "table": "table", "chart": "chart"}
_RED, _GREEN, _BOLD, _RESET = "\x1b[31m", "\x1b[32m", "\x1b[1m", "\x1b[0m"


def render_diff(diff: ReportDiff, format: DiffFormat, *, color: bool = False) -> str:
    """``diff`` in ``format``; ``color`` adds ANSI colours to the text format (never to the others)."""
    if format == "json":
        return json.dumps(diff.as_dict(), indent=2, ensure_ascii=False)
    if format == "markdown":
        from reportctl.review.render_markdown import markdown_diff

        return markdown_diff(diff)
    return _TextWriter(color).write(diff)


def headline(diff: ReportDiff) -> str:
    """One line saying how much changed: 'added at HEAD: 4 sections', '2 sections changed, 1 added; 3 settings'."""
    if diff.status == "unchanged":
        return "no change a reader would see"
    if diff.status in ("added", "removed"):
        missing = diff.base_ref if diff.status == "added" else diff.head_ref
        where = "in the working tree" if missing == "working tree" else f"at {missing}"
        count = sum(1 for s in diff.sections if s.status == diff.status)
        return f"{diff.status}: the spec does not exist {where}" + (
            f"; {plural(count, 'section')} {diff.status}" if count else ""
        )
    counts: dict[str, int] = {}
    for section in diff.sections:
        status = "moved" if section.status == "unchanged" else section.status
        counts[status] = counts.get(status, 0) + 1
    parts = [f"{count} {status}" for status, count in counts.items()]
    pieces = [f"{plural(sum(counts.values()), 'section')} ({', '.join(parts)})"] if counts else []
    if diff.report:
        pieces.append(", ".join(c.field for c in diff.report) + " changed")
    if diff.settings:
        pieces.append(plural(len(diff.settings), "setting") + " changed")
    if diff.data:
        pieces.append(plural(len(diff.data), "data definition") + " changed")
    return "; ".join(pieces)


def row_key(key: tuple[tuple[str, str], ...]) -> str:
    """A row's key as a reader names it: 'Service=web, Region=eu'."""
    return ", ".join(f"{name}={value}" for name, value in key)


def plural(count: int, noun: str) -> str:
    return f"{format_number(count)} {noun}{'' if count == 1 else 's'}"


def table_summary(table: TableDiff, arrow: str = "->") -> str:
    """A table's changes in one line: '1 column renamed, rows 12 -> 9, 2 totals, 14 cells changed'."""
    parts = []
    for change in table.columns:
        if isinstance(change, MembersChange):
            parts += [f"{plural(len(change.added), 'column')} added"] if change.added else []
            parts += [f"{plural(len(change.removed), 'column')} removed"] if change.removed else []
    parts += [f"{plural(len(table.renamed), 'column')} renamed"] if table.renamed else []
    edited = sum(1 for c in table.columns if isinstance(c, ValueChange))
    parts += [f"{plural(edited, 'column setting')} changed"] if edited else []
    if table.rows:
        parts.append(f"rows {table.rows.base} {arrow} {table.rows.head}")
    parts += [f"{plural(len(table.totals), 'total')} changed"] if table.totals else []
    parts += [f"{plural(table.cells_changed, 'cell')} changed"] if table.cells_changed else []
    parts += [f"{plural(table.rows_added, 'row')} added"] if table.rows_added else []
    parts += [f"{plural(table.rows_removed, 'row')} removed"] if table.rows_removed else []
    return ", ".join(parts)


def text_summary(text: TextChange) -> str:
    return f"{plural(text.removed_words, 'word')} removed, {format_number(text.added_words)} added"


def section_summary(section: SectionDiff, arrow: str = "->") -> str:
    """What happened to a section, in a line."""
    if section.status in ("added", "removed"):
        return f"{section.status}: {section.summary}"
    parts = [f"moved from {section.base_position} to {section.head_position}"] if section.moved else []
    parts += [change_line(c, arrow) for c in section.changes]
    parts += [f"text: {text_summary(section.text)}"] if section.text else []
    parts += [table_summary(section.table, arrow)] if section.table else []
    return "; ".join(parts)


def section_name(section: SectionDiff) -> str:
    """'services (table "Services by p95")', 'kpis (KPIs)'."""
    title = f' "{section.title}"' if section.title else ""
    return f"{section.id} ({KIND_NAMES.get(section.kind, section.kind)}{title})"


def change_line(change: Change, arrow: str = "->") -> str:
    if isinstance(change, MembersChange):
        parts = [f"added {', '.join(change.added)}"] if change.added else []
        parts += [f"removed {', '.join(change.removed)}"] if change.removed else []
        return f"{change.field}: {'; '.join(parts)}"
    delta = f" ({change.delta})" if change.delta else ""
    return f"{change.field}: {_value(change.base)} {arrow} {_value(change.head)}{delta}"


def _value(text: str | None) -> str:
    return "(none)" if text is None else text if text and "\n" not in text else repr(text)


class _TextWriter:
    """Plain lines for a terminal, indented by topic."""

    def __init__(self, color: bool) -> None:
        self.color = color

    def paint(self, text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if self.color else text

    def write(self, diff: ReportDiff) -> str:
        lines = [
            self.paint(f"{diff.spec}: {diff.base_ref} -> {diff.head_ref}", _BOLD),
            headline(diff),
        ]
        if diff.report:
            lines += ["", "report", *self.changes(diff.report)]
        for section in diff.sections:
            lines += ["", self.paint(f"section {section_name(section)}", _BOLD), *self.section(section)]
        for title, changes in (("schedule, outputs, deliveries, parameters", diff.settings), ("data", diff.data)):
            if changes:
                lines += ["", title, *self.changes(changes)]
        return "\n".join(lines)

    def changes(self, changes: Iterable[Change], indent: str = "  ") -> list[str]:
        return [indent + change_line(c) for c in changes]

    def section(self, section: SectionDiff) -> list[str]:
        if section.status in ("added", "removed"):
            return [f"  {section.status}: {section.summary}"]
        lines = [f"  moved from {section.base_position} to {section.head_position}"] if section.moved else []
        lines += self.changes(section.changes)
        if section.text:
            lines.append(f"  text: {text_summary(section.text)}")
            for hunk in section.text.words:
                removed = self.paint(f"[-{hunk.removed}-]", _RED) if hunk.removed else ""
                added = self.paint(f"{{+{hunk.added}+}}", _GREEN) if hunk.added else ""
                lines.append(
                    "    " + " ".join(p for p in (hunk.before.strip(), removed + added, hunk.after.strip()) if p)
                )
        if section.table:
            lines += self.table(section.table)
        return lines

    def table(self, table: TableDiff) -> list[str]:
        lines = [f"  column renamed: {r.base} -> {r.head} ({r.how})" for r in table.renamed]
        lines += self.changes(table.columns)
        lines += self.changes([table.rows] if table.rows else [])
        lines += self.changes(table.totals)
        if table.rows_added or table.rows_removed:
            lines.append(
                f"  rows by key: {format_number(table.rows_added)} added, {format_number(table.rows_removed)} removed"
            )
            lines += [f"    added: {row_key(key)}" for key in table.added_keys]
            lines += [f"    removed: {row_key(key)}" for key in table.removed_keys]
        if table.cells_changed:
            shown = len(table.cells)
            first = f"; the first {shown}" if shown < table.cells_changed else ""
            lines.append(f"  {plural(table.cells_changed, 'cell')} changed (rows matched by {table.key_how}){first}:")
            for cell in table.cells:
                lines.append(f"    {row_key(cell.key)}: {cell.column}: {cell.base} -> {cell.head}")
        return lines
