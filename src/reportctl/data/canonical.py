"""Floating-point aggregates reduced in one canonical order, so the same data gives the same bits every run.

Polars sums a group in parallel: each thread adds up the rows it was handed and the partial sums are combined
in whatever order the threads finish, and the split depends on the number of threads. Floating-point addition
is not associative, so ``avg(error_rate)`` could differ in its last digits from one render to the next.

``canonical_aggregates`` rewrites the SQL handed to Polars (spec expressions and ``sql:`` datasets alike) so
that every order-sensitive aggregate call -- ``SUM``, ``AVG``, ``STDDEV`` and ``VARIANCE`` in their Polars SQL
spellings, as aggregates or over the whole frame (``OVER ()``) -- collects its group's values into one list and
reduces that list in one pass (``ARRAY_SUM``, ``ARRAY_MEAN``). Polars keeps the rows of a group in the order of
its input whatever the threads do, and reduces one list the same way every time, so the order of the additions
depends on the data only. (Sorting each group by value as well would make the result independent of the input's
row order too, but costs about ten times as much; the pipeline's steps keep their input's order, so spec
expressions do not need it. Whole ``sql:`` queries do -- a GROUP BY or join inside the query hands its rows on
in no fixed order -- and so do ``DISTINCT`` values.) Counts, minima, maxima, first/last and percentiles are exact
or sort already and are left alone.

Not covered yet: partitioned or ordered windows (``SUM(x) OVER (PARTITION BY k)``) in ``sql:`` datasets; Polars
SQL can only put OVER on the collected list, which would copy each partition's values into each of its rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from reportctl.data.sqltext import Token, closing_paren, is_call, next_significant, tokenize

__all__ = ["canonical_aggregates", "orders_its_rows"]

_KINDS = {
    "sum": "sum",
    "avg": "avg",
    **dict.fromkeys(("stddev", "stdev", "stddev_samp", "stdev_samp"), "stddev"),
    **dict.fromkeys(("variance", "var", "var_samp"), "variance"),
}


@dataclass(frozen=True)
class _Call:
    kind: str
    argument: str
    distinct: bool
    window: str  # " OVER ()" or ""
    by_value: bool  # collect the values sorted; always with DISTINCT (unique values come in no fixed order)


def canonical_aggregates(sql: str, *, by_value: bool = False) -> str:
    """``sql`` with each SUM/AVG/STDDEV/VARIANCE call reducing its values as one list; the rest verbatim.

    ``by_value`` sorts each group's values first: for whole queries (``sql:`` datasets), where a GROUP BY or a
    join inside the query hands rows on in no fixed order. Left as written: a call this cannot read with
    certainty (several arguments, no argument), and window functions other than ``OVER ()`` (partitioned,
    ordered or named windows: not deterministic yet).
    """
    tokens = tokenize(sql)
    parts: list[str] = []
    i = 0
    while i < len(tokens):
        found = _call_at(tokens, i, by_value)
        if found is None:
            parts.append(tokens[i].text)
            i += 1
            continue
        call, end = found
        parts.append(_canonical(call))
        i = end + 1
    return "".join(parts)


def _call_at(tokens: Sequence[Token], i: int, by_value: bool) -> tuple[_Call, int] | None:
    """The order-sensitive aggregate call starting at token ``i`` and the index of its last token."""
    kind = _KINDS.get(tokens[i].text.lower()) if tokens[i].kind == "name" else None
    if kind is None or not is_call(tokens, i):
        return None
    open_index = next_significant(tokens, i)
    assert open_index is not None
    close_index = closing_paren(tokens, open_index)
    if close_index is None:
        return None
    inside = list(tokens[open_index + 1 : close_index])
    significant = [t for t in inside if t.significant]
    distinct = bool(significant) and significant[0].text.lower() == "distinct"
    if significant and significant[0].text.lower() in ("distinct", "all"):
        inside = inside[inside.index(significant[0]) + 1 :]
    if not any(t.significant for t in inside) or _top_level_comma(inside):
        return None
    end, window = close_index, ""
    after = next_significant(tokens, close_index)
    if after is not None and tokens[after].text.lower() == "over":
        # Only the whole-frame window: Polars SQL can put OVER on the list, not on its reduction, so a partitioned
        # window would copy each partition's list into every one of its rows.
        window_open = next_significant(tokens, after)
        window_close = next_significant(tokens, window_open) if window_open is not None else None
        if window_open is None or tokens[window_open].text != "(" or window_close is None or distinct:
            return None
        if tokens[window_close].text != ")":
            return None
        window, end = " OVER ()", window_close
    argument = canonical_aggregates("".join(t.text for t in inside).strip(), by_value=by_value)
    return _Call(kind, argument, distinct, window, by_value or distinct), end


def _top_level_comma(tokens: Sequence[Token]) -> bool:
    depth = 0
    for token in tokens:
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            depth -= 1
        elif token.text == "," and depth == 0:
            return True
    return False


def _canonical(call: _Call) -> str:
    """The call as a reduction of its group's values collected into one list."""
    value, distinct, window = f"({call.argument})", "DISTINCT " if call.distinct else "", call.window
    values = _collected(value, distinct, window, sort=call.by_value)
    count = f"COUNT({distinct}{value}){window}"
    if call.kind == "avg":
        return f"ARRAY_MEAN({values})"
    if call.kind == "sum":
        # SQL's SUM over no (non-null) values is NULL; a list's sum would be 0.
        return f"(CASE WHEN {count} > 0 THEN ARRAY_SUM({values}) END)"
    # Sample variance in two passes over the list: the mean first, then the squared deviations.
    # In DOUBLE, as Polars computes it for every numeric type (a list of decimals cannot subtract its mean).
    value = f"CAST({call.argument} AS DOUBLE)"
    values = _collected(value, distinct, window, sort=call.by_value)
    deviations = f"({values} - ARRAY_MEAN({values}))"
    variance = f"(CASE WHEN {count} > 1 THEN ARRAY_SUM({deviations} * {deviations}) / ({count} - 1) END)"
    return f"SQRT{variance}" if call.kind == "stddev" else variance


def _collected(value: str, distinct: str, window: str, *, sort: bool) -> str:
    """The group's values as one list: in input order, or sorted by value."""
    order = f" ORDER BY {value}" if sort else ""
    return f"ARRAY_AGG({distinct}{value}{order}){window}"


def orders_its_rows(sql: str) -> bool:
    """Whether a query ends with its own ORDER BY (outside any parentheses), fixing the order of its rows."""
    depth, words = 0, []
    for token in tokenize(sql):
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            depth -= 1
        elif token.significant and depth == 0:
            words.append(token.text.lower())
    return any(a == "order" and b == "by" for a, b in pairwise(words))
