"""Two versions of a spec rendered on the same data at the same run time, then compared (``reportctl diff``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from reportctl.config import Project
from reportctl.errors import ParameterError, ReportctlError, SpecError, did_you_mean
from reportctl.review.diff import ReportSide, compare_reports
from reportctl.review.model import ReportDiff
from reportctl.spec.loader import LoadedSpec

WORKING_TREE = "working tree"


class VersionError(ReportctlError):
    """One version of the spec could not be rendered; keeps that error's exit code and problems."""

    def __init__(self, ref: str, error: ReportctlError) -> None:
        self.ref = ref
        self.error = error
        self.exit_code = error.exit_code
        self.problems = error.problems if isinstance(error, SpecError) else []
        super().__init__(f"at {ref}: {error}")


def diff_revisions(
    path: Path,
    base: str,
    head: str | None = None,
    *,
    parameters: Mapping[str, str] | None = None,
    snapshot: Path | None = None,
    now: datetime | None = None,
    max_cells: int = 10,
) -> ReportDiff:
    """What a reader would see change in the spec at ``path`` from revision ``base`` to ``head`` (None: the
    working tree). Both render at the same run time on the same data (live sources, or ``snapshot``); a spec
    missing at one side is all added or all removed."""
    from reportctl.config import find_project
    from reportctl.runner import default_run_time

    now = now or default_run_time()
    project = find_project(path)
    loaded = {ref: _load(path, ref, project) for ref in (base, head)}
    if loaded[base] is None and loaded[head] is None:
        raise ReportctlError(f"{path}: the spec exists neither at {base} nor at {head or 'the working tree'}")
    given = dict(parameters or {})
    _check_parameters(path, given, [spec for spec in loaded.values() if spec is not None])
    sides = [_side(loaded[ref], ref or WORKING_TREE, given, now, snapshot) for ref in (base, head)]
    return compare_reports(sides[0], sides[1], spec=str(path), max_cells=max_cells)


def _load(path: Path, ref: str | None, project: Project) -> LoadedSpec | None:
    from reportctl.spec.revisions import SpecNotAtRevision, load_spec_at

    if ref is None and not path.exists():
        return None  # deleted in the working tree
    try:
        return load_spec_at(path, ref, project)
    except SpecNotAtRevision:
        return None
    except SpecError as exc:
        raise VersionError(ref or WORKING_TREE, exc) from exc


def _side(
    loaded: LoadedSpec | None, ref: str, given: Mapping[str, str], now: datetime, snapshot: Path | None
) -> ReportSide:
    """One version's spec and document; an abstract base has settings to compare but no document."""
    from reportctl.runner import build_document

    if loaded is None or loaded.spec.abstract:
        return ReportSide(loaded, None, ref)
    own = {name: value for name, value in given.items() if name in loaded.spec.parameters}
    try:
        document = build_document(loaded, own, now=now, snapshot=snapshot)
    except ReportctlError as exc:
        raise VersionError(ref, exc) from exc
    return ReportSide(loaded, document, ref)


def _check_parameters(path: Path, given: Mapping[str, str], specs: list[LoadedSpec]) -> None:
    """A parameter goes to each version that declares it; one that neither declares is a mistake."""
    known = {name for spec in specs for name in spec.spec.parameters}
    for name in given:
        if name not in known:
            raise ParameterError(
                f"{path}: unknown parameter '{name}'{did_you_mean(name, known)}; the spec has: "
                + (", ".join(sorted(known)) or "none")
            )
