"""``reportctl deliver RUN``, and how a run's deliveries are shown by ``render --deliver`` and ``runs show``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reportctl.cli.output import echo, local_time, print_json, progress, truncate

if TYPE_CHECKING:
    from reportctl.delivery.engine import DeliveryReport
    from reportctl.state.ledger import LedgerEntry
    from reportctl.state.models import RunRecord
    from reportctl.state.store import StateStore

RESPONSE_WIDTH = 60


def deliver(
    run: Annotated[str, typer.Argument(help="Run id, or enough of its start to be unique.", show_default=False)],
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Send again to the recipients whose delivery failed.")
    ] = False,
    resend_unknown: Annotated[
        bool,
        typer.Option(
            "--resend-unknown",
            help="Send again to the recipients whose delivery is unknown (a process stopped while sending to them): "
            "they may get it twice. Emails keep their Message-ID and webhooks their webhook-id, so receivers can drop "
            "the copy; s3 and file overwrite what they wrote; Slack posts again.",
        ),
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Only this delivery (its id or channel, e.g. email); repeatable."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the recipients and messages; send nothing, record nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Send or finish a rendered run's deliveries; recipients already sent to are never sent again."""
    from reportctl.config import find_project
    from reportctl.delivery.engine import DeliveryTarget, deliver_run
    from reportctl.delivery.run_files import run_on_this_machine
    from reportctl.errors import UsageError
    from reportctl.state import open_store

    with open_store(find_project(), create=False) as store:
        record = store.get_run(run)
        loaded = _spec_of(record)
        if loaded.spec.burst is not None and record.burst_of is None and record.trigger != "burst":
            variants = store.burst_variants(record)
            shown = "; ".join(f"reportctl deliver {v.id} ({key})" for key, v in variants.items()) or "none yet"
            raise UsageError(
                f"run {record.id} is a burst: each recipient group's variant is a run of its own, delivered only to "
                f"its group; deliver them one by one: {shown}"
            )
        record = _ready_for_delivery(store, record, loaded.project.config.state.heartbeat_timeout)
        with progress(not as_json) as say:
            # rendered on another machine (a celery worker): its files come from the artifact store
            target = DeliveryTarget.recorded(run_on_this_machine(loaded.project, record, say=say))
            report = deliver_run(
                store,
                loaded,
                target,
                retry_failed=retry_failed,
                resend_unknown=resend_unknown,
                only=[name for value in only or () for name in value.split(",") if name.strip()],
                dry_run=dry_run,
                say=say,
            )
        if record.state.value == "DISTRIBUTING" and not dry_run:
            from reportctl.delivery.message import failed_sections
            from reportctl.state.lifecycle import completed_state

            # a run with sections rendered as placeholders (on_error: placeholder) ends with warnings
            state = completed_state(failed_sections(target))
            store.transition(record.id, state, detail="delivered: " + (report.summary() or "nothing"))
        if not dry_run:
            from reportctl.state import audit

            audit.record(
                store,
                "trigger",
                report=record.report,
                run_id=record.id,
                spec_hash=record.spec_hash,
                git_commit=record.git_commit,
                detail={
                    "command": "deliver",
                    "counts": report.counts(),
                    "retry_failed": retry_failed,
                    "resend_unknown": resend_unknown,
                    "only": list(only or ()),
                },
            )
    show_delivery(report, as_json=as_json)


def show_delivery(report: DeliveryReport, *, as_json: bool = False, payload: dict[str, Any] | None = None) -> None:
    """Print what delivering did (or would do); exit code 3 when a recipient is not known to have got it: failed,
    bounced, unknown (a process stopped while sending to it) or still pending."""
    if as_json:
        print_json({**(payload or {}), "delivery": report.as_dict()})
    else:
        for line in describe_delivery(report):
            echo(line)
    if report.dry_run or not report.undelivered:
        return
    from reportctl.errors import DeliveryError
    from reportctl.state.ledger import status_counts

    run = report.run_id
    counts = status_counts(report.undelivered)
    hints = [f"`reportctl runs show {run}` lists them"]
    if counts.get("failed") or not counts.get("unknown"):
        hints.append(f"`reportctl deliver {run} --retry-failed` tries the failed ones again")
    if counts.get("unknown"):
        hints.append(f"`reportctl deliver {run} --resend-unknown` sends the unknown ones again (they may have it)")
    got = "got" if set(counts) - {"unknown"} else "is known to have got"
    raise DeliveryError(f"run {run}: not every recipient {got} the report ({_counted(counts)}); " + ", ".join(hints))


def describe_delivery(report: DeliveryReport) -> Iterator[str]:
    """Text lines: a summary per delivery, then each recipient that did not get it (or, dry, each message)."""
    for note in report.notes:
        yield f"note: {note}"
    if report.dry_run:
        yield "dry run: nothing was sent or recorded"
        for preview in report.previews:
            yield ""
            count = len(preview.recipients)
            yield f"--- {preview.delivery}: {count} recipient{'s' * (count != 1)} ---"
            if preview.skipped:
                yield f"not sent again: {', '.join(preview.skipped)}"
            yield from preview.message.splitlines()
        return
    if not report.entries:
        yield "no deliveries apply to this run"
        return
    yield f"delivered {report.summary()}"
    for entry in report.undelivered:
        yield f"  {entry.status:<8} {entry.channel:<10} {entry.recipient}  {entry.response or ''}".rstrip()


def describe_ledger(entries: list[LedgerEntry], timezone: str | None = None) -> Iterator[str]:
    """``runs show``: per delivery its counts, then every recipient with status, attempts and the last response."""
    from reportctl.state.ledger import status_counts

    yield f"  {ledger_summary(entries)}"
    unknown = sum(1 for entry in entries if entry.status == "unknown")
    if unknown:
        yield (
            f"  {unknown} unknown (a process stopped while sending; it may have arrived): "
            f"`reportctl deliver {entries[0].run_id} --resend-unknown` sends again"
        )
    by_delivery: dict[str, list[LedgerEntry]] = {}
    for entry in entries:
        by_delivery.setdefault(entry.channel, []).append(entry)
    width = max((len(e.recipient) for e in entries), default=0)
    for name, rows in by_delivery.items():
        counts = status_counts(rows)
        yield f"  {name} ({rows[0].kind}): " + ", ".join(f"{n} {status}" for status, n in counts.items())
        for row in rows:
            attempts = f"{row.attempts} attempt{'s' * (row.attempts != 1)}"
            at = local_time(row.last_attempt_at, timezone)
            yield (
                f"    {row.status:<8} {row.recipient:<{width}}  {at:<23}  {attempts:<10}"
                f"  {truncate(row.response, RESPONSE_WIDTH)}"
            ).rstrip()


def ledger_summary(entries: list[LedgerEntry]) -> str:
    """'sent to 47 of 50 (2 bounced, 1 unknown, 1 pending)': the run's deliveries in one line."""
    from reportctl.state.ledger import status_counts

    counts = status_counts(entries)
    others = _counted({status: n for status, n in counts.items() if status != "sent"})
    return f"sent to {counts.get('sent', 0)} of {len(entries)}" + (f" ({others})" if others else "")


def _counted(counts: dict[str, int]) -> str:
    """'2 bounced, 1 failed, 1 unknown': statuses in the ledger's order."""
    from reportctl.state.ledger import in_status_order

    return ", ".join(f"{n} {status}" for status, n in in_status_order(counts))


def _spec_of(record: RunRecord) -> Any:
    """The spec the run was rendered from, as it is now."""
    from pathlib import Path

    from reportctl.errors import ReportctlError
    from reportctl.spec.loader import load_spec

    if not record.spec_path or not Path(record.spec_path).is_file():
        raise ReportctlError(f"run {record.id}: its spec {record.spec_path or '(unknown)'} is gone; nothing to deliver")
    return load_spec(Path(record.spec_path))


def _ready_for_delivery(store: StateStore, record: RunRecord, heartbeat_timeout: Any) -> RunRecord:
    """The run, if it can be delivered now: rendered, its files still there, and no live process delivering it."""
    from reportctl.delivery.engine import worker_has_stopped
    from reportctl.errors import ReportctlError
    from reportctl.state import RunState

    state = record.state
    if state in (RunState.SCHEDULED, RunState.GENERATING, RunState.FORMATTING):
        raise ReportctlError(f"run {record.id} is {state.value}: it has not been rendered yet; deliver it when it is")
    if state is RunState.SKIPPED:
        raise ReportctlError(f"run {record.id} was skipped: it has no report to deliver")
    if record.artifacts_deleted_at is not None:
        raise ReportctlError(
            f"run {record.id}: its files were deleted ({record.artifacts_note}); render the report again to deliver it"
        )
    if state is RunState.DISTRIBUTING:
        beat = record.heartbeat_at or record.created_at  # stamped by the store's clock: judged by it
        if record.worker and not worker_has_stopped(record.worker, beat, heartbeat_timeout, store.clock()):
            raise ReportctlError(
                f"run {record.id} is being delivered by {record.worker} right now; wait for it to finish"
            )
    return record
