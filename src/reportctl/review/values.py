"""Values compared exactly and shown as the writers show them, with a readable signed difference."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from decimal import Decimal
from numbers import Integral, Real
from typing import Any

from reportctl.formats import ColumnFormat, format_duration, format_number, is_missing, parse_format
from reportctl.review.model import ValueChange

_SIGNED_KINDS = frozenset({"number", "integer", "currency", "bytes", "duration", "percent"})


def same(base: Any, head: Any) -> bool:
    """Exact equality, where two missing values (None, NaN) are the same and 1 equals 1.0."""
    if is_missing(base) or is_missing(head):
        return is_missing(base) and is_missing(head)
    if type(base) is not type(head) and not (_is_number(base) and _is_number(head)):
        return False
    try:
        return bool(base == head)
    except (TypeError, ValueError):
        return str(base) == str(head)


def shown(value: Any, format: ColumnFormat, timezone: str) -> str:
    """The text a reader sees; a value that does not fit its format falls back to the by-type format."""
    from reportctl.formats import FormatError

    try:
        return format.format(value, timezone)
    except FormatError:
        return parse_format(None).format(value, timezone)


def delta_text(base: Any, head: Any, format: ColumnFormat) -> str | None:
    """``head - base`` as a reader would write it: "+12.5 ms, +4.1%", "-0.3 pp", "+2h"; None when it has none."""
    if _is_number(base) and _is_number(head):
        difference = Decimal(repr(head)) - Decimal(repr(base)) if _is_float(base, head) else head - base
        sign = "+" if difference > 0 else "-" if difference < 0 else "±"
        text = format.format(abs(difference)) if format.kind in _SIGNED_KINDS else ""
        if format.kind == "percent":
            text = text.removesuffix("%") + " pp"
        if not any(digit in text for digit in "123456789"):
            # the column's places round this difference away: show it with places enough to see it
            scaled = abs(difference) * (100 if format.kind == "percent" else 1)
            unit = " pp" if format.kind == "percent" else f" {format.unit}" if format.unit else ""
            text = format_number(scaled, _decimals(scaled)) + unit
        relative = ""
        if format.kind != "percent" and base != 0 and math.isfinite(float(base)) and math.isfinite(float(head)):
            ratio = (float(head) - float(base)) / abs(float(base)) * 100
            relative = f", {'+' if ratio > 0 else ''}{format_number(ratio, 1)}%"
        return f"{sign}{text}{relative}"
    if isinstance(base, date) and isinstance(head, date) and isinstance(base, datetime) == isinstance(head, datetime):
        span = head - base
        if not isinstance(span, timedelta):
            return None
        return ("+" if span >= timedelta(0) else "-") + format_duration(abs(span))
    if isinstance(base, timedelta) and isinstance(head, timedelta):
        span = head - base
        return ("+" if span >= timedelta(0) else "-") + format_duration(abs(span))
    return None


def value_change(
    field: str,
    base: Any,
    head: Any,
    format: ColumnFormat,
    timezone: str,
    *,
    base_format: ColumnFormat | None = None,
    base_timezone: str | None = None,
) -> ValueChange | None:
    """The change of one value shown in ``format`` (the base's own when given), or None when it is the same."""
    if same(base, head):
        return None
    base_text = shown(base, base_format or format, base_timezone or timezone)
    head_text = shown(head, format, timezone)
    if base_text == head_text:  # the format hides the difference: show the values exactly
        base_text, head_text = repr(base), repr(head)
    return ValueChange(field, base_text, head_text, delta_text(base, head, format), base, head)


def text_change(field: str, base: str | None, head: str | None) -> ValueChange | None:
    """A change of a plain setting or label; None is shown as absent."""
    if base == head:
        return None
    return ValueChange(field, base, head, base_value=base, head_value=head)


def _is_number(value: Any) -> bool:
    return isinstance(value, Real | Decimal) and not isinstance(value, bool) and not is_missing(value)


def _is_float(*values: Any) -> bool:
    return any(not isinstance(v, Integral) for v in values)


def _decimals(value: Decimal | float | int) -> int:
    """Enough places to show a small difference that the column's own places would round to zero."""
    if isinstance(value, Integral) or value == 0:
        return 0
    return max(0, min(12, 3 - Decimal(value).adjusted()))
