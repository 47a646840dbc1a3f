"""Alertmanager notifications as report runs: the mapping behind the daemon's ``POST /alerts/SPEC``.

Alertmanager posts its webhook message (version 4: ``receiver``, ``status``, ``alerts``, ``groupLabels``,
``commonLabels``, ``commonAnnotations``, ``externalURL``, ``groupKey``, ``truncatedAlerts``) for a group of alerts,
and posts it again every ``group_interval`` while the group changes and every ``repeat_interval`` while it fires. One
incident should render one report, so a notification maps to an idempotency key made of the spec, the group and the
earliest ``startsAt`` of its firing alerts: every re-send of an episode has the same key, and a group that resolves
and fires again later starts a new episode (a later earliest ``startsAt``), hence a new key.

The spec's ``alerts:`` block (``reportctl.spec.alerts``) says which parameters the labels fill and which period
parameter receives the window; without it, labels named like a parameter fill it and the only period parameter gets
the window.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from reportctl.errors import ParameterError, Problem, ReportctlError, SpecError, one_of
from reportctl.spec.alerts import AlertMapping, period_parameters, window_parameter

if TYPE_CHECKING:
    from reportctl.spec.loader import LoadedSpec

WEBHOOK_VERSION = "4"
_STATUSES = ("firing", "resolved")
_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)  # Go's zero time.Time: an alert with no known end


class AlertPayloadError(ReportctlError):
    """An Alertmanager notification that cannot be read: the message names the payload field at fault."""


@dataclass(frozen=True)
class AlertTrigger:
    """What one notification asks for: a run of the spec with these parameters, at most once per ``idempotency_key``."""

    group_key: str
    status: str
    """``firing`` or ``resolved``, the group's status."""
    parameters: dict[str, str]
    """As ``-p KEY=VALUE`` strings, ready for the spec's parameter coercion; the window as ``START..END``."""
    idempotency_key: str
    """A sha256 of (spec name, groupKey, earliest startsAt, status): one per alert episode and status."""
    window_start: datetime
    window_end: datetime
    alerts: int
    """How many alerts of the group were firing (for a resolved group: how many resolved), as listed."""


@dataclass(frozen=True)
class _Alert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str
    fingerprint: str

    def context(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": self.starts_at,
            "endsAt": self.ends_at,
            "generatorURL": self.generator_url,
            "fingerprint": self.fingerprint,
        }


def alert_trigger(loaded: LoadedSpec, payload: Any, now: datetime) -> AlertTrigger | None:
    """The run an Alertmanager notification asks of ``loaded``, or None (a resolved group without ``on_resolved``).

    Raises ``AlertPayloadError`` for a payload that is not Alertmanager's, ``ParameterError`` for a label value a
    parameter refuses, ``SpecError`` when the spec has no parameter for the window, ``TemplateError`` from a mapping.
    """
    spec = loaded.spec
    mapping = spec.alerts or AlertMapping()
    status = _status(payload)
    group_key = _text(payload, "groupKey", required=True)
    alerts = _alerts(payload)
    if status == "resolved" and not mapping.on_resolved:
        return None
    episode = [a for a in alerts if a.status == "firing"] if status == "firing" else alerts
    if not episode:
        raise AlertPayloadError("alert payload: status is firing but no alert in alerts is firing")
    episode.sort(key=lambda a: (a.starts_at, a.fingerprint))
    first = episode[0].starts_at
    start = first - mapping.before
    if status == "firing":
        end = now.astimezone(UTC)
    else:
        ends = [a.ends_at for a in episode if a.ends_at is not None]
        end = (max(ends) if ends else now.astimezone(UTC)) + mapping.after
    start, end = start.replace(microsecond=0), _ceil_second(max(end, start + timedelta(seconds=1)))
    context = {
        "status": status,
        "receiver": _text(payload, "receiver"),
        "groupKey": group_key,
        "groupLabels": _labels(payload.get("groupLabels"), "groupLabels"),
        "commonLabels": _labels(payload.get("commonLabels"), "commonLabels"),
        "commonAnnotations": _labels(payload.get("commonAnnotations"), "commonAnnotations"),
        "externalURL": _text(payload, "externalURL"),
        "alerts": [a.context() for a in alerts],
        "labels": episode[0].labels,
        "annotations": episode[0].annotations,
        "window": {"start": start, "end": end},
    }
    parameters = _mapped_parameters(loaded, mapping, context, now)
    window = window_parameter(spec)
    if window is not None:
        parameters[window] = f"{start.isoformat()}..{end.isoformat()}"
    elif period_parameters(spec) or spec.alerts is None:  # several periods and none chosen, or none and no mapping
        periods = period_parameters(spec)
        why = f"it has {len(periods)} ({one_of(periods)})" if periods else "it has none"
        problem = Problem(
            f"an alert's window needs one period parameter, and {why}; add alerts: {{period: NAME}} to the spec",
            path="alerts",
            file=loaded.path,
        )
        raise SpecError([problem])
    material = json.dumps([spec.name, group_key, first.isoformat(), status])
    return AlertTrigger(
        group_key=group_key,
        status=status,
        parameters=parameters,
        idempotency_key=hashlib.sha256(material.encode()).hexdigest(),
        window_start=start,
        window_end=end,
        alerts=len(episode),
    )


def _mapped_parameters(
    loaded: LoadedSpec, mapping: AlertMapping, context: dict[str, Any], now: datetime
) -> dict[str, str]:
    """Each parameter the alert fills, as text, after checking that the parameter accepts it."""
    from reportctl.spec.parameters import coerce_parameter
    from reportctl.templating import render_template

    spec = loaded.spec
    timezone = spec.report_timezone(loaded.project.config.timezone)
    given: dict[str, tuple[str, str]] = {}  # parameter: (where the value came from, value)
    if mapping.parameters is None:
        window = window_parameter(spec)
        for name, value in context["commonLabels"].items():
            if name in spec.parameters and name != window and spec.parameters[name].type != "period":
                given[name] = (f"commonLabels.{name}", value)
    else:
        for name, template in mapping.parameters.items():
            where = f"alerts.parameters.{name}"
            value = render_template(
                template, context, where=where, timezone=timezone, limits=loaded.project.config.templates
            ).strip()
            if value:  # an empty value leaves the parameter's default
                given[name] = (where, value)
    for name, (where, value) in given.items():
        try:
            coerce_parameter(spec.parameters[name], value, now, timezone)
        except KeyError:
            raise ParameterError(f"{where}: the spec has no parameter '{name}'") from None
        except ValueError as exc:
            raise ParameterError(f"{where}: parameter '{name}' refuses {value!r}: {exc}") from None
    return {name: value for name, (_, value) in given.items()}


def _status(payload: Any) -> str:
    if not isinstance(payload, dict):
        kind = "a list" if isinstance(payload, list) else type(payload).__name__
        raise AlertPayloadError(f"alert payload: expected a JSON object (Alertmanager's webhook message), got {kind}")
    version = payload.get("version")
    if version is not None and version != WEBHOOK_VERSION:
        raise AlertPayloadError(
            f"alert payload: version: {version!r} is not supported; reportctl reads Alertmanager's webhook version 4"
        )
    status = payload.get("status")
    if status not in _STATUSES:
        got = "nothing" if status is None else repr(status)
        raise AlertPayloadError(f"alert payload: status: expected firing or resolved, got {got}")
    return str(status)


def _text(payload: dict[str, Any], field: str, *, required: bool = False, where: str = "") -> str:
    value = payload.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        got = "nothing" if value is None else repr(value)
        raise AlertPayloadError(f"alert payload: {where}{field}: expected a non-empty string, got {got}")
    return value


def _labels(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise AlertPayloadError(f"alert payload: {where}: expected an object of label names to string values")
    return {str(k): v for k, v in value.items()}


def _alerts(payload: dict[str, Any]) -> list[_Alert]:
    items = payload.get("alerts")
    if not isinstance(items, list) or not items:
        got = "nothing" if items is None else ("an empty list" if items == [] else type(items).__name__)
        raise AlertPayloadError(f"alert payload: alerts: expected a non-empty list of alerts, got {got}")
    alerts = []
    for index, item in enumerate(items):
        where = f"alerts[{index}]"
        if not isinstance(item, dict):
            raise AlertPayloadError(f"alert payload: {where}: expected an object, got {type(item).__name__}")
        status = item.get("status")
        if status not in _STATUSES:
            got = "nothing" if status is None else repr(status)
            raise AlertPayloadError(f"alert payload: {where}.status: expected firing or resolved, got {got}")
        starts_at = _time(item.get("startsAt"), f"{where}.startsAt")
        if starts_at is None:
            raise AlertPayloadError(f"alert payload: {where}.startsAt: expected the time the alert started, got none")
        alerts.append(
            _Alert(
                status=str(status),
                labels=_labels(item.get("labels"), f"{where}.labels"),
                annotations=_labels(item.get("annotations"), f"{where}.annotations"),
                starts_at=starts_at,
                ends_at=_time(item.get("endsAt"), f"{where}.endsAt"),
                generator_url=_text(item, "generatorURL", where=f"{where}."),
                fingerprint=_text(item, "fingerprint", where=f"{where}."),
            )
        )
    return alerts


def _time(value: Any, where: str) -> datetime | None:
    """An RFC 3339 time as Alertmanager writes it (Go's, nanoseconds and all), in UTC; None for none or Go's zero."""
    if value is None or value == "":
        return None
    parsed = None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise AlertPayloadError(
            f"alert payload: {where}: {value!r} is not an RFC 3339 time such as 2026-12-04T09:58:30.123Z"
        )
    return None if parsed == _ZERO_TIME else parsed.astimezone(UTC)


def _ceil_second(moment: datetime) -> datetime:
    return moment if moment.microsecond == 0 else moment.replace(microsecond=0) + timedelta(seconds=1)
