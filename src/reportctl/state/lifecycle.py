"""The run lifecycle: the states a run passes through and the only moves allowed between them.

SCHEDULED -> GENERATING -> FORMATTING -> DISTRIBUTING -> COMPLETED | COMPLETED_WITH_WARNINGS
    |             |             |              |
    +-> SKIPPED   +-------------+--------------+-> FAILED   (SCHEDULED may also fail)

COMPLETED_WITH_WARNINGS: delivered, with sections (``on_error: placeholder``) that rendered as placeholders.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from reportctl.errors import ReportctlError, one_of

Trigger = Literal["manual", "schedule", "retry", "burst", "api", "alert"]
TRIGGERS: tuple[Trigger, ...] = ("manual", "schedule", "retry", "burst", "api", "alert")
"""How a run came to be; ``burst``: a recipient group's variant of a burst run (``reportctl.burst``); ``api`` and
``alert``: asked for over the daemon's HTTP API, by ``POST /runs`` or an Alertmanager notification."""


class RunState(StrEnum):
    """Where a run stands; stored by name in ``runs.state`` and ``run_states.state``."""

    SCHEDULED = "SCHEDULED"
    GENERATING = "GENERATING"
    FORMATTING = "FORMATTING"
    DISTRIBUTING = "DISTRIBUTING"
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_WARNINGS = "COMPLETED_WITH_WARNINGS"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"

    @property
    def terminal(self) -> bool:
        """A finished run never moves again."""
        return self in TERMINAL_STATES

    @property
    def succeeded(self) -> bool:
        """The report went out: COMPLETED, or COMPLETED_WITH_WARNINGS (some sections are placeholders)."""
        return self in SUCCESS_STATES

    @classmethod
    def parse(cls, text: str) -> RunState:
        """A state from its name in any case; a ``ValueError`` listing the names otherwise."""
        try:
            return cls(text.strip().upper())
        except ValueError:
            raise ValueError(f"unknown run state '{text}'; expected one of {one_of(s.value for s in cls)}") from None


SUCCESS_STATES = frozenset({RunState.COMPLETED, RunState.COMPLETED_WITH_WARNINGS})
TERMINAL_STATES = SUCCESS_STATES | {RunState.FAILED, RunState.SKIPPED}
ACTIVE_STATES = frozenset(RunState) - TERMINAL_STATES

LEGAL_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.SCHEDULED: frozenset({RunState.GENERATING, RunState.SKIPPED, RunState.FAILED}),
    # back to SCHEDULED only through ``StateStore.requeue``: a queued run whose worker was lost, or retried
    RunState.GENERATING: frozenset({RunState.FORMATTING, RunState.FAILED, RunState.SCHEDULED}),
    RunState.FORMATTING: frozenset({RunState.DISTRIBUTING, RunState.FAILED, RunState.SCHEDULED}),
    RunState.DISTRIBUTING: frozenset({RunState.COMPLETED, RunState.COMPLETED_WITH_WARNINGS, RunState.FAILED}),
    RunState.COMPLETED: frozenset(),
    RunState.COMPLETED_WITH_WARNINGS: frozenset(),
    RunState.FAILED: frozenset(),
    RunState.SKIPPED: frozenset(),
}


def completed_state(warnings: object) -> RunState:
    """How a delivered run ends: COMPLETED, or COMPLETED_WITH_WARNINGS when ``warnings`` (its sections rendered as
    placeholders) is not empty."""
    return RunState.COMPLETED_WITH_WARNINGS if warnings else RunState.COMPLETED


def succeeded(state: str) -> bool:
    """Whether a run that ended in the state named ``state`` went out (COMPLETED or COMPLETED_WITH_WARNINGS)."""
    return state in SUCCESS_STATES


def is_legal(current: RunState, target: RunState) -> bool:
    """Whether a run in ``current`` may move to ``target``."""
    return target in LEGAL_TRANSITIONS[current]


class IllegalTransition(ReportctlError):
    """A run was asked to move to a state its current state does not lead to (or it moved meanwhile)."""

    def __init__(self, run_id: str, current: RunState, target: RunState, *, concurrent: bool = False) -> None:
        self.run_id, self.current, self.target = run_id, current, target
        allowed = one_of(s.value for s in LEGAL_TRANSITIONS[current]) or "nothing (it has finished)"
        meanwhile = " (changed by another process meanwhile)" if concurrent else ""
        super().__init__(
            f"run {run_id} is {current.value}{meanwhile} and cannot move to {target.value}; it may move to {allowed}"
        )


class UnknownRun(ReportctlError):
    """No run, or more than one, matches the id or prefix the user gave."""


def new_run_id(now: datetime) -> str:
    """Sortable by time, unique by a random suffix: 20261128T090000Z-3f9a1c (the same form the runner uses)."""
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + os.urandom(3).hex()
