"""Run statistics for ``reportctl runs stats``: runs, failures and durations per report and per ISO week, delivery
outcomes per channel, and the trends worth a look ("generation time doubled", "failed 3 times in a row").

Durations are those of finished runs (COMPLETED, COMPLETED_WITH_WARNINGS or FAILED: from start to end, queue wait
excluded); SKIPPED runs count as runs but neither fail nor take time. A run COMPLETED_WITH_WARNINGS (sections rendered
as placeholders) succeeded: it counts as completed, and also in ``with_warnings``. Percentiles interpolate linearly
between the closest ranks, as the reports' own ``p95()`` does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reportctl.state.store import StateStore

TREND_WINDOW = timedelta(days=7)
FINISHED = ("COMPLETED", "COMPLETED_WITH_WARNINGS", "FAILED")
SUCCEEDED = ("COMPLETED", "COMPLETED_WITH_WARNINGS")
FAILURE_STREAK = 3
"""How many failures in a row make a flag: one is bad luck, three is a report that needs someone."""
DELIVERED = ("sent",)
UNDELIVERED = ("failed", "bounced", "unknown")


@dataclass
class Figures:
    """Runs of one report (in one week, or in all): counts and duration percentiles in seconds."""

    runs: int = 0
    completed: int = 0
    failed: int = 0
    skipped: int = 0
    with_warnings: int = 0
    """Completed runs that had sections rendered as placeholders (COMPLETED_WITH_WARNINGS), counted in ``completed``."""
    p50_seconds: float | None = None
    p95_seconds: float | None = None

    @property
    def failure_rate(self) -> float | None:
        """Failed among the runs that finished (completed or failed); None when none did."""
        finished = self.completed + self.failed
        return self.failed / finished if finished else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"failure_rate": self.failure_rate}


@dataclass
class ReportStats:
    report: str
    figures: Figures
    weeks: dict[str, Figures] = field(default_factory=dict)
    """ISO week (2026-W49) -> that week's figures, oldest first."""
    flags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "report": self.report,
            **self.figures.as_dict(),
            "weeks": {week: figures.as_dict() for week, figures in self.weeks.items()},
            "flags": self.flags,
        }


@dataclass
class ChannelStats:
    """Recipients of one channel kind (email, webhook, ...) by their delivery's status."""

    channel: str
    counts: dict[str, int]

    @property
    def success_rate(self) -> float | None:
        """Sent among those whose delivery ended (sent, failed, bounced, unknown); None when none did."""
        ended = sum(self.counts.get(status, 0) for status in (*DELIVERED, *UNDELIVERED))
        return self.counts.get("sent", 0) / ended if ended else None

    def as_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "counts": dict(self.counts), "success_rate": self.success_rate}


@dataclass
class RunStats:
    since: datetime
    until: datetime
    reports: list[ReportStats]
    channels: list[ChannelStats]

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "reports": [r.as_dict() for r in self.reports],
            "channels": [c.as_dict() for c in self.channels],
        }


@dataclass(frozen=True)
class _Run:
    report: str
    state: str
    created_at: datetime
    finished_at: datetime | None
    duration: float | None


def run_stats(store: StateStore, *, since: datetime, until: datetime, report: str | None = None) -> RunStats:
    """The statistics of the runs created in [since, until), of one report or all."""
    from sqlalchemy import func, select

    from reportctl.state.models import Delivery, Run

    query = select(Run.report, Run.state, Run.created_at, Run.finished_at, Run.duration_seconds).where(
        Run.created_at >= since, Run.created_at < until
    )
    deliveries = (
        select(Delivery.kind, Delivery.channel, Delivery.status, func.count())
        .join(Run, Run.id == Delivery.run_id)
        .where(Run.created_at >= since, Run.created_at < until)
        .group_by(Delivery.kind, Delivery.channel, Delivery.status)
    )
    if report is not None:
        query, deliveries = query.where(Run.report == report), deliveries.where(Run.report == report)
    with store._session() as session:  # the state package's own queries, like the store's
        runs = [_Run(*row) for row in session.execute(query.order_by(Run.created_at, Run.id))]
        counted = list(session.execute(deliveries))
    by_report: dict[str, list[_Run]] = defaultdict(list)
    for run in runs:
        by_report[run.report].append(run)
    reports = [_report_stats(name, rows, until) for name, rows in sorted(by_report.items())]
    channels: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for kind, name, status, count in counted:
        channels[kind or name][status] += count
    return RunStats(since, until, reports, [ChannelStats(name, dict(c)) for name, c in sorted(channels.items())])


def _report_stats(report: str, runs: Sequence[_Run], until: datetime) -> ReportStats:
    weeks: dict[str, list[_Run]] = defaultdict(list)
    for run in runs:
        year, week, _ = run.created_at.isocalendar()
        weeks[f"{year}-W{week:02d}"].append(run)
    stats = ReportStats(report, _figures(runs), {week: _figures(rows) for week, rows in sorted(weeks.items())})
    stats.flags = _flags(runs, until)
    return stats


def _figures(runs: Sequence[_Run]) -> Figures:
    durations = sorted(r.duration for r in runs if r.duration is not None and r.state in FINISHED)
    return Figures(
        runs=len(runs),
        completed=sum(r.state in SUCCEEDED for r in runs),
        failed=sum(r.state == "FAILED" for r in runs),
        skipped=sum(r.state == "SKIPPED" for r in runs),
        with_warnings=sum(r.state == "COMPLETED_WITH_WARNINGS" for r in runs),
        p50_seconds=percentile(durations, 0.5),
        p95_seconds=percentile(durations, 0.95),
    )


def _flags(runs: Sequence[_Run], until: datetime) -> list[str]:
    """What deserves a look: a failure streak at the end, and the last week's median duration against the week
    before."""
    flags = []
    finished = [r for r in runs if r.state in FINISHED]
    streak = 0
    for run in reversed(finished):
        if run.state != "FAILED":
            break
        streak += 1
    if streak >= FAILURE_STREAK:
        flags.append(f"failed {streak} times in a row")
    recent = [r for r in finished if r.created_at >= until - TREND_WINDOW]
    before = [r for r in finished if until - 2 * TREND_WINDOW <= r.created_at < until - TREND_WINDOW]
    now, then = _median(recent), _median(before)
    if now is not None and then is not None and then > 0 and now >= 2 * then:
        flags.append(f"generation time {now / then:.1f}x the previous 7 days (median {then:.2f} s -> {now:.2f} s)")
    return flags


def _median(runs: Sequence[_Run]) -> float | None:
    return percentile(sorted(r.duration for r in runs if r.duration is not None), 0.5)


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The q-quantile of sorted values, linear between the closest ranks; None for no values."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
