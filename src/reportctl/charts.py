"""Charts: a ``ChartBlock`` as a Plotly figure, and every chart of a run exported to PNG/SVG in one browser.

Kinds and how the block's columns are read:

    line, scatter      one trace per y column (and per ``series`` value); ``stacked`` stacks lines
    bar                grouped bars; ``stacked: true`` stacks them (negatives below zero)
    area               filled lines, stacked when there are several y columns or a ``series``
    pie, donut         x gives the slice labels, the first y column their values
    heatmap            x across; rows from ``series`` with y[0] as the value, or, without a series,
                       y[0] as the row column and y[1] as the value; one row per cell (first one wins)

Values read as in the other writers: the block's ``format`` (a ``reportctl.formats`` spec) becomes a d3 tick
and hover format with prefix/suffix; bytes and durations, which d3 cannot spell, get ticks placed and labelled
here with ``ColumnFormat.format``. Datetimes are shown in the report's time zone. The same block always gives
the same figure JSON.

Exporting the figures to pictures is ``reportctl.chart_export``'s work.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from reportctl.document import ChartBlock
from reportctl.errors import RenderError
from reportctl.formats import (
    DEFAULT_LOCALE,
    ColumnFormat,
    currency_affixes,
    default_format_for,
    number_symbols,
    parse_format,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go
    import polars as pl

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#999999", "#F0E442")
"""Okabe-Ito, the colour-blind-safe qualitative palette, with its yellow last and black as grey."""
HEATMAP_SCALE = ((0.0, "#f7fbff"), (0.25, "#c6dbef"), (0.5, "#6baed6"), (0.75, "#2171b5"), (1.0, "#08306b"))
FONT_FAMILY = "DejaVu Sans, Arial, sans-serif"
_TEXT, _GRID, _AXIS = "#333333", "#e5e5e5", "#bbbbbb"
_BYTE_STEPS = tuple(m * 1024**p for p in range(7) for m in (1, 2, 5, 10, 20, 50, 100, 200, 500))
_DURATION_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


class ChartError(RenderError):
    """A chart could not be built or exported."""


# -- figures -------------------------------------------------------------------------------------------------


def build_figure(block: ChartBlock, timezone: str, locale: str = DEFAULT_LOCALE) -> go.Figure:
    """The block as a themed Plotly figure; datetimes in ``timezone``, values formatted as the block says, with
    the decimal and group separators of ``locale``."""
    import plotly.graph_objects as go

    frame = _plain_frame(block.frame, timezone)
    missing = [c for c in (block.x, *block.y, block.series) if c is not None and c not in frame.columns]
    if missing:
        raise ChartError(f"chart '{block.id}': no column {', '.join(map(repr, missing))} in its dataset")
    value_format = _value_format(block, frame)
    layout = _theme(block.title)
    symbols = number_symbols(locale)
    layout["separators"] = symbols.decimal + symbols.group
    if block.chart in ("pie", "donut"):
        traces = _pie(block, frame, value_format, locale)
    elif block.chart == "heatmap":
        traces = _heatmap(block, frame, value_format, layout, timezone, locale)
    else:
        traces = _xy_traces(block, frame, value_format, layout, locale)
        layout["xaxis"] |= {"title": {"text": _x_title(block, timezone)}, **_temporal_axis(frame, block.x)}
        axis = _axis_format(value_format, _values(frame, block), locale)
        if not block.format and "tickformat" in axis:  # by type: plain ticks, as many decimals as they need
            axis |= {"tickformat": ",", "ticksuffix": "", "tickprefix": ""}
        layout["yaxis"] |= {"title": {"text": _y_title(block)}, **axis}
    if frame.height == 0:
        layout["annotations"] = [
            {
                "text": "No data for this period",
                "showarrow": False,
                "xref": "paper",
                "yref": "paper",
                "x": 0.5,
                "y": 0.5,
            }
        ]
    for index, trace in enumerate(traces):
        trace["uid"] = f"trace-{index}"
    return go.Figure({"data": traces, "layout": layout}, skip_invalid=False)


def figure_json(figure: go.Figure) -> str:
    """The figure as canonical JSON: equal figures give equal text, which keys the export cache."""
    from plotly.io import to_json

    text: str = to_json(figure, validate=False, pretty=False, remove_uids=False, engine="json")
    return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), allow_nan=False)


def _plain_frame(frame: pl.DataFrame, timezone: str) -> pl.DataFrame:
    """Aware datetimes as wall-clock times in ``timezone``, durations as seconds, decimals as floats."""
    import polars as pl

    exprs = []
    for name, dtype in frame.schema.items():
        column = pl.col(name)
        if isinstance(dtype, pl.Datetime) and dtype.time_zone:
            exprs.append(column.dt.convert_time_zone(timezone).dt.replace_time_zone(None))
        elif isinstance(dtype, pl.Duration):
            exprs.append(column.dt.total_microseconds() / 1e6)
        elif dtype.is_decimal():
            exprs.append(column.cast(pl.Float64))
        else:
            continue
        exprs[-1] = exprs[-1].alias(name)
    return frame.with_columns(exprs) if exprs else frame


def _values(frame: pl.DataFrame, block: ChartBlock) -> list[float]:
    """Every finite number the value axis shows (for ticks computed here)."""
    numbers = (v for column in block.y for v in frame.get_column(column).to_list())
    return [float(v) for v in numbers if isinstance(v, int | float) and math.isfinite(v)]


def _column(frame: pl.DataFrame, name: str) -> list[Any]:
    """A column as JSON-ready values: NaN as None (a gap), so the figure JSON stays strict."""
    return [None if isinstance(v, float) and not math.isfinite(v) else v for v in frame.get_column(name).to_list()]


def _groups(frame: pl.DataFrame, series: str | None) -> list[tuple[str | None, pl.DataFrame]]:
    """Rows split by the series column's values, in order of first appearance."""
    if series is None:
        return [(None, frame)]
    import polars as pl

    keys = frame.get_column(series).unique(maintain_order=True).to_list()
    return [
        (str(key), frame.filter(pl.col(series).is_null() if key is None else pl.col(series) == key)) for key in keys
    ]


def _xy_traces(
    block: ChartBlock, frame: pl.DataFrame, value_format: ColumnFormat, layout: dict[str, Any], locale: str
) -> list[dict[str, Any]]:
    stack = block.chart == "area" and (len(block.y) > 1 or block.series is not None)
    stack = stack or (block.stacked and block.chart == "line")
    if block.chart == "bar":
        layout["barmode"] = "relative" if block.stacked else "group"
    hover = _hover_template(value_format, locale=locale)
    traces: list[dict[str, Any]] = []
    for key, rows in _groups(frame, block.series):
        for column in block.y:
            label = _label(block, column)
            name = key if len(block.y) == 1 else (f"{key} · {label}" if key else label)
            values = _column(rows, column)
            trace: dict[str, Any] = {
                "x": _column(rows, block.x),
                "y": values,
                "name": name or label,
                "hovertemplate": f"%{{x}}<br>{hover}<extra>%{{fullData.name}}</extra>",
            }
            color = PALETTE[len(traces) % len(PALETTE)]
            if block.chart == "bar":
                trace |= {"type": "bar", "marker": {"color": color}}
            elif block.chart == "scatter":
                trace |= {"type": "scatter", "mode": "markers", "marker": {"color": color, "size": 7}}
            else:
                trace |= {"type": "scatter", "mode": "lines", "line": {"color": color, "width": 2}}
                alone = _isolated(values)
                if any(alone):  # a line needs two points: a value between gaps is drawn as a dot
                    sizes = [6 if single else 0 for single in alone]
                    trace |= {"mode": "lines+markers", "marker": {"color": color, "size": sizes}}
                if block.chart == "area":
                    trace["fill"] = "tonexty" if stack else "tozeroy"
                    trace["fillcolor"] = _translucent(color)
                if stack:
                    trace["stackgroup"] = "one"
                    if block.chart == "line":
                        trace["fill"] = "none"
            traces.append(trace)
    layout["showlegend"] = len(traces) > 1
    return traces


def _pie(block: ChartBlock, frame: pl.DataFrame, value_format: ColumnFormat, locale: str) -> list[dict[str, Any]]:
    labels = [str(v) for v in _column(frame, block.x)]
    return [
        {
            "type": "pie",
            "labels": labels,
            "values": _column(frame, block.y[0]),
            "hole": 0.5 if block.chart == "donut" else 0,
            "sort": False,
            "direction": "clockwise",
            "texttemplate": "%{percent:.1%}",  # one decimal on every slice, as percent formats default to
            "marker": {"colors": [PALETTE[i % len(PALETTE)] for i in range(len(labels))]},
            "hovertemplate": f"%{{label}}: {_hover_template(value_format, '%{value', locale)}<extra></extra>",
        }
    ]


def _heatmap(
    block: ChartBlock,
    frame: pl.DataFrame,
    value_format: ColumnFormat,
    layout: dict[str, Any],
    timezone: str,
    locale: str,
) -> list[dict[str, Any]]:
    if block.series is not None:
        row_column, value_column = block.series, block.y[0]
    elif len(block.y) >= 2:
        row_column, value_column = block.y[0], block.y[1]
    else:
        raise ChartError(
            f"chart '{block.id}': a heatmap needs `series` (its rows) with y as the value, or y: [ROW, VALUE]"
        )
    xs = frame.get_column(block.x).unique(maintain_order=True).to_list()
    rows = frame.get_column(row_column).unique(maintain_order=True).to_list()
    where = {x: i for i, x in enumerate(xs)}
    which = {r: i for i, r in enumerate(rows)}
    z: list[list[Any]] = [[None] * len(xs) for _ in rows]
    for x, row, value in zip(
        _column(frame, block.x), _column(frame, row_column), _column(frame, value_column), strict=True
    ):
        if z[which[row]][where[x]] is None:
            z[which[row]][where[x]] = value
    axis = _axis_format(value_format, [float(v) for r in z for v in r if isinstance(v, int | float)], locale)
    layout["xaxis"] |= {
        "title": {"text": _x_title(block, timezone)},
        "showgrid": False,
        **_temporal_axis(frame, block.x),
    }
    title = block.y_label or _label(block, row_column)
    layout["yaxis"] |= {"title": {"text": title}, "showgrid": False, "type": "category"}
    colorbar = {key: value for key, value in axis.items() if key.startswith("tick")}
    return [
        {
            "type": "heatmap",
            "x": [x if x is None or isinstance(x, int | float) else _jsonable(x) for x in xs],
            "y": [str(r) for r in rows],
            "z": z,
            "colorscale": [list(stop) for stop in HEATMAP_SCALE],
            "colorbar": {"outlinewidth": 0, "thickness": 12, **colorbar},
            "hovertemplate": f"%{{x}}, %{{y}}: {_hover_template(value_format, '%{z', locale)}<extra></extra>",
        }
    ]


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _theme(title: str | None) -> dict[str, Any]:
    axis = {
        "automargin": True,
        "showgrid": True,
        "gridcolor": _GRID,
        "zeroline": False,
        "showline": True,
        "linecolor": _AXIS,
        "ticks": "outside",
        "tickcolor": _AXIS,
        "title": {"standoff": 8},
    }
    return {
        "template": {},
        "title": {"text": title or "", "xref": "paper", "x": 0, "xanchor": "left", "font": {"size": 16}},
        "font": {"family": FONT_FAMILY, "size": 12, "color": _TEXT},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "colorway": list(PALETTE),
        "separators": ".,",
        "margin": {"l": 56, "r": 16, "t": 48 if title else 16, "b": 48, "pad": 0},
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": -0.18, "yanchor": "top"},
        "hoverlabel": {"font": {"family": FONT_FAMILY}},
        "xaxis": dict(axis),
        "yaxis": dict(axis),
    }


def humanise(column: str) -> str:
    """A column name as words for readers: "p95_latency" -> "P95 latency"."""
    text = re.sub(r"[_\-\s]+", " ", column).strip() or column
    return text[:1].upper() + text[1:]


def _label(block: ChartBlock, column: str) -> str:
    """A column's name for readers: the label its table gives it, else its name as words."""
    return block.labels.get(column) or humanise(column)


def _isolated(values: list[Any]) -> list[bool]:
    """Which values have no neighbouring value on either side, so a line through them draws nothing."""
    present = [v is not None and not (isinstance(v, float) and math.isnan(v)) for v in values]
    last = len(values) - 1
    return [
        here and (i == 0 or not present[i - 1]) and (i == last or not present[i + 1]) for i, here in enumerate(present)
    ]


def _x_title(block: ChartBlock, timezone: str) -> str:
    """The x label; aware times say which zone they are shown in."""
    if block.x_label:
        return block.x_label
    dtype = block.frame.schema.get(block.x)
    zone = getattr(dtype, "time_zone", None)
    label = _label(block, block.x)
    return f"{label} ({timezone})" if zone and block.x not in block.labels else label


def _y_title(block: ChartBlock) -> str:
    if block.y_label:
        return block.y_label
    return _label(block, block.y[0]) if len(block.y) == 1 else ""


def _temporal_axis(frame: pl.DataFrame, column: str) -> dict[str, Any]:
    dtype = frame.schema[column]
    if dtype.is_temporal():
        return {"type": "date", "hoverformat": "%Y-%m-%d %H:%M"}
    return {}


def _translucent(color: str) -> str:
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},0.35)"


# -- formats -------------------------------------------------------------------------------------------------


def _value_format(block: ChartBlock, frame: pl.DataFrame) -> ColumnFormat:
    """The block's format, else the one its first y column's type gets in tables (durations by their source)."""
    if block.format:
        return parse_format(block.format)
    if block.y[0] in block.frame.columns:
        return default_format_for(block.frame.schema[block.y[0]], block.frame.get_column(block.y[0]))
    return default_format_for(frame.schema[block.y[0]], frame.get_column(block.y[0]))


def d3_format(fmt: ColumnFormat, locale: str = DEFAULT_LOCALE) -> tuple[str, str, str] | None:
    """(tickformat, prefix, suffix) spelling ``fmt`` in d3, or None when d3 cannot (bytes, durations, dates)."""
    decimals = fmt.decimals if fmt.decimals is not None else 0
    suffix = f" {fmt.unit}" if fmt.unit else ""
    if fmt.kind == "number":
        return f",.{max(decimals, fmt.most_decimals or 0)}f", "", suffix
    if fmt.kind == "integer":
        return ",.0f", "", suffix
    if fmt.kind == "percent":
        return f",.{decimals}%", "", ""  # d3 multiplies by 100 only with its own "%", written without a space
    if fmt.kind == "currency":
        prefix, suffix = currency_affixes(fmt.currency or "USD", locale)
        return f",.{decimals}f", prefix, suffix
    return None


def _axis_format(fmt: ColumnFormat, values: list[float], locale: str = DEFAULT_LOCALE) -> dict[str, Any]:
    spelled = d3_format(fmt, locale)
    if spelled is not None:
        tickformat, prefix, suffix = spelled
        return {"tickformat": tickformat, "tickprefix": prefix, "ticksuffix": suffix, "hoverformat": tickformat}
    if fmt.kind in ("bytes", "duration") and values:
        steps = _BYTE_STEPS if fmt.kind == "bytes" else _DURATION_STEPS
        ticks = _ticks(min(0.0, *values), max(0.0, *values), steps)
        return {"tickmode": "array", "tickvals": ticks, "ticktext": [fmt.format(v, locale=locale) for v in ticks]}
    return {"tickformat": ","}


def _hover_template(fmt: ColumnFormat, field: str = "%{y", locale: str = DEFAULT_LOCALE) -> str:
    spelled = d3_format(fmt, locale)
    if spelled is None:
        return field + "}"
    tickformat, prefix, suffix = spelled
    return f"{prefix}{field}:{tickformat}}}{suffix}"


def _ticks(low: float, high: float, steps: Sequence[float], target: int = 6) -> list[float]:
    """Ticks at multiples of the smallest step giving at most ``target`` intervals over [low, high]."""
    span = high - low
    if span <= 0:
        return [low]
    step = next((s for s in steps if span / s <= target), steps[-1] * math.ceil(span / steps[-1] / target))
    first = math.floor(low / step)
    return [float(n * step) for n in range(first, math.ceil(high / step) + 1)]


# -- browser -------------------------------------------------------------------------------------------------
