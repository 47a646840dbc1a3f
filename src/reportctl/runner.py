"""One run of a report through its states: parameters resolved, data read (GENERATING), the document built and
written (FORMATTING), delivery handed over. The data comes from ``run_data``; the record it leaves, artifacts,
manifest and snapshot, from ``run_record``.

Artifacts are written into a private folder beside their destination and renamed into ``OUT/<name>/<run-id>/``
only when every writer succeeded and the manifest is written, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reportctl.digests import file_sha256
from reportctl.errors import (
    ParameterError,
    RenderError,
    ReportctlError,
    SpecError,
    UsageError,
    did_you_mean,
    exception_line,
)
from reportctl.isolation import compute_isolated, error_line, placeholder_charts, without_failed_charts
from reportctl.run_record import (
    Artifact,
    DataRoute,
    RunResult,
    git_state,
    jsonable_parameters,
    lap,
    record_provenance,
    save_run_snapshot,
    write_manifest,
)
from reportctl.spec.loader import LoadedSpec
from reportctl.state.lifecycle import new_run_id

if TYPE_CHECKING:
    import polars as pl

    from reportctl.burst import Audience
    from reportctl.data.cache import CacheRead
    from reportctl.data.policies import Access
    from reportctl.delivery.engine import DeliveryReport
    from reportctl.document import Document


Progress = Callable[[str], None]


class RunObserver(Protocol):
    """Told about a run's progress, e.g. to record it in the state store; the runner itself never stores."""

    def stage(self, state: str, detail: str | None = None) -> None:
        """The run entered ``state``: GENERATING or FORMATTING; ``detail`` says how the sources were read."""

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
    cache: bool = True,
    viewer: str | Audience | None = None,
) -> RunResult:
    """Render ``loaded`` once and return where its artifacts are; raise ``ReportctlError`` on any failure.

    ``observer`` hears of each stage, the result and any failure (the state store records runs through it);
    ``distribute`` delivers the artifacts once they are in place, and its report becomes ``result.delivery``.
    ``snapshot`` is a data snapshot folder read instead of the live sources; ``save_snapshot`` a folder to save the
    source data in (``reportctl.snapshots``); ``cache`` False reads every source live (``--no-cache``);
    ``viewer`` (``--as``) is who the report is for: protected sources show only the rows the policies allow them.
    """
    now = now or default_run_time()
    try:
        run_id = run_id or new_run_id(now)
        data = DataRoute(snapshot, save_snapshot, cache, viewer)
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
    stage = observer.stage if observer is not None else (lambda _state, _detail=None: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    spec = loaded.spec
    _check_renderable(loaded)
    values = resolve_parameters(loaded, parameters or {}, now)
    writers = chosen_writers(loaded, formats)
    # the manifest's git commit is asked for now, so the git processes run while the report renders
    background = ThreadPoolExecutor(max_workers=1)
    git = background.submit(git_state, loaded)
    background.shutdown(wait=False)
    timings["resolve"] = lap(started)

    stage("GENERATING")
    say("reading sources")
    frames, reads, access, failures = _read_data(loaded, values, now, timings, data, say)

    stage("FORMATTING", "; ".join(read.describe() for read in reads) or None)
    say("building the document")
    t = time.perf_counter()
    from reportctl.assemble import assemble_document

    document = with_access_note(
        assemble_document(loaded, frames, values, run_id=run_id, now=now, failures=failures), access
    )
    document = dataclasses.replace(document, formats=tuple(name for name, _ in writers))
    timings["document"] = lap(t)
    document = _with_chart_images(
        document, writers, say, timings, messages=_composes_messages(loaded), isolated=placeholder_charts(loaded)
    )

    destination = (output_dir or loaded.project.output_dir) / spec.name
    staging = destination / f".{run_id}.partial"
    final = destination / run_id
    try:
        staging.mkdir(parents=True)
        if data.save is not None or data.keeps_snapshot(loaded):
            say("saving the data snapshot")
            t = time.perf_counter()
            data = save_run_snapshot(
                data, loaded, frames, values, parameters, now, run_id, git.result(), staging, final
            )
            timings["snapshot"] = lap(t)
        say("writing " + ", ".join(name for name, _ in writers))
        t = time.perf_counter()
        artifacts = _write_all(document, writers, staging)
        timings["write"] = lap(t)
        timings["total"] = lap(started)
        sources = [read.as_dict() for read in reads]
        result = RunResult(
            run_id,
            spec.name,
            "completed",
            final,
            artifacts,
            jsonable_parameters(values),
            timings,
            sources=sources,
            warnings=[failure.as_dict() for failure in document.failures()],
        )
        record_provenance(result, loaded, git.result(), data, parameters)
        result.title = document.info.title
        result.access, result.audience = access.as_dict(), access.audience
        from reportctl.preview import write_preview

        write_manifest(loaded, result, staging, now, document, preview=write_preview(document, staging))
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result.artifacts = [Artifact(a.format, final / a.path.name, a.bytes, a.sha256) for a in artifacts]
    return result


def _read_data(
    loaded: LoadedSpec,
    values: Mapping[str, Any],
    now: datetime,
    timings: dict[str, float],
    data: DataRoute,
    say: Progress,
) -> tuple[dict[str, pl.DataFrame], list[CacheRead], Access, dict[str, BaseException]]:
    """The run's sources and datasets as its viewer may see them, how the cached sources were read (hits are said
    as progress), the viewer's access, and the sources and datasets that failed: only when sections may become
    placeholders, and only those whose every reader is one (any other failure is raised, as without isolation)."""
    from reportctl.data.policies import access_for

    access = access_for(loaded, data.viewer)
    reads: list[CacheRead] = []
    frames, failures = compute_isolated(
        loaded, values, now, timings, data.read, cache_reads=reads if data.cache else None, access=access
    )
    if failures:
        say("failed, shown as placeholders: " + "; ".join(error_line(error) for error in _distinct(failures)))
    hits = [read.describe() for read in reads if read.outcome == "hit"]
    if hits:
        say("; ".join(hits))
    return frames, reads, access, failures


def _distinct(failures: Mapping[str, BaseException]) -> list[BaseException]:
    """Each failure once: a dataset that reads a failed one carries the same error."""
    return list({id(error): error for error in failures.values()}.values())


def build_document(
    loaded: LoadedSpec,
    parameters: Mapping[str, str] | None = None,
    *,
    now: datetime | None = None,
    snapshot: Path | None = None,
    run_id: str = "preview",
    viewer: str | None = None,
) -> Document:
    """The format-agnostic document of one run, without writing any file (sources read live, or from the data
    snapshot folder ``snapshot`` when given), for ``viewer`` when given."""
    from reportctl.assemble import assemble_document
    from reportctl.data.policies import access_for

    now = now or default_run_time()
    _check_renderable(loaded)
    values = resolve_parameters(loaded, parameters or {}, now)
    access = access_for(loaded, viewer)
    frames, failures = compute_isolated(loaded, values, now, {}, snapshot, access=access)
    document = assemble_document(loaded, frames, values, run_id=run_id, now=now, failures=failures)
    return with_access_note(document, access)


ACCESS_BLOCK = "_access"
"""The id of the note on who a report is filtered for; no spec section can take it (ids start with [a-z0-9])."""


def with_access_note(document: Document, access: Access) -> Document:
    """The document opening with who it is filtered for, when it is rendered for a viewer of protected rows."""
    from reportctl.document import TextBlock

    note = access.note()
    if note is None:
        return document
    return dataclasses.replace(document, blocks=(TextBlock(ACCESS_BLOCK, None, note), *document.blocks))


def _check_renderable(loaded: LoadedSpec) -> None:
    if loaded.spec.abstract:
        raise SpecError(
            [loaded.problem(("abstract",), "an abstract spec is a base for others; render a spec extending it")]
        )


def _composes_messages(loaded: LoadedSpec) -> bool:
    """Whether a delivery of the spec composes a message, which shows the first chart as a picture."""
    from reportctl.preview import MESSAGE_CHANNELS

    return any(getattr(entry, "channel", None) in MESSAGE_CHANNELS for entry in loaded.spec.delivery)


def _with_chart_images(
    document: Document,
    writers: list[tuple[str, Any]],
    say: Progress,
    timings: dict[str, float],
    *,
    messages: bool = False,
    isolated: frozenset[str] = frozenset(),
) -> Document:
    """The document with its charts exported once, in every image format a chosen writer embeds. When only a
    delivery's message wants a picture (of the first chart), it is drawn if a browser is at hand: a message
    without it is still sent, so a missing browser fails no run that writes no pictures. A chart in ``isolated``
    (``on_error: placeholder``) that cannot be exported becomes a placeholder instead of failing the run."""
    formats: set[str] = set()
    for _, writer in writers:
        formats |= getattr(type(writer), "CHART_IMAGES", frozenset())
    charts = document.charts()
    if not charts or not (formats or messages):
        return document
    from reportctl.chart_export import BrowserMissingError, export_charts
    from reportctl.charts import ChartError

    wanted, optional = (charts, False) if formats else (charts[:1], True)
    say(f"drawing {len(wanted)} chart{'s' if len(wanted) != 1 else ''}")
    t = time.perf_counter()
    wanted_formats = formats | ({"png"} if messages else set())
    try:
        images = export_charts(wanted, wanted_formats, timezone=document.info.timezone, locale=document.style.locale)
    except (BrowserMissingError, ChartError) as exc:
        if optional:
            images = {}
        elif not any(chart.id in isolated for chart in wanted):
            raise
        else:
            document, images = without_failed_charts(document, wanted, wanted_formats, isolated, exc)
    timings["charts"] = lap(t)
    return dataclasses.replace(document, chart_images=images)


def chosen_writers(loaded: LoadedSpec, formats: list[str] | None) -> list[tuple[str, Any]]:
    """The writers for ``formats`` (default: the spec's outputs); ``UsageError`` for a format no writer has."""
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


PROCESS_CELLS = 40_000
"""Table cells from which a run's second CPU-bound writer runs in a process of its own (benchmarks/bench_writers.py
measures where a process starts to pay for itself)."""


def _write_all(document: Document, writers: list[tuple[str, Any]], directory: Path) -> list[Artifact]:
    """Every writer's artifacts. Writers run in threads; when the document is large, every CPU-bound writer but the
    first (pure-Python writers such as PDF and XLSX hold the GIL, so threads would take turns) runs in a spawned
    process, fed the pickled document: its tables travel as Arrow IPC, never as Python rows."""

    def run(name: str, writer: Any) -> list[Artifact]:
        return [_artifact(name, path) for path in _run_writer(name, writer, document, directory)]

    if document.charts():
        # plotly reaches numpy.ma, which numpy imports lazily on first use: two writer threads doing that at once
        # can see it half-imported ("partially initialized module 'numpy' has no attribute 'ma'")
        import numpy.ma  # noqa: F401

    offloaded = _offloaded(document, writers)
    with contextlib.ExitStack() as stack:
        futures = []
        if offloaded:
            import multiprocessing
            import pickle
            from concurrent.futures import ProcessPoolExecutor

            blob = pickle.dumps(document, protocol=pickle.HIGHEST_PROTOCOL)
            spawn = multiprocessing.get_context("spawn")
            processes = stack.enter_context(ProcessPoolExecutor(len(offloaded), mp_context=spawn))
            futures = [
                (name, processes.submit(_write_in_process, name, writer, blob, directory)) for name, writer in offloaded
            ]
        threads = stack.enter_context(ThreadPoolExecutor(max_workers=max(1, min(len(writers), os.cpu_count() or 2))))
        local = [threads.submit(run, name, writer) for name, writer in writers if (name, writer) not in offloaded]
        artifacts = [artifact for future in local for artifact in future.result()]
        for name, future in futures:
            problem, paths = future.result()
            if problem is not None:
                raise RenderError(problem)
            artifacts.extend(_artifact(name, Path(path)) for path in paths)
    # two writers may write the same file (markdown and png both write a chart's PNG): list it once
    unique = {artifact.path: artifact for artifact in artifacts}
    return list(unique.values())


def _offloaded(document: Document, writers: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The writers to run in processes: every CPU-bound one but the first, for a document of PROCESS_CELLS or more."""
    bound = [(name, writer) for name, writer in writers if getattr(writer, "CPU_BOUND", False)]
    if len(bound) < 2 or (os.cpu_count() or 1) < 2:
        return []
    cells = sum(table.frame.height * max(1, len(table.columns)) for table in document.tables())
    return bound[1:] if cells >= PROCESS_CELLS else []


def _run_writer(name: str, writer: Any, document: Document, directory: Path) -> list[Path]:
    try:
        return list(writer.write(document, directory))
    except ReportctlError:
        raise
    except Exception as exc:  # a writer bug must still fail the run cleanly, naming the writer
        raise RenderError(f"{name} writer failed: {exception_line(exc)}") from exc


def _write_in_process(name: str, writer: Any, blob: bytes, directory: Path) -> tuple[str | None, list[str]]:
    """A writer in a worker process: (None, paths written), or (the one-line error, [])."""
    import pickle

    try:
        return None, [str(path) for path in _run_writer(name, writer, pickle.loads(blob), directory)]
    except Exception as exc:  # sent back as text: the parent raises it as the run's RenderError
        return str(exc) or exception_line(exc), []


def _artifact(writer: str, path: Path) -> Artifact:
    """The artifact at ``path``; its format is its suffix when that names a writer (a chart PNG written by the
    markdown writer is a png), else the writer's name."""
    from reportctl.plugins import WRITERS, plugin_names

    suffix = path.suffix.removeprefix(".")
    name = suffix if suffix in plugin_names(WRITERS) else writer
    return Artifact(name, path, path.stat().st_size, file_sha256(path))
