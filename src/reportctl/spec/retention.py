"""``retention:`` of a spec: how many of its runs are kept, and when their files are deleted or archived.

Each key left out takes the project's default from reportctl.yaml (``state.history``, ``state.retention``,
``state.archive.url``); a key given as null turns that part off for this report (every run kept, files kept, no
archive). ``reportctl.retention`` applies it (``reportctl runs prune``, after each run, hourly in the daemon).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from reportctl.spec.types import PositiveDuration, StrictModel

if TYPE_CHECKING:
    from reportctl.config import ProjectConfig


class Retention(StrictModel):
    """How long a report's runs and files are kept (see docs/operations.md#retention-and-archiving)."""

    keep_runs: int | None = Field(
        default=None,
        ge=0,
        description="Finished runs kept, newest first; older ones are forgotten with their files. Default the "
        "project's state.history (100); null keeps every run.",
    )
    artifacts: PositiveDuration | None = Field(
        default=None,
        description="Age (e.g. 90d) after which a finished run's files are deleted, or moved to archive; the run's "
        "record stays. Default the project's state.retention (30d); null keeps them.",
    )
    archive: str | None = Field(
        default=None,
        description="s3://bucket/prefix/: files past the artifacts age are moved there (to <prefix><report>/<run-id>/)"
        " instead of deleted; the connection is state.archive's in reportctl.yaml. Null: delete them.",
    )

    @field_validator("archive")
    @classmethod
    def _s3_location(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from reportctl.delivery.s3_options import parse_location

        return parse_location(value.strip()).url


@dataclass(frozen=True)
class RetentionPolicy:
    """What retention does to one report, its spec's ``retention:`` over the project's defaults."""

    report: str
    keep_runs: int | None
    """None: every run is kept."""
    artifacts: timedelta | None
    """None: files are kept."""
    archive: str | None
    """s3://bucket/prefix/ the files go to when they expire; None: they are deleted."""

    def describe(self) -> str:
        """``keep 100 runs, files 30d then archived to s3://...``: the policy in a line, as prune prints it."""
        from reportctl.spec.types import format_duration_spec

        runs = "every run" if self.keep_runs is None else f"{self.keep_runs} run{'' if self.keep_runs == 1 else 's'}"
        if self.artifacts is None:
            return f"keep {runs}, files for ever"
        then = f"archived to {self.archive}" if self.archive else "deleted"
        return f"keep {runs}, files {format_duration_spec(self.artifacts)} then {then}"


def retention_policy(report: str, retention: Retention | None, config: ProjectConfig) -> RetentionPolicy:
    """The policy of ``report``: each key its spec's ``retention:`` sets (null included), else the project's."""
    state = config.state
    given = retention.model_fields_set if retention is not None else set()
    keep = retention.keep_runs if retention is not None and "keep_runs" in given else state.history
    age = retention.artifacts if retention is not None and "artifacts" in given else state.retention
    default_archive = state.archive.url if state.archive is not None else None
    archive = retention.archive if retention is not None and "archive" in given else default_archive
    return RetentionPolicy(report, keep, age, archive)
