"""Data snapshots: the source data one run read, kept so the run can be rendered again on the same data.

A snapshot is a folder with one Parquet file per source (the rows as the source returned them, times already in the
report's zone) and ``manifest.json``: the spec's name and hash, the git commit, the parameters, the run time and,
per source, its kind, row count and the sha256 of its Parquet file. ``render --save-snapshot DIR`` writes one;
``render --from-snapshot DIR``, ``diff --data-snapshot`` and ``replay`` read it instead of the live sources.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportctl.digests import file_sha256
from reportctl.errors import ReportctlError

if TYPE_CHECKING:
    import polars as pl

    from reportctl.spec.loader import LoadedSpec

SNAPSHOT_FORMAT = "reportctl-snapshot/v1"
MANIFEST = "manifest.json"


class SnapshotError(ReportctlError):
    """A data snapshot is missing, damaged, or does not fit the spec it is used with."""


@dataclass(frozen=True)
class SnapshotSource:
    name: str
    kind: str
    rows: int
    file: str
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "rows": self.rows, "file": self.file, "sha256": self.sha256}


@dataclass(frozen=True)
class Snapshot:
    """A snapshot's manifest, read back."""

    directory: Path
    spec_name: str
    spec_hash: str
    git_commit: str | None
    parameters: dict[str, Any]
    arguments: dict[str, str]
    """The parameters as given (``-p KEY=VALUE``), to resolve them again at the same run time."""
    run_time: datetime
    run_id: str | None
    sources: dict[str, SnapshotSource]

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": SNAPSHOT_FORMAT,
            "spec": {"name": self.spec_name, "hash": self.spec_hash, "git_commit": self.git_commit},
            "run_id": self.run_id,
            "run_time": self.run_time.isoformat(),
            "parameters": self.parameters,
            "arguments": self.arguments,
            "sources": [s.as_dict() for s in self.sources.values()],
        }


def save_snapshot(
    directory: Path,
    loaded: LoadedSpec,
    frames: Mapping[str, pl.DataFrame],
    *,
    parameters: Mapping[str, Any],
    arguments: Mapping[str, str],
    run_time: datetime,
    run_id: str | None,
    git_commit: str | None,
) -> Snapshot:
    """Write the source frames of one run into ``directory``: written beside it first, then renamed into place,
    replacing an earlier snapshot there but never a folder that holds anything else."""
    directory = directory.resolve()
    if directory.exists() and not _replaceable(directory):
        raise SnapshotError(
            f"{directory}: exists and is not a data snapshot; give --save-snapshot an empty or new folder"
        )
    staging = directory.with_name(f".{directory.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        sources: dict[str, SnapshotSource] = {}
        for name in loaded.sources:
            file = f"{name}.parquet"
            frames[name].write_parquet(staging / file)
            sources[name] = SnapshotSource(
                name, loaded.sources[name].kind, frames[name].height, file, file_sha256(staging / file)
            )
        snapshot = Snapshot(
            directory,
            loaded.spec.name,
            loaded.spec_hash,
            git_commit,
            dict(parameters),
            dict(arguments),
            run_time,
            run_id,
            sources,
        )
        (staging / MANIFEST).write_text(json.dumps(snapshot.as_dict(), indent=2) + "\n", encoding="utf-8")
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return snapshot


def _replaceable(directory: Path) -> bool:
    """An empty folder, or one holding a snapshot (its manifest and Parquet files only)."""
    names = {p.name for p in directory.iterdir()} if directory.is_dir() else None
    if names is None:
        return False
    if not names:
        return True
    return MANIFEST in names and all(n == MANIFEST or n.endswith(".parquet") for n in names)


def read_snapshot(directory: Path) -> Snapshot:
    """The snapshot in ``directory``; ``SnapshotError`` when there is none or its manifest is damaged."""
    manifest = directory / MANIFEST
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        message = f"{directory}: not a data snapshot (no {MANIFEST}); write one with render --save-snapshot"
        raise SnapshotError(message) from None
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"{manifest}: cannot read the snapshot manifest: {exc}") from None
    try:
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, expected {SNAPSHOT_FORMAT!r}")
        sources = {
            str(s["name"]): SnapshotSource(str(s["name"]), str(s["kind"]), int(s["rows"]), str(s["file"]), s["sha256"])
            for s in data["sources"]
        }
        return Snapshot(
            directory.resolve(),
            str(data["spec"]["name"]),
            str(data["spec"]["hash"]),
            data["spec"].get("git_commit"),
            dict(data.get("parameters") or {}),
            {str(k): str(v) for k, v in (data.get("arguments") or {}).items()},
            datetime.fromisoformat(data["run_time"]),
            data.get("run_id"),
            sources,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"{manifest}: not a valid snapshot manifest ({exc})") from None


def snapshot_inputs(snapshot: Snapshot, loaded: LoadedSpec) -> dict[str, pl.LazyFrame]:
    """The spec's sources read from ``snapshot``, each checked against the sha256 its manifest recorded."""
    import polars as pl

    if snapshot.spec_name != loaded.spec.name:
        raise SnapshotError(
            f"{snapshot.directory}: a snapshot of spec '{snapshot.spec_name}', not of '{loaded.spec.name}' "
            f"({loaded.path}); use a snapshot saved by rendering '{loaded.spec.name}'"
        )
    missing = [name for name in loaded.sources if name not in snapshot.sources]
    if missing:
        have = ", ".join(snapshot.sources) or "none"
        raise SnapshotError(
            f"{snapshot.directory}: source '{missing[0]}' of {loaded.path.name} is not in the snapshot (it has: "
            f"{have}); save a new snapshot with --save-snapshot"
        )
    inputs: dict[str, pl.LazyFrame] = {}
    for name in loaded.sources:
        entry = snapshot.sources[name]
        file = snapshot.directory / entry.file
        if not file.is_file():
            raise SnapshotError(f"{file}: missing from the snapshot (source '{name}')")
        if file_sha256(file) != entry.sha256:
            raise SnapshotError(f"{file}: changed since the snapshot was saved (sha256 differs from {MANIFEST})")
        inputs[name] = pl.read_parquet(file).lazy()
    return inputs
