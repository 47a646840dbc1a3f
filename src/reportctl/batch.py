"""Many reports in one command: ``reportctl render SPEC_OR_DIR ... --jobs N`` renders each in a worker process.

PDF and Excel writers are pure Python and hold the GIL, so threads do not render two reports at once; processes
do. Each report runs in a worker of a pool of ``jobs`` processes (started fresh, not forked, so no worker
inherits another's threads or locks), records its run in the state store as a single ``render`` would, and
comes back as a ``BatchOutcome``: a failing report is one outcome among the others, never the end of the batch.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reportctl.errors import ExitCode, ReportctlError, exception_line


@dataclass(frozen=True)
class BatchJob:
    """One report of a batch and how to render it (what ``render`` takes for a single spec)."""

    spec: Path
    parameters: dict[str, str] = field(default_factory=dict)
    formats: list[str] | None = None
    output_dir: Path | None = None
    rev: str | None = None
    record: bool = True
    deliver: bool = False
    cache: bool = True
    viewer: str | None = None


@dataclass(frozen=True)
class BatchOutcome:
    """What became of one report: its exit code (0, 1 or 3), and its run or its error."""

    spec: Path
    exit_code: int
    seconds: float
    report: str | None = None
    run_id: str | None = None
    directory: Path | None = None
    files: int = 0
    error: str | None = None
    delivered: str | None = None
    """The delivery summary ("email: 3 sent"), when the report was delivered."""
    payload: dict[str, Any] | None = None
    """The run as ``render --json`` describes it."""


def default_jobs() -> int:
    """As many worker processes as this machine has CPUs for this process."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def render_many(jobs: Sequence[BatchJob], workers: int) -> Iterator[BatchOutcome]:
    """Render every job in a pool of ``workers`` processes; outcomes come as reports finish."""
    context = multiprocessing.get_context("spawn")
    size = max(1, min(workers, len(jobs)))
    threads = str(max(1, (os.cpu_count() or 1) // size))
    with ProcessPoolExecutor(size, mp_context=context, initializer=_share_cores, initargs=(threads,)) as pool:
        pending: set[Future[BatchOutcome]] = {pool.submit(render_job, job) for job in jobs}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()


def _share_cores(threads: str) -> None:
    """In a fresh worker, before Polars is imported: its thread pool sized to the worker's share of the cores, so
    N workers do not each start a pool as large as the machine and take turns on it (unless the user set it).
    And when the pool shuts the worker down, it ends without tearing down its interpreter object by object."""
    os.environ.setdefault("POLARS_MAX_THREADS", threads)
    atexit.register(_end_quickly)


def _end_quickly() -> None:
    """A worker's exit handler, registered after the others and so run first: every result went back through
    the pool's pipe before the pool asked the worker to stop, so what is left is flushing logs and output and
    freeing memory, which the kernel does faster than the interpreter (0.15 s a worker)."""
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def render_job(job: BatchJob) -> BatchOutcome:
    """Render one report (in a worker process); every error becomes its outcome."""
    started = time.perf_counter()
    try:
        return _render(job, started)
    except ReportctlError as exc:
        message = str(exc).splitlines()
        error = "; ".join(message[:3]) + (f"; and {len(message) - 3} more" if len(message) > 3 else "")
        return BatchOutcome(job.spec, int(exc.exit_code), time.perf_counter() - started, error=error)
    except Exception as exc:  # a bug in one report must not end the batch
        line = f"internal error: {exception_line(exc)}"
        return BatchOutcome(job.spec, int(ExitCode.FAILED), time.perf_counter() - started, error=line)


def _render(job: BatchJob, started: float) -> BatchOutcome:
    from reportctl.runner import render_report
    from reportctl.spec.revisions import load_spec_at

    loaded = load_spec_at(job.spec, job.rev)
    options: dict[str, Any] = {
        "parameters": job.parameters, "formats": job.formats, "output_dir": job.output_dir, "cache": job.cache,
        "viewer": job.viewer,
    }  # fmt: skip
    if job.record:
        from reportctl.state.recording import record_manual_render

        result = record_manual_render(loaded, options, None, deliver=job.deliver, dry_run=False)
    else:
        result = render_report(loaded, **options)
    code, delivered = int(ExitCode.OK), None
    reports = [v.delivery for v in result.variants] if result.variants else [result.delivery]
    for report in (r for r in reports if r is not None):
        delivered = "; ".join(filter(None, [delivered, report.summary() if report.entries else None])) or None
        code = int(ExitCode.DELIVERY_FAILED) if report.undelivered else code
    if result.variants:
        delivered = f"{len(result.variants)} variants" + (f": {delivered}" if delivered else "")
    return BatchOutcome(
        job.spec,
        code,
        time.perf_counter() - started,
        report=result.report,
        run_id=result.run_id,
        directory=result.directory,
        files=len(result.artifacts) + sum(len(v.result.artifacts) for v in result.variants if v.result is not None),
        delivered=delivered,
        payload=run_payload(result),
    )


def run_payload(result: Any) -> dict[str, Any]:
    """A run as ``render --json`` prints it (a burst's with its variants)."""
    if result.variants:
        from reportctl.burst import variant_payload

        return {
            "run_id": result.run_id, "report": result.report, "status": result.status, "burst": True,
            "variants": [variant_payload(variant) for variant in result.variants],
        }  # fmt: skip
    return {
        "run_id": result.run_id,
        "report": result.report,
        "status": result.status,
        "directory": str(result.directory),
        "manifest": str(result.manifest),
        "parameters": result.parameters,
        "git_commit": result.git_commit,
        "git_dirty": result.git_dirty,
        "revision": result.revision,
        "snapshot": str(result.snapshot) if result.snapshot else None,
        "sources": result.sources,
        "timings": result.timings,
        "access": result.access,
        "artifacts": [a.as_dict() | {"path": str(a.path)} for a in result.artifacts],
    }
