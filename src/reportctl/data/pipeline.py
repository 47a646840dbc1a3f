"""Datasets computed lazily with Polars from sources and other datasets, in dependency order.

``build_datasets`` gives each dataset's LazyFrame (nothing is collected here). ``check_datasets`` builds the
same plans over empty frames of the sources' known schemas, so ``reportctl validate`` can name the exact field
of a mistake and tell which columns each dataset will have. The steps are in ``reportctl.data.steps``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reportctl.data.sqltree import table_references
from reportctl.data.steps import build_dataset, check_dataset
from reportctl.errors import DatasetError, did_you_mean, one_of
from reportctl.spec.models import Dataset

if TYPE_CHECKING:
    import polars as pl

__all__ = ["DatasetCheck", "build_datasets", "check_datasets", "dataset_references"]


@dataclass(frozen=True)
class DatasetCheck:
    """What ``check_datasets`` found: (field path, message) problems, and each dataset's schema.

    A schema is None when it cannot be known: an input's schema is unknown (e.g. a SQL source) or the dataset,
    or one it depends on, has a problem.
    """

    problems: list[tuple[str, str]] = field(default_factory=list)
    schemas: dict[str, pl.Schema | None] = field(default_factory=dict)


def build_datasets(
    datasets: Mapping[str, Dataset], inputs: Mapping[str, pl.LazyFrame], params: Mapping[str, Any]
) -> dict[str, pl.LazyFrame]:
    """Every dataset as a LazyFrame, by name in spec order, computed from the sources in ``inputs``.

    ``params`` holds the bind values of the run. Raises DatasetError naming the dataset, the field and the
    cause for unknown names, cycles, and anything that fails while planning; Polars errors at collect time are
    the caller's (``reportctl.data.expressions.describe_polars_error`` puts them in one line).
    """
    order = _DependencyOrder(datasets, inputs.keys())
    if order.problems:
        name, where, message = order.problems[0]
        raise DatasetError(name, f"{where}: {message}" if where else message)
    built: dict[str, pl.LazyFrame] = {}
    for name in order.names:
        built[name] = build_dataset(name, datasets[name], {**inputs, **built}, params)
    return {name: built[name] for name in datasets}


def check_datasets(
    datasets: Mapping[str, Dataset], schemas: Mapping[str, pl.Schema | None], params: Mapping[str, Any]
) -> DatasetCheck:
    """Problems of the datasets found without data, each at its field path, and the schemas they would have.

    ``schemas`` are the sources' schemas by name (None when unknowable: names are still checked, columns are
    not, for datasets that read it). Paths look like ``datasets.by_service.aggregate.p95_latency``.
    """
    import polars as pl

    order = _DependencyOrder(datasets, schemas.keys())
    problems = [(_path(name, where), message) for name, where, message in order.problems]
    known: dict[str, pl.Schema | None] = dict(schemas)
    result: dict[str, pl.Schema | None] = {}
    for name in order.names:
        dataset = datasets[name]
        inputs = [ref for _, ref in dataset_references(dataset)]
        unknowable = name in order.broken or any(known.get(ref) is None for ref in inputs)
        frames = {ref: pl.LazyFrame(schema=s) for ref, s in known.items() if s is not None}
        schema, found = check_dataset(name, dataset, None if unknowable else frames, params)
        problems.extend(found)
        result[name] = known[name] = schema
    return DatasetCheck(problems, {name: result.get(name) for name in datasets})


def dataset_references(dataset: Dataset) -> list[tuple[str, str]]:
    """(field, name) for each source or dataset a dataset reads: from, join[i].dataset, tables in its sql."""
    references = []
    if dataset.from_ is not None:
        references.append(("from", dataset.from_))
    references.extend((f"join[{i}].dataset", join.dataset) for i, join in enumerate(dataset.join))
    if dataset.sql is not None:
        tables = table_references(dataset.sql)
        references.extend(("sql", table) for table in dict.fromkeys(tables.tables) if table not in tables.ctes)
    return references


def dependency_order(datasets: Mapping[str, Dataset], sources: Collection[str]) -> list[str]:
    """The datasets that can be planned, each after the datasets it reads (those in a cycle or reading an unknown
    name are left out: validate reports them)."""
    order = _DependencyOrder(datasets, sources)
    return [name for name in order.names if name not in order.broken]


def _path(name: str, where: str) -> str:
    return f"datasets.{name}.{where}" if where else f"datasets.{name}"


class _DependencyOrder:
    """Datasets ordered so each comes after what it reads; unknown names and cycles are problems.

    ``broken`` holds the datasets that cannot be planned: those with a problem here and those reading them.
    """

    def __init__(self, datasets: Mapping[str, Dataset], sources: Collection[str]) -> None:
        self.datasets = datasets
        self.sources = set(sources)
        self.names: list[str] = []
        self.problems: list[tuple[str, str, str]] = []  # (dataset, field, message)
        self.broken: set[str] = set()
        self._state: dict[str, str] = {}
        known = sorted(self.sources | set(datasets))
        for name, dataset in datasets.items():
            if name in self.sources:
                self._problem(name, "", f"dataset '{name}' has the same name as a source; rename one of them")
            unreadable = table_references(dataset.sql).unreadable if dataset.sql is not None else ""
            if unreadable:
                self._problem(name, "sql", unreadable)
            for where, ref in dataset_references(dataset):
                if ref not in known:
                    self._problem(name, where, _unknown_input(ref, known, sql=where == "sql"))
        for name in datasets:
            if name not in self._state:
                self._visit(name, [])

    def _problem(self, name: str, where: str, message: str) -> None:
        self.problems.append((name, where, message))
        self.broken.add(name)

    def _visit(self, name: str, path: list[str]) -> None:
        self._state[name] = "visiting"
        path.append(name)
        for where, ref in dataset_references(self.datasets[name]):
            if ref not in self.datasets or ref in self.sources:
                continue
            if self._state.get(ref) == "visiting":
                cycle = [*path[path.index(ref) :], ref]
                self._problem(name, where, f"datasets depend on each other in a cycle: {' -> '.join(cycle)}")
                self.broken.update(cycle)
            elif ref not in self._state:
                self._visit(ref, path)
            if ref in self.broken:
                self.broken.add(name)
        path.pop()
        self._state[name] = "done"
        self.names.append(name)


def _unknown_input(name: str, known: list[str], *, sql: bool) -> str:
    what = "table" if sql else "source or dataset"
    hint = did_you_mean(name, known)
    listed = "" if hint else f"; sources and datasets are: {one_of(known) or '(none)'}"
    return f"unknown {what} '{name}'{hint}{listed}"
