"""An APScheduler 3 trigger that fires at our planned times, so the daemon and ``schedule tick`` share DST semantics.

APScheduler's own ``CronTrigger`` resolves daylight-saving gaps and repeats its own way and jitters at random; this
trigger asks ``fire_times`` for the cron's instants and wakes at each one's stable jittered ``planned_time``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.triggers.base import BaseTrigger

from reportctl.schedule.triggers import fire_times, planned_time

if TYPE_CHECKING:
    from reportctl.schedule.specs import ScheduledSpec


class PlannedFireTrigger(BaseTrigger):  # type: ignore[misc]
    """Fires at the planned (jittered) time of each cron fire; ``scheduled_for`` maps it back to the cron time."""

    __slots__ = ("_last", "cron", "jitter", "report", "submitted", "timezone")

    def __init__(self, spec: ScheduledSpec) -> None:
        self.report, self.cron, self.timezone, self.jitter = spec.name, spec.cron, spec.timezone, spec.jitter
        # the latest planned time APScheduler has handed to an executor (it passes it back as previous_fire_time)
        self.submitted: datetime | None = None
        # APScheduler asks for the fire after the same time twice in a row when it submits a job (for the run times,
        # then for the next run): the last answer, so the second costs nothing
        self._last: tuple[datetime, tuple[datetime, datetime] | None] | None = None

    def next_fire(self, after: datetime) -> tuple[datetime, datetime] | None:
        """The (scheduled, planned) fire with the earliest planned time strictly after ``after``, or None if none."""
        after = after.astimezone(UTC)
        if self._last is not None and self._last[0] == after:
            return self._last[1]
        fire = self._next_fire(after)
        self._last = (after, fire)
        return fire

    def _next_fire(self, after: datetime) -> tuple[datetime, datetime] | None:
        first = fire_times(self.cron, self.timezone, after, count=1)
        if not first:
            return None
        if self.jitter <= timedelta(0):
            return first[0], first[0]  # no jitter: planned when scheduled
        jitter = self.jitter
        # with jitter wider than the cron's interval, planned times can overtake each other: look at every candidate
        # (UTC throughout: zoned arithmetic and comparison go by wall time, which the fall-back hour repeats)
        candidates = fire_times(self.cron, self.timezone, after - jitter, until=first[0].astimezone(UTC) + jitter)
        fires = [(s, planned_time(self.report, s, self.jitter)) for s in candidates]
        later = [(s, p) for s, p in fires if p.astimezone(UTC) > after]
        return min(later, key=lambda fire: fire[1].astimezone(UTC)) if later else None

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        """APScheduler's hook: the next planned time after the previous fire (or after ``now`` for a new job), in UTC.

        UTC because aware datetimes that share a zone compare by wall time, which the fall-back hour makes ambiguous.
        """
        if previous_fire_time is not None:
            previous_fire_time = previous_fire_time.astimezone(UTC)
            if self.submitted is None or previous_fire_time > self.submitted:
                self.submitted = previous_fire_time
        fire = self.next_fire(previous_fire_time if previous_fire_time is not None else now)
        return None if fire is None else fire[1].astimezone(UTC)

    def __str__(self) -> str:
        return f"planned[{self.cron} {self.timezone} jitter {int(self.jitter.total_seconds())}s]"

    def __repr__(self) -> str:
        return f"<PlannedFireTrigger {self.report} {self.cron!r} {self.timezone}>"


__all__ = ["PlannedFireTrigger"]
