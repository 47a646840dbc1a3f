"""A spec as at a git revision: read from git objects, not the working tree.

``load_spec_at`` resolves the revision once to a full commit id and reads the spec and every base it extends from
that commit's tree. Only the spec files come from git: the project settings (``reportctl.yaml``) and the data the
sources read are the live ones (or a data snapshot), so two revisions render on the same data.
"""

from __future__ import annotations

import dataclasses
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from reportctl.config import Project
from reportctl.errors import Problem, ReportctlError, SpecError, did_you_mean
from reportctl.spec.loader import LoadedSpec, load_spec

GIT_TIMEOUT = 30
UNSHALLOW_HINT = (
    "this is a shallow clone without that history: fetch it with `git fetch --unshallow` "
    "(in GitHub Actions, actions/checkout with fetch-depth: 0)"
)


class RevisionError(ReportctlError):
    """A revision cannot be read: unknown, missing from a shallow clone, or not a git repository at all."""


class SpecNotAtRevision(ReportctlError):
    """The spec file did not exist at the revision asked for."""

    def __init__(self, path: Path, revision: str, commit: str) -> None:
        self.path = path
        self.revision = revision
        self.commit = commit
        super().__init__(
            f"{path}: did not exist at revision {revision} ({commit[:12]}); `reportctl history` lists its versions"
        )


def run_git(folder: Path, *args: str) -> str:
    """git's standard output for ``git -C folder ARGS``; ``RevisionError`` with git's own words when it fails."""
    return git_bytes(folder, *args).decode("utf-8", "replace")


def git_bytes(folder: Path, *args: str) -> bytes:
    """``run_git`` as the bytes git wrote, for file contents."""
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, timeout=GIT_TIMEOUT, check=False)
    except FileNotFoundError:
        raise RevisionError("git is not installed; history, --rev, diff and replay need it") from None
    except subprocess.TimeoutExpired:
        raise RevisionError(f"git {args[0]} took longer than {GIT_TIMEOUT} s in {folder}") from None
    if done.returncode != 0:
        error = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RevisionError(f"git {' '.join(args)}: {error[-1] if error else f'exit {done.returncode}'}")
    return done.stdout


def repository_root(path: Path) -> Path:
    """The top folder of the git working tree ``path`` is in; ``RevisionError`` when it is in none."""
    folder = path.resolve()
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent  # the spec (or its folder) may exist only at the revision
    try:
        return Path(run_git(folder, "rev-parse", "--show-toplevel").strip()).resolve()
    except RevisionError:
        raise RevisionError(
            f"{path}: not in a git repository; history, --rev, diff and replay need git (everything else works "
            "without it)"
        ) from None


def is_shallow(root: Path) -> bool:
    return run_git(root, "rev-parse", "--is-shallow-repository").strip() == "true"


def resolve_revision(root: Path, revision: str) -> str:
    """The full commit id ``revision`` (a branch, tag, commit or expression like HEAD~2) names in ``root``."""
    if not revision.strip() or revision.startswith("-"):
        raise RevisionError(f"'{revision}' is not a revision; give a branch, tag or commit, e.g. HEAD~1 or v1.2")
    try:
        return run_git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}").strip()
    except RevisionError:
        pass
    if is_shallow(root):
        raise RevisionError(f"unknown revision '{revision}' in {root}: {UNSHALLOW_HINT}") from None
    names = run_git(root, "for-each-ref", "--format=%(refname:short)", "refs/heads", "refs/tags").split()
    hint = did_you_mean(revision, names)
    raise RevisionError(
        f"unknown revision '{revision}' in {root}{hint}; give a branch, tag or commit (`git log --oneline` lists "
        "commits)"
    ) from None


@dataclass
class GitTree:
    """The files of one commit, read with ``git cat-file``; implements ``reportctl.spec.reading.SpecReader``."""

    root: Path
    revision: str | None
    _paths: set[str] | None = field(default=None, repr=False)
    _read: dict[Path, bytes] = field(default_factory=dict, repr=False)

    @property
    def commit(self) -> str:
        return self.revision or "HEAD"

    def relative(self, path: Path) -> str | None:
        """``path`` as git names it in the tree (forward slashes from the root); None outside the repository."""
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return None

    def is_file(self, path: Path) -> bool:
        if self._paths is None:
            listing = run_git(self.root, "ls-tree", "-r", "-z", "--name-only", self.commit)
            self._paths = {name for name in listing.split("\0") if name}
        relative = self.relative(path)
        return relative is not None and relative in self._paths

    def read_bytes(self, path: Path) -> bytes:
        path = path.resolve()
        if path in self._read:
            return self._read[path]
        relative = self.relative(path)
        if relative is None or not self.is_file(path):
            raise SpecError([Problem(f"file not found{self.where()}", file=path)])
        try:
            content = git_bytes(self.root, "cat-file", "blob", f"{self.commit}:{relative}")
        except RevisionError as exc:
            raise SpecError([Problem(f"cannot read{self.where()}: {exc}", file=path)]) from None
        self._read[path] = content
        return content

    def label(self, path: Path) -> Path:
        return Path(f"{path}@{self.commit[:12]}")

    def where(self) -> str:
        return f" at revision {self.commit[:12]}"


@dataclass(frozen=True)
class GitState:
    """Which commit a run's spec files were read from, and whether any of them differed from it."""

    commit: str
    dirty: bool


def spec_git_state(loaded: LoadedSpec) -> GitState | None:
    """The commit the spec and every base it extends were read from; ``dirty`` when any of them has local edits
    (or is untracked) in the working tree. None outside a git repository, and for a copy a queued run stored of
    another machine's working tree."""
    if loaded.revision is not None:
        return GitState(loaded.revision, False)
    if loaded.stored_copy:  # a queued run's copy of another machine's working tree: no commit here has it
        return None
    try:
        root = repository_root(loaded.path)
        commit = run_git(root, "rev-parse", "--verify", "--quiet", "HEAD").strip()
        tree = GitTree(root, commit)
        inside = [relative for file in loaded.files if (relative := tree.relative(file)) is not None]
        status = run_git(root, "status", "--porcelain", "--untracked-files=all", "--", *inside) if inside else ""
    except RevisionError:
        return None  # not a git repository, or one without a commit yet
    return GitState(commit, bool(status.strip()) or len(inside) < len(loaded.files))


def load_spec_at(path: Path, rev: str | None, project: Project | None = None) -> LoadedSpec:
    """The spec at ``path`` (and every base it extends) as at git revision ``rev``, read from git objects, not the
    working tree; rev None = the working tree (plain load_spec).

    ``SpecNotAtRevision`` when the spec file did not exist at ``rev``; ``RevisionError`` for an unknown revision,
    a folder that is not a git repository, or a shallow clone missing the commit (naming the fix). Positions in
    problems name ``path@commit``, since their lines are those of the file at that commit.
    """
    if rev is None:
        return load_spec(path, project)
    path = path.resolve()
    tree = tree_at(path, rev)
    if not tree.is_file(path):
        raise SpecNotAtRevision(path, rev, tree.commit)
    return dataclasses.replace(load_spec(path, project, reader=tree), ref=rev)


def tree_at(path: Path, rev: str) -> GitTree:
    """The tree of the commit ``rev`` names, in the repository ``path`` is in."""
    root = repository_root(path)
    return GitTree(root, resolve_revision(root, rev))


__all__ = [
    "GitState",
    "GitTree",
    "RevisionError",
    "SpecNotAtRevision",
    "is_shallow",
    "load_spec_at",
    "repository_root",
    "resolve_revision",
    "run_git",
    "spec_git_state",
    "tree_at",
]
