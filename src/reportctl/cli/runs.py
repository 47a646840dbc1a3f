"""``reportctl runs list`` and ``runs show``: the recorded runs of the project's reports."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reportctl.cli import runs_prune, runs_stats
from reportctl.cli.output import aligned_columns, echo, local_time, moment_option, print_json, truncate

if TYPE_CHECKING:
    from reportctl.config import Project
    from reportctl.state import RunRecord, StateChange, StateStore

app = typer.Typer(help="Recorded runs: what ran, when, how it went, and what it produced.", no_args_is_help=True)
app.command("stats")(runs_stats.stats)
app.command("prune")(runs_prune.prune)


@contextmanager
def _store(project: Project) -> Iterator[StateStore]:
    """The project's state store for reading: ``NoStateStore`` where none exists yet (none is created)."""
    from reportctl.state import open_store

    store = open_store(project, create=False)
    try:
        yield store
    finally:
        store.close()


@app.command("list")
def list_runs(
    report: Annotated[str | None, typer.Option("--report", help="Only runs of this report.")] = None,
    state: Annotated[str | None, typer.Option("--state", help="Only runs in this state, e.g. FAILED.")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only runs since a time (ISO, e.g. 2026-11-28T09:00) or for a duration (24h)."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many runs, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List recorded runs, newest first."""
    from reportctl.config import find_project
    from reportctl.errors import UsageError
    from reportctl.state import NoStateStore, RunState

    chosen_state = None
    if state is not None:
        try:
            chosen_state = RunState.parse(state)
        except ValueError as exc:
            raise UsageError(f"--state: {exc}") from None
    start = moment_option("--since", since, "24h") if since is not None else None
    project = find_project()
    try:
        with _store(project) as store:
            runs = store.list_runs(report=report, state=chosen_state, since=start, limit=limit)
    except NoStateStore:
        runs = []  # nothing recorded yet: an empty list, and still no state store
    if as_json:
        print_json([run.as_dict() for run in runs])
        return
    if not runs:
        echo("no runs recorded")
        return
    workers = any(run.worker_node for run in runs)  # rendered by Celery workers: say which
    rows = [
        (
            run.id,
            run.report,
            run.trigger,
            run.state.value,
            *((run.worker_node or "",) if workers else ()),
            local_time(run.started_at, project.config.timezone, seconds=False),
            _duration(run.duration_seconds),
            error_summary(run.error, project.root) or "",  # shortened to the room the terminal leaves
        )
        for run in runs
    ]
    header = ("RUN", "REPORT", "TRIGGER", "STATE", *(("WORKER",) if workers else ()), "STARTED", "DURATION", "ERROR")
    for line in aligned_columns(header, rows):
        echo(line)


@app.command("show")
def show(
    run: Annotated[str, typer.Argument(help="Run id, or enough of its start to be unique.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    links: Annotated[
        bool,
        typer.Option(
            "--links", help="Add presigned https download links to the files kept in the artifact store (they expire)."
        ),
    ] = False,
) -> None:
    """Show one run: times, timeline of states, parameters, artifacts, error and each recipient's delivery."""
    from reportctl.config import find_project
    from reportctl.state.ledger import DeliveryLedger, counts_by_delivery

    project = find_project()
    with _store(project) as store:
        record = store.get_run(run)
        timeline = store.timeline(record.id)
        deliveries = DeliveryLedger(store).entries(record.id)
    stored = _stored_files(record, project, links=links)
    if as_json:
        artifacts = [
            {**artifact, "link": stored.links[str(artifact["url"])]} if "url" in artifact and stored.links else artifact
            for artifact in record.artifacts
        ]
        artifacts = [  # archived by retention: the archive's signed link too, with --links
            {**a, "archive_link": stored.links[str(a["archive"])]} if str(a.get("archive")) in stored.links else a
            for a in artifacts
        ]
        print_json(
            {
                **record.as_dict(),
                "artifacts": artifacts,
                **({"artifact_store": stored.as_dict()} if stored.folder is not None else {}),
                "timeline": _timeline_json(timeline, record),
                "deliveries": {
                    "total": len(deliveries),
                    "sent": sum(1 for entry in deliveries if entry.status == "sent"),
                    "unknown": sum(1 for entry in deliveries if entry.status == "unknown"),
                    "counts": counts_by_delivery(deliveries),
                    "recipients": [entry.as_dict() for entry in deliveries],
                },
            }
        )
        return
    for line in _describe(record, timeline, project.config.timezone, stored):
        echo(line)
    if deliveries:
        from reportctl.cli.deliver import describe_ledger

        echo()
        echo("deliveries")
        for line in describe_ledger(deliveries, project.config.timezone):
            echo(line)


@dataclass(frozen=True)
class _StoredFiles:
    """Where the artifact store keeps a run's files, and (with ``--links``) a download link to each."""

    folder: str | None = None
    links: dict[str, str] = field(default_factory=dict)
    """s3:// URL -> presigned https link."""
    expiry: str | None = None

    @property
    def manifest(self) -> str | None:
        return None if self.folder is None else self.folder + "manifest.json"

    def as_dict(self) -> dict[str, Any] | None:
        if self.folder is None:
            return None
        found: dict[str, Any] = {"url": self.folder, "manifest": self.manifest}
        if self.links:
            found |= {"manifest_link": self.links[str(self.manifest)], "links_valid_for": self.expiry}
        return found


def _stored_files(record: RunRecord, project: Project, *, links: bool) -> _StoredFiles:
    """The run's folder in the artifact store, and links to its files when asked (signed locally, no request)."""
    from reportctl.artifact_store import ArtifactStore, stored_folder
    from reportctl.errors import UsageError

    folder = stored_folder(list(record.artifacts))
    if not links:
        return _StoredFiles(folder)
    archived = [str(a["archive"]) for a in record.artifacts if a.get("archive")]
    if archived:  # moved to the archive by retention (reportctl.retention): signed with state.archive's connection
        from reportctl.retention import archive_links

        signed, expiry = archive_links(project, archived)
        if folder is None:
            return _StoredFiles(None, signed, expiry)
    if folder is None:
        raise UsageError(
            f"--links: run {record.id} has no files in an artifact store; runs keep their files there once "
            "artifacts: {url: s3://bucket/prefix/} is set in reportctl.yaml"
        )
    store = ArtifactStore.of(project)
    if store is None:
        raise UsageError(
            f"--links: run {record.id} kept its files in {folder}, but {project.config_file or 'reportctl.yaml'} "
            "sets no artifacts: to sign links with; set artifacts: {url: ...} with the store's endpoint and credentials"
        )
    from reportctl.spec.types import format_duration_spec

    urls = [str(a["url"]) for a in record.artifacts if "url" in a] + [folder + "manifest.json"]
    with store:
        kept = {url: store.link(url) for url in urls}
    return _StoredFiles(folder, kept | (signed if archived else {}), format_duration_spec(store.settings.link_expiry))


_LOCATED = re.compile(r"^(?P<file>/[^:\n]+):(?P<line>\d+):(?P<column>\d+): (?P<message>.*)$", re.DOTALL)


def error_summary(error: str | None, root: Path) -> str | None:
    """A recorded error as a list shows it: the message first, then where (a spec problem recorded as
    '/abs/path/spec.yaml:12:3: field: message' reads 'field: message (specs/spec.yaml:12)')."""
    located = _LOCATED.match(error or "")
    if located is None:
        return error
    file = Path(located["file"])
    shown = file.relative_to(root) if file.is_relative_to(root) else file
    return f"{located['message']} ({shown}:{located['line']})"


def parameter_text(value: Any, timezone: str) -> str:
    """A recorded parameter as a person reads it: a period as its name and days, not a JSON object."""
    if not (isinstance(value, dict) and {"name", "start", "end"} <= value.keys()):
        return str(value)
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    try:
        start, end = datetime.fromisoformat(str(value["start"])), datetime.fromisoformat(str(value["end"]))
    except ValueError:
        return str(value)
    zone = ZoneInfo(timezone)
    first = start.astimezone(zone).date()
    last = (end.astimezone(zone) - timedelta(microseconds=1)).date()  # the end is exclusive
    days = str(first) if first == last else f"{first} to {last}"
    return f"{value['name']} ({days})"


def _duration(seconds: float | None) -> str:
    from reportctl.formats import format_duration

    return "-" if seconds is None else format_duration(seconds)


def _spent(timeline: list[StateChange], record: RunRecord) -> list[float | None]:
    """Seconds spent in each state: until the next one; the last state of a live run until now."""
    from datetime import UTC

    spent: list[float | None] = []
    for index, change in enumerate(timeline):
        if index + 1 < len(timeline):
            spent.append((timeline[index + 1].at - change.at).total_seconds())
        elif not change.state.terminal:
            spent.append((datetime.now(UTC) - change.at).total_seconds())
        else:
            spent.append(None)
    return spent


def _timeline_json(timeline: list[StateChange], record: RunRecord) -> list[dict[str, Any]]:
    return [
        {**change.as_dict(), "seconds": None if seconds is None else round(seconds, 3)}
        for change, seconds in zip(timeline, _spent(timeline, record), strict=True)
    ]


def _describe(record: RunRecord, timeline: list[StateChange], timezone: str, stored: _StoredFiles) -> Iterator[str]:

    yield f"run        {record.id}"
    yield f"report     {record.report}"
    yield f"state      {record.state.value}"
    yield f"trigger    {record.trigger}" + (f" (attempt {record.attempt})" if record.attempt > 1 else "")
    if record.scheduled_for:
        yield f"scheduled  {local_time(record.scheduled_for, timezone)}"
    if record.planned_at:
        yield f"planned    {local_time(record.planned_at, timezone)}"
    yield f"started    {local_time(record.started_at, timezone)}"
    yield f"finished   {local_time(record.finished_at, timezone)}"
    yield f"duration   {_duration(record.duration_seconds)}"
    if record.spec_path:
        commit = f", commit {record.git_commit[:12]}" if record.git_commit else ""
        commit += " with local edits" if record.git_dirty else ""
        at = f" at {record.revision}" if record.revision else ""
        yield f"spec       {record.spec_path}{at} (hash {record.spec_hash[:12] or '-'}{commit})"
    if record.snapshot:
        yield f"snapshot   {record.snapshot}"
    if record.viewer:
        yield f"viewer     {record.viewer}"
    if record.burst_of:
        members = ", ".join(record.audience or ())
        yield f"burst of   {record.burst_of}, for {members or 'nobody'}"
    if record.worker:
        yield (
            f"worker     {record.worker_node} ({record.worker})"
            if record.worker_node
            else f"worker     {record.worker}"
        )
    yield ""
    yield "timeline"
    for change, seconds in zip(timeline, _spent(timeline, record), strict=True):
        took = "" if seconds is None else _duration(seconds)
        detail = f"  {truncate(change.detail, 80)}" if change.detail else ""
        yield f"  {change.state.value:<13}{local_time(change.at, timezone)}  {took:>8}{detail}".rstrip()
    if record.parameters:
        yield ""
        yield "parameters"
        for name, value in record.parameters.items():
            yield f"  {name} = {parameter_text(value, timezone)}"
    if record.artifacts or record.artifacts_note:
        yield ""
        yield from _describe_artifacts(record, timezone, stored)
    if record.error:
        yield ""
        yield "error"
        for line in record.error.strip().splitlines():
            yield f"  {line}"


def _describe_artifacts(record: RunRecord, timezone: str, stored: _StoredFiles) -> Iterator[str]:
    """Each artifact with its size and local path, then its URL in the artifact store (and link, with --links)."""
    from reportctl.formats import format_bytes

    yield "artifacts" + (
        f" ({record.artifacts_note} on {local_time(record.artifacts_deleted_at, timezone)})"
        if record.artifacts_note
        else ""
    )
    for artifact in record.artifacts:
        path = Path(str(artifact.get("path", "")))
        if not path.is_absolute() and record.output_dir:
            path = Path(record.output_dir) / path
        size = format_bytes(artifact.get("bytes")) if artifact.get("bytes") is not None else "?"
        yield f"  {artifact.get('format', '?'):<6}{size:>10}  {path}"
        for url in (artifact.get("url"), artifact.get("archive")):  # the artifact store's, retention's archive
            if url:
                yield f"{'':<18}  {url}"
                if str(url) in stored.links:
                    yield f"{'':<18}  {stored.links[str(url)]}"
    if stored.folder is not None:
        yield f"  {'stored':<16}  {stored.folder}" + (f" (links valid for {stored.expiry})" if stored.links else "")
    if record.archive_url:
        valid = f" (links valid for {stored.expiry})" if stored.links and stored.folder is None else ""
        yield f"  {'archived':<16}  {record.archive_url}{valid}"
