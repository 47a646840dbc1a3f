"""Pydantic validation with errors a person can act on.

Each pydantic error becomes a ``Problem`` at the YAML position of the offending key or value, with a dotted field
path (``sections[2].columns.p95.format``), the bad value, and what would be valid: the nearest known key for an
unknown one, the allowed choices for a literal.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from reportctl.errors import Problem, SpecError, did_you_mean, one_of
from reportctl.spec.yamlpos import LocatedDict, LocatedList, key_position_of, position_of

M = TypeVar("M", bound=BaseModel)


def validate_model(model: type[M], data: Any, file: Path, prefix: Sequence[Any] = (), root: Any = None) -> M:
    """``model`` validated from ``data``, or a ``SpecError`` listing every problem.

    ``prefix`` is where ``data`` sits inside ``root`` (the whole located document) when validating a part of it.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpecError(problems_from(exc, model, file, prefix, data if root is None else root)) from None


def problems_from(
    exc: ValidationError, model: type[BaseModel], file: Path, prefix: Sequence[Any], root: Any
) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        path = [*prefix, *_data_path(_at(root, prefix), loc)]
        # an unknown key is shown at the key itself, anything else at its value
        locate = key_position_of if error["type"] == "extra_forbidden" else position_of
        position = locate(root, path)
        problems.append(Problem(_message(error, model, loc), path=format_path(path), position=position, file=file))
    return _dedupe(problems)


def format_path(path: Sequence[Any]) -> str:
    """('sections', 2, 'columns') -> 'sections[2].columns'."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def _at(data: Any, path: Sequence[Any]) -> Any:
    for part in path:
        data = data[part]
    return data


def _data_path(data: Any, loc: Sequence[Any]) -> list[Any]:
    """The error location with pydantic's union tags and '[key]' markers removed."""
    path: list[Any] = []
    node = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if not last and isinstance(node, dict) and part in (node.get("type"), node.get("kind")):
            continue  # the union tag of a section or source ('chart' in sections.1.chart.chart), not a key
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            path.append(part)
            node = node[part]
        elif part == "[key]":
            continue
        elif last or not isinstance(node, dict):
            path.append(part)
            node = None
        # else: a union tag such as 'table' in ('sections', 0, 'table', 'columns'); it names no key
    return path


def _message(error: Any, model: type[BaseModel], loc: Sequence[Any]) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _keys_at(model, loc[:-1])
        hint = did_you_mean(key, allowed)
        if hint:
            return f"unknown key '{key}'{hint}"
        return f"unknown key '{key}'; valid keys: {one_of(allowed)}" if allowed else f"unknown key '{key}'"
    if kind == "missing":
        return f"missing required key '{loc[-1]}'"
    if kind == "union_tag_not_found":
        return f"missing required key '{error['ctx']['discriminator'].strip(chr(39))}'"
    if kind == "union_tag_invalid":
        tag = str(error["ctx"]["tag"])
        expected = [t.strip(" '") for t in str(error["ctx"]["expected_tags"]).split(",")]
        discriminator = error["ctx"]["discriminator"].strip("'")
        return f"unknown {discriminator} '{tag}'{did_you_mean(tag, expected)}; try one of: {one_of(expected)}"
    if kind == "literal_error":
        expected = [t.strip(" '") for t in str(error["ctx"]["expected"]).replace(" or ", ",").split(",")]
        got = _show(value)
        return f"{got} is not allowed{did_you_mean(str(value), expected)}; try one of: {one_of(expected)}"
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "name":
        return f"{_show(value)} is not a valid name; use lowercase letters, digits and '-', e.g. 'sales-weekly'"
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "[key]":
        return f"{_show(loc[-2])} is not a valid name; use letters, digits and '_', starting with a letter"
    if kind == "string_pattern_mismatch":
        return f"{_show(value)} does not match the pattern {error['ctx']['pattern']}"
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind in ("value_error", "assertion_error"):
        return message
    if isinstance(value, dict | list):
        return f"{_lower_first(message)}, got a {'mapping' if isinstance(value, dict) else 'list'}"
    return f"{_lower_first(message)}, got {_show(value)}"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _show(value: Any) -> str:
    if isinstance(value, LocatedDict | dict):
        return "a mapping"
    if isinstance(value, LocatedList | list):
        return "a list"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[str] = set()
    unique = []
    for problem in problems:
        if str(problem) not in seen:
            seen.add(str(problem))
            unique.append(problem)
    return unique


def _keys_at(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """The keys a mapping at ``loc`` of ``model`` may have, found by walking the type annotations."""
    annotation: Any = model
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    model_type = _model_in(annotation)
    if model_type is None:
        return []
    return [f.alias or name for name, f in model_type.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated and Optional so the real type shows."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            arms = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(arms) != 1:
                return annotation
            annotation = arms[0]
        else:
            return annotation


def _step(annotation: Any, part: Any) -> Any:
    annotation = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        # a tagged union: the loc part is the tag; pick the arm whose 'type' or 'kind' literal matches
        for arm in typing.get_args(annotation):
            model_type = _model_in(arm)
            if model_type is None:
                continue
            for field in model_type.model_fields.values():
                if part in (typing.get_args(field.annotation) or ()):
                    return model_type
        return None
    if origin is dict:
        return typing.get_args(annotation)[1]
    if origin is list:
        return typing.get_args(annotation)[0] if isinstance(part, int) else None
    model_type = _model_in(annotation)
    if model_type is not None:
        for name, field in model_type.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
    return None
