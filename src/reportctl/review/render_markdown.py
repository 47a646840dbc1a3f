"""A ``ReportDiff`` as Markdown that fits a pull-request comment: a summary line, a table of what changed per
section, and the long detail (changed cells, text diffs, long values) collapsed in ``<details>``."""

from __future__ import annotations

import re

from reportctl.formats import format_number
from reportctl.review.model import Change, MembersChange, ReportDiff, SectionDiff, TableDiff, TextChange, ValueChange
from reportctl.review.render_diff import (
    KIND_NAMES,
    headline,
    plural,
    row_key,
    section_name,
    section_summary,
    text_summary,
)

_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~])")
_LONG = 60
_ARROW = "\N{RIGHTWARDS ARROW}"


def markdown_diff(diff: ReportDiff) -> str:
    """The comment: '### `SPEC`: summary', then one part per topic that changed."""
    chunks = [
        f"### `{_code(diff.spec)}`: {_inline(headline(diff))}",
        f"Base `{_code(diff.base_ref)}`, head `{_code(diff.head_ref)}`.",
    ]
    if diff.report:
        chunks += ["#### Report", _changes_table(diff.report)]
    if diff.sections:
        rows = [[f"`{_code(s.id)}`", _cell(_kind_title(s)), _cell(section_summary(s, _ARROW))] for s in diff.sections]
        chunks += ["#### Sections", _table(["Section", "Kind", "Change"], rows)]
        for section in diff.sections:
            chunks += _section_detail(section, diff.cells_limit)
    for title, changes in (("Schedule, outputs, deliveries, parameters", diff.settings), ("Data", diff.data)):
        if changes:
            chunks += [f"#### {title}", _changes_table(changes)]
    return "\n\n".join(c for c in chunks if c) + "\n"


def _kind_title(section: SectionDiff) -> str:
    kind = KIND_NAMES.get(section.kind, section.kind)
    return f"{kind}: {section.title}" if section.title else kind


def _section_detail(section: SectionDiff, limit: int) -> list[str]:
    """Detail under the summary table: a table's columns, totals and cells, a text's diff."""
    chunks: list[str] = []
    if section.table:
        chunks += _table_detail(section, section.table)
    if section.text:
        chunks.append(_text_detail(section, section.text))
    long_values = [c for c in section.changes if isinstance(c, ValueChange) and _is_long(c)]
    chunks += [_long_value(c) for c in long_values]
    return chunks


def _table_detail(section: SectionDiff, table: TableDiff) -> list[str]:
    chunks = [f"#### {_inline(section_name(section))}"]
    changes: list[Change] = [ValueChange("column name", r.base, r.head, r.how) for r in table.renamed]
    changes += [*table.columns, *([table.rows] if table.rows else [])]
    if changes:
        chunks.append(_changes_table(changes))
    if table.rows_added or table.rows_removed:
        added, removed = format_number(table.rows_added), format_number(table.rows_removed)
        listed = [("added", k) for k in table.added_keys] + [("removed", k) for k in table.removed_keys]
        lines = [f"- {how}: {_inline(row_key(k))}" for how, k in listed]
        shown = "\n\n" + "\n".join(lines) if lines else ""
        chunks.append(f"Rows by key ({_inline(table.key_how)}): {added} added, {removed} removed.{shown}")
    if table.totals:
        rows = [[_cell(t.field), _cell(t.base or ""), _cell(t.head or ""), _cell(t.delta or "")] for t in table.totals]
        chunks.append(_table(["Total", "Base", "Head", "Change"], rows, numeric=(1, 2, 3)))
    if table.cells:
        key_names = [name for name, _ in table.cells[0].key]
        rows = [[*(_cell(v) for _, v in c.key), _cell(c.column), _cell(c.base), _cell(c.head)] for c in table.cells]
        first = f", the first {len(table.cells)}" if len(table.cells) < table.cells_changed else ""
        summary = f"{plural(table.cells_changed, 'changed cell')}{first}; rows matched by {table.key_how}"
        body = _table([*key_names, "Column", "Base", "Head"], rows)
        chunks.append(f"<details><summary>{_html(summary)}</summary>\n\n{body}\n\n</details>")
    return chunks


def _text_detail(section: SectionDiff, text: TextChange) -> str:
    body = _fenced("diff", "\n".join(text.lines))
    summary = f"{section_name(section)}: {text_summary(text)}"
    return f"<details><summary>{_html(summary)}</summary>\n\n{body}\n\n</details>"


def _changes_table(changes: tuple[Change, ...] | list[Change]) -> str:
    """Short changes as rows of 'What | Base | Head'; long values (queries, templates) as collapsed diffs."""
    rows = []
    long_values = []
    for change in changes:
        if isinstance(change, MembersChange):
            rows.append([_cell(change.field), _members("removed", change.removed), _members("added", change.added)])
        elif _is_long(change):
            rows.append([_cell(change.field), "see below", "see below"])
            long_values.append(change)
        else:
            head = _text(change.head) + (f" ({change.delta})" if change.delta else "")
            rows.append([_cell(change.field), _cell(_text(change.base)), _cell(head)])
    parts = [_table(["What", "Base", "Head"], rows)] if rows else []
    parts += [_long_value(c) for c in long_values]
    return "\n\n".join(parts)


def _members(what: str, names: tuple[str, ...]) -> str:
    return f"{what}: " + ", ".join(_cell(n) for n in names) if names else ""


def _is_long(change: ValueChange) -> bool:
    return any(text and ("\n" in text or len(text) > _LONG) for text in (change.base, change.head))


def _long_value(change: ValueChange) -> str:
    import difflib

    lines = difflib.unified_diff((change.base or "").splitlines(), (change.head or "").splitlines(), lineterm="", n=2)
    body = _fenced("diff", "\n".join(line for line in lines if not line.startswith(("---", "+++"))))
    return f"<details><summary>{_html(change.field)}</summary>\n\n{body}\n\n</details>"


def _text(value: str | None) -> str:
    return "(none)" if value is None else value


def _table(header: list[str], rows: list[list[str]], numeric: tuple[int, ...] = ()) -> str:
    rule = ["---:" if i in numeric else "---" for i in range(len(header))]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in [header, rule, *rows])


def _cell(text: str) -> str:
    """Text in a table cell shown as written: Markdown escaped (``|`` too), one line."""
    return "<br>".join(_inline(line) for line in text.splitlines()) if text else ""


def _inline(text: str) -> str:
    return _INLINE_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _code(text: str) -> str:
    """Text inside a one-backtick code span: backticks would end it, so they become a look-alike."""
    return text.replace("`", "\N{MODIFIER LETTER GRAVE ACCENT}").replace("\n", " ")


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fenced(language: str, body: str) -> str:
    """A fenced block longer than any backtick run inside it, so the body cannot close it."""
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{body}\n{fence}"
