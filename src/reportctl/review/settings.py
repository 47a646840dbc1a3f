"""Comparing what a spec says beyond its document: schedule, outputs, deliveries and recipients, parameters,
and the sources and datasets whose changes explain the data's."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from reportctl.review.model import Change, MembersChange, ValueChange
from reportctl.review.values import text_change
from reportctl.secrets import mask_url_passwords
from reportctl.spec.loader import LoadedSpec

_RECIPIENT_FIELDS = ("to", "cc", "bcc")
_SECRET_KEY = re.compile(r"password|token|secret|webhook_url|api_key|headers", re.IGNORECASE)
_SECRET_REFERENCE = re.compile(r"\$\{secret:[^}]*\}")


def compare_settings(base: LoadedSpec | None, head: LoadedSpec | None) -> tuple[Change, ...]:
    """Schedule, outputs, deliveries with their recipients, and parameters that differ."""
    changes = [
        *_schedule(base, head),
        *_outputs(base, head),
        *_deliveries(base, head),
        *_models(
            "parameter",
            base.spec.parameters if base else {},
            head.spec.parameters if head else {},
            members="parameters",
        ),
    ]
    return tuple(changes)


def compare_data(base: LoadedSpec | None, head: LoadedSpec | None) -> tuple[Change, ...]:
    """Sources and datasets that differ, key by key (a ``where``, a query), secrets and URLs masked."""
    return (
        *_models("source", base.sources if base else {}, head.sources if head else {}, members="sources"),
        *_models("dataset", base.spec.datasets if base else {}, head.spec.datasets if head else {}, members="datasets"),
    )


def _schedule(base: LoadedSpec | None, head: LoadedSpec | None) -> list[Change]:
    before = base.spec.schedule if base else None
    after = head.spec.schedule if head else None
    if before is None or after is None:
        change = text_change("schedule", _schedule_line(before), _schedule_line(after))
        return [change] if change else []
    return _dict_changes("schedule", _dump(before), _dump(after))


def _schedule_line(schedule: BaseModel | None) -> str | None:
    if schedule is None:
        return None
    fields = _dump(schedule)
    pinned = f" at {fields['rev']}" if fields.get("rev") else ""
    return f"{fields['cron']} ({fields['timezone']}){pinned}"


def _outputs(base: LoadedSpec | None, head: LoadedSpec | None) -> list[Change]:
    before = {str(o.model_dump()["format"]): o for o in (base.outputs if base else ())}
    after = {str(o.model_dump()["format"]): o for o in (head.outputs if head else ())}
    changes: list[Change] = _members("outputs", before, after)
    for name, output in after.items():
        if name in before:
            changes += _dict_changes(f"output {name}", _dump(before[name]), _dump(output))
    return changes


def _deliveries(base: LoadedSpec | None, head: LoadedSpec | None) -> list[Change]:
    """Deliveries by name (id or channel): added or removed, their recipients per field, their other options."""
    before = {d.name: d for d in (base.deliveries if base else ())}
    after = {d.name: d for d in (head.deliveries if head else ())}
    changes: list[Change] = _members("deliveries", before, after)
    for name in [*after, *(n for n in before if n not in after)]:
        old, new = _dump(before[name]) if name in before else {}, _dump(after[name]) if name in after else {}
        for field in _RECIPIENT_FIELDS:
            changes += _members(f"delivery {name}: {field}", _entries(old.get(field)), _entries(new.get(field)))
        if old and new:
            rest = [k for k in {**old, **new} if k not in _RECIPIENT_FIELDS]
            changes += _dict_changes(f"delivery {name}", {k: old.get(k) for k in rest}, {k: new.get(k) for k in rest})
    return changes


def _entries(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def _models(
    what: str, before: Mapping[str, BaseModel], after: Mapping[str, BaseModel], *, members: str
) -> list[Change]:
    """Named models (parameters, sources, datasets): added or removed, then each kept one key by key."""
    changes: list[Change] = _members(members, before, after)
    for name, model in after.items():
        if name in before:
            changes += _dict_changes(f"{what} {name}", _dump(before[name]), _dump(model))
    return changes


def _members(field: str, before: Iterable[str], after: Iterable[str]) -> list[Change]:
    old, new = list(before), list(after)
    added = tuple(n for n in new if n not in old)
    removed = tuple(n for n in old if n not in new)
    return [MembersChange(field, added, removed)] if added or removed else []


def _dict_changes(prefix: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    changes: list[Change] = []
    for key in _in_order(before, after):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        old_text, new_text = _text(old), _text(new)
        if _SECRET_KEY.search(key) and not _only_references(old_text, new_text):
            old_text, new_text = _masked(old_text), _masked(new_text)
        changes.append(ValueChange(f"{prefix}: {key}", old_text, new_text, base_value=old_text, head_value=new_text))
    return changes


def _in_order(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Every key, in the head's order; a key gone stands where it stood, just before one that took its place."""
    old, new = list(before), list(after)
    keys = {*old, *new}
    return sorted(keys, key=lambda k: (new.index(k), 1) if k in after else (old.index(k), 0))


def _dump(model: BaseModel) -> dict[str, Any]:
    """A model's settings as JSON values, nested mappings flattened to dotted keys (``aggregate.p95``), so a
    change names the entry that changed rather than the whole mapping."""
    return _flat(model.model_dump(mode="json", by_alias=True, exclude_none=True))


def _flat(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _text(value: Any) -> str | None:
    """A setting as text; a password written into a URL (``postgresql://user:pw@host``) shown as ***."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    return mask_url_passwords(text)


def _only_references(*texts: str | None) -> bool:
    """Whether every text is empty or holds secrets only as ``${secret:NAME}``, which is safe to show."""
    return all(text is None or _SECRET_REFERENCE.sub("", text).strip() == "" for text in texts)


def _masked(text: str | None) -> str | None:
    return None if text is None else "(hidden)"
