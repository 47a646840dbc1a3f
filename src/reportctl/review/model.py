"""What a reader would see change between two versions of a report: the result of ``compare_reports``.

Every value is kept twice: raw (``base_value``/``head_value``, compared exactly) and as the text a reader sees
(``base``/``head``, formatted as the writers format it), so the renderers only arrange text and ``as_dict`` gives
machines the raw values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from reportctl.formats import machine_value

Status = Literal["added", "removed", "changed", "unchanged"]


@dataclass(frozen=True)
class ValueChange:
    """One value that differs, such as a title, a KPI, a column's format or a schedule's cron; None is absent."""

    field: str
    base: str | None
    head: str | None
    delta: str | None = None
    base_value: Any = None
    head_value: Any = None
    kind: Literal["value"] = "value"


@dataclass(frozen=True)
class MembersChange:
    """Members of a collection added or removed: outputs, recipients of one delivery, parameters, KPIs."""

    field: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    kind: Literal["members"] = "members"


Change = ValueChange | MembersChange


@dataclass(frozen=True)
class TextChange:
    """A text section's rendered Markdown at both sides, with its line diff and its changed words."""

    lines: tuple[str, ...]
    """A unified diff of the lines (``-``/``+``/`` `` prefixes, ``@@`` hunk headers), one line of context."""
    words: tuple[WordHunk, ...]
    removed_words: int
    added_words: int


@dataclass(frozen=True)
class WordHunk:
    """A run of words replaced, with a few words of context each side so a reader can place it ('...' where the
    text goes on beyond the context)."""

    before: str
    removed: str
    added: str
    after: str


@dataclass(frozen=True)
class ColumnRename:
    """A column that changed its name; ``how`` says why it is taken for the same column."""

    base: str
    head: str
    how: Literal["same values", "same position"]


@dataclass(frozen=True)
class CellChange:
    key: tuple[tuple[str, str], ...]
    """(key column label, value as shown) pairs, or (``row``, N) when rows are matched by position."""
    column: str
    base: str
    head: str


@dataclass(frozen=True)
class TableDiff:
    columns: tuple[Change, ...]
    """Columns added or removed (by name) and each kept column's label, format and formula changes."""
    renamed: tuple[ColumnRename, ...]
    rows: ValueChange | None
    totals: tuple[ValueChange, ...]
    """Sums of the numeric columns on both sides that differ, by the head's column label."""
    key: tuple[str, ...]
    """The columns rows were matched by (head names); empty when matched by position."""
    key_how: str
    cells: tuple[CellChange, ...]
    """The first changed cells, in the head's row order."""
    cells_changed: int
    rows_added: int
    rows_removed: int
    added_keys: tuple[tuple[tuple[str, str], ...], ...] = ()
    """The keys of the first rows added (as (column label, value) pairs), when rows are matched by a key."""
    removed_keys: tuple[tuple[tuple[str, str], ...], ...] = ()
    """The keys of the first rows removed."""

    @property
    def changed(self) -> bool:
        return any((self.columns, self.renamed, self.rows, self.totals, self.cells_changed, self.rows_added)) or bool(
            self.rows_removed
        )


@dataclass(frozen=True)
class SectionDiff:
    """One section by id: added, removed, or kept with what changed in it (moved means its order changed)."""

    id: str
    kind: str
    status: Status
    title: str | None
    base_position: int | None
    head_position: int | None
    moved: bool = False
    summary: str | None = None
    """What an added or removed section holds, in a line."""
    changes: tuple[Change, ...] = ()
    text: TextChange | None = None
    table: TableDiff | None = None

    @property
    def changed(self) -> bool:
        return self.status != "unchanged" or self.moved


@dataclass(frozen=True)
class ReportDiff:
    """What changes for a reader between the base and the head version of one spec."""

    spec: str
    base_ref: str
    head_ref: str
    status: Status
    """added: no spec at the base; removed: none at the head."""
    report: tuple[Change, ...]
    """The report's own title and description."""
    sections: tuple[SectionDiff, ...]
    """Every section that changed, in the head's order, removed ones where they stood."""
    settings: tuple[Change, ...]
    """Schedule, outputs, deliveries and their recipients, parameters: from the spec, not the document."""
    data: tuple[Change, ...] = ()
    """The spec's sources and datasets, whose changes explain the data's: a ``where`` threshold, a query."""
    cells_limit: int = 10

    @property
    def changed(self) -> bool:
        return self.status != "unchanged"

    def as_dict(self) -> dict[str, Any]:
        """The diff as JSON-compatible data (``diff --format json``); raw values as ``machine_value`` gives them."""
        return {"changed": self.changed, **_plain(self)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return machine_value(value)
