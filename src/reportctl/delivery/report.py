"""What came of delivering a run: the ledger's account afterwards, and the previews of a dry run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reportctl.state.ledger import LedgerEntry, counts_by_delivery, in_status_order


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
        return counts_by_delivery(self.entries)

    @property
    def undelivered(self) -> list[LedgerEntry]:
        """Rows that did not end as sent: failed, bounced, unknown (a stopped process was sending), or still pending."""
        return [entry for entry in self.entries if entry.status != "sent"]

    def summary(self) -> str:
        """'email: 47 sent, 2 bounced, 1 failed, 1 unknown; webhook: 1 sent'."""
        return "; ".join(
            f"{channel}: " + ", ".join(f"{n} {status}" for status, n in in_status_order(by))
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
