"""Comparing one table at two versions: columns, rows, totals and cells, matched by a key the data offers."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from reportctl.document import TableBlock, TableColumn
from reportctl.formats import parse_format
from reportctl.review.model import CellChange, Change, ColumnRename, MembersChange, TableDiff, ValueChange
from reportctl.review.values import shown, text_change, value_change
from reportctl.writers.display import DisplayColumn, display_columns

if TYPE_CHECKING:
    import polars as pl

_BASE, _HEAD, _ROW = "\x00base:", "\x00head:", "\x00row"
_BASE_ROW, _HEAD_ROW = "\x00base_row", "\x00head_row"


@dataclass(frozen=True)
class TableSide:
    """A table as one version shows it, in the time zone its values are shown in."""

    block: TableBlock
    timezone: str

    @cached_property
    def display(self) -> dict[str, DisplayColumn]:
        return {c.name: c for c in display_columns(self.block)}

    @cached_property
    def spec_columns(self) -> dict[str, TableColumn]:
        given = {c.name: c for c in self.block.columns}
        return {name: given.get(name) or TableColumn(name, name) for name in self.block.frame.columns}


def compare_tables(base: TableSide, head: TableSide, max_cells: int) -> TableDiff:
    """What changed in a table between ``base`` and ``head``; values are compared exactly."""
    base_display, head_display = base.display, head.display
    renamed = _renames(base, head, base_display, head_display)
    pairs = {name: name for name in base_display if name in head_display}
    pairs.update({r.base: r.head for r in renamed})
    removed = tuple(base_display[n].label for n in base_display if n not in pairs)
    added = tuple(head_display[n].label for n in head_display if n not in pairs.values())
    columns: list[Change] = [MembersChange("columns", added, removed)] if added or removed else []
    columns += _column_changes(base, head, pairs)
    rows = value_change(
        "rows", base.block.frame.height, head.block.frame.height, parse_format("integer"), head.timezone
    )
    matched = _match_rows(base, head, pairs, max_cells)
    return TableDiff(
        columns=tuple(columns),
        renamed=tuple(renamed),
        rows=rows,
        totals=_totals(base, head, pairs),
        key=matched.key,
        key_how=matched.how,
        cells=matched.cells,
        cells_changed=matched.count,
        rows_added=matched.added,
        rows_removed=matched.removed,
        added_keys=matched.added_keys,
        removed_keys=matched.removed_keys,
    )


def _renames(
    base: TableSide, head: TableSide, base_display: dict[str, DisplayColumn], head_display: dict[str, DisplayColumn]
) -> list[ColumnRename]:
    """Columns gone at the head paired with new ones holding the same values, else standing at the same place
    with the same type."""
    gone = [n for n in base_display if n not in head_display]
    new = [n for n in head_display if n not in base_display]
    frames = base.block.frame, head.block.frame
    renamed: list[ColumnRename] = []
    for name in list(gone):
        twin = next(
            (n for n in new if frames[0].height == frames[1].height and frames[0][name].equals(frames[1][n])), None
        )
        if twin is not None:
            renamed.append(ColumnRename(name, twin, "same values"))
            gone.remove(name)
            new.remove(twin)
    base_order, head_order = list(base_display), list(head_display)
    for name in gone:
        place = base_order.index(name)
        twin = head_order[place] if place < len(head_order) else None
        if twin in new and frames[0].schema[name] == frames[1].schema[twin]:
            renamed.append(ColumnRename(name, twin, "same position"))
            new.remove(twin)
    return renamed


def _column_changes(base: TableSide, head: TableSide, pairs: dict[str, str]) -> list[Change]:
    base_columns, head_columns = base.spec_columns, head.spec_columns
    changes: list[Change] = []
    for old, new in pairs.items():
        before, after = base_columns[old], head_columns[new]
        where = f"column {after.label}"
        for change in (
            text_change(f"{where}: label", before.label, after.label),
            text_change(f"{where}: format", before.format or "default", after.format or "default"),
            text_change(f"{where}: formula", before.formula, after.formula),
        ):
            if change is not None:
                changes.append(change)
    kept = [pairs[name] for name in base_columns if name in pairs]
    shared = [name for name in head_columns if name in kept]
    if kept != shared:
        labels = {name: head_columns[name].label for name in shared}
        changes.append(ValueChange("column order", ", ".join(labels[n] for n in kept), ", ".join(labels.values())))
    return changes


def _totals(base: TableSide, head: TableSide, pairs: dict[str, str]) -> tuple[ValueChange, ...]:
    """Sums of the numeric columns kept on both sides that differ; percent columns hold ratios, whose sum means
    nothing to a reader, so they have none."""
    base_frame, head_frame = base.block.frame, head.block.frame
    head_display = head.display
    totals = []
    old_name = {new: old for old, new in pairs.items()}
    for new, old in sorted(old_name.items(), key=lambda pair: list(head_display).index(pair[0])):
        column = head_display[new]
        numeric = base_frame.schema[old].is_numeric() and head_frame.schema[new].is_numeric()
        if not numeric or column.format.kind == "percent":
            continue
        change = value_change(
            f"{column.label} total", base_frame[old].sum(), head_frame[new].sum(), column.format, head.timezone
        )
        if change is not None:
            totals.append(change)
    return tuple(totals)


@dataclass(frozen=True)
class _Matched:
    key: tuple[str, ...]
    how: str
    cells: tuple[CellChange, ...]
    count: int
    added: int
    removed: int
    added_keys: tuple[tuple[tuple[str, str], ...], ...] = ()
    removed_keys: tuple[tuple[tuple[str, str], ...], ...] = ()


def _match_rows(base: TableSide, head: TableSide, pairs: dict[str, str], max_cells: int) -> _Matched:
    """Rows of both sides matched by key, and their cells compared."""
    import polars as pl

    shared = [name for name in head.display if name in pairs.values()]
    before = base.block.frame.select(list(pairs)).rename(pairs).select(shared)
    after = head.block.frame.select(shared)
    key, how = _choose_key(before, after, head.display, shared)
    on = list(key) or [_ROW]
    before = before.with_row_index(_BASE_ROW)
    after = after.with_row_index(_HEAD_ROW)
    if not key:
        before = before.with_columns(pl.col(_BASE_ROW).alias(_ROW))
        after = after.with_columns(pl.col(_HEAD_ROW).alias(_ROW))
    values = [name for name in shared if name not in key]
    joined = before.rename({n: _BASE + n for n in values}).join(
        after.rename({n: _HEAD + n for n in values}), on=on, how="full", coalesce=True, nulls_equal=True
    )
    both = pl.col(_BASE_ROW).is_not_null() & pl.col(_HEAD_ROW).is_not_null()
    masks = [both & ~_equal(joined, name).fill_null(False) for name in values]
    flags = joined.select(
        pl.col(_BASE_ROW).is_null().sum().alias("added"),
        pl.col(_HEAD_ROW).is_null().sum().alias("removed"),
        *(mask.sum().alias(str(i)) for i, mask in enumerate(masks)),
    ).row(0)
    added, removed, counts = int(flags[0]), int(flags[1]), [int(c) for c in flags[2:]]
    cells: list[CellChange] = []
    if any(counts):
        rows = (
            joined.with_columns(*(mask.alias(f"\x00changed:{i}") for i, mask in enumerate(masks)))
            .filter(pl.any_horizontal(*(pl.col(f"\x00changed:{i}") for i in range(len(masks)))))
            .sort(_HEAD_ROW)
            .head(max_cells)
        )
        cells = _cells(rows, base, head, pairs, key, values, max_cells)
    added_keys: tuple[tuple[tuple[str, str], ...], ...] = ()
    removed_keys: tuple[tuple[tuple[str, str], ...], ...] = ()
    if key:  # rows matched by position are not added or removed, only changed

        def keys(only: pl.Expr, side: TableSide, order: str) -> tuple[tuple[tuple[str, str], ...], ...]:
            rows = joined.filter(only).sort(order).head(max_cells).iter_rows(named=True)
            return tuple(_key_text(row, key, head.display, side.timezone) for row in rows)

        added_keys = keys(pl.col(_BASE_ROW).is_null(), head, _HEAD_ROW)
        removed_keys = keys(pl.col(_HEAD_ROW).is_null(), base, _BASE_ROW)
    return _Matched(key, how, tuple(cells), sum(counts), added, removed, added_keys, removed_keys)


def _choose_key(
    before: pl.DataFrame, after: pl.DataFrame, display: dict[str, DisplayColumn], shared: list[str]
) -> tuple[tuple[str, ...], str]:
    """The table's leading non-numeric columns when they tell rows apart on both sides; else the first column
    shared by both sides whose values are unique per row; else the row position."""
    leading: list[str] = []
    for name, column in display.items():
        if name not in shared or column.numeric:
            break
        leading.append(name)
    if leading and _unique(before, after, leading):
        return tuple(leading), f"the leading column{'s' if len(leading) > 1 else ''} " + ", ".join(
            display[n].label for n in leading
        )
    for name in shared:
        if not after.schema[name].is_float() and _unique(before, after, [name]):
            return (name,), f"column {display[name].label}, unique per row on both sides"
    return (), "row position (no column is unique per row on both sides)"


def _unique(before: pl.DataFrame, after: pl.DataFrame, columns: list[str]) -> bool:
    if any(before.schema[c] != after.schema[c] for c in columns):
        return False
    return not any(frame.select(columns).is_duplicated().any() for frame in (before, after))


def _equal(joined: pl.DataFrame, name: str) -> pl.Expr:
    """Base and head values of a column equal, exactly; two missing values are equal."""
    import polars as pl

    left, right = pl.col(_BASE + name), pl.col(_HEAD + name)
    types = joined.schema[_BASE + name], joined.schema[_HEAD + name]
    if types[0] != types[1] and not (types[0].is_numeric() and types[1].is_numeric()):
        left, right = left.cast(pl.String), right.cast(pl.String)
    return left.eq_missing(right)


def _cells(
    rows: pl.DataFrame,
    base: TableSide,
    head: TableSide,
    pairs: dict[str, str],
    key: tuple[str, ...],
    values: list[str],
    limit: int,
) -> list[CellChange]:
    base_display, head_display = base.display, head.display
    old_name = {new: old for old, new in pairs.items()}
    cells: list[CellChange] = []
    for row in rows.iter_rows(named=True):
        where = _key_text(row, key, head_display, head.timezone)
        for i, name in enumerate(values):
            if not row[f"\x00changed:{i}"]:
                continue
            if len(cells) == limit:
                return cells
            column = head_display[name]
            before = shown(row[_BASE + name], base_display[old_name[name]].format, base.timezone)
            after = shown(row[_HEAD + name], column.format, head.timezone)
            if before == after:  # the format hides the difference: show the values exactly
                before, after = repr(row[_BASE + name]), repr(row[_HEAD + name])
            cells.append(CellChange(where, column.label, before, after))
    return cells


def _key_text(
    row: dict[str, Any], key: tuple[str, ...], display: dict[str, DisplayColumn], timezone: str
) -> tuple[tuple[str, str], ...]:
    if not key:
        return (("row", str(int(row[_HEAD_ROW]) + 1)),)
    return tuple((display[name].label, shown(row[name], display[name].format, timezone)) for name in key)
