"""100,000 rows to PDF (every row), XLSX with a formula column, CSV and JSON: reportctl against the reference pipeline.

The reference is ``reference_pipeline.py`` beside this file: pandas, openpyxl with a style on every cell, and
ReportLab, as the tool reportctl replaces would be written. Both read the same Parquet file (100,000 rows of the
``sample`` source: timestamp, service, region, latency_ms, cpu) and write the same four files with a formula column
``over_budget = latency_ms - 250``. Each runs as a child process through the timing trampoline (wall, peak RSS,
CPU), alternating, ``--rounds`` times. Targets (from the issue): reportctl at least 2.5x faster than the reference,
peak RSS under 300 MB. Prints a table and PASS/FAIL lines, exits 0 either way; exits 2 when a command fails.
Needs the benchmark extra: ``pip install -e '.[bench]'`` (``make bench`` installs it).

    .venv/bin/python benchmarks/bench_pipeline.py [--rows 100000] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from childproc import ChildFailed, run_child, spread

REPORTCTL = Path(sys.executable).with_name("reportctl")
REFERENCE = Path(__file__).with_name("reference_pipeline.py")
SPEEDUP = 2.5
RSS_MIB = 300 * 1000 * 1000 / 2**20
SPEC = """\
apiVersion: reportctl/v1
name: metrics
title: Metrics
sources:
  m: {{kind: file, path: data.parquet}}
sections:
  - id: rows
    type: table
    dataset: m
    max_rows: {rows}
    columns:
      timestamp: {{label: Time}}
      service: {{label: Service}}
      region: {{label: Region}}
      latency_ms: {{label: Latency (ms), format: "number:1"}}
      cpu: {{label: CPU (%), format: "number:1"}}
      over_budget: {{label: Over budget, format: "number:1", formula: "latency_ms - 250"}}
outputs: [pdf, xlsx, csv, json]
"""


def _data(path: Path, rows: int) -> None:
    from reportctl.data.sources.base import SourceContext
    from reportctl.data.sources.sample import SampleOptions, SampleSource

    end = datetime(2026, 11, 27, 8, tzinfo=UTC)
    options = SampleOptions(kind="sample", rows=rows, seed=7, start=datetime(2026, 11, 20, tzinfo=UTC), end=end)
    frame = SampleSource("m", options, SourceContext(path.parent, end, "UTC")).fetch().collect()
    frame.select("timestamp", "service", "region", "latency_ms", "cpu").write_parquet(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows (default 100,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"reportctl": [], "reference": []}
    with tempfile.TemporaryDirectory(prefix="reportctl-bench-pipeline-") as temporary:
        project = Path(temporary)
        (project / "reportctl.yaml").write_text("timezone: UTC\n")
        (project / "specs").mkdir()
        (project / "specs" / "metrics.yaml").write_text(SPEC.format(rows=args.rows))
        _data(project / "data.parquet", args.rows)
        commands = {
            "reportctl": [str(REPORTCTL), "render", str(project / "specs" / "metrics.yaml"), "--no-state", "-o",
                          str(project / "out")],
            "reference": [sys.executable, str(REFERENCE), str(project / "data.parquet"), str(project / "ref")],
        }  # fmt: skip
        for round_number in range(args.rounds):
            order = ["reportctl", "reference"] if round_number % 2 == 0 else ["reference", "reportctl"]
            for case in order:
                shutil.rmtree(project / "out", ignore_errors=True)
                shutil.rmtree(project / "ref", ignore_errors=True)
                try:
                    figures, _output = run_child(commands[case], project / f"{case}.log")
                except ChildFailed as exc:
                    print(exc, file=sys.stderr)
                    return 2
                runs[case].append(figures)

    walls = {case: [run["wall"] for run in values] for case, values in runs.items()}
    rss = {case: max(run["peak_rss_mib"] for run in values) for case, values in runs.items()}
    speedup = statistics.median(walls["reference"]) / statistics.median(walls["reportctl"])
    verdicts = {"speed": speedup >= SPEEDUP, "memory": rss["reportctl"] < RSS_MIB}
    if args.json:
        print(json.dumps({"runs": runs, "speedup": speedup, "pass": verdicts}, indent=2))
        return 0
    print(f"{args.rows:,} rows to pdf (every row), xlsx (formula column), csv, json; {args.rounds} rounds")
    print(f"{'':<10} {'min s':>7} {'median s':>9} {'max s':>7} {'peak RSS MiB':>13}")
    for case, values in walls.items():
        low, middle, high = spread(values)
        print(f"{case:<10} {low:>7.2f} {middle:>9.2f} {high:>7.2f} {rss[case]:>13.0f}")
    print(f"{'PASS' if verdicts['speed'] else 'FAIL'}: reportctl is {speedup:.2f}x faster than the reference")
    verdict = "PASS" if verdicts["memory"] else "FAIL"
    print(f"{verdict}: reportctl's peak RSS is {rss['reportctl']:.0f} MiB (target: under 300 MB, {RSS_MIB:.0f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
