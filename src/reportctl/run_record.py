"""What a run leaves behind: its artifacts and result, the manifest beside them, and what a replay needs.

The manifest records the spec's files and git commit, the parameters as resolved and as given, the data snapshot
and the timings, so a run can be rendered again from its record (``reportctl.replay``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportctl import __version__
from reportctl.document import Document, Period, TableBlock, TableColumn

if TYPE_CHECKING:
    import polars as pl

    from reportctl.burst import Audience, Variant
    from reportctl.delivery.engine import DeliveryReport
    from reportctl.spec.loader import LoadedSpec
    from reportctl.spec.revisions import GitState


@dataclass(frozen=True)
class Artifact:
    format: str
    path: Path
    bytes: int
    sha256: str
    url: str | None = None
    """Where the project's artifact store keeps it (s3://bucket/key), once uploaded; None without a store."""

    @property
    def compression(self) -> str | None:
        """gzip or zstd for a compressed output (``compress:``), from its name; None for a plain file."""
        from reportctl.writers.compression import compression_of

        return compression_of(self.path)

    def as_dict(self, relative_to: Path | None = None) -> dict[str, Any]:
        """The manifest's and the state store's record; ``bytes`` and ``sha256`` are the file's as written
        (compressed, when it is), and ``compression`` is there only for a compressed file."""
        path = self.path.relative_to(relative_to) if relative_to else self.path
        record: dict[str, Any] = {"format": self.format, "path": str(path), "bytes": self.bytes, "sha256": self.sha256}
        if self.compression is not None:
            record["compression"] = self.compression
        return record if self.url is None else {**record, "url": self.url}


@dataclass
class RunResult:
    run_id: str
    report: str
    status: str
    directory: Path
    artifacts: list[Artifact]
    parameters: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    git_commit: str | None = None
    git_dirty: bool | None = None
    """Whether the spec or a base it extends differed from ``git_commit`` (None outside git)."""
    revision: str | None = None
    """The revision the spec was rendered at, as asked for (``--rev``, a schedule's ``rev:``)."""
    snapshot: Path | None = None
    """Where this run's source data was saved (``--save-snapshot``), or read from (``--from-snapshot``)."""
    arguments: dict[str, str] = field(default_factory=dict)
    """The parameters as given (-p KEY=VALUE), so a replay resolves them again at the same run time."""
    title: str = ""
    sources: list[dict[str, Any]] = field(default_factory=list)
    """How the cached sources were read: {source, cache: hit|stored|live, age_seconds}."""
    delivery: DeliveryReport | None = None
    """What delivering the run did, when it was delivered (``render --deliver``, scheduled runs)."""
    access: dict[str, Any] | None = None
    """The viewer the run was rendered for and each protected source's filter (``Access.as_dict``)."""
    audience: tuple[str, ...] | None = None
    """A burst variant's recipients: the only addresses its deliveries may reach (None: the spec's recipients)."""
    variants: list[Variant] = field(default_factory=list)
    """A burst run's variants, one per recipient group, each a run of its own (``reportctl.burst``)."""
    warnings: list[dict[str, str]] = field(default_factory=list)
    """The sections rendered as placeholders (``on_error: placeholder``): {section, error}; the run then ends
    COMPLETED_WITH_WARNINGS."""

    @property
    def manifest(self) -> Path:
        return self.directory / "manifest.json"


SNAPSHOT_FOLDER = "snapshot"
"""Where a run's data snapshot goes inside its folder, when the project's ``snapshots: true``."""


@dataclass(frozen=True)
class DataRoute:
    """Where a run's source data comes from and goes: a snapshot to read instead of the sources, one to save."""

    read: Path | None = None
    save: Path | None = None
    cache: bool = True
    """Whether sql and http sources go through the project's query cache (``--no-cache``: False)."""
    viewer: str | Audience | None = None
    """Who the rows are read for (``--as``, or a burst's recipient group): protected sources show only what the
    policies allow them."""

    def keeps_snapshot(self, loaded: LoadedSpec) -> bool:
        """Whether the run saves its data in its own folder: the project says so, and no snapshot was asked for."""
        return self.read is None and self.save is None and loaded.project.config.snapshots


def lap(since: float) -> float:
    """Seconds since ``since`` (a ``time.perf_counter()`` reading), as the manifest's timings keep them."""
    return round(time.perf_counter() - since, 4)


def jsonable_parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter values as JSON: periods as {name, start, end}, dates ISO, durations in seconds."""

    def convert(value: Any) -> Any:
        if isinstance(value, Period):
            return {"name": value.name, "start": value.start.isoformat(), "end": value.end.isoformat()}
        if isinstance(value, datetime | date):
            return value.isoformat()
        if isinstance(value, timedelta):
            return value.total_seconds()
        return value

    return {name: convert(value) for name, value in values.items()}


def save_run_snapshot(
    data: DataRoute,
    loaded: LoadedSpec,
    frames: Mapping[str, pl.DataFrame],
    values: Mapping[str, Any],
    parameters: Mapping[str, str] | None,
    now: datetime,
    run_id: str,
    git: GitState | None,
    staging: Path,
    final: Path,
) -> DataRoute:
    """Save the run's source data where ``--save-snapshot`` says, else in the run's own folder; where it will be."""
    from reportctl.snapshots import save_snapshot

    kept = data.save is None  # the project's `snapshots: true`: inside the run folder, renamed with it
    directory = staging / SNAPSHOT_FOLDER if data.save is None else data.save
    save_snapshot(
        directory,
        loaded,
        {name: frames[name] for name in loaded.sources},
        parameters=jsonable_parameters(values),
        arguments=dict(parameters or {}),
        run_time=now,
        run_id=run_id,
        git_commit=git.commit if git else None,
    )
    return DataRoute(save=final / SNAPSHOT_FOLDER) if kept else data


def record_provenance(
    result: RunResult, loaded: LoadedSpec, git: GitState | None, data: DataRoute, parameters: Mapping[str, str] | None
) -> None:
    """What a replay needs to render the run again: the commit, the revision, the snapshot, the given parameters."""
    if git is not None:
        result.git_commit, result.git_dirty = git.commit, git.dirty
    result.revision = loaded.ref
    snapshot = data.save or data.read
    result.snapshot = snapshot.resolve() if snapshot is not None else None
    result.arguments = dict(parameters or {})


def git_state(loaded: LoadedSpec) -> GitState | None:
    """The commit the spec and its bases are at, and whether they differ from it; None outside git."""
    from reportctl.spec.revisions import spec_git_state

    return spec_git_state(loaded)


def write_manifest(
    loaded: LoadedSpec,
    result: RunResult,
    directory: Path,
    now: datetime,
    document: Document | None = None,
    *,
    preview: Mapping[str, Any] | None = None,
) -> None:
    """``directory/manifest.json``: the run's record, its artifacts' paths relative to ``directory``, and what
    the data files do not say themselves (a plain CSV has only a header): the time zone their times are in, the
    locale, and each table's title, row count, and columns' labels and formats."""
    manifest = {
        "run_id": result.run_id,
        "report": result.report,
        "title": result.title,
        "status": result.status,
        "generated_at": now.astimezone(UTC).isoformat(),
        "timezone": document.info.timezone if document else None,
        "locale": document.style.locale if document else None,
        "reportctl_version": __version__,
        "spec": {
            "path": str(loaded.path),
            "hash": loaded.spec_hash,
            "files": [str(f) for f in loaded.files],
            "git_commit": result.git_commit,
            "git_dirty": result.git_dirty,
            "revision": result.revision,
        },
        "parameters": result.parameters,
        "arguments": result.arguments,
        "access": result.access,
        "snapshot": str(result.snapshot) if result.snapshot else None,
        "sources": result.sources,
        "timings": result.timings,
        "artifacts": [a.as_dict(relative_to=directory) for a in result.artifacts],
        "tables": [_table_entry(table) for table in document.tables()] if document else [],
        "warnings": result.warnings,
        "preview": preview,
    }
    temporary = directory / ".manifest.json.tmp"
    temporary.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    temporary.replace(directory / "manifest.json")


def _table_entry(table: TableBlock) -> dict[str, Any]:
    columns = table.columns or tuple(TableColumn(name, name) for name in table.frame.columns)
    return {
        "id": table.id,
        "title": table.title,
        "rows": table.frame.height,
        "columns": [{"name": c.name, "label": c.label, "format": c.format} for c in columns],
    }
