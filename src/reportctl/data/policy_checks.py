"""What ``validate`` and ``explain`` say about row-level policies: the policies file, each spec's protected
sources, and the filter each source and dataset receives for a viewer (``reportctl.data.policies`` applies them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reportctl.data.policies import DEFAULT_FILE, access_for, load_policies, protected_columns
from reportctl.errors import Problem, SpecError, did_you_mean, one_of

if TYPE_CHECKING:
    import polars as pl

    from reportctl.config import Project
    from reportctl.spec.loader import LoadedSpec


def check_protection(loaded: LoadedSpec, schemas: Mapping[str, pl.Schema | None]) -> list[Problem]:
    """For ``validate``: each protected source needs the project's policies and, where its columns are known, the
    columns it is protected by."""
    protected = {name: protected_columns(o) for name, o in loaded.sources.items() if protected_columns(o)}
    if not protected:
        return []
    try:
        policies = load_policies(loaded.project)
    except SpecError as exc:
        return exc.problems
    problems = []
    if policies is not None and policies.require_viewer and loaded.spec.schedule is not None:
        name = next(iter(protected))
        problems.append(
            loaded.problem(
                ("schedule",),
                f"a scheduled run renders without a viewer, and reads protected source '{name}', which "
                f"{policies.file.name} refuses (require_viewer); unschedule the spec or drop require_viewer",
            )
        )
    for name, columns in protected.items():
        where = ("sources", name, "protected_by")
        if policies is None:
            problems.append(loaded.problem(where, f"the project has no policies; add {DEFAULT_FILE} (see README)"))
        schema = schemas.get(name)
        names = schema.names() if schema is not None else []
        for column in columns if schema is not None else ():
            if column not in names:
                message = f"the source has no column '{column}'{did_you_mean(column, names)}; columns: {one_of(names)}"
                problems.append(loaded.problem(where, message))
    return problems


def check_policies(project: Project) -> list[Problem]:
    """For ``validate`` of reportctl.yaml: the policies file, and the teams and lists its rules name that reach
    nobody in the directory (a rule for a team that does not exist gives its members nothing)."""
    from reportctl.delivery.directory import file_directory, unknown_references

    try:
        policies = load_policies(project)
    except SpecError as exc:
        return exc.problems
    if policies is None:
        return []
    people = file_directory(project)
    problems = []
    for index, rule in enumerate(policies.rules):
        groups = [entry for entry in rule.who if ":" in entry]
        if people is None or not groups:
            continue
        position = policies.positions[index] if index < len(policies.positions) else None
        for message in unknown_references(people, groups):
            problems.append(Problem(message, path=f"rules[{index}].who", position=position, file=policies.file))
    return problems


def explain_access(loaded: LoadedSpec, viewer_name: str) -> dict[str, Any]:
    """What ``reportctl explain --as`` shows: the viewer, each protected source's filter and the rules behind it,
    and for each dataset the filters it inherits through what it reads."""
    from reportctl.data.pipeline import dataset_references, dependency_order

    access = access_for(loaded, viewer_name)
    viewer = access.viewer
    assert viewer is not None  # access_for always resolves a given viewer
    reach: dict[str, set[str]] = {name: {name} if name in access.filters else set() for name in loaded.sources}
    datasets = loaded.spec.datasets
    for name in dependency_order(datasets, loaded.sources):  # each after what it reads (a cycle fails validate)
        reach[name] = set().union(*(reach.get(read, set()) for _, read in dataset_references(datasets[name])))
    return {
        "viewer": str(viewer),
        "name": viewer.name or None,
        "in_directory": viewer.known or bool(access.audience),
        "members": list(access.audience) if access.audience is not None else None,
        "policies": str(access.policies_file) if access.policies_file else None,
        "sources": {
            name: {
                "protected_by": list(protected_columns(options)),
                "filter": access.filters[name].describe() if name in access.filters else "unprotected",
                "rules": list(access.filters[name].rules) if name in access.filters else [],
            }
            for name, options in loaded.sources.items()
        },
        "datasets": {
            name: {
                "reads": sorted(reach.get(name, set())),
                "filter": "; ".join(f"{s}: {access.filters[s].describe()}" for s in sorted(reach.get(name, set())))
                or "unprotected",
            }
            for name in loaded.spec.datasets
        },
    }
