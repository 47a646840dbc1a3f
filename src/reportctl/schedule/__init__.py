"""Scheduling: when each scheduled spec fires (triggers) and which specs are scheduled (specs)."""

from __future__ import annotations

from reportctl.schedule.specs import ScheduledSpec, scheduled_specs, spec_files
from reportctl.schedule.triggers import Fire, due_fires, fire_times, is_interval_cron, jitter_offset, planned_time

__all__ = [
    "Fire",
    "ScheduledSpec",
    "due_fires",
    "fire_times",
    "is_interval_cron",
    "jitter_offset",
    "planned_time",
    "scheduled_specs",
    "spec_files",
]
