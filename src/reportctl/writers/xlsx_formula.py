"""Column formulas (the spec's SQL dialect) translated into Excel formulas over the same row's cells.

Translated: column names (quoted or not) to cells such as ``E7``; numbers, 'strings', TRUE/FALSE; ``+ - * /``,
``%`` (as ``a-b*TRUNC(a/b)``, SQL's sign), ``||`` (as ``&``); comparisons (``!=`` as ``<>``); AND, OR, NOT;
``x IS [NOT] NULL`` on a column (ISBLANK); ``CASE [x] WHEN .. THEN .. [ELSE ..] END`` as nested IF (no ELSE
gives ""); abs, sqrt, ln, log10, power, round, floor (INT), ceil (-INT(-x)), greatest (MAX), least (MIN),
coalesce/ifnull on columns, lower, upper, length (LEN), concat, substr (MID), replace (SUBSTITUTE); numeric,
boolean and text ``:parameters`` as literals. Anything else, and any formula reading a date, time or duration
column (Excel counts those in days), raises ``UntranslatableFormula``: the writer then writes the values and
says why in a comment.

Blanks: in SQL an operation on NULL is NULL, while Excel reads a blank cell as 0 (``=G2-F2`` over empty cells
is 0 or -41.9). So each formula is guarded by the cells whose blankness makes it NULL: ``=IF(OR(ISBLANK(F2),
ISBLANK(G2)),"",G2-F2)`` is blank where reportctl's value is, in every writer. Inside CASE, a condition over a
blank is false and a result over a blank is ""; an AND or OR operand over a blank counts as false. IS NULL,
coalesce/ifnull, concat(), greatest and least handle blanks themselves. Known differences: Excel compares text
case-insensitively, and NULL AND/OR NULL is FALSE in Excel, NULL in SQL.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from reportctl.data.sqltext import Token, tokenize

_ROW = "\x00"
_PAIRS = frozenset({"<=", ">=", "<>", "!=", "||"})
_COMPARISONS = {"=": "=", "<": "<", ">": ">", "<=": "<=", ">=": ">=", "<>": "<>", "!=": "<>"}
_KEYWORDS = frozenset({"and", "or", "not", "case", "when", "then", "else", "end", "is", "null", "true", "false"})
_PLAIN_FUNCTIONS = {
    "abs": ("ABS", 1),
    "sqrt": ("SQRT", 1),
    "ln": ("LN", 1),
    "log10": ("LOG10", 1),
    "power": ("POWER", 2),
    "lower": ("LOWER", 1),
    "upper": ("UPPER", 1),
    "length": ("LEN", 1),
    "replace": ("SUBSTITUTE", 3),
}
# Excel precedence, loosest first; atoms (cells, literals, function calls) bind tightest.
_COMPARE, _CONCAT, _ADD, _MUL, _UNARY, _ATOM = range(6)


class UntranslatableFormula(ValueError):
    """A formula that has no faithful Excel equivalent; the message says which part."""


@dataclass(frozen=True)
class ExcelFormula:
    """An Excel formula for any row: ``parts`` joined by the 1-based row number."""

    parts: tuple[str, ...]

    def at(self, row: int) -> str:
        """The formula for Excel row ``row`` (1-based)."""
        return str(row).join(self.parts)


@dataclass(frozen=True)
class _Node:
    text: str
    precedence: int
    is_cell: bool = False
    blanks: frozenset[str] = frozenset()
    """The cells (as ``F\x00``) whose being blank makes this node NULL in SQL."""


def _blanks(*nodes: _Node) -> frozenset[str]:
    return frozenset().union(*(n.blanks for n in nodes))


def _guarded(node: _Node, otherwise: str, known: frozenset[str] = frozenset()) -> str:
    """``node``'s text, or ``otherwise`` when any cell that makes it NULL is blank (``known`` cells are not)."""
    cells = node.blanks - known
    if not cells:
        return node.text
    tests = [f"ISBLANK({cell})" for cell in sorted(cells)]
    test = tests[0] if len(tests) == 1 else f"OR({','.join(tests)})"
    return f"IF({test},{otherwise},{node.text})"


def translate_formula(text: str, cells: Mapping[str, str | None], params: Mapping[str, Any]) -> ExcelFormula:
    """Translate ``text``; ``cells`` maps column names to column letters (None: a type Excel computes apart)."""
    if _ROW in text:
        raise UntranslatableFormula("it contains a NUL character")
    parser = _Parser(_merge_pairs(tokenize(text)), cells, params)
    node = parser.expression()
    if parser.current is not None:
        raise UntranslatableFormula(f"'{parser.current.text}' is not understood here")
    return ExcelFormula(tuple(("=" + _guarded(node, '""')).split(_ROW)))


def _merge_pairs(tokens: list[Token]) -> list[Token]:
    merged: list[Token] = []
    for token in tokens:
        if token.kind in ("space", "comment"):
            continue
        last = merged[-1] if merged else None
        pair = last.text + token.text if last is not None else ""
        if (
            last is not None
            and last.kind == token.kind == "symbol"
            and pair in _PAIRS
            and token.start == last.start + 1
        ):
            merged[-1] = Token("symbol", pair, last.start)
        else:
            merged.append(token)
    return merged


class _Parser:
    """Recursive descent over SQL precedence: OR < AND < NOT < comparison < || < +- < */% < unary."""

    def __init__(self, tokens: list[Token], cells: Mapping[str, str | None], params: Mapping[str, Any]) -> None:
        self.tokens, self.index, self.cells, self.params = tokens, 0, cells, params

    @property
    def current(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _word(self, offset: int = 0) -> str:
        i = self.index + offset
        token = self.tokens[i] if i < len(self.tokens) else None
        if token is None:
            return ""
        return token.text.lower() if token.kind == "name" else token.text

    def _take(self, word: str) -> bool:
        if self._word() == word:
            self.index += 1
            return True
        return False

    def _expect(self, word: str) -> None:
        if not self._take(word):
            found = self.current.text if self.current is not None else "the end"
            raise UntranslatableFormula(f"expected '{word}', found {found}")

    def expression(self) -> _Node:
        return self._logical("or", "OR", self._and)

    def _and(self) -> _Node:
        return self._logical("and", "AND", self._not)

    def _logical(self, word: str, function: str, operand: Callable[[], _Node]) -> _Node:
        items = [operand()]
        while self._take(word):
            items.append(operand())
        if len(items) == 1:
            return items[0]
        # SQL's three-valued logic: TRUE OR NULL is TRUE; an operand over a blank counts as false here
        return _Node(f"{function}({','.join(_guarded(i, 'FALSE') for i in items)})", _ATOM)

    def _not(self) -> _Node:
        if self._take("not"):
            operand = self._not()
            return _Node(f"NOT({operand.text})", _ATOM, blanks=operand.blanks)
        return self._comparison()

    def _comparison(self) -> _Node:
        left = self._binary(_CONCAT)
        if self._take("is"):
            negate = self._take("not")
            self._expect("null")
            if not left.is_cell:
                raise UntranslatableFormula("IS NULL is only translated for a column")
            test = f"ISBLANK({left.text})"
            return _Node(f"NOT({test})" if negate else test, _ATOM)
        operator = _COMPARISONS.get(self._word()) if self.current and self.current.kind == "symbol" else None
        if operator is None:
            return left
        self.index += 1
        right = self._binary(_CONCAT)
        return _Node(_join(left, operator, right, _COMPARE), _COMPARE, blanks=_blanks(left, right))

    def _binary(self, level: int) -> _Node:
        if level > _MUL:
            return self._unary()
        operators = {_CONCAT: ("||",), _ADD: ("+", "-"), _MUL: ("*", "/", "%")}[level]
        left = self._binary(level + 1)
        while self.current is not None and self.current.kind == "symbol" and self.current.text in operators:
            operator = self.current.text
            self.index += 1
            right = self._binary(level + 1)
            if operator == "%":
                b = _wrap(right, _UNARY)
                text = f"({_wrap(left, _ADD)}-{b}*TRUNC({_wrap(left, _MUL)}/{b}))"
                left = _Node(text, _ATOM, blanks=_blanks(left, right))
            else:
                text = _join(left, "&" if operator == "||" else operator, right, level)
                left = _Node(text, level, blanks=_blanks(left, right))
        return left

    def _unary(self) -> _Node:
        if self.current is not None and self.current.kind == "symbol" and self.current.text in "+-":
            sign = self.current.text
            self.index += 1
            operand = self._unary()
            return _Node(sign + _wrap(operand, _UNARY), _UNARY, blanks=operand.blanks)
        return self._primary()

    def _primary(self) -> _Node:
        token = self.current
        if token is None:
            raise UntranslatableFormula("it ends too early")
        self.index += 1
        if token.kind == "number":
            text = ("0" + token.text if token.text.startswith(".") else token.text).upper()
            return _Node(text.replace(".E", ".0E") + ("0" if text.endswith(".") else ""), _ATOM)
        if token.kind == "string":
            if len(token.text) < 2 or not token.text.endswith("'"):
                raise UntranslatableFormula("a string is never closed")
            return _Node(_excel_string(token.text[1:-1].replace("''", "'")), _ATOM)
        if token.kind == "param":
            return self._parameter(token.text[1:])
        if token.text == "(":
            inner = self.expression()
            self._expect(")")
            return _Node(f"({inner.text})", _ATOM, blanks=inner.blanks)
        word = token.text.lower() if token.kind == "name" else ""
        if word in ("true", "false"):
            return _Node(word.upper(), _ATOM)
        if word == "case":
            return self._case()
        if token.kind == "name" and self._word() == "(":
            return self._call(word)
        if token.identifier is not None and word not in _KEYWORDS:
            return self._cell(token.identifier)
        raise UntranslatableFormula(f"'{token.text}' has no Excel equivalent")

    def _cell(self, name: str) -> _Node:
        if name not in self.cells:
            raise UntranslatableFormula(f"it reads '{name}', which is not a column of this table")
        letter = self.cells[name]
        if letter is None:
            raise UntranslatableFormula(f"it reads '{name}', a date, time or duration column")
        return _Node(letter + _ROW, _ATOM, is_cell=True, blanks=frozenset({letter + _ROW}))

    def _parameter(self, name: str) -> _Node:
        value = self.params.get(name)
        if isinstance(value, bool):
            return _Node("TRUE" if value else "FALSE", _ATOM)
        if isinstance(value, int | float) and math.isfinite(value):
            return _Node(repr(value) if value >= 0 else f"({value!r})", _ATOM)
        if isinstance(value, str):
            return _Node(_excel_string(value), _ATOM)
        raise UntranslatableFormula(f"parameter ':{name}' is not a number, boolean or text")

    def _case(self) -> _Node:
        subject = None if self._word() == "when" else self._binary(_CONCAT)
        branches: list[tuple[str, str]] = []
        while self._take("when"):
            test = self.expression()
            if subject is not None:
                test = _Node(_join(subject, "=", test, _COMPARE), _COMPARE, blanks=_blanks(subject, test))
            self._expect("then")
            # a branch is taken only when its test's cells hold values, so its result needs no guard for those
            branches.append((_guarded(test, "FALSE"), _guarded(self.expression(), '""', known=test.blanks)))
        if not branches:
            raise UntranslatableFormula("CASE without WHEN")
        otherwise = _guarded(self.expression(), '""') if self._take("else") else '""'
        self._expect("end")
        for condition, value in reversed(branches):
            otherwise = f"IF({condition},{value},{otherwise})"
        return _Node(otherwise, _ATOM)

    def _call(self, name: str) -> _Node:
        self._expect("(")
        args: list[_Node] = []
        if not self._take(")"):
            args.append(self.expression())
            while self._take(","):
                args.append(self.expression())
            self._expect(")")
        texts, strict = [a.text for a in args], _blanks(*args)
        if name in _PLAIN_FUNCTIONS and len(args) == _PLAIN_FUNCTIONS[name][1]:
            return _Node(f"{_PLAIN_FUNCTIONS[name][0]}({','.join(texts)})", _ATOM, blanks=strict)
        if name == "round" and len(args) in (1, 2):
            return _Node(f"ROUND({texts[0]},{texts[1] if len(args) == 2 else 0})", _ATOM, blanks=strict)
        if name == "floor" and len(args) == 1:
            return _Node(f"INT({texts[0]})", _ATOM, blanks=strict)
        if name in ("ceil", "ceiling") and len(args) == 1:
            return _Node(f"-INT(-({texts[0]}))", _UNARY, blanks=strict)
        if name in ("greatest", "least") and args:
            return _Node(f"{'MAX' if name == 'greatest' else 'MIN'}({','.join(texts)})", _ATOM)
        if name == "concat" and args:
            return _Node("(" + "&".join(_wrap(a, _CONCAT + 1) for a in args) + ")", _ATOM)
        if name == "substr" and len(args) in (2, 3):
            return _Node(f"MID({texts[0]},{texts[1]},{texts[2] if len(args) == 3 else 32767})", _ATOM, blanks=strict)
        if name in ("coalesce", "ifnull") and len(args) >= 2 and all(a.is_cell for a in args[:-1]):
            result = texts[-1]
            for arg in reversed(texts[:-1]):
                result = f"IF(ISBLANK({arg}),{result},{arg})"
            return _Node(result, _ATOM)
        raise UntranslatableFormula(f"{name}() with {len(args)} argument(s) has no Excel equivalent here")


def _wrap(node: _Node, needed: int) -> str:
    return node.text if node.precedence >= needed else f"({node.text})"


def _join(left: _Node, operator: str, right: _Node, level: int) -> str:
    """Left-associative: the right operand is parenthesised unless it binds strictly tighter."""
    return f"{_wrap(left, level)}{operator}{_wrap(right, level + 1)}"


def _excel_string(value: str) -> str:
    if len(value) > 255:
        raise UntranslatableFormula("a text longer than 255 characters cannot be an Excel literal")
    return '"' + value.replace('"', '""') + '"'


_DIGITS = re.compile(r"[0-9]+")


@cache
def formula_worksheet() -> type:
    """xlsxwriter's ``Worksheet``, preparing each shape of formula once.

    xlsxwriter prepares every formula it is given with 29 regular-expression substitutions (prefixing Excel's
    newer functions with ``_xlfn.``): 35 us a cell, a third of a 100,000-row sheet with one formula column. A
    column's formulas differ only in their row numbers, which those substitutions neither read nor change, so
    the preparation of the formula with every run of digits as "0" serves every row of the column: its digits
    are put back in order. Where the count of digit runs would differ (xlsxwriter's pattern for SINGLE( also
    takes the character before "INGLE("), xlsxwriter prepares the formula itself."""
    from xlsxwriter.worksheet import Worksheet

    class FormulaWorksheet(Worksheet):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self._prepared_shapes: dict[tuple[str, bool], tuple[str, int]] = {}

        def _prepare_formula(self, formula: str, expand_future_functions: bool = False) -> str:
            key = (_DIGITS.sub("0", formula), expand_future_functions)
            found = self._prepared_shapes.get(key)
            if found is None:
                prepared = super()._prepare_formula(key[0], expand_future_functions)
                found = self._prepared_shapes[key] = (prepared, len(_DIGITS.findall(prepared)))
            prepared, runs = found
            digits = _DIGITS.findall(formula)
            if len(digits) != runs:
                return str(super()._prepare_formula(formula, expand_future_functions))
            put_back = iter(digits)
            return _DIGITS.sub(lambda _: next(put_back), prepared)

    return FormulaWorksheet
