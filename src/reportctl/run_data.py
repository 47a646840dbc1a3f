"""A run's data: the spec's sources read (live, or from a data snapshot) and its datasets collected.

Every time-zone-aware column arrives in the report's zone, and every frame comes out in one chunk, so what the
document is built from does not depend on the machine's zone or on Polars' threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportctl.errors import ReportctlError, SourceError
from reportctl.run_record import lap

if TYPE_CHECKING:
    import polars as pl

    from reportctl.data.cache import CacheRead, QueryCache
    from reportctl.data.policies import Access, RowFilter
    from reportctl.data.sources.base import SourceCache, SourceContext
    from reportctl.spec.loader import LoadedSpec


def compute_datasets(
    loaded: LoadedSpec,
    values: Mapping[str, Any],
    now: datetime,
    timings: dict[str, float],
    snapshot: Path | None = None,
    *,
    cache_reads: list[CacheRead] | None = None,
    access: Access | None = None,
    failures: dict[str, BaseException] | None = None,
) -> dict[str, pl.DataFrame]:
    """Every source and dataset, collected; the sources come first, by their names.

    ``timings`` gets the seconds spent on the sources and on the datasets; ``snapshot`` is a data snapshot folder
    read instead of the live sources. Given ``cache_reads`` (and the project's cache on), sql and http sources are
    read through the query cache, and ``cache_reads`` gets how each was read. ``access`` holds the viewer's row
    filters, applied to each protected source as it is read, before any dataset sees it.

    Given ``failures`` (isolated sections, ``reportctl.isolation``), a source or dataset that fails is left out and
    its error put there, under its name and the name of every dataset that reads it; the others are still read.
    """
    import polars as pl

    from reportctl.data.pipeline import build_datasets
    from reportctl.spec.parameters import bind_values

    spec = loaded.spec
    bound = bind_values(spec.parameters, values)
    t = time.perf_counter()
    if snapshot is not None:
        from reportctl.snapshots import read_snapshot, snapshot_inputs

        inputs = snapshot_inputs(read_snapshot(snapshot), loaded)
        filters = access.filters if access is not None else {}
        inputs = {name: filters[name].apply(f) if name in filters else f for name, f in inputs.items()}
    else:
        inputs = _live_inputs(loaded, now, bound, cache_reads, access, failures)
    timings["sources"] = lap(t)
    t = time.perf_counter()
    if failures is not None:
        frames = _isolated_datasets(loaded, inputs, bound, failures)
        timings["datasets"] = lap(t)
        return frames
    lazy = {**inputs, **build_datasets(spec.datasets, inputs, bound)}
    try:
        collected = pl.collect_all(list(lazy.values()))
    except pl.exceptions.PolarsError as exc:
        from reportctl.data.expressions import describe_polars_error
        from reportctl.errors import DatasetError

        raise DatasetError(_failing_dataset(lazy), describe_polars_error(exc)) from None
    timings["datasets"] = lap(t)
    # One chunk each: how Polars splits a result into chunks depends on its threads, and a sum or std over
    # several chunks (the JSON summary, a template's .sum()) combines them in a different order than over one.
    return {name: frame.rechunk() for name, frame in zip(lazy, collected, strict=True)}


def _live_inputs(
    loaded: LoadedSpec,
    now: datetime,
    bound: Mapping[str, Any],
    reads: list[CacheRead] | None,
    access: Access | None = None,
    failures: dict[str, BaseException] | None = None,
) -> dict[str, pl.LazyFrame]:
    from reportctl.data.cache import QueryCache

    context = source_context(loaded, now, bound)
    cache = QueryCache(loaded.project.cache_dir) if loaded.project.config.cache.enabled else None
    inputs: dict[str, pl.LazyFrame] = {}
    for name, options in loaded.sources.items():
        if failures is not None:
            try:
                inputs[name] = _read_source(loaded, name, options, context, cache, reads, access)
            except Exception as exc:  # isolated: the source's readers become placeholders, the others go on
                failures[name] = exc if isinstance(exc, ReportctlError) else SourceError(name, options.kind, str(exc))
            continue
        inputs[name] = _read_source(loaded, name, options, context, cache, reads, access)
    return inputs


def _read_source(
    loaded: LoadedSpec,
    name: str,
    options: Any,
    context: SourceContext,
    cache: QueryCache | None,
    reads: list[CacheRead] | None,
    access: Access | None,
) -> pl.LazyFrame:
    """One source read for the run's viewer, through the query cache when it serves the source."""
    from reportctl.plugins import SOURCES, load_plugin

    source = load_plugin(SOURCES, options.kind)(name, options, context)
    setting = _cache_setting(options, source)
    fetch, identity = _filtered(source, access.filters.get(name) if access is not None else None)
    if cache is None or reads is None or setting is None:
        frame = fetch()
    else:
        ttl = setting.ttl or loaded.project.config.cache.ttl
        limit: timedelta = getattr(options, "timeout", timedelta(minutes=1))
        wait = limit.total_seconds() * (1 + getattr(options, "retries", 0)) + 5
        collected, read = cache.read(name, identity(), ttl, fetch, wait=wait)
        frame = collected.lazy()
        reads.append(read)
    return in_report_timezone(frame, context.timezone)


def _isolated_datasets(
    loaded: LoadedSpec,
    inputs: Mapping[str, pl.LazyFrame],
    bound: Mapping[str, Any],
    failures: dict[str, BaseException],
) -> dict[str, pl.DataFrame]:
    """The sources and datasets that can be computed, each dataset once; one whose plan or collection fails, or
    that reads a failed one, goes to ``failures`` (with the first failure it reads) and the rest still compute."""
    import polars as pl

    from reportctl.data.expressions import describe_polars_error
    from reportctl.data.pipeline import build_datasets, dataset_references, dependency_order
    from reportctl.data.steps import build_dataset
    from reportctl.errors import DatasetError

    datasets = loaded.spec.datasets
    order = dependency_order(datasets, [*inputs, *failures])
    if len(order) < len(datasets):  # a cycle or an unknown name: the spec's own error, as without isolation
        build_datasets(datasets, {**inputs, **{name: pl.LazyFrame() for name in failures}}, bound)
    lazy: dict[str, pl.LazyFrame] = dict(inputs)
    for name in order:
        failed = [ref for _, ref in dataset_references(datasets[name]) if ref in failures]
        if failed:
            failures[name] = failures[failed[0]]
            continue
        try:
            lazy[name] = build_dataset(name, datasets[name], lazy, bound)
        except ReportctlError as exc:
            failures[name] = exc
    try:
        collected = dict(zip(lazy, pl.collect_all(list(lazy.values())), strict=True))
    except pl.exceptions.PolarsError:
        collected = {}
        for name, frame in lazy.items():  # only on the error path: one at a time, to tell which ones fail
            failed = (
                [ref for _, ref in dataset_references(datasets[name]) if ref in failures] if name in datasets else []
            )
            if failed:
                failures[name] = failures[failed[0]]
                continue
            try:
                collected[name] = frame.collect()
            except pl.exceptions.PolarsError as exc:
                failures[name] = DatasetError(name, describe_polars_error(exc))
    order_of = [*inputs, *datasets]
    return {name: collected[name].rechunk() for name in order_of if name in collected and name not in failures}


def _filtered(source: Any, row_filter: RowFilter | None) -> tuple[Callable[[], pl.LazyFrame], Callable[[], Any]]:
    """How to read ``source`` for the run's viewer, and its query-cache key: the viewer's filter is applied as the
    rows are read and is part of the key, so the cache holds each viewer's rows apart (never everyone's). The key
    is asked for only when the source is cached (file and sample sources have none)."""

    def fetch() -> pl.LazyFrame:
        frame: pl.LazyFrame = source.fetch()
        return frame if row_filter is None else row_filter.apply(frame)

    def identity() -> Any:
        key = source.cache_identity()
        return key if row_filter is None else {**key, "row_filter": row_filter.identity()}

    return fetch, identity


def _cache_setting(options: Any, source: Any) -> SourceCache | None:
    """The source's cache setting when the query cache serves it (sql, http) and it has not opted out."""
    from reportctl.data.sources.base import CachedSource

    setting: SourceCache | None = getattr(options, "cache", None)
    served = setting is not None and setting.enabled and isinstance(source, CachedSource)
    return setting if served else None


def source_context(loaded: LoadedSpec, now: datetime, bound: Mapping[str, Any]) -> SourceContext:
    """What the spec's sources are given: the project, the run time, the report's zone and the bound parameters."""
    from reportctl.data.sources.base import SourceContext

    return SourceContext(
        project_root=loaded.project.root,
        run_time=now,
        timezone=loaded.spec.report_timezone(loaded.project.config.timezone),
        parameters=bound,
        allowed_paths=loaded.project.allowed_paths,
    )


def in_report_timezone(frame: pl.LazyFrame, timezone: str) -> pl.LazyFrame:
    """Time-zone-aware columns converted to the report's zone, so days, hours and buckets are the reader's."""
    import polars.selectors as cs

    return frame.with_columns(cs.datetime(time_zone="*").dt.convert_time_zone(timezone))


def _failing_dataset(lazy: Mapping[str, pl.LazyFrame]) -> str:
    """Which frame fails, found by collecting one at a time (only on the error path)."""
    import polars as pl

    for name, frame in lazy.items():
        try:
            frame.collect()
        except pl.exceptions.PolarsError:
            return name
    return next(iter(lazy), "?")
