"""100 reports as one batch: ``render specs --jobs 2`` against ``--jobs 1``, and each report's service time against
the same report rendered alone.

The reports are 100 specs of a ``sample`` source (5,000 rows, a seed each) grouped by service and hour, with a
table, a KPI and outputs csv, json and xlsx: small reports, as most scheduled reports are. Each round runs, in
alternating order, ``reportctl render specs --jobs 1 --no-state --json`` and the same with ``--jobs 2``, timing the
whole command (throughput = reports / seconds); then renders 10 of the reports one at a time
(``reportctl render SPEC --no-state --json``). A report's service time is its manifest's ``total`` timing: from the
start of its render to its end in the worker, queue wait excluded.

Targets (from the issue), on 2 cores: throughput of ``--jobs 2`` at least 1.7x ``--jobs 1``; p95 service time
under ``--jobs 2`` at most 1.3x the median of the same reports alone. Prints a table and PASS/FAIL lines, exits 0
either way; exits 2 when a render fails.

    .venv/bin/python benchmarks/bench_batch.py [--reports 100] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from childproc import ChildFailed, run_child, spread

REPORTCTL = Path(sys.executable).with_name("reportctl")
THROUGHPUT = 1.7
SERVICE = 1.3
ALONE = 10
SPEC = """\
apiVersion: reportctl/v1
name: r{number:03d}
title: Report {number}
sources:
  s: {{kind: sample, rows: 5000, seed: {number}}}
datasets:
  hourly:
    from: s
    group_by: [service]
    every: 1h
    aggregate: {{requests: count(), p95_latency: p95(latency_ms), errors: mean(error_rate)}}
sections:
  - {{id: k, type: kpis, items: [{{label: Requests, value: "sum(hourly.requests)", format: integer}}]}}
  - {{id: t, type: table, dataset: hourly}}
outputs: [csv, json, xlsx]
"""


def _run(project: Path, arguments: list[str]) -> tuple[float, list[dict[str, Any]]]:
    shutil.rmtree(project / "out", ignore_errors=True)
    command = [str(REPORTCTL), "render", *arguments, "--no-state", "--json"]
    try:
        figures, text = run_child(command, project / "render.log", project)
    except ChildFailed as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
    seconds = figures["wall"]
    decoder = json.JSONDecoder()
    objects, index = [], 0
    while index < len(text):
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            break
        value, index = decoder.raw_decode(text, index)
        objects.append(value)
    return seconds, objects


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=100, help="reports in the batch (default 100)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    walls: dict[str, list[float]] = {"jobs 1": [], "jobs 2": []}
    services: dict[str, list[float]] = {"jobs 1": [], "jobs 2": [], "alone": []}
    with tempfile.TemporaryDirectory(prefix="reportctl-bench-batch-") as temporary:
        project = Path(temporary)
        (project / "reportctl.yaml").write_text("timezone: UTC\n")
        (project / "specs").mkdir()
        for number in range(args.reports):
            (project / "specs" / f"r{number:03d}.yaml").write_text(SPEC.format(number=number))
        _run(project, ["specs/r000.yaml"])  # warm the file cache and the interpreter's bytecode
        for round_number in range(args.rounds):
            order = ["jobs 1", "jobs 2"] if round_number % 2 == 0 else ["jobs 2", "jobs 1"]
            for case in order:
                seconds, lines = _run(project, ["specs", "--jobs", case.split()[1]])
                if len(lines) != args.reports or any(line["exit_code"] != 0 for line in lines):
                    print(f"{case}: expected {args.reports} rendered reports", file=sys.stderr)
                    return 2
                walls[case].append(seconds)
                services[case].extend(line["timings"]["total"] for line in lines)
            for number in range(ALONE):
                _, (alone,) = _run(project, [f"specs/r{number * (args.reports // ALONE):03d}.yaml"])
                services["alone"].append(alone["timings"]["total"])

    throughput = {case: args.reports / statistics.median(values) for case, values in walls.items()}
    speedup = throughput["jobs 2"] / throughput["jobs 1"]
    alone = statistics.median(services["alone"])
    service_ratio = _p95(services["jobs 2"]) / alone
    verdicts = {"throughput": speedup >= THROUGHPUT, "service": service_ratio <= SERVICE}
    if args.json:
        print(json.dumps({"walls": walls, "services": services, "speedup": speedup, "service_ratio": service_ratio,
                          "pass": verdicts}, indent=2))  # fmt: skip
        return 0
    print(f"{args.reports} reports, {args.rounds} rounds; wall seconds min / median / max, reports per second")
    for case, values in walls.items():
        low, middle, high = spread(values)
        print(f"  {case:<7} {low:6.2f} {middle:6.2f} {high:6.2f}   {throughput[case]:5.1f}/s")
    print("service time per report (manifest total), seconds: median / p95")
    for case, values in services.items():
        print(f"  {case:<7} {statistics.median(values):.3f} / {_p95(values):.3f}   ({len(values)} renders)")
    print(f"{'PASS' if verdicts['throughput'] else 'FAIL'}: --jobs 2 gives {speedup:.2f}x the throughput of --jobs 1")
    print(
        f"{'PASS' if verdicts['service'] else 'FAIL'}: p95 service time under --jobs 2 is {service_ratio:.2f}x "
        "the median alone"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
