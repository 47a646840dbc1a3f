"""One run of a report: parameters, sources, datasets, document, writers, artifacts and manifest.

Artifacts are written into a private folder beside their destination and renamed into ``OUT/<name>/<run-id>/``
only when every writer succeeded and the manifest is written, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reportctl import __version__
from reportctl.digests import file_sha256
from reportctl.document import Period
from reportctl.errors import (
    ParameterError,
    RenderError,
    ReportctlError,
    SpecError,
    UsageError,
    did_you_mean,
    exception_line,
)
from reportctl.spec.loader import LoadedSpec
from reportctl.state.lifecycle import new_run_id

if TYPE_CHECKING:
    import polars as pl

    from reportctl.data.sources.base import SourceContext
    from reportctl.delivery.engine import DeliveryReport
    from reportctl.document import Document
    from reportctl.spec.revisions import GitState


@dataclass(frozen=True)
class Artifact:
    format: str
    path: Path
    bytes: int
    sha256: str

    def as_dict(self, relative_to: Path | None = None) -> dict[str, Any]:
        path = self.path.relative_to(relative_to) if relative_to else self.path
        return {"format": self.format, "path": str(path), "bytes": self.bytes, "sha256": self.sha256}


@dataclass
class RunResult:
    run_id: str
    report: str
    status: str
    directory: Path
    artifacts: list[Artifact]
    parameters: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    git_commit: str | None = None
    git_dirty: bool | None = None
    """Whether the spec or a base it extends differed from ``git_commit`` (None outside git)."""
    revision: str | None = None
    """The revision the spec was rendered at, as asked for (``--rev``, a schedule's ``rev:``)."""
    snapshot: Path | None = None
    """Where this run's source data was saved (``--save-snapshot``), or read from (``--from-snapshot``)."""
    arguments: dict[str, str] = field(default_factory=dict)
    """The parameters as given (-p KEY=VALUE), so a replay resolves them again at the same run time."""
    title: str = ""
    delivery: DeliveryReport | None = None
    """What delivering the run did, when it was delivered (``render --deliver``, scheduled runs)."""

    @property
    def manifest(self) -> Path:
        return self.directory / "manifest.json"


Progress = Callable[[str], None]
SNAPSHOT_FOLDER = "snapshot"
"""Where a run's data snapshot goes inside its folder, when the project's ``snapshots: true``."""


@dataclass(frozen=True)
class DataRoute:
    """Where a run's source data comes from and goes: a snapshot to read instead of the sources, one to save."""

    read: Path | None = None
    save: Path | None = None

    def keeps_snapshot(self, loaded: LoadedSpec) -> bool:
        """Whether the run saves its data in its own folder: the project says so, and no snapshot was asked for."""
        return self.read is None and self.save is None and loaded.project.config.snapshots


class RunObserver(Protocol):
    """Told about a run's progress, e.g. to record it in the state store; the runner itself never stores."""

    def stage(self, state: str) -> None:
        """The run entered ``state``: GENERATING or FORMATTING."""

    def rendered(self, result: RunResult) -> None:
        """Every artifact is in its final place; delivery (DISTRIBUTING) starts."""

    def completed(self, result: RunResult) -> None:
        """Every artifact is in place."""

    def failed(self, error: BaseException) -> None:
        """The run stopped with ``error``; nothing of it was left in the output folder."""


def default_run_time() -> datetime:
    """Now, or ``SOURCE_DATE_EPOCH`` when set, so a build can pin the run time and get byte-identical files."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is None or not epoch.strip():
        return datetime.now(UTC)
    try:
        return datetime.fromtimestamp(int(epoch), UTC)
    except (ValueError, OverflowError, OSError):
        raise UsageError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970-01-01 UTC, got '{epoch}'") from None


def resolve_parameters(loaded: LoadedSpec, given: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """Each parameter's value: given on the command line, else its default; typed and checked."""
    from reportctl.spec.parameters import coerce_parameter

    spec = loaded.spec
    timezone = spec.report_timezone(loaded.project.config.timezone)
    unknown = [name for name in given if name not in spec.parameters]
    if unknown:
        name = unknown[0]
        known = ", ".join(spec.parameters) or "none"
        raise ParameterError(
            f"{loaded.path}: unknown parameter '{name}'{did_you_mean(name, spec.parameters)}; the spec has: {known}"
        )
    values: dict[str, Any] = {}
    problems = []
    for name, parameter in spec.parameters.items():
        origin = "default"
        raw: Any = parameter.default
        if name in given:
            raw, origin = given[name], f"-p {name}={given[name]}"
        if raw is None:
            if parameter.required is False:
                values[name] = None
                continue
            problems.append(loaded.problem(("parameters", name), f"required; pass -p {name}=VALUE"))
            continue
        try:
            values[name] = coerce_parameter(parameter, raw, now, timezone)
        except ValueError as exc:
            problems.append(loaded.problem(("parameters", name), f"{exc} (from {origin})"))
    if problems:
        raise SpecError(problems)
    return values


def render_report(
    loaded: LoadedSpec,
    *,
    parameters: Mapping[str, str] | None = None,
    formats: list[str] | None = None,
    output_dir: Path | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
    run_id: str | None = None,
    observer: RunObserver | None = None,
    distribute: Callable[[RunResult], DeliveryReport] | None = None,
    snapshot: Path | None = None,
    save_snapshot: Path | None = None,
) -> RunResult:
    """Render ``loaded`` once and return where its artifacts are; raise ``ReportctlError`` on any failure.

    ``observer`` hears of each stage, the result and any failure (the state store records runs through it);
    ``distribute`` delivers the artifacts once they are in place, and its report becomes ``result.delivery``.
    ``snapshot`` is a data snapshot folder read instead of the live sources; ``save_snapshot`` a folder to save the
    source data in (``reportctl.snapshots``).
    """
    now = now or default_run_time()
    try:
        run_id = run_id or new_run_id(now)
        data = DataRoute(snapshot, save_snapshot)
        result = _render(loaded, parameters, formats, output_dir, now, progress, run_id, observer, data)
        if observer is not None:
            observer.rendered(result)
        if distribute is not None:
            result.delivery = distribute(result)
    except BaseException as exc:
        if observer is not None:
            observer.failed(exc)
        raise
    if observer is not None:
        observer.completed(result)
    return result


def _render(
    loaded: LoadedSpec,
    parameters: Mapping[str, str] | None,
    formats: list[str] | None,
    output_dir: Path | None,
    now: datetime,
    progress: Progress | None,
    run_id: str,
    observer: RunObserver | None,
    data: DataRoute,
) -> RunResult:
    say = progress or (lambda _message: None)
    stage = observer.stage if observer is not None else (lambda _state: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    spec = loaded.spec
    _check_renderable(loaded)
    values = resolve_parameters(loaded, parameters or {}, now)
    writers = _writers(loaded, formats)
    # the manifest's git commit is asked for now, so the git processes run while the report renders
    background = ThreadPoolExecutor(max_workers=1)
    git = background.submit(_git_state, loaded)
    background.shutdown(wait=False)
    timings["resolve"] = _lap(started)

    stage("GENERATING")
    say("reading sources")
    frames = _compute_datasets(loaded, values, now, timings, data.read)

    stage("FORMATTING")
    say("building the document")
    t = time.perf_counter()
    from reportctl.assemble import assemble_document

    document = assemble_document(loaded, frames, values, run_id=run_id, now=now)
    document = dataclasses.replace(document, formats=tuple(name for name, _ in writers))
    timings["document"] = _lap(t)
    document = _with_chart_images(document, writers, say, timings)

    destination = (output_dir or loaded.project.output_dir) / spec.name
    staging = destination / f".{run_id}.partial"
    final = destination / run_id
    try:
        staging.mkdir(parents=True)
        if data.save is not None or data.keeps_snapshot(loaded):
            say("saving the data snapshot")
            t = time.perf_counter()
            data = _save_snapshot(data, loaded, frames, values, parameters, now, run_id, git.result(), staging, final)
            timings["snapshot"] = _lap(t)
        say("writing " + ", ".join(name for name, _ in writers))
        t = time.perf_counter()
        artifacts = _write_all(document, writers, staging)
        timings["write"] = _lap(t)
        timings["total"] = _lap(started)
        result = RunResult(run_id, spec.name, "completed", final, artifacts, jsonable_parameters(values), timings)
        _provenance(result, loaded, git.result(), data, parameters)
        result.title = document.info.title
        _write_manifest(loaded, result, staging, now)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result.artifacts = [Artifact(a.format, final / a.path.name, a.bytes, a.sha256) for a in artifacts]
    return result


def build_document(
    loaded: LoadedSpec,
    parameters: Mapping[str, str] | None = None,
    *,
    now: datetime | None = None,
    snapshot: Path | None = None,
    run_id: str = "preview",
) -> Document:
    """The format-agnostic document of one run, without writing any file (sources read live, or from the data
    snapshot folder ``snapshot`` when given)."""
    from reportctl.assemble import assemble_document

    now = now or default_run_time()
    _check_renderable(loaded)
    values = resolve_parameters(loaded, parameters or {}, now)
    frames = _compute_datasets(loaded, values, now, {}, snapshot)
    return assemble_document(loaded, frames, values, run_id=run_id, now=now)


def _check_renderable(loaded: LoadedSpec) -> None:
    if loaded.spec.abstract:
        raise SpecError(
            [loaded.problem(("abstract",), "an abstract spec is a base for others; render a spec extending it")]
        )


def _with_chart_images(
    document: Document, writers: list[tuple[str, Any]], say: Progress, timings: dict[str, float]
) -> Document:
    """The document with its charts exported once, in every image format a chosen writer embeds."""
    formats: set[str] = set()
    for _, writer in writers:
        formats |= getattr(type(writer), "CHART_IMAGES", frozenset())
    charts = document.charts()
    if not formats or not charts:
        return document
    from reportctl.chart_export import export_charts

    say(f"drawing {len(charts)} chart{'s' if len(charts) != 1 else ''}")
    t = time.perf_counter()
    images = export_charts(charts, formats, timezone=document.info.timezone)
    timings["charts"] = _lap(t)
    return dataclasses.replace(document, chart_images=images)


def _lap(since: float) -> float:
    return round(time.perf_counter() - since, 4)


def _writers(loaded: LoadedSpec, formats: list[str] | None) -> list[tuple[str, Any]]:
    from reportctl.plugins import WRITERS, load_plugin, plugin_names, unknown_plugin_message

    configured = {str(o.model_dump()["format"]): o for o in loaded.outputs}
    chosen = formats or list(configured)
    writers = []
    for name in chosen:
        if name not in plugin_names(WRITERS):
            raise UsageError(f"-f: {unknown_plugin_message(WRITERS, name)}")
        plugin = load_plugin(WRITERS, name)
        options = configured.get(name) or plugin.Options(format=name)
        writers.append((name, plugin(options)))
    return writers


def _compute_datasets(
    loaded: LoadedSpec,
    values: Mapping[str, Any],
    now: datetime,
    timings: dict[str, float],
    snapshot: Path | None = None,
) -> dict[str, pl.DataFrame]:
    """Every source and dataset, collected; the sources come first, by their names."""
    import polars as pl

    from reportctl.data.pipeline import build_datasets
    from reportctl.spec.parameters import bind_values

    spec = loaded.spec
    bound = bind_values(spec.parameters, values)
    t = time.perf_counter()
    if snapshot is not None:
        from reportctl.snapshots import read_snapshot, snapshot_inputs

        inputs = snapshot_inputs(read_snapshot(snapshot), loaded)
    else:
        inputs = _live_inputs(loaded, now, bound)
    timings["sources"] = _lap(t)
    t = time.perf_counter()
    lazy = {**inputs, **build_datasets(spec.datasets, inputs, bound)}
    try:
        collected = pl.collect_all(list(lazy.values()))
    except pl.exceptions.PolarsError as exc:
        from reportctl.data.expressions import describe_polars_error
        from reportctl.errors import DatasetError

        raise DatasetError(_failing_dataset(lazy), describe_polars_error(exc)) from None
    timings["datasets"] = _lap(t)
    # One chunk each: how Polars splits a result into chunks depends on its threads, and a sum or std over
    # several chunks (the JSON summary, a template's .sum()) combines them in a different order than over one.
    return {name: frame.rechunk() for name, frame in zip(lazy, collected, strict=True)}


def _live_inputs(loaded: LoadedSpec, now: datetime, bound: Mapping[str, Any]) -> dict[str, pl.LazyFrame]:
    from reportctl.plugins import SOURCES, load_plugin

    context = source_context(loaded, now, bound)
    inputs: dict[str, pl.LazyFrame] = {}
    for name, options in loaded.sources.items():
        source = load_plugin(SOURCES, options.kind)(name, options, context)
        inputs[name] = in_report_timezone(source.fetch(), context.timezone)
    return inputs


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


def _write_all(document: Document, writers: list[tuple[str, Any]], directory: Path) -> list[Artifact]:
    def run(name: str, writer: Any) -> list[Artifact]:
        try:
            paths = writer.write(document, directory)
        except ReportctlError:
            raise
        except Exception as exc:  # a writer bug must still fail the run cleanly, naming the writer
            raise RenderError(f"{name} writer failed: {exception_line(exc)}") from exc
        return [_artifact(name, path) for path in paths]

    if document.charts():
        # plotly reaches numpy.ma, which numpy imports lazily on first use: two writer threads doing that at once
        # can see it half-imported ("partially initialized module 'numpy' has no attribute 'ma'")
        import numpy.ma  # noqa: F401

    with ThreadPoolExecutor(max_workers=max(1, min(len(writers), os.cpu_count() or 2))) as pool:
        futures = [pool.submit(run, name, writer) for name, writer in writers]
        # two writers may write the same file (markdown and png both write a chart's PNG): list it once
        unique = {artifact.path: artifact for future in futures for artifact in future.result()}
        return list(unique.values())


def _artifact(writer: str, path: Path) -> Artifact:
    """The artifact at ``path``; its format is its suffix when that names a writer (a chart PNG written by the
    markdown writer is a png), else the writer's name."""
    from reportctl.plugins import WRITERS, plugin_names

    suffix = path.suffix.removeprefix(".")
    name = suffix if suffix in plugin_names(WRITERS) else writer
    return Artifact(name, path, path.stat().st_size, file_sha256(path))


def jsonable_parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter values as JSON: periods as {name, start, end}, dates ISO, durations in seconds."""

    def convert(value: Any) -> Any:
        if isinstance(value, Period):
            return {"name": value.name, "start": value.start.isoformat(), "end": value.end.isoformat()}
        if isinstance(value, datetime | date):
            return value.isoformat()
        if isinstance(value, timedelta):
            return value.total_seconds()
        return value

    return {name: convert(value) for name, value in values.items()}


def _save_snapshot(
    data: DataRoute,
    loaded: LoadedSpec,
    frames: Mapping[str, pl.DataFrame],
    values: Mapping[str, Any],
    parameters: Mapping[str, str] | None,
    now: datetime,
    run_id: str,
    git: GitState | None,
    staging: Path,
    final: Path,
) -> DataRoute:
    """Save the run's source data where ``--save-snapshot`` says, else in the run's own folder; where it will be."""
    from reportctl.snapshots import save_snapshot

    kept = data.save is None  # the project's `snapshots: true`: inside the run folder, renamed with it
    directory = staging / SNAPSHOT_FOLDER if data.save is None else data.save
    save_snapshot(
        directory,
        loaded,
        {name: frames[name] for name in loaded.sources},
        parameters=jsonable_parameters(values),
        arguments=dict(parameters or {}),
        run_time=now,
        run_id=run_id,
        git_commit=git.commit if git else None,
    )
    return DataRoute(save=final / SNAPSHOT_FOLDER) if kept else data


def _provenance(
    result: RunResult, loaded: LoadedSpec, git: GitState | None, data: DataRoute, parameters: Mapping[str, str] | None
) -> None:
    """What a replay needs to render the run again: the commit, the revision, the snapshot, the given parameters."""
    if git is not None:
        result.git_commit, result.git_dirty = git.commit, git.dirty
    result.revision = loaded.ref
    snapshot = data.save or data.read
    result.snapshot = snapshot.resolve() if snapshot is not None else None
    result.arguments = dict(parameters or {})


def _git_state(loaded: LoadedSpec) -> GitState | None:
    from reportctl.spec.revisions import spec_git_state

    return spec_git_state(loaded)


def _write_manifest(loaded: LoadedSpec, result: RunResult, directory: Path, now: datetime) -> None:
    manifest = {
        "run_id": result.run_id,
        "report": result.report,
        "title": result.title,
        "status": result.status,
        "generated_at": now.astimezone(UTC).isoformat(),
        "reportctl_version": __version__,
        "spec": {
            "path": str(loaded.path),
            "hash": loaded.spec_hash,
            "files": [str(f) for f in loaded.files],
            "git_commit": result.git_commit,
            "git_dirty": result.git_dirty,
            "revision": result.revision,
        },
        "parameters": result.parameters,
        "arguments": result.arguments,
        "snapshot": str(result.snapshot) if result.snapshot else None,
        "timings": result.timings,
        "artifacts": [a.as_dict(relative_to=directory) for a in result.artifacts],
    }
    temporary = directory / ".manifest.json.tmp"
    temporary.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    temporary.replace(directory / "manifest.json")
