"""Sandboxed templates: shared filters, strict undefined names, the sandbox, errors naming the field."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest

from reportctl.config import ProjectConfig, TemplateSettings
from reportctl.errors import ReportctlError
from reportctl.template_sandbox import TemplateLimits
from reportctl.templating import DatasetView, TemplateError, check_template, render_template

WHERE = "sections.summary.template"


@pytest.fixture
def context() -> dict[str, Any]:
    frame = pl.DataFrame({"service": ["api", "web", "db"], "p95": [120.5, 80.0, 310.25], "errors": [3, None, 1]})
    return {
        "datasets": {"by_service": DatasetView(frame), "empty": DatasetView(frame.clear())},
        "period": {"start": datetime(2026, 11, 23, tzinfo=UTC)},
        "ratio": 0.853,
        "items": [1, 2, 3],
        "config": {"owner": "sre"},
    }


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ datasets.by_service | length }} services breached 1% errors.", "3 services breached 1% errors."),
        ("{{ ratio | format_percent }}", "85.3%"),
        ("{{ ratio | format_percent(2) }}", "85.30%"),
        ("{{ 1234.5 | format_number(1, 'ms') }}", "1,234.5 ms"),
        ("{{ -1234.5 | format_currency('EUR') }}", "-€1,234.50"),
        ("{{ 3723 | format_duration }}", "1h 2m 3s"),
        ("{{ 1536 | format_bytes }}", "1.5 KiB"),
        ("{{ period.start | format_date }}", "2026-11-23"),
        ("{{ period.start | format_date('%d %b %Y') }}", "23 Nov 2026"),
        ("{{ period.start | format_datetime }}", "2026-11-23 01:00 CET"),
        ("{{ period.start | format_datetime(tz='UTC') }}", "2026-11-23 00:00 UTC"),
        ("{% for row in datasets.by_service %}{{ row.service }} {% endfor %}", "api web db "),
        ("{{ datasets.by_service.first.service }} {{ datasets.by_service[2].service }}", "api db"),
        ("{{ datasets.by_service.columns | join(', ') }}", "service, p95, errors"),
        ("{{ datasets.by_service.column('service') | join('/') }}", "api/web/db"),
        ("{{ datasets.by_service.sum('errors') }} {{ datasets.by_service.max('p95') }}", "4 310.25"),
        ("{{ datasets.by_service.mean('errors') }} {{ datasets.by_service.min('service') }}", "2.0 api"),
        ("{{ datasets.by_service.rows | map(attribute='p95') | max }}", "310.25"),
        ("{{ datasets.empty | length }} {{ datasets.empty.first is none }}", "0 True"),
        ("{{ 'a<b' | upper }} {{ items | sum }}", "A<B 6"),
        ("{{ config.owner | default('nobody') }}\n", "sre\n"),
    ],
)
def test_render(context: dict[str, Any], source: str, expected: str) -> None:
    assert render_template(source, context, where=WHERE, timezone="Europe/Berlin") == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ foo }}", f"{WHERE}: 'foo' is undefined"),
        ("Total:\n{{ datasets.nope | length }}", f"{WHERE}: line 2: 'dict object' has no attribute 'nope'"),
        ("{{ ''.__class__ }}", f"{WHERE}: access to attribute '__class__' of 'str' object is unsafe"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "is unsafe"),
        ("{{ items.append(4) }}", f"{WHERE}: access to attribute 'append' of 'list' object is unsafe"),
        ("{{ config.update(owner='me') }}", "access to attribute 'update' of 'dict' object is unsafe"),
        ("{{ datasets.by_service.rows.pop() }}", "access to attribute 'pop' of 'list' object is unsafe"),
        (
            "{{ datasets.by_service._frame }}",
            "access to attribute '_frame' of 'DatasetView' object is unsafe",
        ),
        (
            "{{ datasets.by_service.sum('p59') }}",
            "dataset has no column 'p59' (did you mean 'p95'?); columns:",
        ),
        ("{{ 'x' | format_number }}", f"{WHERE}: format_number expects a number, got str 'x'"),
        ("{{ 1 / 0 }}", f"{WHERE}: ZeroDivisionError: division by zero"),
    ],
)
def test_runtime_errors_name_where_and_cause(context: dict[str, Any], source: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render_template(source, context, where=WHERE)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, ReportctlError)


def test_mutation_does_not_leak_into_the_context(context: dict[str, Any]) -> None:
    with pytest.raises(TemplateError):
        render_template("{% set _ = items.append(4) %}", context, where=WHERE)
    assert context["items"] == [1, 2, 3]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{% if x %}open", "title: syntax error on line 1: Unexpected end of template"),
        (
            "ok\n{{ x | nofilter }}",
            "title: syntax error on line 2: No filter named 'nofilter' (in \"{{ x | nofilter }}\")",
        ),
        ("{{ x + }}", "title: syntax error on line 1: unexpected 'end of print statement'"),
        ("{% for %}", "title: syntax error on line 1:"),
    ],
)
def test_syntax_errors_name_where_and_line(source: str, message: str) -> None:
    assert (check_template(source, where="title") or "").startswith(message)
    with pytest.raises(TemplateError) as caught:
        render_template(source, {"x": 1}, where="title")
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_check_template_accepts_valid_templates_without_context() -> None:
    assert check_template("{{ undefined_at_check_time | format_percent }}", where="title") is None


def test_autoescape_is_off_for_markdown() -> None:
    assert render_template("{{ s }}", {"s": "<b>&</b>"}, where="title") == "<b>&</b>"


def test_timezone_applies_only_to_its_render() -> None:
    moment = {"t": datetime(2026, 6, 1, 12, tzinfo=UTC)}
    assert render_template("{{ t | format_datetime }}", moment, where="w", timezone="Asia/Tokyo") == (
        "2026-06-01 21:00 JST"
    )
    assert render_template("{{ t | format_datetime }}", moment, where="w") == "2026-06-01 12:00 UTC"


def test_dataset_view_python_api() -> None:
    view = DatasetView(pl.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    assert len(view) == 2
    assert list(view) == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert view.rows == list(view)
    assert view.first == {"a": 1, "b": "x"}
    assert (view.sum("a"), view.mean("a"), view.min("a"), view.max("a")) == (3, 1.5, 1, 2)
    assert view.column("b") == ["x", "y"]
    assert "2 rows" in repr(view)


def _settings(**values: Any) -> TemplateSettings:
    return ProjectConfig.model_validate({"templates": values}).templates


def test_template_settings_read_sizes_and_seconds() -> None:
    assert _settings().limits() == TemplateLimits(max_output=1_000_000, max_seconds=5.0)
    assert _settings(max_output="2MiB", max_seconds=0.5).limits() == TemplateLimits(2 * 1024 * 1024, 0.5)


def test_output_is_measured_while_it_streams() -> None:
    small = _settings(max_output="1KB")
    assert render_template("{{ 'x' * 1000 }}", {}, where="title", limits=small) == "x" * 1000
    with pytest.raises(TemplateError) as caught:
        render_template("{% for i in range(100000) %}{{ i }}{% endfor %}", {}, where="title", limits=small)
    assert str(caught.value) == "title: the template's output passed 1 KB (max_output in reportctl.yaml)"


def test_each_render_has_its_own_limits() -> None:
    with pytest.raises(TemplateError, match="passed 1 KB"):
        render_template("{{ 'x' * 2000 }}", {}, where="title", limits=_settings(max_output="1KB"))
    assert render_template("{{ 'x' * 2000 }}", {}, where="title") == "x" * 2000


def test_a_runaway_loop_ends_at_max_seconds() -> None:
    source = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    started = time.monotonic()
    with pytest.raises(TemplateError) as caught:
        render_template(source, {}, where="body", limits=_settings(max_seconds=0.1))
    assert str(caught.value) == "body: the template ran longer than 0.1 s (max_seconds in reportctl.yaml)"
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ 'x' * 1000000000 }}", "title: a value the template builds passed 1 MB (max_output in reportctl.yaml)"),
        ("{{ ratio }} {{ 'x'.ljust(10 ** 9) }}", "title: 1000000000 in ljust() passed 1 MB"),
        ("{% set s = 'ab' * 400000 %}{{ s }}{{ s }}", "title: the template's output passed 1 MB"),
        ("{{ 10 ** 10000000 }}", "title: 10 ** 10000000, 10,000,000 digits, passed 1 MB"),
    ],
)
def test_validate_catches_limits_that_need_no_data(source: str, message: str) -> None:
    """Compiling folds nothing (it would build the value), so validate evaluates what needs no data, bounded."""
    assert (check_template(source, where="title", limits=_settings()) or "").startswith(message)
    assert check_template(source, where="title") is None  # an options model checks the syntax only


def test_validate_leaves_errors_that_need_data_to_the_render() -> None:
    assert check_template("{{ datasets.x | length }} {{ 1 / 0 }}", where="title", limits=_settings()) is None


def test_namespace_stays_and_the_other_helper_globals_are_gone(context: dict[str, Any]) -> None:
    source = "{% set ns = namespace(n=0) %}{% for i in items %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}"
    assert render_template(source, context, where=WHERE) == "6"
    for name in ("lipsum", "cycler", "joiner"):
        with pytest.raises(TemplateError, match=f"'{name}' is undefined"):
            render_template(f"{{{{ {name}() }}}}", context, where=WHERE)
