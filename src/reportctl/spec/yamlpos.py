"""YAML loading that remembers where every key and value stands.

Mappings load as ``LocatedDict`` and sequences as ``LocatedList``: ordinary ``dict``/``list`` subclasses that pydantic
validates like any other, carrying the position of each key and item. ``position_of`` walks an error's field path
through them to the deepest known position, which may lie in the spec or in a base it extends.

Booleans follow YAML 1.2 (only true/false), so keys such as ``on`` stay strings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from reportctl.errors import Position, Problem, SpecError


class LocatedDict(dict[Any, Any]):
    """A mapping that knows the position of itself, of each key and of each value."""

    position: Position | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_positions: dict[Any, Position] = {}
        self.value_positions: dict[Any, Position] = {}


class LocatedList(list[Any]):
    """A sequence that knows the position of itself and of each item."""

    position: Position | None = None

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.item_positions: list[Position | None] = []


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: yes, no, on and off stay strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in ("tag:yaml.org,2002:bool",)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_FastLoader: type[Any] = _Loader
if getattr(yaml, "__with_libyaml__", False):
    # libyaml's parser composes nodes, marks included, about ten times faster than the pure-Python one, which counts
    # when the daemon reads 5,000 specs. Its error messages are terser, so a file it refuses is parsed again by the
    # pure-Python loader for the message users see.
    class _CLoader(yaml.CSafeLoader):
        """The C loader with the same YAML 1.2 booleans."""

    _CLoader.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers
    _FastLoader = _CLoader


_STR = "tag:yaml.org,2002:str"


def _position(file: Path, node: yaml.Node) -> Position:
    return Position(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _construct(loader: Any, node: yaml.Node, file: Path, problems: list[Problem]) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        mapping = LocatedDict()
        mapping.position = _position(file, node)
        for key_node, value_node in node.value:
            key = _construct(loader, key_node, file, problems)
            if isinstance(key, list | dict):
                problems.append(Problem("a mapping key must be a plain value", position=_position(file, key_node)))
                continue
            if key in mapping:
                first = mapping.key_positions[key]
                problems.append(
                    Problem(
                        f"duplicate key '{key}' (first at line {first.line}); remove one of them",
                        position=_position(file, key_node),
                    )
                )
                continue
            mapping[key] = _construct(loader, value_node, file, problems)
            mapping.key_positions[key] = _position(file, key_node)
            mapping.value_positions[key] = _position(file, value_node)
        return mapping
    if isinstance(node, yaml.SequenceNode):
        items = LocatedList()
        items.position = _position(file, node)
        for item_node in node.value:
            items.append(_construct(loader, item_node, file, problems))
            items.item_positions.append(_position(file, item_node))
        return items
    if node.tag == _STR:
        return node.value  # most scalars of a spec; PyYAML's constructor would return the same string, slower
    return loader.construct_object(node, deep=True)


def load_yaml(text: str, file: Path) -> Any:
    """Parse one YAML document into located containers; syntax errors become a ``SpecError`` with a position."""
    if _FastLoader is not _Loader:
        try:
            return _load_yaml(text, file, _FastLoader)
        except SpecError as exc:
            if not any(problem.message.startswith("invalid YAML") for problem in exc.problems):
                raise
    return _load_yaml(text, file, _Loader)


def load_plain(text: str) -> Any:
    """One YAML document as plain data (no positions), read as specs are (YAML 1.2 booleans), with libyaml's
    parser where PyYAML has it; raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_FastLoader)  # a SafeLoader: no arbitrary objects


def _load_yaml(text: str, file: Path, loader_class: type[Any]) -> Any:
    problems: list[Problem] = []
    loader: Any = None
    try:
        loader = loader_class(text)
        node = loader.get_single_node()
        data = None if node is None else _construct(loader, node, file, problems)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = Position(file, mark.line + 1, mark.column + 1) if mark else None
        reason = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise SpecError([Problem(f"invalid YAML: {reason}", position=position, file=file)]) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem(f"invalid YAML: {exc}", file=file)]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if problems:
        raise SpecError(problems)
    return data


def _walk(data: Any, path: Sequence[Any]) -> tuple[Any, Position | None]:
    """Follow ``path`` as far as it goes; parts that are not there (pydantic's union tags) are passed over."""
    best: Position | None = getattr(data, "position", None)
    node = data
    for part in path:
        if isinstance(node, LocatedDict) and part in node:
            best = node.value_positions.get(part, best)
            node = node[part]
        elif isinstance(node, LocatedList) and isinstance(part, int) and 0 <= part < len(node):
            best = node.item_positions[part] or best
            node = node[part]
    return node, best


def position_of(data: Any, path: Sequence[Any]) -> Position | None:
    """The most precise known position for ``path`` (keys and indexes) in located ``data``."""
    return _walk(data, path)[1]


def key_position_of(data: Any, path: Sequence[Any]) -> Position | None:
    """The position of the key that ends ``path`` (for unknown keys), else the closest known position."""
    if path:
        parent, _ = _walk(data, path[:-1])
        if isinstance(parent, LocatedDict) and path[-1] in parent.key_positions:
            return parent.key_positions[path[-1]]
    return position_of(data, path)
