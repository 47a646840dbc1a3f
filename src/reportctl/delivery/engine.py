"""Delivering a run: resolve its recipients, plan them in the ledger, send in batches, record every outcome.

For each delivery of the spec that applies (``when``), channels that publish links (s3) first:
build the channel with its secrets resolved, resolve recipients, plan a ledger row per recipient, then send batches
under the channel's rate limit, ``concurrency`` at a time. Each batch is claimed in the ledger before it is sent and
recorded after; temporary failures are retried after 1 s, 2 s, 4 s (or what the provider asked, up to five minutes).
Rows already sent or bounced are never sent again; failed ones only with ``retry_failed``. A row a stopped process
was sending becomes ``unknown``, and is sent again only with ``resend_unknown``, in the batch it was first sent in, so
the copy is the same message (email's Message-ID, the webhook-id) and its receiver can drop it. A delivery with
``encrypt`` sends each password group's encrypted copies through a channel of its own (``delivery.encrypted``).
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from reportctl.delivery.base import (
    ChannelOptions,
    DeliveryContext,
    DeliveryTarget,
    PermanentFailure,
    Recipient,
    TemporaryFailure,
)
from reportctl.delivery.report import DeliveryReport, Preview
from reportctl.delivery.sending import send_all
from reportctl.errors import ReportctlError, UsageError, first_line, one_of
from reportctl.state.ledger import FINAL_STATUSES, DeliveryLedger, LedgerEntry, PlannedRecipient
from reportctl.state.models import utc_text

if TYPE_CHECKING:
    from reportctl.config import Project
    from reportctl.delivery.base import Channel
    from reportctl.delivery.recipients import Directory
    from reportctl.spec.loader import LoadedSpec
    from reportctl.state.models import RunRecord
    from reportctl.state.store import StateStore

__all__ = [
    "DeliveryReport",
    "DeliveryTarget",
    "Preview",
    "deliver_run",
    "resume_delivery",
    "with_secrets",
    "worker_has_stopped",
]

SETUP = "(delivery)"
"""The ledger's recipient for a delivery that failed before it had recipients (a missing secret, a bad template)."""

Say = Callable[[str], None]


def deliver_run(
    store: StateStore,
    loaded: LoadedSpec,
    target: DeliveryTarget,
    *,
    retry_failed: bool = False,
    resend_unknown: bool = False,
    only: Sequence[str] = (),
    dry_run: bool = False,
    say: Say | None = None,
) -> DeliveryReport:
    """Deliver ``target`` through every delivery of ``loaded`` that applies; the ledger says how each recipient went.

    ``retry_failed`` sends the failed recipients again; ``resend_unknown`` those a stopped process was sending,
    which may have got it already (at least once instead of at most once).
    """
    say = say or (lambda _message: None)
    ledger = DeliveryLedger(store)
    report = DeliveryReport(target.run_id, dry_run=dry_run)
    deliveries = _chosen(loaded, target, only)
    if not deliveries:
        report.entries = ledger.entries(target.run_id)
        return report
    if not dry_run:
        _release_stopped_claims(ledger, target.run_id, loaded.project.config.state.heartbeat_timeout, report)
    context = DeliveryContext.of(
        target,
        timezone=loaded.spec.timezone or loaded.project.config.timezone,
        project=loaded.project,
        people=_directory(loaded),
        dry_run=dry_run,
    )
    worker = _worker()
    again = _SendAgain(failed=retry_failed, unknown=resend_unknown)
    for options in deliveries:
        say(f"delivering {options.name}")
        _deliver_one(ledger, context, options, target, worker, again, report)
    report.entries = ledger.entries(target.run_id)
    if not dry_run:
        from reportctl.state.audit import record_deliveries

        chosen = {options.name for options in deliveries}
        finished = [entry for entry in report.entries if entry.channel in chosen]
        record_deliveries(store, loaded.spec.name, target.run_id, finished, resend=retry_failed or resend_unknown)
    unknown = sum(1 for entry in report.entries if entry.status == "unknown")
    if retry_failed and unknown and not resend_unknown:
        report.notes.append(
            f"--retry-failed leaves alone the {_recipients(unknown)} whose delivery is unknown (a process stopped while"
            " sending to them, so they may have it already); --resend-unknown sends them again"
        )
    return report


@dataclass(frozen=True)
class _SendAgain:
    """Which finished rows to send again: ``failed`` (``--retry-failed``), ``unknown`` (``--resend-unknown``)."""

    failed: bool = False
    unknown: bool = False

    def statuses(self) -> set[str]:
        return {status for status, wanted in (("failed", self.failed), ("unknown", self.unknown)) if wanted}


def resume_delivery(store: StateStore, project: Project, run: RunRecord) -> DeliveryReport:
    """Deliver what a run's lost worker left pending, with the run's spec as it is now; what it was sending at the
    moment it was lost becomes unknown and is not sent again. The worker may have been another machine: files not
    here are fetched from the artifact store (``ArtifactFetchError``, nothing sent, when one cannot be)."""
    from pathlib import Path

    from reportctl.delivery.run_files import run_on_this_machine
    from reportctl.spec.loader import load_spec

    loaded = load_spec(Path(run.spec_path), project)
    return deliver_run(store, loaded, DeliveryTarget.recorded(run_on_this_machine(project, run)))


def _chosen(loaded: LoadedSpec, target: DeliveryTarget, only: Sequence[str]) -> list[ChannelOptions]:
    """The deliveries that apply to this run, publishers (s3) first; ``only`` names deliveries or channels."""
    from reportctl.plugins import CHANNELS, load_plugin

    deliveries: list[ChannelOptions] = list(loaded.deliveries)
    if only:
        known = {d.name for d in deliveries} | {d.channel for d in deliveries}
        unknown = [name for name in only if name not in known]
        if unknown:
            raise UsageError(
                f"--only: {loaded.spec.name} has no delivery '{unknown[0]}'; its deliveries: "
                f"{one_of(sorted(known)) if known else 'none'}"
            )
        deliveries = [d for d in deliveries if d.name in only or d.channel in only]
    wanted = {"completed": ("success", "always"), "failed": ("failure", "always")}[target.status]
    deliveries = [d for d in deliveries if d.when in wanted]
    return sorted(deliveries, key=lambda d: not getattr(load_plugin(CHANNELS, d.channel), "PUBLISHES", False))


def _directory(loaded: LoadedSpec) -> Directory:
    """The project's people, read when a channel first looks up a team or list (never, for most deliveries).

    A directory that cannot be read fails only the team: and list: recipients.
    """
    from reportctl.delivery.directory import load_directory
    from reportctl.delivery.recipients import Directory

    def read() -> Directory:
        try:
            return load_directory(loaded.project)
        except ReportctlError as exc:
            return Directory(origin=f"the directory, which could not be read ({first_line(str(exc))})")

    return Directory(loader=read)


def _deliver_one(
    ledger: DeliveryLedger,
    context: DeliveryContext,
    options: ChannelOptions,
    target: DeliveryTarget,
    worker: str,
    again: _SendAgain,
    report: DeliveryReport,
) -> None:
    from reportctl.delivery.encrypted import channel_for, encrypted_channels, send_encrypted
    from reportctl.plugins import CHANNELS, load_plugin
    from reportctl.secrets import redact

    hashes = sorted(a.sha256 for a in target.artifacts)
    with ExitStack() as cleanup:  # closes the channels and removes encrypted copies, however the delivery ends
        try:
            channel: Channel = load_plugin(CHANNELS, options.channel)(with_secrets(options), context)
            cleanup.callback(channel.close)
            recipients = channel.recipients()
            if target.audience is not None:  # a burst variant goes to its own group, whoever the spec names now
                recipients = [r for r in recipients if r.address.lower() in target.audience]
            # every file is encrypted before anything is sent: a missing secret leaves the whole delivery unsent
            recipients, encrypted = encrypted_channels(options, context, recipients, cleanup)
        except (ReportctlError, PermanentFailure, TemporaryFailure, ValueError) as exc:
            message = redact(first_line(str(exc)))
            if context.dry_run:
                report.previews.append(Preview(options.name, [], [], f"cannot deliver: {message}"))
                return
            row = ledger.plan(
                target.run_id,
                options.name,
                options.channel,
                [PlannedRecipient(SETUP, "-", _key(target.run_id, options.name, SETUP, hashes))],
            )[0]
            if row.status != "sent":
                ledger.record([(row.id, "failed", message)], None)
            return
        planned = [
            PlannedRecipient(r.address, r.role, _key(target.run_id, options.name, r.destination, hashes))
            for r in recipients
        ]
        if context.dry_run:
            sendable = [r for r in recipients if not r.problem]
            shown = channel_for(encrypted, sendable[0]) if encrypted and sendable else channel
            report.previews.append(_preview(ledger, shown, options, recipients, planned, again))
            return
        ledger.forget(target.run_id, options.name, SETUP)
        rows = ledger.plan(target.run_id, options.name, options.channel, planned)
        planned_rows = list(zip(rows, recipients, strict=True))
        # a recipient that cannot be sent to (malformed, an empty team) is failed once, and stays failed
        ledger.record(
            [(row.id, "failed", r.problem) for row, r in planned_rows if r.problem and _unclaimed_pending(row)], None
        )
        sendable_rows = [(row, r) for row, r in planned_rows if not r.problem]
        failed = [row.id for row, _ in sendable_rows if again.failed and row.status == "failed"]
        unknown = [(row, r) for row, r in sendable_rows if again.unknown and row.status == "unknown"]
        ledger.reopen(failed, "failed")
        ledger.reopen([row.id for row, _ in unknown], "unknown")
        fresh = [
            (row.id, r)
            for row, r in sendable_rows
            if row.status == "pending" or (again.failed and row.status == "failed")
        ]
        todo = [*_as_first_sent(unknown), fresh]
        if encrypted:
            send_encrypted(ledger, encrypted, options, context, todo, worker)
        else:
            send_all(ledger, channel, options, todo, worker)
        if unknown:
            report.notes.append(_resend_note(channel, options, len(unknown)))
        # an encrypted delivery's links lead to its own copies, which no other delivery may hand out
        if (
            getattr(channel, "PUBLISHES", False)
            and not encrypted
            and all(e.status == "sent" for e in ledger.entries(target.run_id) if e.channel == options.name)
        ):
            context.links.update(channel.links())


def _unclaimed_pending(row: LedgerEntry) -> bool:
    return row.status == "pending" and row.claimed_by is None


def _as_first_sent(rows: Sequence[tuple[LedgerEntry, Recipient]]) -> list[list[tuple[int, Recipient]]]:
    """Unknown rows in the batches they were first sent in, in ledger order.

    A claim stamps every row of its batch with one ``last_attempt_at``; sent together again, they make the same
    message, and an email's Message-ID depends on whom the message is addressed to.
    """
    batches: dict[datetime | None, list[tuple[int, Recipient]]] = {}
    for row, recipient in rows:
        batches.setdefault(row.last_attempt_at, []).append((row.id, recipient))
    return list(batches.values())


def _resend_note(channel: Channel, options: ChannelOptions, count: int) -> str:
    """What sending again to ``count`` unknown recipients means for them: can they drop the copy?"""
    effect = getattr(channel, "RESEND_EFFECT", None) or (
        f"the {options.channel} channel gives receivers no id to drop a copy by: they may get the report twice"
    )
    return f"{options.name}: tried again the {_recipients(count)} whose first send may have arrived; {effect}"


def _recipients(count: int) -> str:
    return f"{count} recipient{'s' * (count != 1)}"


def _preview(
    ledger: DeliveryLedger,
    channel: Channel,
    options: ChannelOptions,
    recipients: list[Recipient],
    planned: list[PlannedRecipient],
    again: _SendAgain,
) -> Preview:
    """What would be sent, leaving out the recipients the ledger holds as sent or bounced, and as failed or unknown
    unless they are to be sent again."""
    left = set(FINAL_STATUSES) - again.statuses()
    done = {
        key: entry.status
        for key, entry in ledger.by_keys([p.idempotency_key for p in planned]).items()
        if entry.status in left
    }
    pairs = list(zip(recipients, planned, strict=True))
    sending = [r for r, p in pairs if p.idempotency_key not in done]
    skipped = [f"{r.address} ({done[p.idempotency_key]})" for r, p in pairs if p.idempotency_key in done]
    problems = [f"{r.address}: {r.problem}" for r in sending if r.problem]
    good = [r for r in sending if not r.problem]
    message = channel.preview(good[: channel.batch_size]) if good else "(nothing to send)"
    if problems:
        message += "\n\nnot sendable:\n" + "\n".join(f"  {p}" for p in problems)
    return Preview(options.name, [r.address for r in good], skipped, message)


def _release_stopped_claims(
    ledger: DeliveryLedger, run_id: str, heartbeat_timeout: timedelta, report: DeliveryReport
) -> None:
    """Rows a stopped process was sending become unknown: they may have arrived, so they are not sent again unasked."""
    now = _now()
    for worker, last in ledger.claims(run_id).items():
        if not worker_has_stopped(worker, last, heartbeat_timeout, now):
            continue
        # it was alive when it last claimed, and is found gone now: it stopped in between
        when = f"between {utc_text(last)} and {utc_text(now)}" if last else f"before {utc_text(now)}"
        count = ledger.release_claims(
            run_id,
            [worker],
            f"interrupted while sending: {worker} stopped {when}; it may have arrived"
            f" (`reportctl deliver {run_id} --resend-unknown` sends it again)",
        )
        if count:
            report.notes.append(
                f"{_recipients(count)} {'were' if count != 1 else 'was'} being sent to when {worker} stopped ({when});"
                " recorded unknown rather than risk a second copy (--resend-unknown sends them again)"
            )


def worker_has_stopped(worker: str, last: datetime | None, heartbeat_timeout: timedelta, now: datetime) -> bool:
    """Whether the process ``host:pid`` is gone: asked directly on this host, judged by silence elsewhere."""
    from reportctl.state.liveness import worker_alive_here

    host, _, pid = worker.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return not worker_alive_here(worker)
    return last is None or now - last > heartbeat_timeout


def with_secrets(options: ChannelOptions) -> ChannelOptions:
    """``options`` with every ``${secret:NAME}`` in its strings replaced by the secret's value."""
    from reportctl.secrets import SECRET_REFERENCE, resolve_secrets

    def resolve(value: Any) -> Any:
        if isinstance(value, str):
            return resolve_secrets(value) if SECRET_REFERENCE.search(value) else value
        if isinstance(value, list):
            return [resolve(item) for item in value]
        if isinstance(value, dict):
            return {key: resolve(item) for key, item in value.items()}
        return value

    updates = {name: resolve(getattr(options, name)) for name in type(options).model_fields}
    return options.model_copy(update=updates)


def _key(run_id: str, delivery: str, destination: str, hashes: Sequence[str]) -> str:
    """The idempotency key: run, delivery, recipient and the artifacts' hashes."""
    text = "\0".join([run_id, delivery, destination.strip().lower(), *hashes])
    return hashlib.sha256(text.encode()).hexdigest()


def _worker() -> str:
    from reportctl.state.liveness import worker_name

    return worker_name()


def _now() -> datetime:
    return datetime.now(UTC)
