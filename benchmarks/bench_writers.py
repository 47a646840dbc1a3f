"""The write phase of a run with PDF, XLSX, CSV and JSON: writers in threads, and CPU-bound writers in processes.

A ``sample`` source of N rows x 8 columns shown whole in one table, rendered in this process with ``render_report``
(warm: after one render of the size), outputs pdf, xlsx, csv and json. For each size, each round renders, in an
order rotated from round to round:

- ``pdf`` and ``xlsx`` alone: the slowest writer is the floor of any write phase;
- ``threads``: all four writers in threads (``PROCESS_CELLS`` set out of reach), as every run wrote before;
- ``processes``: the same with the XLSX writer in a spawned process (``PROCESS_CELLS`` set to 1), fed the pickled
  document (its tables as Arrow IPC).

The figure is the manifest's ``write`` timing. Target (from the issue): the write phase at most 1.15x its slowest
writer. The sizes show where a process starts to pay for itself, which is how ``PROCESS_CELLS`` (the run's
threshold) was chosen. Prints a table and a PASS/FAIL line for the largest size; exits 0 either way.

    .venv/bin/python benchmarks/bench_writers.py [--rows 5000,20000,100000] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from childproc import spread

from reportctl import runner
from reportctl.config import find_project
from reportctl.spec.loader import load_spec

RATIO = 1.15
SPEC = """\
apiVersion: reportctl/v1
name: writers
sources:
  s: {{kind: sample, rows: {rows}, seed: 7}}
sections:
  - {{id: t, type: table, dataset: s, max_rows: {rows}}}
outputs: [pdf, xlsx, csv, json]
"""
CASES = {
    "pdf": (["pdf"], None),
    "xlsx": (["xlsx"], None),
    "threads": (None, 10**15),
    "processes": (None, 1),
}


def _write_seconds(spec: Path, output: Path, formats: list[str] | None, cells: int | None) -> float:
    default = runner.PROCESS_CELLS
    runner.PROCESS_CELLS = cells if cells is not None else default
    try:
        loaded = load_spec(spec, find_project(spec))
        result = runner.render_report(loaded, formats=formats, output_dir=output, now=datetime.now(UTC))
    finally:
        runner.PROCESS_CELLS = default
    return result.timings["write"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="5000,20000,100000", help="table sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each case (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    sizes = [int(n) for n in args.rows.split(",")]
    figures: dict[int, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="reportctl-bench-writers-") as temporary:
        project = Path(temporary)
        (project / "reportctl.yaml").write_text("timezone: UTC\n")
        (project / "specs").mkdir()
        spec = project / "specs" / "writers.yaml"
        for rows in sizes:
            spec.write_text(SPEC.format(rows=rows))
            _write_seconds(spec, project / "out", None, 1)  # warm: imports, fonts, a first process
            samples: dict[str, list[float]] = {case: [] for case in CASES}
            names = list(CASES)
            for round_number in range(args.rounds):
                order = names[round_number % len(names) :] + names[: round_number % len(names)]
                for case in order:
                    formats, cells = CASES[case]
                    samples[case].append(_write_seconds(spec, project / "out", formats, cells))
            figures[rows] = samples

    largest = figures[max(sizes)]
    slowest = max(statistics.median(largest["pdf"]), statistics.median(largest["xlsx"]))
    ratio = statistics.median(largest["processes"]) / slowest
    verdict = ratio <= RATIO
    if args.json:
        print(json.dumps({"figures": figures, "ratio": ratio, "target": RATIO, "pass": verdict}, indent=2))
        return 0
    print(f"write phase, seconds (min / median / max of {args.rounds}); PROCESS_CELLS = {runner.PROCESS_CELLS:,}")
    print(f"{'rows':>8} {'cells':>9}  " + "  ".join(f"{case:>20}" for case in CASES) + "  processes/slowest")
    for rows, samples in figures.items():
        cells = " ".join(_cell(samples[case]) for case in CASES)
        floor = max(statistics.median(samples["pdf"]), statistics.median(samples["xlsx"]))
        print(f"{rows:>8,} {rows * 8:>9,}  {cells}  {statistics.median(samples['processes']) / floor:>6.2f}x")
    print(f"{'PASS' if verdict else 'FAIL'}: at {max(sizes):,} rows the write phase is {ratio:.2f}x its slowest writer")
    return 0


def _cell(values: list[float]) -> Any:
    return " ".join(f"{value:>6.2f}" for value in spread(values))


if __name__ == "__main__":
    raise SystemExit(main())
