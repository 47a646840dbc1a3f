"""One run of a report: parameters, sources, datasets, document, writers, artifacts and manifest.

Artifacts are written into a private folder beside their destination and renamed into ``OUT/<name>/<run-id>/``
only when every writer succeeded and the manifest is written, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reportctl import __version__
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
    title: str = ""
    delivery: DeliveryReport | None = None
    """What delivering the run did, when it was delivered (``render --deliver``, scheduled runs)."""

    @property
    def manifest(self) -> Path:
        return self.directory / "manifest.json"


Progress = Callable[[str], None]


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
) -> RunResult:
    """Render ``loaded`` once and return where its artifacts are; raise ``ReportctlError`` on any failure.

    ``observer`` hears of each stage, the result and any failure (the state store records runs through it);
    ``distribute`` delivers the artifacts once they are in place, and its report becomes ``result.delivery``.
    """
    now = now or default_run_time()
    try:
        result = _render(loaded, parameters, formats, output_dir, now, progress, run_id or new_run_id(now), observer)
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
) -> RunResult:
    say = progress or (lambda _message: None)
    stage = observer.stage if observer is not None else (lambda _state: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    spec = loaded.spec
    if spec.abstract:
        raise SpecError(
            [loaded.problem(("abstract",), "an abstract spec is a base for others; render a spec extending it")]
        )
    values = resolve_parameters(loaded, parameters or {}, now)
    writers = _writers(loaded, formats)
    # the manifest's git commit is asked for now, so the git processes run while the report renders
    background = ThreadPoolExecutor(max_workers=1)
    commit = background.submit(git_commit, loaded.path)
    background.shutdown(wait=False)
    timings["resolve"] = _lap(started)

    stage("GENERATING")
    say("reading sources")
    frames = _compute_datasets(loaded, values, now, timings)

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
        say("writing " + ", ".join(name for name, _ in writers))
        t = time.perf_counter()
        artifacts = _write_all(document, writers, staging)
        timings["write"] = _lap(t)
        timings["total"] = _lap(started)
        result = RunResult(run_id, spec.name, "completed", final, artifacts, jsonable_parameters(values), timings)
        result.git_commit = commit.result()
        result.title = document.info.title
        _write_manifest(loaded, result, staging, now)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result.artifacts = [Artifact(a.format, final / a.path.name, a.bytes, a.sha256) for a in artifacts]
    return result


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
    loaded: LoadedSpec, values: Mapping[str, Any], now: datetime, timings: dict[str, float]
) -> dict[str, pl.DataFrame]:
    import polars as pl

    from reportctl.data.pipeline import build_datasets
    from reportctl.plugins import SOURCES, load_plugin
    from reportctl.spec.parameters import bind_values

    spec = loaded.spec
    bound = bind_values(spec.parameters, values)
    context = source_context(loaded, now, bound)
    t = time.perf_counter()
    inputs: dict[str, pl.LazyFrame] = {}
    for name, options in loaded.sources.items():
        source = load_plugin(SOURCES, options.kind)(name, options, context)
        inputs[name] = in_report_timezone(source.fetch(), context.timezone)
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
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return Artifact(name, path, path.stat().st_size, digest.hexdigest())


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


def git_commit(path: Path) -> str | None:
    """The commit ``path`` was read from when it is in a git checkout; '+dirty' when it has local edits."""
    try:
        folder = str(path.parent)
        commit = subprocess.run(
            ["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", folder, "status", "--porcelain", "--", path.name],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if status else "") if commit else None


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
        },
        "parameters": result.parameters,
        "timings": result.timings,
        "artifacts": [a.as_dict(relative_to=directory) for a in result.artifacts],
    }
    temporary = directory / ".manifest.json.tmp"
    temporary.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    temporary.replace(directory / "manifest.json")
