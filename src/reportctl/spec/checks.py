"""Checks across a structurally valid spec, without reading data.

Names must resolve (datasets to sources, sections to datasets), parameter defaults must fit their types,
templates must parse, formats must exist, and where a source's schema is knowable without reading it (sample
data, local files), every column a dataset, table, chart, formula or KPI names must exist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from reportctl.errors import Position, Problem, ReportctlError, SourceError, did_you_mean, one_of
from reportctl.spec.loader import LoadedSpec
from reportctl.spec.models import ChartSection, KpisSection, TableSection, TextSection
from reportctl.spec.validation import format_path

if TYPE_CHECKING:
    import polars as pl

    from reportctl.data.sources.base import UncheckedColumns
    from reportctl.delivery.recipients import Directory

_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def split_path(text: str) -> tuple[Any, ...]:
    """'datasets.x.join[0].on' -> ('datasets', 'x', 'join', 0, 'on')."""
    return tuple(int(index) if index else name for name, index in _SEGMENT.findall(text))


def check_spec(loaded: LoadedSpec, *, connect: bool = False) -> list[Problem]:
    """Every cross-reference problem of ``loaded``, and notes on what could not be checked; no errors: sound.

    ``connect`` asks each SQL source's database for its result columns instead of reading them from the query.
    """
    problems: list[Problem] = []
    now = datetime.now(UTC)
    values = _check_parameters(loaded, now, problems)
    _check_formats(loaded, problems)
    _check_theme(loaded, problems)
    _check_pdf_length(loaded, problems)
    _check_timeout(loaded, problems)
    if loaded.spec.abstract:
        # a base may name datasets, columns and parameters that the specs extending it define: compile only
        _check_templates(loaded, None, problems)
        return problems
    schemas = _dataset_schemas(loaded, values, now, problems, connect=connect)
    from reportctl.burst import check_burst
    from reportctl.data.policy_checks import check_protection

    problems += check_protection(loaded, schemas) + check_burst(loaded)
    _check_sections(loaded, schemas, values, problems)
    _check_delivery(loaded, problems)
    _check_templates(loaded, schemas, problems)
    from reportctl.spec.alerts import check_alerts

    problems += check_alerts(loaded)
    return problems


def check_against_data(
    loaded: LoadedSpec, schemas: Mapping[str, pl.Schema], values: Mapping[str, Any]
) -> list[Problem]:
    """The section and template checks of ``check_spec`` over the schemas a run's data has (``values`` bound).

    Run by render before it builds the document, so a name validate could not check (a column of a source whose
    schema is known only once read) is an error at the spec's line, never ignored or left to fail in a writer.
    """
    problems: list[Problem] = []
    _check_sections(loaded, schemas, values, problems)
    # the template limits were checked when the spec was loaded (check_spec), and the render that follows is
    # bounded itself: a runaway template is not run a second time here
    _check_templates(loaded, schemas, problems, bounded=False)
    return problems


def _check_parameters(loaded: LoadedSpec, now: datetime, problems: list[Problem]) -> dict[str, Any]:
    from reportctl.spec.parameters import bind_values, coerce_parameter

    spec = loaded.spec
    timezone = spec.report_timezone(loaded.project.config.timezone)
    values: dict[str, Any] = {}
    for name, parameter in spec.parameters.items():
        for index, choice in enumerate(parameter.choices or []):
            try:
                coerce_parameter(parameter.model_copy(update={"choices": None}), choice, now, timezone)
            except ValueError as exc:
                problems.append(loaded.problem(("parameters", name, "choices", index), str(exc)))
        if parameter.default is None:
            continue
        try:
            values[name] = coerce_parameter(parameter, parameter.default, now, timezone)
        except ValueError as exc:
            problems.append(loaded.problem(("parameters", name, "default"), str(exc)))
    if spec.schedule:
        for name, value in spec.schedule.parameters.items():
            at = ("schedule", "parameters", name)
            if name not in spec.parameters:
                hint = did_you_mean(name, spec.parameters)
                problems.append(loaded.problem(at, f"unknown parameter '{name}'{hint}"))
                continue
            try:
                coerce_parameter(spec.parameters[name], value, now, timezone)
            except ValueError as exc:
                problems.append(loaded.problem(at, str(exc)))
    return bind_values(spec.parameters, values)


def _check_timeout(loaded: LoadedSpec, problems: list[Problem]) -> None:
    """With ``executor: celery``, a scheduled report's timeout must end before Redis would hand its run to another
    worker (the visibility timeout), or a long run would be handed out while it still renders."""
    from reportctl.config import CeleryExecutor
    from reportctl.spec.types import format_duration_spec

    executor, schedule = loaded.project.config.executor, loaded.spec.schedule
    if not isinstance(executor, CeleryExecutor) or schedule is None or schedule.timeout is None:
        return
    if schedule.timeout >= executor.visibility_timeout:
        limit = format_duration_spec(executor.visibility_timeout)
        problems.append(
            loaded.problem(
                ("schedule", "timeout"),
                f"{format_duration_spec(schedule.timeout)} is not shorter than executor.visibility_timeout {limit} "
                "in reportctl.yaml; raise visibility_timeout above the longest report timeout",
            )
        )


def _check_templates(
    loaded: LoadedSpec,
    schemas: Mapping[str, pl.Schema | None] | None,
    problems: list[Problem],
    *,
    bounded: bool = True,
) -> None:
    """Templates compile, no constant expression in them passes the project's template limits (``bounded``), and,
    given ``schemas`` (None for an abstract base), every name in them resolves."""
    from reportctl.spec.template_names import unresolved_names
    from reportctl.spec.template_shapes import Shape, delivery_context, report_context
    from reportctl.templating import check_template

    spec = loaded.spec
    columns = {name: None if s is None else list(s.names()) for name, s in (schemas or {}).items()}
    report = report_context(spec, columns, with_title=True)
    templates: list[tuple[tuple[Any, ...], str, Mapping[str, Shape]]] = []
    if spec.title:
        templates.append((("title",), spec.title, report_context(spec, columns, with_title=False)))
    for index, section in enumerate(spec.sections):
        if isinstance(section, TextSection):
            templates.append((("sections", index, "template"), section.template, report))
    delivery = delivery_context(spec)
    for index, entry in enumerate(loaded.deliveries):
        for key in ("subject", "body", "text", "url"):
            text = getattr(entry, key, None)
            if isinstance(text, str):
                templates.append((("delivery", index, key), text, delivery))
    limits = loaded.project.config.templates if bounded else None
    for at, text, context in templates:
        where = format_path(at)
        message = check_template(text, where=where, limits=limits)
        if message:
            problems.append(loaded.problem(at, message.removeprefix(f"{where}: ")))
        elif schemas is not None and any(mark in text for mark in ("{{", "{%")):
            for line, name in unresolved_names(text, context):
                problem = loaded.problem(at, name)
                problems.append(replace(problem, position=_line_in_block(problem.position, text, line)))


def _line_in_block(position: Position | None, template: str, line: int | None) -> Position | None:
    """The file position of ``line`` of a template written as a literal block (``|``), whose lines are the
    file's lines; any other style (folded, quoted) folds lines, so the template's own position stays. The file
    is read again, so the line must still read as the template's (a spec read from git may differ from disk)."""
    if position is None or line is None:
        return position
    try:
        lines = position.file.read_text(encoding="utf-8").splitlines()
    except OSError:
        return position
    wanted = template.splitlines()[line - 1].strip() if line <= len(template.splitlines()) else None
    if (
        position.line > len(lines)
        or not lines[position.line - 1][position.column - 1 :].startswith("|")
        or position.line + line > len(lines)
        or lines[position.line + line - 1].strip() != wanted
    ):
        return position
    text = lines[position.line + line - 1]
    return Position(position.file, position.line + line, len(text) - len(text.lstrip()) + 1)


def _check_formats(loaded: LoadedSpec, problems: list[Problem]) -> None:
    from reportctl.formats import parse_format

    formats: list[tuple[tuple[Any, ...], str | None]] = []
    for index, section in enumerate(loaded.spec.sections):
        if isinstance(section, TableSection):
            formats += [(("sections", index, "columns", n, "format"), c.format) for n, c in section.columns.items()]
        elif isinstance(section, KpisSection):
            formats += [(("sections", index, "items", i, "format"), k.format) for i, k in enumerate(section.items)]
        elif isinstance(section, ChartSection):
            formats.append((("sections", index, "format"), section.format))
    for at, text in formats:
        if text is None:
            continue
        try:
            parse_format(text)
        except ReportctlError as exc:
            problems.append(loaded.problem(at, str(exc)))


_THEME_FILES = {
    "logo": (".png", ".svg"),
    "font": (".ttf", ".otf"),
    "font_bold": (".ttf", ".otf"),
    "html_template": (".html", ".j2", ".jinja"),
}


LARGE_PDF_ROWS = 50_000
"""Past this many rows of a table in a PDF, validate says how many pages that makes."""


def _check_pdf_length(loaded: LoadedSpec, problems: list[Problem]) -> None:
    """A note for a table whose rows would run to thousands of PDF pages: readers page through a summary, and
    the complete data is in the Excel, CSV and JSON outputs."""
    from reportctl.writers.pdf import rows_per_page

    found = [(i, o) for i, o in enumerate(loaded.outputs) if getattr(o, "format", None) == "pdf"]
    if not found:
        return
    index, pdf = found[0]
    per_page = rows_per_page(getattr(pdf, "page_size", "A4"))
    for number, section in enumerate(loaded.spec.sections):
        if not isinstance(section, TableSection):
            continue
        own = section.max_rows is not None
        rows = section.max_rows if own else getattr(pdf, "max_rows", None)
        if rows is None or rows <= LARGE_PDF_ROWS:
            continue
        at = ("sections", number, "max_rows") if own else ("outputs", index, "max_rows")
        pages = -(-rows // per_page)
        message = (
            f"up to {rows:,} rows of table '{section.id}' make about {pages:,} PDF pages ({per_page} rows a page); "
            "keep the PDF to what readers page through and leave the complete data to the xlsx, csv or json outputs"
        )
        problems.append(replace(loaded.problem(at, message), severity="note"))


def _check_theme(loaded: LoadedSpec, problems: list[Problem]) -> None:
    """Theme files exist inside the project and are of a kind every writer can use; an HTML template compiles."""
    from reportctl.writers.html import check_html_template

    project = loaded.project
    themes: list[tuple[Any, Any]] = [(None, project.config.theme)]
    if loaded.spec.theme is not None:
        themes.append((("theme",), loaded.spec.theme))
    for at, theme in themes:
        for key, suffixes in _THEME_FILES.items():
            name = getattr(theme, key)
            if name is None:
                continue
            path = (project.root / name).resolve()
            if not path.is_relative_to(project.root.resolve()):
                message = f"'{name}' is outside the project folder; keep theme files in the project"
            elif not path.is_file():
                message = f"file '{name}' not found; theme paths are relative to the project folder"
            elif path.suffix.lower() not in suffixes:
                message = f"'{name}' is not a {' or '.join(s[1:].upper() for s in suffixes)} file"
            elif key == "html_template" and (error := check_html_template(path)):
                message = error
            else:
                continue
            if at is None:
                problems.append(Problem(f"theme.{key}: {message}", file=project.config_file))
            else:
                problems.append(loaded.problem((*at, key), message))


def _dataset_schemas(
    loaded: LoadedSpec, values: Mapping[str, Any], now: datetime, problems: list[Problem], *, connect: bool = False
) -> dict[str, pl.Schema | None]:
    """Schemas of sources (where knowable) and datasets; problems in datasets are added to ``problems``.

    A SQL source's columns are read from its query; with ``connect`` its database is asked instead. Where the
    query's columns cannot be read (``SELECT *``), a note says that they are not checked.
    """
    import polars as pl

    from reportctl.data.pipeline import check_datasets
    from reportctl.data.sources.base import ProbedSource
    from reportctl.plugins import SOURCES, load_plugin
    from reportctl.run_data import in_report_timezone, source_context
    from reportctl.spec.parameters import bind_names

    spec = loaded.spec
    context = source_context(loaded, now, values)
    # Every name a query may bind; NULL for a parameter without a default, as validate reads no row.
    unset = dict.fromkeys(bind_names(spec.parameters) - set(context.parameters))
    context = replace(context, parameters={**unset, **context.parameters})
    schemas: dict[str, pl.Schema | None] = dict.fromkeys(loaded.unchecked)
    for name, options in loaded.sources.items():
        try:
            source = load_plugin(SOURCES, options.kind)(name, options, context)
            probed = isinstance(source, ProbedSource)
            schema: pl.Schema | None = source.probe_schema() if connect and probed else source.known_schema()
            if schema is not None:
                schema = in_report_timezone(pl.LazyFrame(schema=schema), context.timezone).collect_schema()
            elif probed and (unchecked := source.unchecked_columns()) is not None:
                problems.append(_columns_unknown_note(loaded, name, unchecked))
            schemas[name] = schema
        except SourceError as exc:
            problems.append(loaded.problem(("sources", name, *split_path(exc.option)), str(exc)))
            schemas[name] = None
        except ReportctlError as exc:
            problems.append(loaded.problem(("sources", name), str(exc)))
            schemas[name] = None
    result = check_datasets(spec.datasets, schemas, values)
    problems.extend(loaded.problem(split_path(path), message) for path, message in result.problems)
    return {**schemas, **result.schemas}


def _columns_unknown_note(loaded: LoadedSpec, source: str, unchecked: UncheckedColumns) -> Problem:
    at = ("sources", source, *split_path(unchecked.option))
    message = (
        f"the columns of source '{source}' are not checked: {unchecked.reason}; 'reportctl validate --connect' "
        f"{unchecked.connect}"
    )
    return replace(loaded.problem(at, message), severity="note")


def _check_sections(
    loaded: LoadedSpec,
    schemas: Mapping[str, pl.Schema | None],
    values: Mapping[str, Any],
    problems: list[Problem],
) -> None:
    seen: dict[str, int] = {}
    for index, section in enumerate(loaded.spec.sections):
        if section.id in seen:
            problems.append(
                loaded.problem(
                    ("sections", index, "id"),
                    f"duplicate section id '{section.id}' (also sections[{seen[section.id]}])",
                )
            )
        seen.setdefault(section.id, index)
        if isinstance(section, TableSection | ChartSection):
            at = ("sections", index)
            if section.dataset not in schemas:
                hint = did_you_mean(section.dataset, schemas)
                problems.append(
                    loaded.problem(
                        (*at, "dataset"),
                        f"unknown dataset '{section.dataset}'{hint}; defined: {one_of(schemas) or 'none'}",
                    )
                )
                continue
            schema = schemas[section.dataset]
            if schema is not None:
                _check_columns(loaded, section, at, schema, values, problems)
        elif isinstance(section, KpisSection):
            _check_kpis(loaded, section, index, schemas, values, problems)


def _check_columns(
    loaded: LoadedSpec,
    section: TableSection | ChartSection,
    at: tuple[Any, ...],
    schema: pl.Schema,
    values: Mapping[str, Any],
    problems: list[Problem],
) -> None:
    columns = list(schema.names())
    if isinstance(section, TableSection):
        from reportctl.data.expressions import check_formulas

        for name, column in section.columns.items():
            if not column.formula and name not in columns:
                problems.append(loaded.problem((*at, "columns", name), _unknown_column(name, columns, section.dataset)))
        formulas = {n: c.formula for n, c in section.columns.items() if c.formula}
        for name, message in check_formulas(schema, formulas, values):
            problems.append(loaded.problem((*at, "columns", name, "formula"), message))
        return
    for key, names in (
        ("x", [section.x]),
        ("y", section.y),
        ("series", [section.series] if section.series else []),
    ):
        for position, name in enumerate(names):
            if name not in columns:
                path = (*at, key, position) if key == "y" else (*at, key)
                problems.append(loaded.problem(path, _unknown_column(name, columns, section.dataset)))


def _unknown_column(name: str, columns: list[str], dataset: str) -> str:
    return f"unknown column '{name}'{did_you_mean(name, columns)}; '{dataset}' has: {', '.join(columns)}"


def _check_kpis(
    loaded: LoadedSpec,
    section: KpisSection,
    index: int,
    schemas: Mapping[str, pl.Schema | None],
    values: Mapping[str, Any],
    problems: list[Problem],
) -> None:
    from reportctl.data.expressions import check_kpi

    for item_index, item in enumerate(section.items):
        for message in check_kpi(item.value, schemas, values):
            problems.append(loaded.problem(("sections", index, "items", item_index, "value"), message))


def _check_delivery(loaded: LoadedSpec, problems: list[Problem]) -> None:
    """Attachments and uploads name formats the spec outputs."""
    from reportctl.spec.loader import output_formats

    formats = output_formats(loaded)
    for index, delivery in enumerate(loaded.deliveries):
        for key in ("attach", "formats"):
            for position, name in enumerate(getattr(delivery, key, None) or []):
                if name not in formats:
                    problems.append(
                        loaded.problem(
                            ("delivery", index, key, position),
                            f"{'attaches' if key == 'attach' else 'uploads'} '{name}', which this spec does not"
                            f" output; outputs: {', '.join(formats)}",
                        )
                    )


def check_recipients(loaded: LoadedSpec) -> list[Problem]:
    """``team:`` and ``list:`` recipients that reach nobody in the project's directory file, for ``validate``.

    Not part of ``check_spec``: at run time an empty team is one recipient recorded as failed, and must not stop
    the report from reaching everyone else.
    """
    from reportctl.delivery.directory import file_directory, unknown_references

    problems: list[Problem] = []
    people: Directory | None = None
    looked = False
    for index, delivery in enumerate(loaded.deliveries):
        for key in ("to", "cc", "bcc"):
            for position, entry in enumerate(getattr(delivery, key, None) or []):
                if not entry.strip().startswith(("team:", "list:")):
                    continue
                if not looked:
                    people, looked = file_directory(loaded.project), True
                if people is not None:
                    for message in unknown_references(people, [entry]):
                        problems.append(loaded.problem(("delivery", index, key, position), message))
    return problems
