"""What is delivered and what came of it: the run as channels see it, and the ledger's account afterwards."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from reportctl.state.ledger import LedgerEntry

if TYPE_CHECKING:
    from reportctl.runner import Artifact, RunResult
    from reportctl.state.models import RunRecord


@dataclass(frozen=True)
class DeliveryTarget:
    """The run being delivered: what the channels are told about it."""

    run_id: str
    report: str
    title: str
    status: Literal["completed", "failed"]
    error: str | None
    parameters: Mapping[str, Any]
    now: datetime
    directory: Path | None
    artifacts: tuple[Artifact, ...]

    @classmethod
    def rendered(cls, result: RunResult, now: datetime) -> DeliveryTarget:
        """A run this process has just rendered."""
        return cls(
            result.run_id,
            result.report,
            result.title or result.report,
            "completed",
            None,
            result.parameters,
            now,
            result.directory,
            tuple(result.artifacts),
        )

    @classmethod
    def failed(
        cls, run_id: str, report: str, error: str, parameters: Mapping[str, Any], now: datetime
    ) -> DeliveryTarget:
        """A run that failed before it wrote anything: only ``when: failure|always`` deliveries apply."""
        return cls(run_id, report, report, "failed", error, parameters, now, None, ())

    @classmethod
    def recorded(cls, record: RunRecord) -> DeliveryTarget:
        """A run from the state store, its artifacts read back from where it wrote them."""
        import json

        from reportctl.runner import Artifact

        directory = Path(record.output_dir) if record.output_dir else None
        artifacts = []
        for item in record.artifacts:
            path = Path(str(item["path"]))
            if directory is not None and not path.is_absolute():
                path = directory / path
            artifacts.append(Artifact(str(item["format"]), path, int(item["bytes"]), str(item["sha256"])))
        title = record.report
        if directory is not None and (directory / "manifest.json").is_file():
            manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
            title = str(manifest.get("title") or title)
        failed = record.state.value == "FAILED"
        return cls(
            record.id,
            record.report,
            title,
            "failed" if failed else "completed",
            record.error,
            record.parameters or {},
            record.scheduled_for or record.started_at or record.created_at,
            directory,
            tuple(artifacts),
        )


@dataclass
class Preview:
    """What one delivery would send, for ``--dry-run``."""

    delivery: str
    recipients: list[str]
    skipped: list[str]
    message: str


@dataclass
class DeliveryReport:
    """Every ledger row of the run after delivering, with notes on what happened along the way."""

    run_id: str
    entries: list[LedgerEntry] = field(default_factory=list)
    previews: list[Preview] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False

    def counts(self) -> dict[str, dict[str, int]]:
        """Per delivery, how many recipients are in each status."""
        counts: dict[str, dict[str, int]] = {}
        for entry in self.entries:
            by_status = counts.setdefault(entry.channel, {})
            by_status[entry.status] = by_status.get(entry.status, 0) + 1
        return counts

    @property
    def undelivered(self) -> list[LedgerEntry]:
        """Rows that did not end as sent: failed, bounced, or still pending."""
        return [entry for entry in self.entries if entry.status != "sent"]

    def summary(self) -> str:
        """'email: 47 sent, 2 bounced, 1 failed; webhook: 1 sent'."""
        return "; ".join(
            f"{channel}: " + ", ".join(f"{n} {status}" for status, n in sorted(by.items(), key=_status_order))
            for channel, by in self.counts().items()
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "counts": self.counts(),
            "recipients": [entry.as_dict() for entry in self.entries],
            "previews": [preview.__dict__ for preview in self.previews],
            "notes": list(self.notes),
        }


def _status_order(item: tuple[str, int]) -> int:
    order = ("sent", "bounced", "failed", "pending")
    return order.index(item[0]) if item[0] in order else len(order)
