"""The scheduled specs of a project: every enabled, non-abstract spec with a ``schedule:``, and the invalid ones.

Specs are checked for structure (the models, cron, time zone, plugin options) but not for cross-references by
default: a broken reference fails its run with the spec error, and ``reportctl validate`` reports it beforehand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from reportctl.errors import Problem, ReportctlError, SpecError

if TYPE_CHECKING:
    from reportctl.config import Project

# Project files that live beside specs but are not specs.


@dataclass(frozen=True)
class ScheduledSpec:
    """What the scheduler needs to know about one scheduled report."""

    name: str
    path: Path
    cron: str
    timezone: str
    priority: Literal["critical", "standard"]
    jitter: timedelta
    overlap: Literal["skip", "queue"]
    misfire_grace: timedelta
    retries: int
    timeout: timedelta | None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    spec_hash: str = ""
    rev: str | None = None
    """The revision the schedule pins (``schedule.rev``): each fire renders the spec as at it."""
    loaded: Any = field(default=None, compare=False, repr=False)
    """The spec as read for the schedule (cross-references not checked), so a first fire need not parse it again."""


def scheduled_specs(
    paths: list[Path], project: Project | None = None, *, check: bool = False, disabled: list[str] | None = None
) -> tuple[list[ScheduledSpec], list[Problem]]:
    """The scheduled specs in ``paths`` (files or folders) and the problems of the invalid ones, which are skipped.

    With ``check`` cross-references are checked too (slower); a report name used twice is a problem in the second file.
    The names of specs whose schedule is turned off (``enabled: false``) are added to ``disabled`` when given.
    """
    from reportctl.spec.loader import load_spec

    specs: list[ScheduledSpec] = []
    problems: list[Problem] = []
    seen: dict[str, Path] = {}
    for file in spec_files(paths):
        try:
            loaded = load_spec(file, project, check=check)
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        except ReportctlError as exc:
            problems.append(Problem(str(exc), file=file))
            continue
        spec, schedule = loaded.spec, loaded.spec.schedule
        if spec.abstract or schedule is None or not schedule.enabled:
            if disabled is not None and not spec.abstract and schedule is not None:
                disabled.append(spec.name)
            continue
        if spec.name in seen:
            problems.append(loaded.problem(("name",), f"report name '{spec.name}' is also used by {seen[spec.name]}"))
            continue
        seen[spec.name] = loaded.path
        specs.append(
            ScheduledSpec(
                name=spec.name,
                path=loaded.path,
                cron=schedule.cron,
                timezone=schedule.timezone,
                priority=schedule.priority,
                jitter=schedule.jitter,
                overlap=schedule.overlap,
                misfire_grace=schedule.misfire_grace,
                retries=schedule.retries,
                timeout=schedule.timeout,
                parameters=dict(schedule.parameters),
                spec_hash=loaded.spec_hash,
                rev=schedule.rev,
                loaded=loaded,
            )
        )
    return specs, problems


def spec_files(paths: list[Path]) -> list[Path]:
    """The spec files named or found in the folders ``paths`` (``reportctl.yaml`` is not a spec)."""
    from reportctl.config import CONFIG_NAME
    from reportctl.spec.files import find_yaml

    return [path for path in find_yaml(paths) if path.name != CONFIG_NAME]


__all__ = ["ScheduledSpec", "scheduled_specs", "spec_files"]
