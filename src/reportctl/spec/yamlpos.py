"""YAML loading that remembers where every key and value stands.

Mappings load as ``LocatedDict`` and sequences as ``LocatedList``: ordinary ``dict``/``list`` subclasses that pydantic
validates like any other, carrying the position of each key and item. ``position_of`` walks an error's field path
through them to the deepest known position, which may lie in the spec or in a base it extends.

Booleans follow YAML 1.2 (only true/false), so keys such as ``on`` stay strings.

A file is read within limits, because specs may come from people who should not be able to stall or crash the daemon:
values nest at most ``MAX_DEPTH`` levels, aliases add at most ``MAX_ALIAS_VALUES`` values to those written out (an
alias bomb is ten nested anchors of ten aliases each: a few hundred bytes that expand to 10^10 values), and an alias
may not refer to the value that contains it. Each is refused as one line with the file, line and column.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from reportctl.errors import Position, Problem, SpecError
from reportctl.spec.reading import text_position

MAX_DEPTH = 64
"""How many levels values may nest, counting the scalar at the bottom. The shipped specs nest at most 7 (measured
2026-12 over specs/, examples/ and tests/); the pure-Python composer recurses two frames a level, so 500 levels
reached Python's recursion limit, and libyaml stops by itself at 1,000 (then the pure-Python loader places it)."""

MAX_ALIAS_VALUES = 100_000
"""How many values aliases may add to those a file writes out. Measured 2026-12: the largest shipped spec
(examples/web-analytics/specs/funnel.yaml) has 525 values in all and the one alias in use (specs/server-health.yaml)
repeats a few dozen, so no honest spec comes near; an alias bomb is stopped after 0.13 s (either loader). A file
that writes out more values than this (inline data) is not refused: only repetition through aliases counts."""


class YamlLimitError(yaml.YAMLError):
    """A file goes past one of the reading limits; ``mark`` is where."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


TOO_DEEP = f"values nest more than {MAX_DEPTH} levels deep; flatten the structure (a spec needs fewer than 10)"
TOO_MANY_ALIASED = (
    f"aliases expand to more than {MAX_ALIAS_VALUES:,} values (an alias bomb?); write the values out or use fewer "
    "nested aliases"
)
SELF_ALIAS = (
    "an alias refers to the value that contains it, so the value never ends; point the alias at another anchor "
    "or write the values out"
)


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
    """SafeLoader with YAML 1.2 booleans (yes, no, on and off stay strings) that stops composing at ``MAX_DEPTH``,
    before its recursion reaches Python's limit."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlLimitError(TOO_DEEP, self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


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
_MERGE = "tag:yaml.org,2002:merge"
_VALUE = "tag:yaml.org,2002:value"


def _position(file: Path, node: yaml.Node) -> Position:
    return Position(file, node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    """Builds located containers from a composed document, within the reading limits.

    The composer shares one node among all the aliases to its anchor, so a walk that follows aliases expands an
    alias bomb and never finishes a cycle: the builder counts each node it meets again, and refuses a node it is
    still building (an alias to a container written inside that container).
    """

    def __init__(self, loader: Any, file: Path) -> None:
        self.loader = loader
        self.file = file
        self.problems: list[Problem] = []
        self._seen: set[int] = set()
        self._building: set[int] = set()
        self._aliased = 0
        self._depth = 0
        self._alias_user: yaml.Node | None = None
        """The container that holds the outermost alias being expanded: where an alias bomb is reported."""

    def build(self, node: yaml.Node, parent: yaml.Node | None = None) -> Any:
        """The value of ``node``, a child of ``parent``."""
        if self._alias_user is not None:
            self._count_aliased(1, self._alias_user)
        if isinstance(node, yaml.ScalarNode):
            # Scalars need no seen-set of their own: an alias to one is written out in the file, so only the
            # containers an alias repeats can multiply them, and what an alias repeats is counted above.
            if self._depth >= MAX_DEPTH:
                raise YamlLimitError(TOO_DEEP, node.start_mark)
            if node.tag == _STR:
                return node.value  # most scalars of a spec; PyYAML's constructor would return the same string, slower
            return self.loader.construct_object(node, deep=True)
        key = id(node)
        if key in self._building:
            raise YamlLimitError(SELF_ALIAS, node.start_mark)
        outermost = self._alias_user is None and key in self._seen
        if outermost:
            self._alias_user = parent or node
            self._count_aliased(1, self._alias_user)
        self._seen.add(key)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlLimitError(TOO_DEEP, node.start_mark)
            return self._mapping(node) if isinstance(node, yaml.MappingNode) else self._sequence(node)
        finally:
            self._depth -= 1
            if outermost:
                self._alias_user = None

    def _count_aliased(self, values: int, where: yaml.Node) -> None:
        self._aliased += values
        if self._aliased > MAX_ALIAS_VALUES:
            raise YamlLimitError(TOO_MANY_ALIASED, (self._alias_user or where).start_mark)

    def _mapping(self, node: yaml.MappingNode) -> LocatedDict:
        self._building.add(id(node))
        self._flatten(node)
        mapping = LocatedDict()
        mapping.position = _position(self.file, node)
        for key_node, value_node in node.value:
            key = self.build(key_node, node)
            if isinstance(key, list | dict):
                self.problems.append(
                    Problem("a mapping key must be a plain value", position=_position(self.file, key_node))
                )
                continue
            if key in mapping:
                first = mapping.key_positions[key]
                self.problems.append(
                    Problem(
                        f"duplicate key '{key}' (first at line {first.line}); remove one of them",
                        position=_position(self.file, key_node),
                    )
                )
                continue
            mapping[key] = self.build(value_node, node)
            mapping.key_positions[key] = _position(self.file, key_node)
            mapping.value_positions[key] = _position(self.file, value_node)
        self._building.discard(id(node))
        return mapping

    def _sequence(self, node: yaml.Node) -> LocatedList:
        self._building.add(id(node))
        items = LocatedList()
        items.position = _position(self.file, node)
        for item_node in node.value:
            items.append(self.build(item_node, node))
            items.item_positions.append(_position(self.file, item_node))
        self._building.discard(id(node))
        return items

    def _flatten(self, node: yaml.MappingNode) -> None:
        """Expands ``<<`` merge keys in place, as PyYAML's ``flatten_mapping`` does, but counting the merged pairs
        as aliased values and merges of merges as levels: nested merges grow tenfold a level like nested aliases."""
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        index = 0
        while index < len(node.value):
            key_node, value_node = node.value[index]
            if key_node.tag != _MERGE:
                if key_node.tag == _VALUE:
                    key_node.tag = _STR
                index += 1
                continue
            del node.value[index]
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in reversed(sources):
                if not isinstance(source, yaml.MappingNode):
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"expected a mapping or list of mappings for merging, but found {source.id}",
                        source.start_mark,
                    )
                if id(source) in self._building:
                    raise YamlLimitError(SELF_ALIAS, source.start_mark)
                self._depth += 1
                try:
                    if self._depth > MAX_DEPTH:
                        raise YamlLimitError(TOO_DEEP, source.start_mark)
                    self._flatten(source)
                finally:
                    self._depth -= 1
                self._count_aliased(len(source.value), node)
                merged.extend(source.value)
        if merged:
            node.value = merged + node.value


def load_yaml(text: str, file: Path) -> Any:
    """Parse one YAML document into located containers, within the reading limits; syntax errors and limits
    become a ``SpecError`` with a position."""
    if _FastLoader is not _Loader:
        try:
            return _load_yaml(text, file, _FastLoader)
        except SpecError as exc:
            if not any(problem.message.startswith("invalid YAML") for problem in exc.problems):
                raise
        except UnicodeEncodeError:
            pass  # a lone surrogate, which libyaml cannot be given; the pure-Python reader places it
    return _load_yaml(text, file, _Loader)


def load_plain(text: str) -> Any:
    """One YAML document as dicts and lists, read as specs are (YAML 1.2 booleans, the reading limits), with
    libyaml's parser where PyYAML has it; raises ``yaml.YAMLError`` (``YamlLimitError`` for a limit)."""
    try:
        loader = _FastLoader(text)
    except UnicodeEncodeError:
        loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return None if node is None else _Builder(loader, Path("<text>")).build(node)
    finally:
        loader.dispose()


def _load_yaml(text: str, file: Path, loader_class: type[Any]) -> Any:
    loader: Any = None
    try:
        loader = loader_class(text)
        node = loader.get_single_node()
        builder = _Builder(loader, file)
        data = None if node is None else builder.build(node)
    except YamlLimitError as exc:
        raise SpecError([Problem(exc.message, position=_mark_position(file, exc.mark), file=file)]) from None
    except yaml.reader.ReaderError as exc:
        raise SpecError([_unreadable(text, exc, file)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise SpecError([Problem(f"invalid YAML: {reason}", position=_mark_position(file, mark), file=file)]) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem(f"invalid YAML: {exc}", file=file)]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if builder.problems:
        raise SpecError(builder.problems)
    return data


def _mark_position(file: Path, mark: Any) -> Position | None:
    return Position(file, mark.line + 1, mark.column + 1) if mark else None


def _unreadable(text: str, exc: yaml.reader.ReaderError, file: Path) -> Problem:
    """A character YAML does not allow (NUL, other control characters, a lone surrogate), at its line and column.
    The pure-Python reader counts ``position`` in characters; libyaml counts bytes, but its message starts with
    "invalid YAML" too, so the file is read again by the pure-Python reader for the one users see."""
    code = ord(exc.character) if isinstance(exc.character, str) else exc.character
    if code < 0x20 or 0x7F <= code < 0xA0:
        fix = f'remove it, or write it as "\\x{code:02x}" inside a double-quoted string'
        message = f"invalid YAML: control character U+{code:04X} is not allowed in a YAML file; {fix}"
    else:
        message = f"invalid YAML: character U+{code:04X} is not allowed in a YAML file; remove it"
    return Problem(message, position=text_position(text, exc.position, file))


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
