"""Every benchmark, one after another, then one table of every target's verdict: what ``make bench`` runs.

Each script runs as it would alone (its own table is printed as it comes); the lines where a script gives a
verdict (starting with PASS or FAIL, or a table row ending in one) are collected, and the summary lists them per
script with its wall time, then the total. Exits 0 unless a script failed to run (exit 2: its figures mean
nothing), which the summary names.

    .venv/bin/python benchmarks/run_all.py [--only bench_pdf,bench_xlsx]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
# Each script with the arguments make bench gives it: bench_render 5 rounds instead of 9, bench_delivery 2 instead
# of 3, bench_writers without its middle size, so the whole run stays nearer a quarter of an hour on 2 cores.
SCRIPTS: dict[str, list[str]] = {
    "bench_render": ["--rounds", "5"],
    "bench_help": [],
    "bench_pdf": [],
    "bench_xlsx": [],
    "bench_charts": [],
    "bench_daemon": [],
    "bench_delivery": ["--rounds", "2"],
    "bench_aggregate": [],
    "bench_cache": [],
    "bench_writers": ["--rows", "5000,100000"],
    "bench_batch": [],
    "bench_pipeline": [],
}
VERDICT = re.compile(r"^(PASS|FAIL)\b|\b(PASS|FAIL)\s*$")


def run(script: str, arguments: list[str]) -> tuple[int, float, list[str]]:
    """Run one script, echoing its output; its exit code, wall seconds and verdict lines."""
    began = time.perf_counter()
    command = [sys.executable, str(HERE / f"{script}.py"), *arguments]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    verdicts = []
    assert child.stdout is not None
    for line in child.stdout:
        print(line, end="", flush=True)
        if VERDICT.search(line.strip()):
            verdicts.append(" ".join(line.split()))
    return child.wait(), time.perf_counter() - began, verdicts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated script names (default: all)")
    args = parser.parse_args()
    scripts = args.only.split(",") if args.only else list(SCRIPTS)
    began = time.perf_counter()
    results = []
    for script in scripts:
        arguments = SCRIPTS.get(script, [])
        print(f"\n=== {script} {' '.join(arguments)} ===", flush=True)
        results.append((script, *run(script, arguments)))
    print("\n=== every target, as measured in this run ===")
    failed_to_run = []
    for script, code, seconds, verdicts in results:
        print(f"{script} ({seconds:.0f} s){'' if code == 0 else f' exited {code}: its figures mean nothing'}")
        if code != 0:
            failed_to_run.append(script)
        for verdict in verdicts or ["(no verdict: figures only)"]:
            print(f"  {verdict}")
    passes = sum(v.startswith("PASS") or v.endswith("PASS") for *_, vs in results for v in vs)
    fails = sum(v.startswith("FAIL") or v.endswith("FAIL") for *_, vs in results for v in vs)
    print(f"\n{passes} targets passed, {fails} failed; all benchmarks took {time.perf_counter() - began:.0f} s")
    return 2 if failed_to_run else 0


if __name__ == "__main__":
    sys.exit(main())
