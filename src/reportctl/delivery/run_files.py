"""A recorded run's files on the machine that delivers it.

With ``executor: celery`` a run is rendered on a worker's disk, but delivered later, elsewhere, by whoever finishes
it: the daemon's reaper resuming a lost worker's deliveries, ``reportctl deliver RUN`` on an operator's machine.
When the run kept its files in the artifact store (``artifacts:`` in reportctl.yaml) and they are not in its folder
here, they are fetched into this project's ``OUT/<report>/<run-id>/``, the folder the run would have here: its
manifest gives deliveries the run's title and time as its first delivery had them, links under
``artifact_base_url`` come out as on the worker, and a second delivery finds the files in place. Each file is
downloaded to a staging folder beside it, checked against the size and sha256 the run recorded (the manifest and the
message's pictures against the sha256 their upload recorded), and moved in, the manifest last, so a folder with a
manifest is complete; a file that cannot be fetched leaves nothing behind and sends nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from reportctl.artifact_store import ArtifactFetchError, ArtifactStore, stored_folder

if TYPE_CHECKING:
    from reportctl.config import Project
    from reportctl.state.models import RunRecord

MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class _StoredFile:
    """A file of a recorded run to have on this machine: its path in the run's folder, and where the store keeps it."""

    relative: str
    url: str
    bytes: int | None = None
    sha256: str | None = None
    optional: bool = False
    """Kept only by newer versions (the message's pictures): a run stored without it is delivered without it."""


def run_on_this_machine(project: Project, record: RunRecord, *, say: Callable[[str], None] | None = None) -> RunRecord:
    """``record`` with its files on this machine, to deliver it here: as recorded when they are in its folder; else,
    when the run kept them in the artifact store, fetched into this project's ``OUT/<report>/<run-id>/`` (each
    checked against the size and sha256 the run recorded), where a later delivery finds them too.

    ``ArtifactFetchError`` names the run, the file and its URL when one cannot be fetched; nothing is left behind.
    """
    folder_url = stored_folder(list(record.artifacts))
    if not record.output_dir or folder_url is None:
        return record  # nothing written, or not stored: delivered from where it was written, as ever
    recorded = Path(record.output_dir)
    folder = recorded if recorded.is_dir() else project.output_dir / record.report / record.id
    wanted = [*_artifact_files(record, recorded), _StoredFile(MANIFEST_NAME, folder_url + MANIFEST_NAME)]
    missing = [file for file in wanted if not _in_place(folder / file.relative, file.bytes)]
    if missing:
        store = ArtifactStore.of(project)
        if store is None:
            config = project.config_file or "reportctl.yaml"
            raise ArtifactFetchError(
                f"run {record.id}: cannot fetch {Path(missing[0].relative).name} from the artifact store: "
                f"{missing[0].url}: {config} sets no artifacts: here; set it as on the machines that render; "
                "nothing was sent"
            )
        if say is not None:
            say(f"fetching {len(missing)} file{'s' * (len(missing) != 1)} of run {record.id} from {folder_url}")
        with store:
            _fetch_into(store, record, folder, folder_url, missing)
    return record if folder == recorded else replace(record, output_dir=str(folder))


def _artifact_files(record: RunRecord, recorded: Path) -> list[_StoredFile]:
    files = []
    for artifact in record.artifacts:
        path = Path(str(artifact["path"]))
        if path.is_absolute():
            path = path.relative_to(recorded) if path.is_relative_to(recorded) else Path(path.name)
        url = artifact.get("url")
        if url:
            files.append(_StoredFile(path.as_posix(), str(url), int(artifact["bytes"]), str(artifact["sha256"])))
    return files


def _in_place(path: Path, size: int | None) -> bool:
    return path.is_file() and (size is None or path.stat().st_size == size)


def _fetch_into(
    store: ArtifactStore, record: RunRecord, folder: Path, folder_url: str, files: list[_StoredFile]
) -> None:
    """Download ``files`` into a staging folder beside ``folder``, then move them in, the manifest last (a folder
    with its manifest is complete); the staging folder goes whatever happens."""
    import shutil
    import tempfile

    with _parent_made(folder) as parent:
        staging = Path(tempfile.mkdtemp(prefix=f".{record.id}.fetching-", dir=parent))
        try:
            fetched = [_fetched(store, record, staging, file) for file in files]
            manifest = staging / MANIFEST_NAME if (staging / MANIFEST_NAME).is_file() else folder / MANIFEST_NAME
            pictures = [
                _StoredFile(relative, folder_url + relative, optional=True)
                for relative in _preview_pictures(manifest)
                if not _in_place(folder / relative, None)
            ]
            fetched += [_fetched(store, record, staging, file) for file in pictures]
            for relative in sorted(f for f in fetched if f is not None and f != MANIFEST_NAME):
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / relative, folder / relative)
            if MANIFEST_NAME in fetched:
                os.replace(staging / MANIFEST_NAME, folder / MANIFEST_NAME)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _parent_made(folder: Path) -> Iterator[Path]:
    """``folder``'s parent, made if need be; removed again if it was made and the fetch into it failed."""
    parent = folder.parent
    made = not parent.exists()
    parent.mkdir(parents=True, exist_ok=True)
    try:
        yield parent
    except BaseException:
        if made:
            with contextlib.suppress(OSError):
                parent.rmdir()
        raise


def _fetched(store: ArtifactStore, record: RunRecord, staging: Path, file: _StoredFile) -> str | None:
    """Fetch ``file`` into ``staging``: its relative path, or None for an optional file that cannot be fetched."""
    target = staging / file.relative
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        store.fetch(file.url, target, size=file.bytes, sha256=file.sha256)
    except ArtifactFetchError as exc:
        if file.optional:
            return None
        name = Path(file.relative).name
        raise ArtifactFetchError(
            f"run {record.id}: cannot fetch {name} from the artifact store: {exc}; nothing was sent"
        ) from exc
    return file.relative


def _preview_pictures(manifest: Path) -> list[str]:
    """The pictures a message shows (the first chart, the logo), as the run's manifest lists them."""
    import json

    try:
        preview = json.loads(manifest.read_text(encoding="utf-8")).get("preview") or {}
    except (OSError, ValueError, AttributeError):
        return []
    chart = preview.get("chart") if isinstance(preview, dict) else None
    listed = [chart.get("file") if isinstance(chart, dict) else None, preview.get("logo")]
    return [
        relative
        for relative in listed
        if isinstance(relative, str)
        and relative
        and ".." not in Path(relative).parts
        and not Path(relative).is_absolute()
    ]
