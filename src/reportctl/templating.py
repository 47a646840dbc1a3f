"""Sandboxed Jinja templates for titles, text sections and delivery subjects.

Templates run in Jinja's immutable sandbox with ``StrictUndefined`` (a typo is an error, not an empty string)
and the shared filters of ``reportctl.formats``, bounded in output size, value size and time by the project's
``templates`` settings (``reportctl.template_sandbox``). Output is not escaped: it is Markdown or plain text, and
the HTML writer escapes what it embeds.
"""

from __future__ import annotations

import contextvars
import re
import traceback
from collections.abc import Iterator, Mapping
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2.exceptions import SecurityError

from reportctl import formats
from reportctl.errors import ReportctlError, did_you_mean, one_of
from reportctl.template_sandbox import (
    BoundedSandbox,
    TemplateLimitError,
    TemplateLimits,
    TemplateObjectError,
    bounded,
    constant_limit_error,
    stream_bounded,
    unbounded,
)

if TYPE_CHECKING:
    import polars as pl

    from reportctl.config import TemplateSettings

# The report's time zone for the date filters during one render; a ContextVar keeps concurrent renders apart.
_render_timezone: contextvars.ContextVar[str | None] = contextvars.ContextVar("render_tz", default=None)


class TemplateError(ReportctlError):
    """A template does not parse, names an undefined variable, or breaks the sandbox's rules."""


def render_template(
    source: str,
    context: Mapping[str, Any],
    *,
    where: str,
    timezone: str | None = None,
    limits: TemplateSettings | None = None,
) -> str:
    """Render ``source`` with ``context``; ``where`` (e.g. "sections.summary.template") names it in errors.

    ``timezone`` is the report's zone, in which ``format_date``/``format_datetime`` show aware datetimes.
    ``limits`` are the project's ``templates`` settings (the defaults when None); the output is measured while it
    streams, so one past ``max_output`` is refused before it is built.
    """
    template = _compiled(source, where)
    token = _render_timezone.set(timezone)
    budget = bounded(_limits(limits))
    try:
        return stream_bounded(template.generate(context))
    except Exception as exc:
        raise TemplateError(_runtime_message(exc, source, where)) from None
    finally:
        unbounded(budget)
        _render_timezone.reset(token)


def check_template(source: str, *, where: str, limits: TemplateSettings | None = None) -> str | None:
    """What is wrong with ``source`` before any data is read, as a one-line message naming ``where``, or None: a
    syntax error; given the project's ``limits`` (validate), also a limit passed without data (``'x' * 10**9``),
    an unsafe attribute of a literal, or a function shown. Without ``limits`` (an options model, which does not
    know the project) the syntax only: compiling runs nothing, as constant folding is off."""
    try:
        template = _compiled(source, where)
    except TemplateError as exc:
        return str(exc)
    if limits is None or not any(mark in source for mark in ("{{", "{%")):
        return None
    problem = constant_limit_error(_environment(), template, source, limits.limits())
    return f"{where}: {problem}" if problem else None


def _limits(settings: TemplateSettings | None) -> TemplateLimits:
    return settings.limits() if settings is not None else TemplateLimits()


class DatasetView:
    """A dataset as templates see it: ``len``, rows as dicts, columns and simple aggregates."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self._frame = frame
        self._rows: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return self._frame.height

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.rows[index]

    def __repr__(self) -> str:
        return f"<dataset: {self._frame.height} rows, columns {', '.join(self._frame.columns)}>"

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Every row as a dict of column name to value."""
        if self._rows is None:
            self._rows = self._frame.to_dicts()
        return self._rows

    @property
    def columns(self) -> list[str]:
        return list(self._frame.columns)

    @property
    def first(self) -> dict[str, Any] | None:
        return self.rows[0] if self._frame.height else None

    def column(self, name: str) -> list[Any]:
        return self._series(name).to_list()

    def sum(self, name: str) -> Any:
        return self._series(name).sum()

    def mean(self, name: str) -> Any:
        return self._series(name).mean()

    def min(self, name: str) -> Any:
        return self._series(name).min()

    def max(self, name: str) -> Any:
        return self._series(name).max()

    def _series(self, name: str) -> pl.Series:
        if name not in self._frame.columns:
            hint = did_you_mean(name, self._frame.columns)
            raise KeyError(f"dataset has no column '{name}'{hint}; columns: {one_of(self._frame.columns)}")
        return self._frame.get_column(name)


def _zoned(function: Any) -> Any:
    """A date filter that defaults ``tz`` to the time zone of the render in progress."""

    def filter_(value: Any, pattern: str | None = None, tz: str | None = None) -> str:
        return str(function(value, pattern, tz=tz or _render_timezone.get()))

    filter_.__name__ = function.__name__
    return filter_


@cache
def _environment() -> BoundedSandbox:
    env = BoundedSandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters.update(
        format_number=formats.format_number,
        format_percent=formats.format_percent,
        format_currency=formats.format_currency,
        format_date=_zoned(formats.format_date),
        format_datetime=_zoned(formats.format_datetime),
        format_duration=formats.format_duration,
        format_bytes=formats.format_bytes,
    )
    env.bound_filters()
    return env


def _compiled(source: str, where: str) -> jinja2.Template:
    try:
        return _compile(source)
    except jinja2.TemplateSyntaxError as exc:
        message = (exc.message or "invalid syntax").splitlines()[0].rstrip(".")
        unknown = re.fullmatch(r"No filter named '([^']+)'", message)
        if unknown:
            message += f"{did_you_mean(unknown.group(1), _environment().filters)}"
        line = _source_line(source, exc.lineno)
        quoted = f' (in "{line}")' if line else ""
        raise TemplateError(f"{where}: syntax error on line {exc.lineno}: {message}{quoted}") from None


@lru_cache(maxsize=256)
def _compile(source: str) -> jinja2.Template:
    return _environment().from_string(source)


def _runtime_message(exc: Exception, source: str, where: str) -> str:
    if isinstance(
        exc, jinja2.UndefinedError | SecurityError | formats.FormatError | TemplateLimitError | TemplateObjectError
    ):
        cause = str(exc)
    elif isinstance(exc, KeyError) and exc.args:
        cause = str(exc.args[0])
    else:
        cause = f"{type(exc).__name__}: {exc}"
    cause = cause.splitlines()[0].rstrip(".") if cause else type(exc).__name__
    line = _template_line(exc)
    return f"{where}: line {line}: {cause}" if line and "\n" in source.strip() else f"{where}: {cause}"


def _template_line(exc: BaseException) -> int | None:
    """The template line the error happened on: Jinja rewrites tracebacks to point into the template."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<template>"]
    return frames[-1].lineno if frames else None


def _source_line(source: str, lineno: int) -> str:
    lines = source.splitlines()
    text = lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""
    return text if len(text) <= 80 else text[:77] + "..."
