"""Sending one delivery's recipients: batches under the rate limit, claimed before and recorded after each attempt.

Temporary failures are retried after the delivery's backoff (1 s, 2 s, 4 s by default) or what the provider asked
for, at most five minutes; a channel that raises anything else fails its batch, never the other deliveries.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from reportctl.delivery.base import ChannelOptions, Outcome, PermanentFailure, Recipient, TemporaryFailure
from reportctl.state.ledger import DeliveryLedger

if TYPE_CHECKING:
    from reportctl.delivery.base import Channel

MAX_RETRY_AFTER = 300.0
"""The longest wait a provider's Retry-After can impose before a retry, in seconds."""
RESPONSE_LIMIT = 1000


def send_all(
    ledger: DeliveryLedger,
    channel: Channel,
    options: ChannelOptions,
    todo: Sequence[list[tuple[int, Recipient]]],
    worker: str,
) -> None:
    """Send ``todo`` in batches, under the rate limit, ``channel.concurrency`` batches at a time.

    Each list in ``todo`` is cut into batches of its own, so recipients first sent together in one message are sent
    together again (``deliver --resend-unknown``), as the same message with the same id.
    """
    from reportctl.delivery.ratelimit import WindowRateLimit

    limit = WindowRateLimit(channel.rate_limit) if channel.rate_limit else None
    size = max(1, channel.batch_size if limit is None else min(channel.batch_size, limit.limit))
    batches = [group[start : start + size] for group in todo for start in range(0, len(group), size)]
    if not batches:
        return
    sender = _BatchSender(ledger, channel, options, worker, limit)
    if channel.concurrency <= 1 or len(batches) == 1:
        for batch in batches:
            sender.send(batch)
        return
    with ThreadPoolExecutor(max_workers=channel.concurrency, thread_name_prefix=f"deliver-{options.name}") as pool:
        for _ in pool.map(sender.send, batches):
            pass


class _BatchSender:
    """One batch through claim, attempts with backoff, and the record of each recipient's outcome."""

    def __init__(
        self, ledger: DeliveryLedger, channel: Channel, options: ChannelOptions, worker: str, limit: Any
    ) -> None:
        self.ledger = ledger
        self.channel = channel
        self.options = options
        self.worker = worker
        self.limit = limit

    def send(self, batch: list[tuple[int, Recipient]]) -> None:
        """Claim, send, record, and again for the temporary failures; a row is claimed only while in flight."""
        pending, attempt = batch, 0
        while pending:
            claimed = set(self.ledger.claim([row_id for row_id, _ in pending], self.worker, _now()))
            pending = [(row_id, recipient) for row_id, recipient in pending if row_id in claimed]
            if not pending:
                return  # another process holds them, or sent them while this one waited to retry
            outcomes = self._attempt([recipient for _, recipient in pending])
            records, again, waits = [], [], []
            last = attempt >= self.options.retries
            for row_id, recipient in pending:
                outcome = outcomes.get(recipient.address) or Outcome("failed", "the channel gave no result for it")
                response = _response(outcome.response)
                if outcome.status == "retry" and not last:
                    again.append((row_id, recipient))
                    records.append((row_id, "pending", response))
                    waits.append(outcome.retry_after)
                elif outcome.status == "retry":
                    tries = attempt + 1
                    records.append((row_id, "failed", f"{response} (gave up after {tries} attempt{'s' * (tries > 1)})"))
                else:
                    records.append((row_id, outcome.status, response))
            self.ledger.record(records, self.worker)
            if again:
                time.sleep(self._delay(attempt, waits))
            pending, attempt = again, attempt + 1

    def _attempt(self, recipients: list[Recipient]) -> Mapping[str, Outcome]:
        units = len(recipients)
        if self.limit is not None:
            self.limit.acquire(units)
        try:
            return self.channel.send(recipients)
        except TemporaryFailure as exc:
            return {r.address: Outcome("retry", str(exc), exc.retry_after) for r in recipients}
        except PermanentFailure as exc:
            return {r.address: Outcome("failed", str(exc)) for r in recipients}
        except Exception as exc:  # a channel's bug must not stop the other recipients' deliveries
            message = f"{self.options.channel} channel error: {type(exc).__name__}: {exc}"
            return {r.address: Outcome("failed", message) for r in recipients}
        finally:
            if self.limit is not None:
                self.limit.release(units)

    def _delay(self, attempt: int, asked: list[float | None]) -> float:
        backoff: float = self.options.backoff.total_seconds() * 2**attempt
        requested = max((float(a) for a in asked if a is not None), default=0.0)
        return max(backoff, min(requested, MAX_RETRY_AFTER))


def _response(text: str) -> str:
    from reportctl.secrets import redact

    cleaned = redact(" ".join(text.split()))
    return cleaned if len(cleaned) <= RESPONSE_LIMIT else cleaned[: RESPONSE_LIMIT - 3] + "..."


def _now() -> datetime:
    return datetime.now(UTC)
