"""``reportctl runs prune``: apply retention now, or (``--dry-run``) say what it would do."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from reportctl.cli.output import aligned_columns, echo, error, print_json

if TYPE_CHECKING:
    from reportctl.retention import PruneReport


def prune(
    report: Annotated[str | None, typer.Option("--report", help="Only this report's runs.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would go; change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Forget runs beyond each report's keep_runs and delete or archive files past its artifacts age
    (retention: in the spec, state.history, state.retention and state.archive in reportctl.yaml). The schedule
    daemon does this every hour and each run for its own report; a run with a delivery pending is never touched."""
    from reportctl.cli.runs import _store
    from reportctl.config import find_project
    from reportctl.retention import PruneReport, RetentionError, prune
    from reportctl.state import NoStateStore

    project = find_project()
    try:
        with _store(project) as store:
            result = prune(store, project, report=report, dry_run=dry_run)
    except NoStateStore:
        result = PruneReport(dry_run)
    if as_json:
        print_json(result.as_dict())
    else:
        for line in describe(result):
            echo(line)
    if result.failures:
        if not as_json:
            for failure in result.failures:
                error(failure)
        many = len(result.failures)
        raise RetentionError(f"{many} run{'s' if many != 1 else ''} could not be archived; their files were kept")


def describe(result: PruneReport) -> list[str]:
    """Each policy, a line per run that goes (or would), then the totals."""
    from reportctl.formats import format_bytes

    lines = [f"{report}: {policy}" for report, policy in sorted(result.policies.items())]
    lines += [f"skipped {reason}" for reason in result.skipped]
    if result.runs:
        rows = [
            (run.run_id, run.report, run.action, str(run.files), format_bytes(run.bytes), run.archive or "")
            for run in result.runs
        ]
        lines += ["", *aligned_columns(("RUN", "REPORT", "ACTION", "FILES", "SIZE", "ARCHIVE"), rows)]
    if result.runs or result.policies:
        lines += ["", result.summary()]
    else:
        lines.append("no runs recorded")
    return lines
