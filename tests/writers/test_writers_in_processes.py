"""CPU-bound writers of a large run write in processes of their own, and write the same bytes as in-process."""

from __future__ import annotations

import concurrent.futures
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reportctl import runner
from reportctl.config import find_project
from reportctl.errors import RenderError
from reportctl.runner import render_report
from reportctl.spec.loader import load_spec

SPEC = """\
apiVersion: reportctl/v1
name: big
title: Writers in processes
sources:
  s: {kind: sample, rows: 3000, seed: 11}
sections:
  - {id: t, type: table, dataset: s, max_rows: 3000}
outputs: [pdf, xlsx, csv]
"""
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


def _render(project: Path, output: str) -> dict[str, bytes]:
    path = project / "specs" / "big.yaml"
    result = render_report(load_spec(path, find_project(path)), output_dir=project / output, now=NOW, run_id="run-1")
    return {artifact.format: artifact.path.read_bytes() for artifact in result.artifacts}


def test_writers_in_processes_write_the_same_bytes(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "specs" / "big.yaml").write_text(SPEC)
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 2)
    submitted: list[str] = []
    submit = concurrent.futures.ProcessPoolExecutor.submit

    def spy(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        submitted.append(args[0])
        return submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(concurrent.futures.ProcessPoolExecutor, "submit", spy)
    monkeypatch.setattr(runner, "PROCESS_CELLS", 10**12)
    in_process = _render(project, "threads")
    assert submitted == []
    monkeypatch.setattr(runner, "PROCESS_CELLS", 1)
    in_processes = _render(project, "processes")
    assert submitted == ["xlsx"]  # the first CPU-bound writer (pdf) stays in the run's process
    assert sorted(in_processes) == ["csv", "pdf", "xlsx"]
    for name, content in in_process.items():
        assert in_processes[name] == content, f"{name} differs when written in a process"


def test_a_small_document_or_one_cpu_bound_writer_stays_in_process(project: Path) -> None:
    (project / "specs" / "big.yaml").write_text(SPEC)
    path = project / "specs" / "big.yaml"
    loaded = load_spec(path, find_project(path))
    document = runner.build_document(loaded, now=NOW)
    writers = runner.chosen_writers(loaded, None)
    assert document.tables()[0].frame.height * len(document.tables()[0].columns) < runner.PROCESS_CELLS
    assert runner._offloaded(document, writers) == []
    assert runner._offloaded(document, [w for w in writers if w[0] != "xlsx"]) == []


class _Broken:
    CPU_BOUND = True

    def write(self, document: Any, directory: Path) -> list[Path]:
        raise ValueError("no room on the page")


def test_a_writer_failing_in_a_process_is_one_line_naming_it(tmp_path: Path) -> None:
    import pickle

    problem, paths = runner._write_in_process("xlsx", _Broken(), pickle.dumps(None), tmp_path)
    assert (problem, paths) == ("xlsx writer failed: no room on the page", [])
    with pytest.raises(RenderError, match=r"^xlsx writer failed: no room on the page$"):
        runner._run_writer("xlsx", _Broken(), None, tmp_path)  # type: ignore[arg-type]
