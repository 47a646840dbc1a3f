"""The shapes of what templates receive, known before any data, for checking names in templates.

A shape says which attributes and items a value has, and words the error for one it lacks, naming what it does
have: a mapping with known keys (``Fields``), a list (``ListOf``), a dataset and its rows (``DatasetShape``,
``Row``), a value of a Python type (``PythonValue``), or a name a context deliberately lacks (``Absent``).
``report_context`` and ``delivery_context`` are the shapes of the two contexts templates are rendered with.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from jinja2 import nodes

from reportctl.errors import did_you_mean, one_of

if TYPE_CHECKING:
    from reportctl.spec.models import Parameter, Spec


class UnknownName(Exception):
    """A name that the shape does not have; the message says what it does have."""


class Shape:
    """What a template value is known to be; the base shape is anything, and accepts every name."""

    def attribute(self, name: str) -> Shape:
        """The shape of ``value.name`` (also ``value['name']``); ``UnknownName`` when it cannot exist."""
        return ANYTHING

    def element(self) -> Shape:
        """The shape of one item when iterated or indexed by a number."""
        return ANYTHING

    def call(self, arguments: Sequence[nodes.Expr]) -> Shape:
        """The shape of ``value(arguments)``; ``UnknownName`` when a constant argument names nothing."""
        return ANYTHING


ANYTHING = Shape()


class Absent(Shape):
    """A name a template might expect but does not get here (a parameter by name in a delivery subject)."""

    def __init__(self, message: str) -> None:
        self.message = message


_DICT_ATTRIBUTES = frozenset(name for name in dir(dict) if not name.startswith("_"))
_LIST_ATTRIBUTES = frozenset(name for name in dir(list) if not name.startswith("_"))


class Fields(Shape):
    """A mapping with known keys (``run``, ``report``, ``datasets``, ``params``); ``missing`` words the error."""

    def __init__(self, fields: Mapping[str, Shape], missing: str) -> None:
        self.fields = dict(fields)
        self.missing = missing

    def attribute(self, name: str) -> Shape:
        if name in self.fields:
            return self.fields[name]
        if name in _DICT_ATTRIBUTES:
            return ANYTHING
        hint = did_you_mean(name, self.fields)
        raise UnknownName(self.missing.format(name=name, hint=hint, known=one_of(self.fields) or "none"))


class ListOf(Shape):
    def __init__(self, item: Shape) -> None:
        self.item = item

    def attribute(self, name: str) -> Shape:
        if name in _LIST_ATTRIBUTES:
            return ANYTHING
        raise UnknownName(f"a list has no attribute '{name}'")

    def element(self) -> Shape:
        return self.item


class Row(Shape):
    """One row of a dataset: a dict of its columns; any column when the dataset's columns are unknown."""

    def __init__(self, dataset: str, columns: Sequence[str] | None) -> None:
        self.dataset = dataset
        self.columns = columns

    def attribute(self, name: str) -> Shape:
        if self.columns is None or name in self.columns or name in _DICT_ATTRIBUTES:
            return ANYTHING
        raise UnknownName(self.unknown(name))

    def unknown(self, name: str) -> str:
        columns = list(self.columns or [])
        return (
            f"dataset '{self.dataset}' has no column '{name}'{did_you_mean(name, columns)}; columns: {one_of(columns)}"
        )


class _ColumnMethod(Shape):
    """``datasets.x.sum('revenue')`` and its kin: a constant argument must name a column."""

    def __init__(self, row: Row) -> None:
        self.row = row

    def call(self, arguments: Sequence[nodes.Expr]) -> Shape:
        if arguments and isinstance(arguments[0], nodes.Const) and isinstance(arguments[0].value, str):
            self.row.attribute(arguments[0].value)
        return ANYTHING


_DATASET_METHODS = ("column", "sum", "mean", "min", "max")


class DatasetShape(Shape):
    """A ``templating.DatasetView``: rows, columns, first, column(name) and aggregates of a column."""

    def __init__(self, name: str, columns: Sequence[str] | None) -> None:
        self.name = name
        self.row = Row(name, columns)

    def attribute(self, name: str) -> Shape:
        if name == "rows":
            return ListOf(self.row)
        if name == "first":
            return self.row
        if name == "columns":
            return ListOf(ANYTHING)
        if name in _DATASET_METHODS:
            return _ColumnMethod(self.row)
        known = ["rows", "first", "columns", *(f"{m}(column)" for m in _DATASET_METHODS)]
        hint = did_you_mean(name, ["rows", "first", "columns", *_DATASET_METHODS])
        if self.row.columns and name in self.row.columns:
            hint = f" ('{name}' is a column: use first.{name}, or a row in a loop)"
        raise UnknownName(f"dataset '{self.name}' has no attribute '{name}'{hint}; a dataset has: {', '.join(known)}")

    def element(self) -> Shape:
        return self.row


class PythonValue(Shape):
    """A value of a known Python type (a period, a datetime, a string): the attributes that type has."""

    def __init__(self, kind: type, noun: str, instance: object = None) -> None:
        self.kind = kind
        self.noun = noun
        self.instance = instance

    def attribute(self, name: str) -> Shape:
        names = _public_attributes(self.kind)
        if self.instance is not None:  # attributes set in __init__ (LoopContext.depth0) are only on an instance
            names = {**dict.fromkeys(n for n in dir(self.instance) if not n.startswith("_")), **names}
        if name not in names:
            hint = did_you_mean(name, names)
            raise UnknownName(f"{self.noun} has no attribute '{name}'{hint}")
        found = names[name]
        return PythonValue(found, _NOUNS.get(found, found.__name__)) if found is not None else ANYTHING

    def element(self) -> Shape:
        return PythonValue(str, "a string") if self.kind is str else ANYTHING


_NOUNS: dict[type, str] = {datetime: "a datetime", date: "a date", str: "a string", timedelta: "a duration"}


def _public_attributes(kind: type) -> dict[str, type | None]:
    """Public attributes of ``kind`` and, where annotated with a plain class, the type of their value."""
    found: dict[str, type | None] = {name: None for name in dir(kind) if not name.startswith("_")}
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        for item in dataclasses.fields(kind):
            hint = hints.get(item.name)
            found[item.name] = hint if isinstance(hint, type) else None
    for name in list(found):
        member = getattr(kind, name, None)
        if isinstance(member, property) and member.fget is not None:
            hint = typing.get_type_hints(member.fget).get("return")
            found[name] = hint if isinstance(hint, type) else None
    return found


# The shapes of the two contexts templates are rendered with.

_REPORT_VALUE_TYPES: dict[str, tuple[type, str]] = {
    "string": (str, "a string"),
    "choice": (str, "a string"),
    "date": (date, "a date"),
    "datetime": (datetime, "a datetime"),
    "duration": (timedelta, "a duration"),
}


def _parameter_shape(name: str, parameter: Parameter) -> Shape:
    """A parameter's value in the report context, as ``spec.parameters.coerce_parameter`` makes it."""
    from reportctl.document import Period

    if parameter.default is None and parameter.required is False:
        return ANYTHING  # None when not given
    if parameter.type == "period":
        return PythonValue(Period, f"period '{name}'")
    kind, noun = _REPORT_VALUE_TYPES.get(parameter.type, (object, ""))
    return PythonValue(kind, f"'{name}' ({noun})") if kind is not object else ANYTHING


def report_context(spec: Spec, columns: Mapping[str, Sequence[str] | None], *, with_title: bool) -> dict[str, Shape]:
    """The shape of ``assemble.template_context`` for ``spec``; ``columns`` of each dataset and source (None:
    unknown). ``title`` is there once the title is rendered, so not in the title's own template."""
    parameters = {name: _parameter_shape(name, p) for name, p in spec.parameters.items()}
    text = PythonValue(str, "a string")
    context: dict[str, Shape] = {
        **parameters,
        "params": Fields(parameters, "unknown parameter '{name}'{hint}; parameters: {known}"),
        "datasets": Fields(
            {name: DatasetShape(name, names) for name, names in columns.items()},
            "unknown dataset '{name}'{hint}; defined: {known}",
        ),
        "run": Fields(
            {"id": text, "generated_at": PythonValue(datetime, "a datetime"), "timezone": text},
            "'run' has no '{name}'{hint}; run has: {known}",
        ),
        "report": Fields(
            {
                "name": text,
                "owner": ANYTHING,
                "version": ANYTHING,
                "labels": Fields({k: text for k in spec.labels}, "no label '{name}'{hint}; labels: {known}"),
            },
            "'report' has no '{name}'{hint}; report has: {known}",
        ),
        "name": text,
    }
    if with_title:
        context["title"] = text
    return context


def delivery_context(spec: Spec) -> dict[str, Shape]:
    """The shape of ``DeliveryContext.template_values``: parameters there are as JSON records them (a period is
    {name, start, end} of ISO strings), since a delivery may send a run recorded by another process."""
    text = PythonValue(str, "a string")
    period = Fields({"name": text, "start": text, "end": text}, "a period here has no '{name}'{hint}; it has: {known}")
    parameters: dict[str, Shape] = {}
    for name, parameter in spec.parameters.items():
        if parameter.type == "period":
            parameters[name] = period
        elif parameter.type in ("date", "datetime", "string", "choice"):
            parameters[name] = text
        else:
            parameters[name] = ANYTHING
    params = Fields(parameters, "unknown parameter '{name}'{hint}; parameters: {known}")
    artifact = Fields(
        {"format": text, "name": text, "bytes": ANYTHING, "sha256": text, "link": ANYTHING},
        "an artifact has no '{name}'{hint}; it has: {known}",
    )
    seen = "delivery templates see title, name, run, params, artifacts and links"
    return {
        **{name: Absent(f"unknown variable '{name}': {seen}; use params.{name}") for name in spec.parameters},
        "datasets": Absent(f"unknown variable 'datasets': {seen}, not the report's datasets"),
        "report": Absent(f"unknown variable 'report': {seen}"),
        "title": text,
        "name": text,
        "run": Fields(
            {
                "id": text,
                "date": text,
                "time": PythonValue(datetime, "a datetime"),
                "status": text,
                "error": ANYTHING,
            },
            "'run' has no '{name}'{hint}; run has: {known}",
        ),
        "parameters": params,
        "params": params,
        "artifacts": ListOf(artifact),
        "links": ANYTHING,  # filled by the channels that publish, so its keys are not known before the run
        "encryption": ANYTHING,  # an encrypted delivery's note on its files and password; None for the others
    }
