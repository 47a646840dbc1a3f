"""``alerts:`` of a spec: how an Alertmanager notification maps to the report's parameters and period.

``reportctl.schedule.alerts`` applies it to a webhook payload (``POST /alerts/SPEC`` of the daemon); ``check_alerts``
is what ``validate`` says about it. See docs/scheduling.md#runs-triggered-by-alerts.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, Field

from reportctl.errors import Problem, did_you_mean, one_of
from reportctl.spec.types import IDENTIFIER, Duration, StrictModel

if TYPE_CHECKING:
    from reportctl.spec.loader import LoadedSpec
    from reportctl.spec.models import Spec


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("expected a duration of 0s or more, such as 30m")
    return value


class AlertMapping(StrictModel):
    """Which parameters an alert group fills, and the window its period parameter gets."""

    parameters: dict[Annotated[str, Field(pattern=IDENTIFIER)], str] | None = Field(
        default=None,
        description="Parameter: template over the notification ({{ labels.service }}, {{ commonLabels.severity }}); "
        "an empty result leaves the parameter's default. Default: labels named like a parameter map to it.",
    )
    period: str | None = Field(
        default=None,
        description="The period parameter that receives the alert window; default the spec's only period parameter.",
    )
    before: Annotated[Duration, AfterValidator(_not_negative)] = Field(
        default=timedelta(minutes=30), description="The window starts this long before the earliest startsAt."
    )
    after: Annotated[Duration, AfterValidator(_not_negative)] = Field(
        default=timedelta(minutes=10),
        description="A resolved group's window ends this long after the latest endsAt (a firing one's at now).",
    )
    on_resolved: bool = Field(
        default=False, description="Render again, with the final window, when the group resolves."
    )


def period_parameters(spec: Spec) -> list[str]:
    """The names of the spec's parameters of type period, in spec order."""
    return [name for name, parameter in spec.parameters.items() if parameter.type == "period"]


def window_parameter(spec: Spec) -> str | None:
    """The parameter that receives the alert window: ``alerts.period``, else the only period parameter, else None."""
    if spec.alerts is not None and spec.alerts.period is not None:
        return spec.alerts.period
    periods = period_parameters(spec)
    return periods[0] if len(periods) == 1 else None


def check_alerts(loaded: LoadedSpec) -> list[Problem]:
    """What is wrong with the spec's ``alerts:`` block: unknown or period parameters mapped, a ``period`` that is not
    a period parameter (or none chosen among several), and templates that do not compile or pass the limits."""
    from reportctl.templating import check_template

    spec, problems = loaded.spec, list[Problem]()
    mapping = spec.alerts
    if mapping is None:
        return []
    periods = period_parameters(spec)
    if mapping.period is not None and mapping.period not in periods:
        if mapping.period in spec.parameters:
            kind = spec.parameters[mapping.period].type
            message = f"parameter '{mapping.period}' is of type {kind}, not period"
        else:
            message = f"unknown parameter '{mapping.period}'{did_you_mean(mapping.period, spec.parameters)}"
        listed = f"; period parameters: {one_of(periods)}" if periods else "; the spec has no period parameter"
        problems.append(loaded.problem(("alerts", "period"), message + listed))
    elif mapping.period is None and len(periods) > 1:
        problems.append(
            loaded.problem(
                ("alerts",),
                f"name the period that receives the alert window in alerts.period: one of {one_of(periods)}",
            )
        )
    window = window_parameter(spec)
    for name, template in (mapping.parameters or {}).items():
        at = ("alerts", "parameters", name)
        if name not in spec.parameters:
            hint = did_you_mean(name, spec.parameters)
            problems.append(
                loaded.problem(at, f"unknown parameter '{name}'{hint}; parameters: {one_of(spec.parameters)}")
            )
        elif name == window and name in periods:
            problems.append(loaded.problem(at, f"'{name}' receives the alert window; map other parameters here"))
        where = ".".join(str(part) for part in at)
        refused = check_template(template, where=where, limits=loaded.project.config.templates)
        if refused:
            problems.append(loaded.problem(at, refused.removeprefix(f"{where}: ")))
    return problems
