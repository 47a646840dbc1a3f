"""Row-level policies: which rows of a protected source a viewer sees.

A source marked ``protected_by: team`` (or a list of columns) is read, for a viewer, only where each protected
column holds a value the project's ``policies.yaml`` allows that viewer::

    rules:
      - who: [alice@example.com]              # addresses, team:NAME, list:NAME (from the people directory) or "*"
        allow: {team: [frontend]}
      - who: [team:sre]
        allow: all                            # every row of every protected source

A viewer's allowed values for a column are the union over every rule that names them; a rule that does not
mention a column allows nothing of it, and a viewer no rule names sees no rows at all (deny by default). The
filter applies to the source's rows as they are read, before any dataset, join, aggregation, chart, KPI or summary
sees them, and it is part of the source's query-cache key, so one viewer's rows never answer another's request.

A render without a viewer reads protected sources unfiltered, as their owner does, unless the policies say
``require_viewer: true``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportctl.errors import Position, Problem, ReportctlError, SpecError, did_you_mean, one_of

if TYPE_CHECKING:
    import polars as pl

    from reportctl.burst import Audience
    from reportctl.config import Project
    from reportctl.data.policy_file import Rule
    from reportctl.delivery.recipients import Directory
    from reportctl.spec.loader import LoadedSpec

DEFAULT_FILE = "policies.yaml"
Value = str | int | float | bool


class PolicyError(ReportctlError):
    """A protected source cannot be filtered as its policy says (a missing column, no viewer where one is
    required)."""


@dataclass(frozen=True)
class Policies:
    rules: Sequence[Rule]
    require_viewer: bool
    file: Path
    positions: Sequence[Position | None] = ()
    """Where each rule starts, for explaining which rule gave a viewer their rows."""

    def where(self, index: int) -> str:
        position = self.positions[index] if index < len(self.positions) else None
        return f"{position.file.name}:{position.line}" if position else f"rule {index + 1}"


@dataclass(frozen=True)
class Viewer:
    """Who a report is rendered for: as given (``--as``), and as the directory knows them."""

    given: str
    email: str | None
    name: str = ""
    known: bool = False

    def __str__(self) -> str:
        return self.email or self.given


@dataclass(frozen=True)
class ColumnFilter:
    column: str
    values: tuple[Value, ...] | None
    """The values the column may hold; None for every row."""


@dataclass(frozen=True)
class RowFilter:
    """What one protected source shows one viewer, and which rules said so."""

    source: str
    columns: tuple[ColumnFilter, ...]
    rules: tuple[str, ...] = ()

    @property
    def denies_all(self) -> bool:
        return any(c.values == () for c in self.columns)

    @property
    def unrestricted(self) -> bool:
        return all(c.values is None for c in self.columns)

    def describe(self) -> str:
        """'team is frontend or platform', 'every row' or 'no rows', as a reader reads it."""
        if self.denies_all:
            return "no rows"
        shown = [f"{c.column} is {_either(c.values)}" for c in self.columns if c.values is not None]
        return " and ".join(shown) or "every row"

    def identity(self) -> dict[str, Any]:
        """The filter as part of a query-cache key."""
        return {c.column: None if c.values is None else sorted(map(value_text, c.values)) for c in self.columns}

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """``frame`` with only the rows this filter allows; a ``PolicyError`` when a protected column is missing."""
        import polars as pl

        if self.unrestricted:
            return frame
        columns = frame.collect_schema().names()
        for column in self.columns:
            if column.column not in columns:
                raise PolicyError(
                    f"source '{self.source}' is protected_by '{column.column}', but its rows have no such column"
                    f"{did_you_mean(column.column, columns)}; columns: {one_of(columns)}"
                )
        condition = pl.lit(True)
        for column in self.columns:
            if column.values is not None:
                # compared as text, so allow: {team_id: [7]} matches an integer column and a string one alike
                allowed = [value_text(v) for v in column.values]
                condition &= pl.col(column.column).cast(pl.String).is_in(allowed).fill_null(False)
        return frame.filter(condition)


@dataclass
class Access:
    """A run's viewer and what each protected source shows them; no viewer means unfiltered."""

    viewer: Viewer | None = None
    filters: dict[str, RowFilter] = field(default_factory=dict)
    policies_file: Path | None = None
    audience: tuple[str, ...] | None = None
    """A burst variant's recipients: the only addresses its deliveries may reach."""

    def note(self) -> str | None:
        """What the report says about its rows, in Markdown: for whom it is filtered, and how."""
        if self.viewer is None or not self.filters:
            return None
        who = f"**{self.viewer}**"
        denied = sorted(name for name, f in self.filters.items() if f.denies_all)
        if denied:
            file = self.policies_file.name if self.policies_file else DEFAULT_FILE
            return (
                f"Filtered for {who}: {file} gives this viewer no rows of {', '.join(denied)}, so every table, "
                "chart and figure built from it is empty. Ask the report's owner for access."
            )
        if all(f.unrestricted for f in self.filters.values()):
            return f"Rendered for {who}, who may see every row of {', '.join(sorted(self.filters))}."
        if len(self.filters) == 1:
            return f"Filtered for {who}: only the rows where {next(iter(self.filters.values())).describe()}."
        shown = "; ".join(f"{name}, {f.describe()}" for name, f in sorted(self.filters.items()))
        return f"Filtered for {who}: only the rows they may see ({shown})."

    def as_dict(self) -> dict[str, Any] | None:
        """For the manifest and the audit log."""
        if self.viewer is None:
            return None
        return {
            "viewer": str(self.viewer),
            "filters": {name: f.describe() for name, f in sorted(self.filters.items())},
            "rules": {name: list(f.rules) for name, f in sorted(self.filters.items())},
        } | ({"audience": list(self.audience)} if self.audience is not None else {})


def policies_file(project: Project) -> Path | None:
    """The policies file the project uses: ``policies`` in reportctl.yaml, else policies.yaml when it exists."""
    if project.config.policies:
        return project.root / project.config.policies
    default = project.root / DEFAULT_FILE
    return default if default.is_file() else None


def load_policies(project: Project) -> Policies | None:
    """The project's policies, or None when it has none; ``SpecError`` with positions for a bad file."""
    from reportctl.config import read_text
    from reportctl.data.policy_file import PoliciesFile
    from reportctl.spec.validation import validate_model
    from reportctl.spec.yamlpos import LocatedList, load_yaml

    path = policies_file(project)
    if path is None:
        return None
    if not path.is_file():
        where = project.config_file or project.root
        raise SpecError([Problem(f"policies file {path} not found; create it or fix 'policies'", file=where)])
    data = load_yaml(read_text(path), path)
    parsed = validate_model(PoliciesFile, {} if data is None else data, path)
    rules = data.get("rules") if isinstance(data, dict) else None
    positions: Sequence[Position | None] = rules.item_positions if isinstance(rules, LocatedList) else ()
    return Policies(parsed.rules, parsed.require_viewer, path, positions)


def protected_columns(options: Any) -> tuple[str, ...]:
    """The columns a source's ``protected_by`` names (none for an unprotected source)."""
    value = getattr(options, "protected_by", None)
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def resolve_viewer(given: str, directory: Directory) -> Viewer:
    """``given`` (an address, or a person's name in the directory) as a viewer."""
    text = given.strip()
    lowered = text.lower()
    for person in directory.people:
        if person.email.lower() == lowered or (person.name and person.name.lower() == lowered):
            return Viewer(text, person.email, person.name, known=True)
    return Viewer(text, text if "@" in text else None)


def access_for(loaded: LoadedSpec, viewer_name: str | Audience | None, directory: Directory | None = None) -> Access:
    """Who the run is for (a viewer, or a burst's recipient group) and each protected source's filter; raises
    when the spec cannot render this way."""
    from reportctl.burst import Audience, audience_access, group_members

    if isinstance(viewer_name, Audience):
        return audience_access(loaded, viewer_name, directory or _directory(loaded.project))
    protected = {name: protected_columns(o) for name, o in loaded.sources.items() if protected_columns(o)}
    if not protected and viewer_name is None:
        return Access()
    policies = load_policies(loaded.project)
    if protected and policies is None:
        name = next(iter(protected))
        raise SpecError(
            [loaded.problem(("sources", name, "protected_by"), "the project has no policies; add policies.yaml")]
        )
    if viewer_name is None:
        if policies is not None and policies.require_viewer and protected:
            raise PolicyError(
                f"{loaded.path}: reads protected source '{next(iter(protected))}', and {policies.file.name} sets "
                "require_viewer; render with --as USER (or burst)"
            )
        return Access()
    directory = directory if directory is not None else _directory(loaded.project)
    if viewer_name.strip().startswith(("team:", "list:")):  # a group: what its burst variant shows
        group = viewer_name.strip()
        return audience_access(loaded, Audience(group, group_members(group, directory)), directory)
    viewer = resolve_viewer(viewer_name, directory)
    filters = {
        name: row_filter(policies, viewer, directory, name, columns)  # type: ignore[arg-type]
        for name, columns in protected.items()
    }
    return Access(viewer, filters, policies.file if policies else None)


def row_filter(
    policies: Policies, viewer: Viewer, directory: Directory, source: str, columns: Iterable[str]
) -> RowFilter:
    """What ``source`` (protected by ``columns``) shows ``viewer`` under ``policies``."""
    matching = [i for i, rule in enumerate(policies.rules) if _names(rule, viewer, directory)]
    filters = []
    for column in columns:
        rules = [policies.rules[i] for i in matching]
        if any(rule.allow == "all" for rule in rules):
            filters.append(ColumnFilter(column, None))
            continue
        values: dict[str, Value] = {}
        for rule in rules:
            if isinstance(rule.allow, Mapping):
                for value in rule.allow.get(column, ()):
                    values.setdefault(value_text(value), value)
        filters.append(ColumnFilter(column, tuple(values[k] for k in sorted(values))))
    return RowFilter(source, tuple(filters), tuple(policies.where(i) for i in matching))


def _names(rule: Rule, viewer: Viewer, directory: Directory) -> bool:
    """Whether ``rule`` is for ``viewer``: by address, by everyone, or through a team or list they are in."""
    if "*" in rule.who:
        return True
    if viewer.email is None:
        return False
    email = viewer.email.lower()
    if any(entry.lower() == email for entry in rule.who):
        return True
    groups = [entry for entry in rule.who if ":" in entry]
    reached = directory.resolve(groups) if groups else []
    return any(r.problem is None and r.address.lower() == email for r in reached)


def _directory(project: Project) -> Directory:
    from reportctl.delivery.directory import load_directory

    return load_directory(project)


def _either(values: Sequence[Value]) -> str:
    """'a', 'a or b', 'one of a, b or c'."""
    shown = [value_text(v) for v in values]
    if len(shown) <= 2:
        return " or ".join(shown)
    return f"one of {', '.join(shown[:-1])} or {shown[-1]}"


def value_text(value: Value) -> str:
    """A policy value as the text a column's value is compared with (booleans as Polars writes them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
