"""The copy of a spec and its bases that a queued run stores, so that every worker renders what its fire read.

When a daemon (or ``schedule tick``) claims a fire for ``executor: celery``, the run stores the text of the spec and
of every base it extends, keyed by path from the project root: the very bytes its ``spec_hash`` was taken over. A
worker whose own checkout holds another version (an uncommitted edit where the daemon runs, a project outside git,
a worker deployed late) loads the spec from that copy instead. Only the spec files come from it: the spec keeps its
path in the worker's project, so the data files, templates and other paths it names resolve there, as for any
spec, and the project's settings are the worker's own.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reportctl.config import Project
from reportctl.errors import Problem, SpecError
from reportctl.spec.loader import LoadedSpec, load_spec

BUNDLE_LIMIT = 1024 * 1024
"""The most a run stores of its spec files: specs are a few KiB; one past this holds data that belongs in a file."""


def spec_bundle(loaded: LoadedSpec, *, limit: int = BUNDLE_LIMIT) -> dict[str, Any]:
    """What a queued run stores of ``loaded``: ``{"commit": the commit it was read at or None, "files": {path from
    the project root: text}}``; ``SpecError`` naming the spec and the limit when its files come to more."""
    size = sum(len(content) for content in loaded.contents)
    if size > limit:
        from reportctl.formats import format_bytes

        message = (
            f"the spec and the bases it extends come to {format_bytes(size)}, over the {format_bytes(limit, 0)} a "
            "queued run stores of them; move inline data to a file the spec reads"
        )
        raise SpecError([Problem(message, file=loaded.path)])
    root = loaded.project.root.resolve()
    files: dict[str, str] = {}
    for file, content in zip(loaded.files, loaded.contents, strict=True):
        try:
            files[Path(os.path.relpath(file, root)).as_posix()] = content.decode("utf-8")
        except UnicodeDecodeError as exc:  # changed on disk since it was parsed
            raise SpecError([Problem(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=file)]) from None
    return {"commit": loaded.revision, "files": files}


@dataclass
class StoredCopy:
    """Spec files as a queued run stored them, by working-tree path; a ``reportctl.spec.reading.SpecReader``."""

    files: Mapping[Path, bytes]
    revision: str | None = None
    """The commit the daemon read the files at (a schedule's ``rev:``); None for its working tree."""

    @classmethod
    def of(cls, bundle: Mapping[str, Any], root: Path) -> StoredCopy:
        """The copy in ``bundle`` (as ``spec_bundle`` made it) laid out under the project folder ``root``."""
        files = {(root / name).resolve(): str(text).encode("utf-8") for name, text in bundle["files"].items()}
        commit = bundle.get("commit")
        return cls(files, commit if isinstance(commit, str) else None)

    def read_bytes(self, path: Path) -> bytes:
        try:
            return self.files[path.resolve()]
        except KeyError:
            raise SpecError([Problem(f"file not found{self.where()}", file=path)]) from None

    def is_file(self, path: Path) -> bool:
        return path.resolve() in self.files

    def label(self, path: Path) -> Path:
        return path

    def where(self) -> str:
        return " in the copy stored with the run"


def is_bundle(value: object) -> bool:
    """Whether ``value`` (a run's stored column) is a copy ``spec_bundle`` made."""
    return isinstance(value, Mapping) and isinstance(value.get("files"), Mapping) and bool(value["files"])


def load_stored_spec(path: Path, bundle: Mapping[str, Any], project: Project, *, ref: str | None = None) -> LoadedSpec:
    """The spec at ``path`` in ``project`` and the bases it extends as ``bundle`` holds them, checked as any spec;
    the paths it names resolve in ``project``. ``ref`` is the revision the schedule asked for, if any."""
    copy = StoredCopy.of(bundle, project.root.resolve())
    return dataclasses.replace(load_spec(path, project, reader=copy), ref=ref, stored_copy=True)


__all__ = ["BUNDLE_LIMIT", "StoredCopy", "is_bundle", "load_stored_spec", "spec_bundle"]
