"""Names in templates resolved without data, so a typo fails ``validate`` rather than the scheduled render.

A template is parsed with the same Jinja environment that renders it, and every variable, attribute and item it
reads is resolved against a *shape* (``spec.template_shapes``) of what it will receive: the report context of
``assemble.template_context`` (parameters, ``params``, ``datasets`` and their columns, ``run``, ``report``,
``name``, ``title``) or the delivery context of ``DeliveryContext.template_values``. Scopes follow Jinja's:
``{% for %}`` targets and ``loop``, ``{% set %}``, ``{% with %}``, macro arguments and ``caller``. What cannot be
known statically (a computed key, the result of a filter or an arithmetic expression) is accepted, so a valid
template is never rejected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from jinja2 import nodes

from reportctl.errors import did_you_mean
from reportctl.spec.template_shapes import (
    ANYTHING,
    Absent,
    DatasetShape,
    Fields,
    ListOf,
    PythonValue,
    Shape,
    UnknownName,
)

# Filters that keep the items of what they filter, and the ones that return one of them.
_SAME_ITEMS = frozenset({"list", "selectattr", "rejectattr", "sort", "reverse", "unique", "batch", "slice"})
_ONE_ITEM = frozenset({"first", "last", "random", "min", "max"})
# Filters whose ``attribute`` argument (first positional for selectattr/rejectattr) names a key of each item.
_ATTRIBUTE_FILTERS = frozenset({"selectattr", "rejectattr", "sort", "map", "sum", "groupby", "unique", "min", "max"})


class _Checker:
    def __init__(self, context: Mapping[str, Shape], globals_: Iterator[str], tests: Iterator[str]) -> None:
        self.tests = set(tests)
        self.scopes: list[dict[str, Shape]] = [{name: ANYTHING for name in (*globals_, "self")}, dict(context)]
        self.problems: list[tuple[int, str]] = []

    # statements

    def visit(self, node: nodes.Node) -> None:
        if isinstance(node, nodes.Expr):
            self.shape(node)
        elif isinstance(node, nodes.For):
            self.visit_for(node)
        elif isinstance(node, nodes.Assign):
            self.bind(node.target, self.shape(node.node))
        elif isinstance(node, nodes.AssignBlock):
            self.visit_all(node.body)
            if node.filter is not None:
                self.shape(node.filter)
            self.bind(node.target, ANYTHING)
        elif isinstance(node, nodes.Macro | nodes.CallBlock):
            self.visit_callable(node)
        elif isinstance(node, nodes.With):
            shapes = [self.shape(value) for value in node.values]
            self.scopes.append({})
            for target, shape in zip(node.targets, shapes, strict=True):
                self.bind(target, shape)
            self.visit_all(node.body)
            self.scopes.pop()
        elif isinstance(node, nodes.FilterBlock):
            self.visit_all(node.body)
            self.arguments(node.filter)
        else:
            self.visit_all(node.iter_child_nodes())

    def visit_all(self, children: Iterator[nodes.Node] | Sequence[nodes.Node]) -> None:
        for child in children:
            self.visit(child)

    def visit_for(self, node: nodes.For) -> None:
        item = self.shape(node.iter).element()
        self.scopes.append({"loop": _loop()})
        self.bind(node.target, item)
        if node.test is not None:
            self.shape(node.test)
        self.visit_all(node.body)
        self.scopes.pop()
        self.visit_all(node.else_)

    def visit_callable(self, node: nodes.Macro | nodes.CallBlock) -> None:
        if isinstance(node, nodes.CallBlock):
            self.shape(node.call)
        else:
            self.scopes[-1][node.name] = ANYTHING
        for default in node.defaults:
            self.shape(default)
        self.scopes.append({"varargs": ANYTHING, "kwargs": ANYTHING, "caller": ANYTHING})
        for argument in node.args:
            self.bind(argument, ANYTHING)
        self.visit_all(node.body)
        self.scopes.pop()

    def bind(self, target: nodes.Node, shape: Shape) -> None:
        if isinstance(target, nodes.Name):
            self.scopes[-1][target.name] = shape
        elif isinstance(target, nodes.Tuple):
            for item in target.items:
                self.bind(item, ANYTHING)
        elif isinstance(target, nodes.NSRef):
            self.lookup(target.name, target.lineno)

    # expressions

    def shape(self, node: nodes.Node, lenient: bool = False) -> Shape:
        """The shape of expression ``node``; with ``lenient`` its last name may be missing (``| default``)."""
        if isinstance(node, nodes.Name):
            return self.lookup(node.name, node.lineno, lenient)
        if isinstance(node, nodes.Getattr):
            return self.member(self.shape(node.node), node.attr, node.lineno, lenient)
        if isinstance(node, nodes.Getitem):
            owner = self.shape(node.node)
            if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                return self.member(owner, node.arg.value, node.lineno, lenient)
            self.shape(node.arg)
            if isinstance(node.arg, nodes.Slice):  # a slice of rows is rows; of a string, a string
                return ListOf(owner.element()) if isinstance(owner, ListOf | DatasetShape) else owner
            if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, int):
                return owner.element()
            return ANYTHING if isinstance(owner, Fields) else owner.element()
        if isinstance(node, nodes.Call):
            callee = self.shape(node.node)
            self.arguments(node)
            return self.guarded(lambda: callee.call(node.args), node.lineno)
        if isinstance(node, nodes.Filter):
            return self.filtered(node)
        if isinstance(node, nodes.Test):
            if node.name not in self.tests:  # an unknown filter fails to compile; an unknown test only at render
                self.problems.append((node.lineno, f"unknown test '{node.name}'{did_you_mean(node.name, self.tests)}"))
            if node.name in ("defined", "undefined"):
                self.shape(node.node, lenient=True)
            else:
                self.shape(node.node)
            self.arguments(node)
            return ANYTHING
        self.visit_all(node.iter_child_nodes())
        return ANYTHING

    def filtered(self, node: nodes.Filter) -> Shape:
        # node.node is None only in {% filter %} blocks, where the block's output is filtered
        operand = self.shape(node.node, lenient=node.name in ("default", "d")) if node.node else ANYTHING
        self.arguments(node)
        if node.name in _ATTRIBUTE_FILTERS:
            attribute = _attribute_argument(node)
            if attribute is not None and "." not in attribute:
                self.guarded(lambda: operand.element().attribute(attribute), node.lineno)
        if node.name in _SAME_ITEMS:
            return ListOf(operand.element())
        if node.name in _ONE_ITEM and not node.kwargs:
            return operand.element()
        return ANYTHING

    def arguments(self, node: nodes.Call | nodes.Filter | nodes.Test) -> None:
        for argument in node.args:
            self.shape(argument)
        for keyword in node.kwargs:
            self.shape(keyword.value)
        for extra in (node.dyn_args, node.dyn_kwargs):
            if extra is not None:
                self.shape(extra)

    def lookup(self, name: str, line: int, lenient: bool = False) -> Shape:
        for scope in reversed(self.scopes):
            shape = scope.get(name)
            if isinstance(shape, Absent):
                if not lenient:
                    self.problems.append((line, shape.message))
                return ANYTHING
            if shape is not None:
                return shape
        if not lenient:
            known = [n for scope in self.scopes for n, shape in scope.items() if not isinstance(shape, Absent)]
            self.problems.append((line, f"unknown variable '{name}'{did_you_mean(name, known)}"))
        return ANYTHING

    def member(self, owner: Shape, name: str, line: int, lenient: bool) -> Shape:
        try:
            return owner.attribute(name)
        except UnknownName as exc:
            if not lenient:
                self.problems.append((line, str(exc)))
            return ANYTHING

    def guarded(self, resolve: Callable[[], Shape], line: int) -> Shape:
        try:
            return resolve()
        except UnknownName as exc:
            self.problems.append((line, str(exc)))
            return ANYTHING


def _attribute_argument(node: nodes.Filter) -> str | None:
    for keyword in node.kwargs:
        if keyword.key == "attribute" and isinstance(keyword.value, nodes.Const):
            value = keyword.value.value
            return value if isinstance(value, str) else None
    if node.name in ("selectattr", "rejectattr") and node.args and isinstance(node.args[0], nodes.Const):
        value = node.args[0].value
        return value if isinstance(value, str) else None
    return None


def _loop() -> PythonValue:
    from jinja2.runtime import LoopContext, Undefined

    return PythonValue(LoopContext, "loop", LoopContext([], Undefined))


def unresolved_names(source: str, context: Mapping[str, Shape]) -> list[tuple[int | None, str]]:
    """(line, message) for each name in ``source`` that ``context`` cannot resolve, in the order of the lines.

    In a multi-line template the line is given and the message starts 'line N: '; a one-line template gives None.
    ``source`` must compile (``templating.check_template``).
    """
    from reportctl.templating import _environment

    environment = _environment()
    checker = _Checker(context, iter(environment.globals), iter(environment.tests))
    checker.visit(environment.parse(source))
    multiline = "\n" in source.strip()
    found = sorted(dict.fromkeys(checker.problems), key=lambda problem: problem[0])
    return [(line, f"line {line}: {message}") if multiline else (None, message) for line, message in found]
