"""Native Excel charts for chart blocks: each on its own sheet, beside the data table it references.

The sheet holds the chart's data from A1 (x in column A, then one column per y column, or per value of
``series`` for the first y column) and the chart to its right. Chart kinds: line, bar (Excel's column chart),
area and line, grouped or stacked; scatter; pie and donut (the first series). Excel has no heatmap chart: a
heatmap's grid (x down, series or y columns across) is coloured with a three-colour scale instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reportctl.charts import humanise
from reportctl.document import ChartBlock
from reportctl.formats import DEFAULT_LOCALE, parse_format
from reportctl.writers.xlsx_cells import column_format, column_values, number_format

if TYPE_CHECKING:
    import polars as pl

_CHART_TYPES = {"line": "line", "bar": "column", "area": "area", "scatter": "scatter", "pie": "pie"}
_CHART_TYPES["donut"] = "doughnut"
_WIDTH_SAMPLE_ROWS = 200
_MAX_WIDTH = 60


def chart_grid(block: ChartBlock) -> pl.DataFrame:
    """The chart's data as written: x first, then one column per series (pivoted when ``series`` is set)."""
    frame = block.frame
    if block.series is None:
        return frame.select([block.x, *block.y])
    values = list(block.y) if block.chart != "heatmap" and len(block.y) > 1 else block.y[0]
    return frame.pivot(on=block.series, index=block.x, values=values, aggregate_function="first", maintain_order=True)


def _label(block: ChartBlock, column: str) -> str:
    """A value column's label as the chart's legend shows it; a series value (after pivoting) as it is."""
    if column in block.y or column == block.x:
        return block.labels.get(column) or humanise(column)
    return column


def write_chart_sheet(
    workbook: Any,
    sheet_name: str,
    block: ChartBlock,
    timezone: str,
    cell_format: Callable[[str], Any],
    locale: str = DEFAULT_LOCALE,
) -> None:
    """Add a sheet with the block's data and its native chart (or, for a heatmap, a colour scale)."""
    grid = chart_grid(block)
    sheet = workbook.add_worksheet(sheet_name)
    header = cell_format("header")
    names = [block.x_label or _label(block, block.x), *(_label(block, str(name)) for name in grid.columns[1:])]
    sheet.write_row(0, 0, names, header)
    value_spec = parse_format(block.format) if block.format else None
    columns = []
    for index, name in enumerate(grid.columns):
        series = grid.get_column(name)
        spec = column_format(parse_format(None), series) if index == 0 or value_spec is None else value_spec
        columns.append(column_values(series, spec, timezone))
        sample = series.head(_WIDTH_SAMPLE_ROWS).to_list()
        widest = max((len(spec.format(v, timezone, locale)) for v in sample), default=0)
        width = min(max(len(names[index]) + 4, widest + 2, 8), _MAX_WIDTH)
        sheet.set_column(index, index, width, cell_format(number_format(spec, series.dtype, locale)))
    for row, values in enumerate(zip(*columns, strict=True), start=1):
        sheet.write_row(row, 0, values)
    last = grid.height
    if last == 0 or grid.width < 2:
        sheet.write(last + 2, 0, "No data for this chart")
        return
    if block.chart == "heatmap":
        sheet.conditional_format(1, 1, last, grid.width - 1, {"type": "3_color_scale"})
        note = "Excel has no heatmap chart: the values are coloured with a colour scale."
        sheet.write(last + 2, 0, note)
        return
    value_code = number_format(value_spec, None, locale) if value_spec else None
    sheet.insert_chart(1, grid.width + 1, _chart(workbook, sheet_name, block, grid, value_code))


def _chart(workbook: Any, sheet_name: str, block: ChartBlock, grid: pl.DataFrame, value_code: str | None) -> Any:
    kind = _CHART_TYPES.get(block.chart, "line")
    options: dict[str, str] = {"type": kind}
    if block.stacked and kind in ("line", "column", "area"):
        options["subtype"] = "stacked"
    chart = workbook.add_chart(options)
    last = grid.height
    count = 1 if kind in ("pie", "doughnut") else grid.width - 1
    for column in range(1, count + 1):
        series: dict[str, Any] = {
            "name": [sheet_name, 0, column],
            "categories": [sheet_name, 1, 0, last, 0],
            "values": [sheet_name, 1, column, last, column],
        }
        if kind == "scatter":
            series["marker"] = {"type": "circle", "size": 5}
        chart.add_series(series)
    if block.title:
        chart.set_title({"name": block.title})
    if kind in ("pie", "doughnut"):
        return chart
    chart.set_x_axis({"name": block.x_label or block.x})
    y_axis: dict[str, Any] = {"name": block.y_label} if block.y_label else {}
    if value_code:
        y_axis["num_format"] = value_code
    chart.set_y_axis(y_axis)
    if count == 1:
        chart.set_legend({"none": True})
    chart.set_size({"width": 720, "height": 400})
    return chart
