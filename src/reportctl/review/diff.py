"""Comparing two versions of a report as a reader sees them: ``compare_reports`` over two rendered documents.

Each side is the loaded spec and the document it renders to, or None for a version in which the spec does not
exist (the whole report is then added or removed). Sections are matched by id; values are compared exactly and
shown as the writers show them.
"""

from __future__ import annotations

import difflib
from typing import NamedTuple

from reportctl.document import Block, ChartBlock, Document, KpiBlock, KpiValue, TableBlock, TextBlock
from reportctl.formats import format_number, parse_format
from reportctl.review.model import (
    Change,
    MembersChange,
    ReportDiff,
    SectionDiff,
    Status,
    TableDiff,
    TextChange,
    ValueChange,
    WordHunk,
)
from reportctl.review.settings import compare_data, compare_settings
from reportctl.review.tables import TableSide, compare_tables
from reportctl.review.values import same, shown, text_change, value_change
from reportctl.spec.loader import LoadedSpec

_CONTEXT_WORDS = 4


class ReportSide(NamedTuple):
    """One version of a report: its spec and rendered document, both None where the spec does not exist."""

    loaded: LoadedSpec | None
    document: Document | None
    ref: str = ""


def compare_reports(
    base: ReportSide | tuple[LoadedSpec | None, Document | None],
    head: ReportSide | tuple[LoadedSpec | None, Document | None],
    *,
    spec: str | None = None,
    max_cells: int = 10,
) -> ReportDiff:
    """What a reader would see change from ``base`` to ``head``; ``spec`` names the report in the output."""
    base, head = ReportSide(*base), ReportSide(*head)
    exists = (base.loaded or base.document) is not None, (head.loaded or head.document) is not None
    report = _report_changes(base.document, head.document)
    sections = _sections(base.document, head.document, max_cells)
    settings = compare_settings(base.loaded, head.loaded)
    data = compare_data(base.loaded, head.loaded)
    status: Status = "changed" if report or sections or settings or data else "unchanged"
    if exists[0] != exists[1]:
        status = "added" if exists[1] else "removed"
    return ReportDiff(
        spec=spec or _spec_name(head) or _spec_name(base) or "",
        base_ref=base.ref or "base",
        head_ref=head.ref or "head",
        status=status,
        report=report,
        sections=sections,
        settings=settings,
        data=data,
        cells_limit=max_cells,
    )


def _spec_name(side: ReportSide) -> str | None:
    if side.document is not None:
        return side.document.info.spec_path
    return side.loaded.spec.name if side.loaded is not None else None


def _report_changes(base: Document | None, head: Document | None) -> tuple[Change, ...]:
    def info(document: Document | None, name: str) -> str | None:
        return None if document is None else getattr(document.info, name)

    shown = [("title", "title"), ("description", "description")]
    if base is not None and head is not None:  # a report added or removed has no zone to change
        shown.append(("time zone", "timezone"))
    changes = (text_change(label, info(base, name), info(head, name)) for label, name in shown)
    return tuple(c for c in changes if c is not None)


def _sections(base: Document | None, head: Document | None, max_cells: int) -> tuple[SectionDiff, ...]:
    """Changed sections in the head's order; a removed one follows the section it followed at the base."""
    before = {b.id: (i, b) for i, b in enumerate(base.blocks if base else ())}
    after = {b.id: (i, b) for i, b in enumerate(head.blocks if head else ())}
    zones = (base.info.timezone if base else "UTC", head.info.timezone if head else "UTC")
    common_base = [i for i in before if i in after]
    common_head = [i for i in after if i in before]
    matcher = difflib.SequenceMatcher(None, common_base, common_head, autojunk=False)
    in_place = {common_base[m.a + k] for m in matcher.get_matching_blocks() for k in range(m.size)}

    removed_after: dict[str | None, list[SectionDiff]] = {}
    previous: str | None = None
    for block_id, (index, block) in before.items():
        if block_id not in after:
            diff = SectionDiff(
                block_id, block.kind, "removed", block.title, index + 1, None, summary=_summary(block, zones[0])
            )
            removed_after.setdefault(previous, []).append(diff)
        else:
            previous = block_id
    result = removed_after.get(None, [])
    for block_id, (index, block) in after.items():
        if block_id in before:
            base_index, old = before[block_id]
            changes, text, table = _compare_block(old, block, zones, max_cells)
            diff = SectionDiff(
                block_id,
                block.kind,
                "changed" if changes or text or table else "unchanged",
                block.title,
                base_index + 1,
                index + 1,
                moved=block_id not in in_place,
                changes=changes,
                text=text,
                table=table,
            )
            if diff.changed:
                result.append(diff)
        else:
            added = SectionDiff(
                block_id, block.kind, "added", block.title, None, index + 1, summary=_summary(block, zones[1])
            )
            result.append(added)
        result.extend(removed_after.get(block_id, []))
    return tuple(result)


def _compare_block(
    base: Block, head: Block, zones: tuple[str, str], max_cells: int
) -> tuple[tuple[Change, ...], TextChange | None, TableDiff | None]:
    """What changed in a section kept at both sides: its changes, its text's diff, its table's diff."""
    title = text_change("title", base.title, head.title)
    changes: list[Change] = [title] if title else []
    if base.kind != head.kind:
        changes.append(ValueChange("type", base.kind, head.kind))
        return tuple(changes), None, None
    text = table = None
    if isinstance(base, TextBlock) and isinstance(head, TextBlock):
        text = compare_text(base.markdown, head.markdown)
    elif isinstance(base, KpiBlock) and isinstance(head, KpiBlock):
        changes += _kpi_changes(base.items, head.items, zones)
    elif isinstance(base, TableBlock) and isinstance(head, TableBlock):
        changes += _options(
            ("max rows", base.max_rows, head.max_rows), ("empty message", base.empty_message, head.empty_message)
        )
        diff = compare_tables(TableSide(base, zones[0]), TableSide(head, zones[1]), max_cells)
        table = diff if diff.changed else None
    elif isinstance(base, ChartBlock) and isinstance(head, ChartBlock):
        changes += _options(
            ("chart", base.chart, head.chart),
            ("x", base.x, head.x),
            ("y", ", ".join(base.y), ", ".join(head.y)),
            ("series", base.series, head.series),
            ("stacked", base.stacked, head.stacked),
            ("x label", base.x_label, head.x_label),
            ("y label", base.y_label, head.y_label),
            ("format", base.format, head.format),
        )
        rows = value_change("rows", base.frame.height, head.frame.height, parse_format("integer"), zones[1])
        changes += [rows] if rows else []
    return tuple(changes), text, table


def _options(*pairs: tuple[str, object, object]) -> list[Change]:
    changes = [text_change(name, _setting(before), _setting(after)) for name, before, after in pairs]
    return [c for c in changes if c is not None]


def _setting(value: object) -> str | None:
    return None if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _kpi_changes(base: tuple[KpiValue, ...], head: tuple[KpiValue, ...], zones: tuple[str, str]) -> list[Change]:
    """KPIs matched by label; a label gone and a new one with the same value, else at the same place, are one KPI
    relabelled."""
    before = {item.label: (i, item) for i, item in enumerate(base)}
    after = {item.label: (i, item) for i, item in enumerate(head)}
    pairs = [(before[label][1], item) for label, (_, item) in after.items() if label in before]
    gone = {i: item for label, (i, item) in before.items() if label not in after}
    new = {i: item for label, (i, item) in after.items() if label not in before}
    relabelled = []
    for i, item in list(gone.items()):
        twin = next((j for j, other in new.items() if same(item.value, other.value)), None)
        if twin is not None:
            relabelled.append((gone.pop(i), new.pop(twin)))
    relabelled += [(gone.pop(i), new.pop(i)) for i in sorted(set(gone) & set(new))]
    changes: list[Change] = []
    if gone or new:
        changes.append(
            MembersChange("KPIs", tuple(i.label for i in new.values()), tuple(i.label for i in gone.values()))
        )
    for old, item in relabelled:
        changes.append(ValueChange(f"KPI {item.label}: label", old.label, item.label))
    for old, item in sorted([*pairs, *relabelled], key=lambda pair: after[pair[1].label][0]):
        format_change = text_change(f"KPI {item.label}: format", old.format or "default", item.format or "default")
        changes += [format_change] if format_change else []
        value = value_change(
            f"KPI {item.label}",
            old.value,
            item.value,
            parse_format(item.format),
            zones[1],
            base_format=parse_format(old.format),
            base_timezone=zones[0],
        )
        changes += [value] if value else []
    return changes


def compare_text(base: str, head: str) -> TextChange | None:
    """The line diff and the changed words of a text section's Markdown; None when it reads the same."""
    if base == head:
        return None
    lines = [
        line
        for line in difflib.unified_diff(base.splitlines(), head.splitlines(), lineterm="", n=1)
        if not line.startswith(("---", "+++"))
    ]
    old, new = base.split(), head.split()
    hunks: list[WordHunk] = []
    removed = added = 0
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        removed, added = removed + i2 - i1, added + j2 - j1
        before = ("... " if i1 > _CONTEXT_WORDS else "") + " ".join(old[max(0, i1 - _CONTEXT_WORDS) : i1])
        after = " ".join(old[i2 : i2 + _CONTEXT_WORDS]) + (" ..." if i2 + _CONTEXT_WORDS < len(old) else "")
        hunks.append(WordHunk(before, " ".join(old[i1:i2]), " ".join(new[j1:j2]), after))
    return TextChange(tuple(lines), tuple(hunks), removed, added)


def _summary(block: Block, timezone: str) -> str:
    """What a section added or removed holds, in a line."""
    if isinstance(block, TextBlock):
        words = block.markdown.split()
        first = " ".join(words[:12]) + (" ..." if len(words) > 12 else "")
        return f"text, {format_number(len(words))} word{'s' if len(words) != 1 else ''}: {first}"
    if isinstance(block, KpiBlock):
        return "KPIs: " + ", ".join(
            f"{item.label} {shown(item.value, parse_format(item.format), timezone)}".strip() for item in block.items
        )
    if isinstance(block, TableBlock):
        labels = ", ".join(c.label for c in block.columns) or ", ".join(block.frame.columns)
        return f"table, {_rows(block.frame.height)}; columns: {labels}"
    return f"{block.chart} chart of {', '.join(block.y)} by {block.x}, {_rows(block.frame.height)}"


def _rows(count: int) -> str:
    return f"{format_number(count)} row{'s' if count != 1 else ''}"
