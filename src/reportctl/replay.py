"""Replaying a recorded run: render it again from its revision, parameters, run time and data snapshot, and say
whether every file came out byte-identical to the original.

The spec is read at the git commit the run recorded. A run rendered from a dirty tree (local edits to the spec or a
base) can only be replayed while the working tree still hashes the same. The data comes from the run's snapshot
(``render --save-snapshot``): without one the live sources have moved on, so a replay is refused rather than
reporting noise. The parameters are those given to the run, resolved again at its recorded run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from reportctl.errors import ReportctlError

if TYPE_CHECKING:
    from reportctl.burst import Audience
    from reportctl.config import Project
    from reportctl.spec.loader import LoadedSpec
    from reportctl.state.models import RunRecord


class ReplayError(ReportctlError):
    """A run cannot be replayed: no snapshot, no commit, or a spec that no longer matches."""


Verdict = Literal["identical", "different", "missing", "extra"]


@dataclass(frozen=True)
class FileVerdict:
    path: str
    """Relative to the run's folder."""
    verdict: Verdict
    original: str | None
    """The sha256 the run recorded; None for a file only the replay wrote."""
    replayed: str | None

    def as_dict(self) -> dict[str, str | None]:
        return {"path": self.path, "verdict": self.verdict, "original": self.original, "replayed": self.replayed}


@dataclass(frozen=True)
class Replay:
    run_id: str
    report: str
    commit: str | None
    """The commit the spec was read at; None when read from the working tree (a run from a dirty tree)."""
    snapshot: Path
    directory: Path
    files: tuple[FileVerdict, ...]

    @property
    def identical(self) -> bool:
        return bool(self.files) and all(f.verdict == "identical" for f in self.files)


def replay_run(record: RunRecord, output_dir: Path, project: Project | None = None) -> Replay:
    """Render ``record`` again into ``output_dir`` and compare every file with the sha256 the run recorded."""
    from reportctl.plugins import WRITERS, plugin_names
    from reportctl.runner import render_report
    from reportctl.snapshots import read_snapshot

    if not record.snapshot:
        raise ReplayError(
            f"run {record.id} saved no data snapshot, and the live sources have moved on since; render with "
            "--save-snapshot DIR, or set snapshots: true in reportctl.yaml, to make runs replayable"
        )
    snapshot = read_snapshot(Path(record.snapshot))
    if not record.artifacts:
        raise ReplayError(f"run {record.id} recorded no files ({record.state.value}); there is nothing to compare")
    loaded = _spec_of(record, project)
    formats = sorted({str(a["format"]) for a in record.artifacts} & set(plugin_names(WRITERS)))
    result = render_report(
        loaded,
        parameters=snapshot.arguments,
        formats=formats,
        output_dir=output_dir,
        now=snapshot.run_time,
        run_id=record.id,
        snapshot=snapshot.directory,
        viewer=_viewer_of(record),
    )
    files = _compare(record, result.directory)
    return Replay(record.id, record.report, loaded.revision, snapshot.directory, result.directory, files)


def _viewer_of(record: RunRecord) -> str | Audience | None:
    """Who the run was rendered for: its viewer (``--as``), or the group a burst variant was filtered for, with the
    members it had then."""
    from reportctl.burst import Audience

    if record.audience is not None:
        return Audience(record.viewer or "", tuple(record.audience))
    return record.viewer


def _spec_of(record: RunRecord, project: Project | None) -> LoadedSpec:
    """The spec as the run read it: at its commit, or the working tree when that still hashes the same."""
    from reportctl.spec.loader import load_spec
    from reportctl.spec.revisions import load_spec_at

    path = Path(record.spec_path)
    if record.git_commit and not record.git_dirty:
        loaded = load_spec_at(path, record.git_commit, project)
        if loaded.spec_hash != record.spec_hash:
            raise ReplayError(
                f"{path} at {record.git_commit[:12]} hashes {loaded.spec_hash[:12]}, but run {record.id} recorded "
                f"{record.spec_hash[:12]}; the spec was not read from that commit alone"
            )
        return loaded
    loaded = load_spec(path, project)
    if loaded.spec_hash != record.spec_hash:
        why = (
            f"from a dirty tree (local edits against commit {record.git_commit[:12]})"
            if record.git_commit
            else "outside git"
        )
        raise ReplayError(
            f"run {record.id} was rendered {why}, and {path} with its bases no longer hashes the same "
            f"({loaded.spec_hash[:12]}, the run recorded {record.spec_hash[:12]}); its spec cannot be recovered"
        )
    return loaded


def _compare(record: RunRecord, directory: Path) -> tuple[FileVerdict, ...]:
    from reportctl.digests import file_sha256

    original = {str(a["path"]): str(a["sha256"]) for a in record.artifacts}
    replayed = {
        str(p.relative_to(directory)): file_sha256(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }
    verdicts = []
    for path in sorted(original.keys() | replayed.keys()):
        before, after = original.get(path), replayed.get(path)
        verdict: Verdict = "extra" if before is None else "missing" if after is None else "different"
        if before is not None and before == after:
            verdict = "identical"
        verdicts.append(FileVerdict(path, verdict, before, after))
    return tuple(verdicts)
