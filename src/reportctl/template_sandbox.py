"""The bounded sandbox that every reportctl template runs in.

Jinja's immutable sandbox already refuses private attributes and mutation; this subclass adds bounds, so a
template cannot take the machine with it: values built by ``*``, ``**``, ``+``, ``%``, ``~``, string methods and
filters may not pass the output limit (checked before the value is built where the size can be foreseen), and the
sandbox's hooks (calls, operators, attribute lookups, filters, every loop iteration) check the render's deadline.
The limits of the render in progress live in a ContextVar, so concurrent renders of different projects keep
their own.

Compile-time constant folding is turned off (``optimized=False``): it would evaluate ``'x' * 10**9`` while
compiling, outside every hook. Validate evaluates constant expressions itself, bounded (``constant_limit_error``).
"""

from __future__ import annotations

import contextvars
import math
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import wraps
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

DEFAULT_MAX_OUTPUT = 1_000_000
"""1 MB: a title, a text section or a message body is a few KB; a megabyte is already a book chapter."""
DEFAULT_MAX_SECONDS = 5.0
"""Real templates render in milliseconds; 5 s leaves room for a slow machine and a big dataset walked row by row,
and still ends a runaway loop before a scheduled run or a webhook's caller gives up."""

# Globals a report template never needs; lipsum's __globals__ and cycler/joiner are the classic walk-out routes.
_REMOVED_GLOBALS = ("lipsum", "cycler", "joiner")
# A Python object printed instead of a value: "<function ...>", "<class ...>", "<... object at 0x7f...>".
_OBJECT_REPR = re.compile(
    r"<(?:class|function|built-in|bound method|method|module|generator|coroutine) |<TemplateReference |<jinja2\.|"
    r"<reportctl\.|at 0x[0-9a-f]+>"
)
_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_DIGITS = re.compile(r"\d+")


class TemplateLimitError(Exception):
    """A template went past one of its limits; the message names the limit and where to raise it."""


class TemplateObjectError(Exception):
    """A template printed a Python object (a function, a class) instead of a value."""


@dataclass(frozen=True)
class TemplateLimits:
    """How big a template's output and values may get, and how long one render may run."""

    max_output: int = DEFAULT_MAX_OUTPUT
    max_seconds: float = DEFAULT_MAX_SECONDS

    def output_error(self, what: str) -> TemplateLimitError:
        return TemplateLimitError(f"{what} passed {_size(self.max_output)} (max_output in reportctl.yaml)")


@dataclass
class _Budget:
    limits: TemplateLimits
    deadline: float

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(
                f"the template ran longer than {self.limits.max_seconds:g} s (max_seconds in reportctl.yaml)"
            )

    def fits(self, size: int, what: str = "a value the template builds") -> None:
        if size > self.limits.max_output:
            raise self.limits.output_error(what)


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("template_budget", default=None)


def bounded(limits: TemplateLimits) -> contextvars.Token[_Budget | None]:
    """Start one render's limits and deadline; pass the token to ``unbounded`` when the render ends."""
    return _budget.set(_Budget(limits, time.monotonic() + limits.max_seconds))


def unbounded(token: contextvars.Token[_Budget | None]) -> None:
    _budget.reset(token)


def _current() -> _Budget:
    # a render not started by bounded() (none in reportctl) gets the default sizes and no deadline
    return _budget.get() or _Budget(TemplateLimits(), math.inf)


def stream_bounded(chunks: Iterable[str]) -> str:
    """Join a render's output as it streams, stopping at the output limit before a huge output is ever built."""
    budget, parts, size = _current(), [], 0
    for chunk in chunks:
        size += len(chunk.encode("utf-8", "surrogatepass"))
        if size > budget.limits.max_output:
            raise budget.limits.output_error("the template's output")
        if _OBJECT_REPR.search(chunk):
            raise TemplateObjectError(
                "the template shows a Python function or class instead of a value; show one of its fields, or call it"
            )
        parts.append(chunk)
    return "".join(parts)


def _size(limit: int) -> str:
    """As the setting was likely written: 1 MB, 2.5 MB, 2 MiB, 512 KiB."""
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if limit >= factor and limit % factor == 0 and limit % 1000:
            return f"{limit // factor} {unit}"
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if limit >= factor and limit % (factor // 10) == 0:
            return f"{limit / factor:g} {unit}"
    return f"{limit} bytes"


def _length(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple | dict | set | frozenset) else 0


def _check_result(value: Any) -> Any:
    _current().fits(_length(value))
    return value


def _check_arguments(args: Iterable[Any], what: str) -> None:
    """An int argument past the limit is a width, a count or a precision that builds a value past it."""
    budget = _current()
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and arg > budget.limits.max_output:
            raise budget.limits.output_error(f"{arg} in {what}")


def _check_percent(template: str, args: Any) -> None:
    budget = _current()
    for width, precision in _PERCENT_FIELD.findall(template):
        for number in (width, precision):
            if number.isdigit():
                budget.fits(int(number), f"the width {number} in '%' formatting")
    if "*" in template:
        _check_arguments(args if isinstance(args, tuple) else (args,), "'%' formatting")


def _check_format(template: str, args: Iterable[Any]) -> None:
    budget = _current()
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return  # str.format raises the same error, with its own message
    for _, _, spec, _ in fields:
        for number in _DIGITS.findall(spec or ""):
            budget.fits(int(number), f"the width {number} in format()")
    _check_arguments(args, "format()")


def _bounded_join(items: Iterable[Any], separator: str) -> list[Any]:
    """``items`` listed while their text stays under the limit, so ``|join`` never builds a huge string."""
    budget, listed, size = _current(), [], 0
    for item in items:
        budget.tick()
        size += len(separator) + (len(item) if isinstance(item, str) else 0)
        budget.fits(size, "a value joined by the template")
        listed.append(item)
    return listed


def _foresee_str_method(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a ``str`` method call whose result would pass the limit, before Python builds it."""
    text, name, budget = method.__self__, method.__name__, _current()
    if name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        count = text.count(args[0]) if args[0] else len(text) + 1
        budget.fits(len(text) + count * len(args[1]))
    elif name == "expandtabs":
        _check_arguments([*args, *kwargs.values()], "expandtabs()")
        budget.fits(len(text) + text.count("\t") * int(args[0] if args else kwargs.get("tabsize", 8)))
    elif name in ("format", "format_map"):
        _check_format(text, [*args, *kwargs.values()])
    _check_arguments([*args, *kwargs.values()], f"{name}()")


def _filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` with the render's deadline and size checks; Jinja's pass_context marks travel with wraps."""
    takes_context = getattr(function, "jinja_pass_arg", None) is not None

    @wraps(function)
    def bounded_filter(*args: Any, **kwargs: Any) -> Any:
        budget = _current()
        budget.tick()
        value_at = 1 if takes_context else 0
        rest = list(args[value_at + 1 :])
        _check_arguments([*rest, *kwargs.values()], f"|{name}")
        if len(args) > value_at:
            value = args[value_at]
            if name == "join":
                separator = rest[0] if rest and isinstance(rest[0], str) else kwargs.get("d", "")
                args = (*args[:value_at], _bounded_join(value, str(separator)), *args[value_at + 1 :])
            elif name == "replace" and len(rest) >= 2 and isinstance(value, str):
                count = value.count(str(rest[0])) if rest[0] else len(value) + 1
                budget.fits(len(value) + count * len(str(rest[1])))
            elif name == "indent" and isinstance(value, str):
                width = rest[0] if rest else kwargs.get("width", 4)
                per_line = width if isinstance(width, int) else len(str(width))
                budget.fits(len(value) + (value.count("\n") + 1) * per_line)
            elif name == "format" and isinstance(value, str):
                _check_percent(value, tuple(rest))
        return _check_result(function(*args, **kwargs))

    return bounded_filter


def _bounded_range(*args: int) -> range:
    """Jinja's safe range, with reportctl's one-line message."""
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateLimitError(f"range() of {len(numbers):,} items passed the sandbox's {MAX_RANGE:,}")
    return numbers


def _bounded_loop(items: Any) -> Iterator[Any]:
    """Every loop iteration checks the deadline, so nested loops over big ranges end on time."""
    budget = _current()
    for item in items:
        budget.tick()
        yield item


def _concat(parts: list[Any]) -> str:
    """``a ~ b``: Jinja joins it inline, outside every hook; measured here before it is built."""
    budget = _current()
    budget.tick()
    texts = [str(part) for part in parts]
    budget.fits(sum(map(len, texts)))
    return "".join(texts)


class _Bounds(NodeTransformer):
    """Route loops and ``~`` through the bounded helpers above (registered as filters)."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        if not (isinstance(node.iter, nodes.Filter) and node.iter.name == "_bounded_loop"):
            node.iter = nodes.Filter(node.iter, "_bounded_loop", [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(
            nodes.List(node.nodes, lineno=node.lineno), "_concat", [], [], None, None, lineno=node.lineno
        )


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with size and time bounds on everything a template can do."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(optimized=False, **options)
        for name in _REMOVED_GLOBALS:
            self.globals.pop(name, None)
        self.globals["range"] = _bounded_range

    def bound_filters(self) -> None:
        """Wrap every filter registered so far; call once the environment's filters are complete."""
        self.filters = {name: _filter(name, function) for name, function in self.filters.items()}
        self.filters.update(_bounded_loop=_bounded_loop, _concat=_concat)

    def _generate(self, source: nodes.Template, *args: Any, **kwargs: Any) -> str:
        return super()._generate(_Bounds().visit(source), *args, **kwargs)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _current()
        budget.tick()
        if operator == "*":
            count, sequence = (right, left) if isinstance(right, int) else (left, right)
            if isinstance(count, int) and _length(sequence):
                budget.fits(len(sequence) * max(count, 0))
        elif operator == "+" and _length(left) and _length(right):
            budget.fits(len(left) + len(right))
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
            digits = int(right * math.log10(abs(left)))
            budget.fits(digits, f"{left} ** {right}, {digits:,} digits,")
        elif operator == "%" and isinstance(left, str):
            _check_percent(left, right)
        return _check_result(self.binop_table[operator](left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _current().tick()
        if isinstance(getattr(__obj, "__self__", None), str):
            _foresee_str_method(__obj, args, kwargs)
        elif getattr(__obj, "__name__", None) in ("format", "format_map") and hasattr(__obj, "__wrapped__"):
            _foresee_str_method(__obj.__wrapped__, args, kwargs)  # the sandbox's wrapper of str.format
        return _check_result(super().call(__context, __obj, *args, **kwargs))

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        """Refuse at once: Jinja's undefined would let a chain go on (``|attr('__class__')|attr('__mro__')``) and
        fail later with a message about the undefined object instead of the attribute refused."""
        if isinstance(obj, jinja2.Undefined):
            obj._fail_with_undefined_error()  # 'cycler' is undefined: the name is the mistake, not the dunder
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def getattr(self, obj: Any, attribute: str) -> Any:
        _current().tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _current().tick()
        return super().getitem(obj, argument)


def constant_limit_error(
    environment: BoundedSandbox, template: jinja2.Template, source: str, limits: TemplateLimits
) -> str | None:
    """What ``source`` breaks before it reads any data, for validate: a limit, an unsafe attribute or an object
    shown. It is rendered without data (stopping at the first name it needs, so a template of constants and loops
    runs whole), then each expression of literals and globals alone (``'x' * 10**9`` after a name that stopped the
    first pass). Other errors are left to the render, which reports them in context."""
    candidates = [template]
    for expression in _constant_expressions(environment, environment.parse(source)):
        assign = nodes.Assign(nodes.Name("_", "store"), expression, lineno=expression.lineno)
        try:
            candidates.append(environment.from_string(nodes.Template([assign], lineno=1)))
        except jinja2.TemplateError:
            continue  # an expression that only compiles in its place (none known); the render checks it
    for candidate in candidates:
        token = bounded(limits)
        try:
            stream_bounded(candidate.generate())
        except (TemplateLimitError, TemplateObjectError, SecurityError) as exc:
            return str(exc).splitlines()[0].rstrip(".")
        except Exception:  # any other error needs the data validate does not have
            continue
        finally:
            unbounded(token)
    return None


def _constant_expressions(environment: jinja2.Environment, node: nodes.Node) -> Iterator[nodes.Expr]:
    """The largest expressions under ``node`` that compute something from literals and globals alone."""
    for child in node.iter_child_nodes():
        if isinstance(child, nodes.Expr) and _is_constant(environment, child):
            computed = (nodes.BinExpr, nodes.Call, nodes.Filter, nodes.Concat)
            if isinstance(child, computed) or any(True for _ in child.find_all(computed)):
                yield child
        else:
            yield from _constant_expressions(environment, child)


def _is_constant(environment: jinja2.Environment, node: nodes.Expr) -> bool:
    kinds = (nodes.Name, nodes.ContextReference, nodes.DerivedContextReference, nodes.InternalName)
    return all(
        isinstance(n, nodes.Name) and n.name in environment.globals
        for n in (node, *node.find_all(kinds))
        if isinstance(n, kinds)
    )
