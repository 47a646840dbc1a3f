"""Building the format-agnostic ``Document`` of one run from its computed datasets and the spec's sections."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from reportctl.document import (
    Block,
    ChartBlock,
    Document,
    KpiBlock,
    KpiValue,
    ParameterValue,
    ReportInfo,
    Style,
    TableBlock,
    TableColumn,
    TextBlock,
)
from reportctl.errors import DatasetError, Problem, SpecError
from reportctl.isolation import error_line, failed_input, on_error, placeholder, what_failed
from reportctl.spec.loader import LoadedSpec
from reportctl.spec.models import ChartSection, KpisSection, TableSection, TextSection
from reportctl.spec.validation import format_path

if TYPE_CHECKING:
    import polars as pl


def column_label(name: str) -> str:
    """'p95_latency' -> 'P95 latency': the label of a column the spec does not label."""
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def template_context(
    loaded: LoadedSpec,
    frames: Mapping[str, pl.DataFrame],
    values: Mapping[str, Any],
    run_id: str,
    now: datetime,
) -> dict[str, Any]:
    """What templates see: parameters (also by name at the top level), datasets, run and report details."""
    from reportctl.templating import DatasetView

    spec = loaded.spec
    timezone = spec.report_timezone(loaded.project.config.timezone)
    return {
        **values,
        "params": dict(values),
        "datasets": {name: DatasetView(frame) for name, frame in frames.items()},
        "run": {"id": run_id, "generated_at": now.astimezone(ZoneInfo(timezone)), "timezone": timezone},
        "report": {
            "name": spec.name,
            "owner": spec.owner,
            "version": spec.version,
            "labels": dict(spec.labels),
        },
        "name": spec.name,
    }


def assemble_document(
    loaded: LoadedSpec,
    frames: Mapping[str, pl.DataFrame],
    values: Mapping[str, Any],
    *,
    run_id: str,
    now: datetime,
    failures: Mapping[str, BaseException] | None = None,
) -> Document:
    """The document of one run; templates, KPIs and formulas are evaluated here, once for every writer.

    ``failures`` are the sources and datasets that failed (isolated sections): a section reading one, and any
    section with ``on_error: placeholder`` that fails here, becomes a placeholder (``reportctl.isolation``)."""
    from reportctl.spec.checks import check_against_data
    from reportctl.spec.parameters import bind_values

    spec = loaded.spec
    timezone = spec.report_timezone(loaded.project.config.timezone)
    bound = bind_values(spec.parameters, values)
    failures = failures or {}
    # a failed source or dataset has no schema: its columns go unchecked (None), its readers become placeholders
    schemas: dict[str, Any] = {**dict.fromkeys(failures), **{name: frame.schema for name, frame in frames.items()}}
    problems = check_against_data(loaded, schemas, bound)
    broken = _sections_with_problems(loaded, problems)
    problems = [p for p in problems if _problem_section(p) not in broken]
    if problems:
        raise SpecError(problems)
    context: dict[str, Any] = {}

    def render(text: str, path: tuple[Any, ...]) -> str:
        if not any(mark in text for mark in ("{{", "{%", "{#")):
            return text  # plain text: no need to load Jinja at all
        from reportctl.templating import TemplateError, render_template

        if "params" not in context:
            context.update(template_context(loaded, frames, values, run_id, now))
        where = format_path(path)
        try:
            return render_template(
                text, context, where=where, timezone=timezone, limits=loaded.project.config.templates
            )
        except TemplateError as exc:
            raise SpecError([loaded.problem(path, str(exc).removeprefix(f"{where}: "))]) from None

    title = render(spec.title or spec.name, ("title",))
    context["title"] = title

    blocks: list[Block] = []
    labels = _column_labels(spec.sections)
    for index, section in enumerate(spec.sections):
        failed = failed_input(loaded, section, failures)
        if failed is not None and on_error(loaded, section) == "placeholder":
            blocks.append(placeholder(section, what_failed(*failed)))
        elif index in broken:
            blocks.append(placeholder(section, broken[index]))
        elif on_error(loaded, section) == "placeholder":
            try:
                blocks.append(_block(section, index, frames, bound, render, labels, spec))
            except Exception as exc:  # isolated: the section says what failed, the report goes on
                blocks.append(placeholder(section, error_line(exc)))
        else:
            blocks.append(_block(section, index, frames, bound, render, labels, spec))

    info = ReportInfo(
        name=spec.name,
        title=title,
        description=spec.description,
        run_id=run_id,
        generated_at=now.astimezone(ZoneInfo(timezone)),
        timezone=timezone,
        spec_path=_relative(loaded),
        spec_hash=loaded.spec_hash,
        version=spec.version,
        owner=spec.owner,
        labels=dict(spec.labels),
    )
    parameters = tuple(
        ParameterValue(name, parameter.label or column_label(name), parameter.type, values.get(name))
        for name, parameter in spec.parameters.items()
    )
    return Document(info, parameters, tuple(blocks), style=report_style(loaded))


def _block(
    section: Any,
    index: int,
    frames: Mapping[str, pl.DataFrame],
    bound: Mapping[str, Any],
    render: Callable[[str, tuple[Any, ...]], str],
    labels: Mapping[str, dict[str, str]],
    spec: Any,
) -> Block:
    """One section's block: its template rendered, KPIs evaluated, table or chart data taken from ``frames``."""
    from reportctl.data.expressions import evaluate_kpi

    if isinstance(section, TextSection):
        markdown = render(section.template, ("sections", index, "template"))
        return TextBlock(section.id, section.title, markdown)
    if isinstance(section, KpisSection):
        items = tuple(
            KpiValue(item.label, evaluate_kpi(item.value, frames, bound), item.format, item.description)
            for item in section.items
        )
        return KpiBlock(section.id, section.title, items)
    if isinstance(section, TableSection):
        return _table(section, frames, bound, _column_notes(spec, section.dataset))
    chart: ChartSection = section
    frame = frames[chart.dataset]
    if chart.fail_on_empty and frame.height == 0:
        raise DatasetError(chart.dataset, f"is empty and section '{chart.id}' sets fail_on_empty")
    return ChartBlock(
        id=chart.id,
        title=chart.title,
        chart=chart.chart,
        frame=frame,
        x=chart.x,
        y=tuple(chart.y),
        series=chart.series,
        stacked=chart.stacked,
        x_label=chart.x_label,
        y_label=chart.y_label,
        format=chart.format,
        labels=labels.get(chart.dataset, {}),
    )


def _problem_section(problem: Problem) -> int | None:
    """The index of the section a problem is in (sections[2].template -> 2), None when it is elsewhere."""
    found = re.match(r"sections\[(\d+)\]", problem.path)
    return int(found.group(1)) if found else None


def _sections_with_problems(loaded: LoadedSpec, problems: list[Problem]) -> dict[int, str]:
    """The placeholder sections whose checks against the run's data failed, with the first problem's message."""
    broken: dict[int, str] = {}
    for problem in problems:
        index = _problem_section(problem)
        if index is None or index in broken or problem.severity == "note":
            continue
        if on_error(loaded, loaded.spec.sections[index]) == "placeholder":
            broken[index] = f"{problem.path}: {problem.message}"
    return broken


def report_style(loaded: LoadedSpec) -> Style:
    """The spec's locale and theme over the project's, key by key, with files resolved in the project folder."""
    config, spec = loaded.project.config, loaded.spec
    theme = config.theme.model_dump(exclude_none=True)
    if spec.theme is not None:
        theme.update(spec.theme.model_dump(exclude_none=True))
    files = {
        key: loaded.project.root / theme[key] for key in ("logo", "font", "font_bold", "html_template") if key in theme
    }
    return Style(locale=spec.locale or config.locale, accent=theme.get("accent"), **files)


def _column_labels(sections: Sequence[Any]) -> dict[str, dict[str, str]]:
    """The labels tables give their columns, by dataset, so a chart's axes name a column as its table does."""
    labels: dict[str, dict[str, str]] = {}
    for section in sections:
        if isinstance(section, TableSection):
            known = labels.setdefault(section.dataset, {})
            for name, column in section.columns.items():
                if column.label and name not in known:
                    known[name] = column.label
    return labels


def _column_notes(spec: Any, dataset: str) -> dict[str, str]:
    """Notes for a dataset's percentile columns: which percentile, and how it was computed."""
    from reportctl.data.dialect import PERCENTILE_METHODS, percentile_method

    definition = spec.datasets.get(dataset)
    notes = {}
    for name, expression in definition.aggregate.items() if definition is not None else ():
        found = percentile_method(expression)
        if found is not None:
            percentile, method = found
            rank = percentile[1:3] + ("." + percentile[3:] if len(percentile) > 3 else "")
            notes[name] = f"{_ordinal(rank)} percentile, {PERCENTILE_METHODS[method]}"
    return notes


def _ordinal(number: str) -> str:
    """'95' -> '95th', '1' -> '1st', '99.9' -> '99.9th'."""
    if "." in number or number.endswith(("11", "12", "13")):
        return number + "th"
    return number + {"1": "st", "2": "nd", "3": "rd"}.get(number[-1], "th")


def _table(
    section: TableSection,
    frames: Mapping[str, pl.DataFrame],
    bound: Mapping[str, Any],
    notes: Mapping[str, str] | None = None,
) -> TableBlock:
    from reportctl.data.expressions import formula_columns

    frame = frames[section.dataset]
    if section.fail_on_empty and frame.height == 0:
        raise DatasetError(section.dataset, f"is empty and section '{section.id}' sets fail_on_empty")
    formulas = {name: c.formula for name, c in section.columns.items() if c.formula}
    frame = formula_columns(frame, formulas, bound) if formulas else frame
    shown = [name for name in frame.columns if not (name in section.columns and section.columns[name].hidden)]
    columns = tuple(
        TableColumn(
            name=name,
            label=(section.columns[name].label if name in section.columns else None) or column_label(name),
            format=section.columns[name].format if name in section.columns else None,
            formula=section.columns[name].formula if name in section.columns else None,
            note=(notes or {}).get(name),
        )
        for name in shown
    )
    return TableBlock(
        id=section.id,
        title=section.title,
        columns=columns,
        frame=frame.select(shown),
        max_rows=section.max_rows,
        empty_message=section.empty_message,
    )


def _relative(loaded: LoadedSpec) -> str:
    try:
        return str(loaded.path.relative_to(loaded.project.root))
    except ValueError:
        return str(loaded.path)
