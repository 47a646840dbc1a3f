"""Retention: forget a report's runs beyond its newest ``keep_runs``, and delete or archive files past their age.

Each report's policy is its spec's ``retention:`` over the project's defaults (``reportctl.spec.retention``). It is
applied after each of its runs, by ``reportctl runs prune`` and, once an hour, by the leading schedule daemon.

Archiving moves a run's files to ``<archive><report>/<run-id>/`` with the s3 channel's client (multipart uploads,
retries, server-side encryption), in three steps, each of which a later prune resumes after: upload every file (a
failure deletes nothing and leaves the run as it was: the next prune tries again); record in the state store where
each file went (``archive_url``, ``archived_at``, each artifact's ``archive``); then delete the local files and
note it. The run stays: ``runs show`` lists each file with its archive URL and, with ``--links``, a signed link.
Forgetting a run later leaves its archived copy alone: the archive bucket's own lifecycle rules decide how long it
is kept.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from reportctl.errors import ReportctlError

if TYPE_CHECKING:
    from reportctl.artifact_store import ArtifactStore
    from reportctl.config import Project
    from reportctl.spec.retention import Retention, RetentionPolicy
    from reportctl.state.models import RunRecord
    from reportctl.state.store import StateStore

Action = Literal["forget", "archive", "delete"]


class RetentionError(ReportctlError):
    """Retention could not archive a run's files (nothing of that run was deleted), or cannot reach the archive."""


@dataclass(frozen=True)
class PrunedRun:
    """What retention did (or, in a dry run, would do) to one run."""

    run_id: str
    report: str
    action: Action
    """forget: the run and its files go; archive: its files move to ``archive``; delete: its files go."""
    files: int
    bytes: int
    archive: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_id, "report": self.report, "action": self.action, "files": self.files,
            "bytes": self.bytes, "archive": self.archive,
        }  # fmt: skip


@dataclass
class PruneReport:
    """Everything one prune did, or would do with ``dry_run``; ``failures`` are runs left as they were."""

    dry_run: bool
    runs: list[PrunedRun] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    policies: dict[str, str] = field(default_factory=dict)
    """Report -> its policy in words (``RetentionPolicy.describe``)."""
    skipped: list[str] = field(default_factory=list)
    """Why reports were left alone (a spec that could not be read)."""

    def count(self, action: Action) -> int:
        return sum(1 for run in self.runs if run.action == action)

    @property
    def files(self) -> int:
        return sum(run.files for run in self.runs)

    @property
    def bytes(self) -> int:
        return sum(run.bytes for run in self.runs)

    def summary(self) -> str:
        """``forgot 3 runs, archived the files of 2, deleted the files of 1: 14 files, 2.1 MB``."""
        from reportctl.formats import format_bytes

        verbs = ("would forget", "would archive", "would delete") if self.dry_run else ("forgot", "archived", "deleted")
        parts = [f"{verbs[0]} {_runs(self.count('forget'))}"]
        parts.append(f"{verbs[1]} the files of {_runs(self.count('archive'))}")
        parts.append(f"{verbs[2]} the files of {_runs(self.count('delete'))}")
        size = f"{self.files} file{'s' if self.files != 1 else ''}, {format_bytes(self.bytes)}"
        return ", ".join(parts) + f": {size}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "runs": [run.as_dict() for run in self.runs],
            "totals": {
                "forgotten": self.count("forget"), "archived": self.count("archive"),
                "deleted": self.count("delete"), "files": self.files, "bytes": self.bytes,
            },
            "policies": self.policies,
            "failures": self.failures,
            "skipped": self.skipped,
        }  # fmt: skip


def project_policies(project: Project, report: str | None = None) -> tuple[dict[str, RetentionPolicy], list[str]]:
    """Each report's policy from its spec (abstract bases left out), and the spec files that could not be read.
    With ``report``, only that report's."""
    from reportctl.schedule.specs import spec_files
    from reportctl.spec.loader import load_spec
    from reportctl.spec.retention import retention_policy

    policies: dict[str, RetentionPolicy] = {}
    unread: list[str] = []
    for file in spec_files(project.spec_dirs):
        try:
            spec = load_spec(file, project, check=False).spec
        except ReportctlError:
            unread.append(str(file))
            continue
        if spec.abstract or (report is not None and spec.name != report):
            continue
        policies.setdefault(spec.name, retention_policy(spec.name, spec.retention, project.config))
    return policies, unread


def prune(
    store: StateStore,
    project: Project,
    *,
    report: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PruneReport:
    """Apply every report's policy (or ``report``'s alone). Reports with runs in the store but no spec take the
    project's defaults, unless some spec file could not be read (it may be theirs): then they are left alone."""
    from reportctl.spec.retention import retention_policy
    from reportctl.state.retention import reports_in_store

    policies, unread = project_policies(project, report)
    result = PruneReport(dry_run)
    for name in reports_in_store(store):
        if report is not None and name != report:
            continue
        policy = policies.get(name)
        if policy is None and unread:
            result.skipped.append(f"{name}: no spec found and {len(unread)} spec file(s) could not be read")
            continue
        policy = policy or retention_policy(name, None, project.config)
        prune_report(store, project, policy, dry_run=dry_run, now=now, into=result)
    return result


def prune_report(
    store: StateStore,
    project: Project,
    policy: RetentionPolicy,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    into: PruneReport | None = None,
) -> PruneReport:
    """Apply one report's policy: forget its runs beyond ``keep_runs``, then archive or delete the files past
    ``artifacts``. A run whose files cannot be archived is left as it was and named in ``failures``."""
    from reportctl.state.retention import delete_run_files, forget_runs, runs_beyond, runs_with_files_due

    now = now or datetime.now(UTC)
    result = into if into is not None else PruneReport(dry_run)
    result.policies[policy.report] = policy.describe()
    forgotten: set[str] = set()
    if policy.keep_runs is not None:
        doomed = runs_beyond(store, policy.report, policy.keep_runs)
        # the rows first, then the files of the runs that went: a run whose delivery was retried meanwhile stays whole
        forgotten = forget_runs(store, [run.id for run in doomed]) if not dry_run and doomed else set()
        for run in doomed:
            if dry_run or run.id in forgotten:
                files, size = _local_files(run)
                result.runs.append(PrunedRun(run.id, run.report, "forget", files, size))
            if run.id in forgotten:
                delete_run_files(run)
        forgotten |= {run.id for run in doomed}
    if policy.artifacts is None:
        return result
    due = [run for run in runs_with_files_due(store, policy.report, policy.artifacts, now) if run.id not in forgotten]
    if not due:
        return result
    try:
        archive = _archive_store(project, policy) if policy.archive and not dry_run else None
    except RetentionError as exc:  # a bad archive setting: say so, and delete nothing the archive should keep
        result.failures.append(f"{policy.report}: files of {_runs(len(due))} not archived, nothing deleted: {exc}")
        return result
    try:
        for run in due:
            _expire(store, run, policy, archive, now, result)
    finally:
        if archive is not None:
            archive.close()
    return result


def housekeeping_retention(
    store: StateStore, project: Project, report: str, retention: Retention | None
) -> PruneReport:
    """After a run of ``report``: its policy applied as ``runs prune --report`` would."""
    from reportctl.spec.retention import retention_policy

    return prune_report(store, project, retention_policy(report, retention, project.config))


def archive_links(project: Project, urls: Iterable[str]) -> tuple[dict[str, str], str]:
    """Presigned https links to archived files (s3:// URLs), signed with ``state.archive``'s connection; and how
    long they stay valid, in words."""
    from reportctl.spec.types import format_duration_spec

    wanted = list(urls)
    if not wanted:
        return {}, ""
    store = _connected(project, wanted[0], "runs show --links")
    with store:
        return {url: store.link(url) for url in wanted}, format_duration_spec(store.settings.link_expiry)


def _expire(
    store: StateStore,
    run: RunRecord,
    policy: RetentionPolicy,
    archive: ArtifactStore | None,
    now: datetime,
    result: PruneReport,
) -> None:
    from reportctl.spec.types import format_duration_spec
    from reportctl.state.retention import delete_run_files, record_files_deleted

    files, size = _local_files(run)
    age = format_duration_spec(policy.artifacts) if policy.artifacts else "?"
    if run.archived_at is not None:  # archived by a prune that stopped before deleting: finish it
        result.runs.append(PrunedRun(run.id, run.report, "archive", files, size, run.archive_url))
        if not result.dry_run:
            delete_run_files(run)
            record_files_deleted(store, run.id, f"artifacts archived to {run.archive_url} after {age} retention", now)
        return
    if policy.archive is None:
        result.runs.append(PrunedRun(run.id, run.report, "delete", files, size))
        if not result.dry_run:
            delete_run_files(run)
            record_files_deleted(store, run.id, f"artifacts deleted after {age} retention", now)
        return
    folder = f"{policy.archive}{run.report}/{run.id}/"
    if result.dry_run or archive is None:
        result.runs.append(PrunedRun(run.id, run.report, "archive", files, size, folder))
        return
    try:
        stored = archive.keep(_as_result(run))
    except ReportctlError as exc:
        result.failures.append(f"run {run.id} ({run.report}): files not archived, nothing deleted: {exc}")
        return
    _record_archive(store, run, stored.folder, [a.url for a in stored.artifacts], now)
    delete_run_files(run)
    record_files_deleted(store, run.id, f"artifacts archived to {stored.folder} after {age} retention", now)
    result.runs.append(PrunedRun(run.id, run.report, "archive", files, size, stored.folder))


def _record_archive(store: StateStore, run: RunRecord, folder: str, urls: list[str | None], now: datetime) -> None:
    """Each artifact's ``archive`` URL (the uploads come back in the order of the run's artifacts) and the folder."""
    from reportctl.state.retention import record_archived

    artifacts = [{**a, "archive": url} for a, url in zip(run.artifacts, urls, strict=True)]
    record_archived(store, run.id, folder, artifacts, now)


def _as_result(run: RunRecord) -> Any:
    """The run's files as the artifact store's upload takes them: a ``RunResult`` read back from its record."""
    from reportctl.run_record import Artifact, RunResult

    directory = Path(run.output_dir or ".")
    artifacts = []
    for record in run.artifacts:
        path = Path(str(record["path"]))
        path = path if path.is_absolute() else directory / path
        artifacts.append(Artifact(str(record["format"]), path, int(record["bytes"]), str(record["sha256"])))
    if not (directory / "manifest.json").is_file():
        raise RetentionError(f"run {run.id}: its folder {directory} is not on this machine; nothing to archive here")
    return RunResult(run.id, run.report, run.state.value, directory, artifacts, dict(run.parameters or {}))


def _archive_store(project: Project, policy: RetentionPolicy) -> ArtifactStore:
    assert policy.archive is not None
    return _connected(project, policy.archive, f"retention.archive of {policy.report}")


def _connected(project: Project, url: str, where: str) -> ArtifactStore:
    """An artifact store writing to ``url`` with ``state.archive``'s connection (boto3's defaults without one)."""
    from pydantic import ValidationError

    from reportctl.artifact_store import ArtifactStore
    from reportctl.config import ArtifactStoreConfig

    settings = project.config.state.archive
    connection = settings.model_dump(exclude={"url"}) if settings is not None else {}
    try:
        config = ArtifactStoreConfig.model_validate({**connection, "url": url})
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise RetentionError(f"{where}: {reason}") from None
    store = ArtifactStore(config, project.config_file)
    store.where = f"{where}, connection state.archive in {project.config_file or 'reportctl.yaml'}"
    return store


def _local_files(run: RunRecord) -> tuple[int, int]:
    """How many files the run recorded and their bytes (nothing once its files were deleted or archived)."""
    if run.artifacts_deleted_at is not None:
        return 0, 0
    return len(run.artifacts), sum(int(a.get("bytes") or 0) for a in run.artifacts)


def _runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"


class BackgroundPrune:
    """The schedule daemon's hourly prune, in a thread of its own: an archive upload can take minutes, and the
    daemon's loop must keep renewing its lease meanwhile. Never raises; what it did and what failed is logged."""

    def __init__(self, project: Project, store: StateStore, logger: logging.Logger) -> None:
        self.project, self.store, self.log = project, store, logger
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Prune in the background unless the last prune is still going; whether one started."""
        if self._thread is not None and self._thread.is_alive():
            return False
        self._thread = threading.Thread(target=self.run, name="retention-prune", daemon=True)
        self._thread.start()
        return True

    def run(self) -> PruneReport | None:
        """One prune of every report; None when it could not run (the store unreachable, a bug), logged."""
        from reportctl.errors import exception_line
        from reportctl.schedule.logs import log_event

        try:
            result = prune(self.store, self.project)
        except Exception as exc:  # the daemon goes on; the next hour tries again
            why = str(exc) if isinstance(exc, ReportctlError) else exception_line(exc)
            log_event(self.log, logging.WARNING, "retention.failed", f"retention prune did not run: {why}")
            return None
        if result.runs:
            log_event(
                self.log, logging.INFO, "retention.pruned", result.summary(),
                forgotten=result.count("forget"), archived=result.count("archive"), deleted=result.count("delete"),
                files=result.files, bytes=result.bytes,
            )  # fmt: skip
        for failure in result.failures:
            log_event(self.log, logging.WARNING, "retention.archive_failed", failure)
        return result
