"""50 reports asking one PostgreSQL query, rendered as one batch with the query cache and without it.

Each report is a spec of its own whose ``sql`` source runs the same query on the machine's PostgreSQL
(127.0.0.1:5432, database ``test``). The query takes 0.2 s on the server (``pg_sleep``) and calls ``nextval`` on a
sequence made for the benchmark, so the sequence counts how many times the server ran it: the database's own count
of queries. Each round renders the 50 reports with ``reportctl render specs --jobs 2 --no-state``, once with an
empty cache and once with ``--no-cache`` (the baseline), in alternating order. Target (from the issue): 50 reports
with one query in one minute cause 1 database query. Prints a table and a PASS/FAIL line and exits 0 either way;
exits 2 when a render fails or PostgreSQL is not reachable.

    .venv/bin/python benchmarks/bench_cache.py [--rounds 3] [--reports 50] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from childproc import ChildFailed, run_child, spread

REPORTCTL = Path(sys.executable).with_name("reportctl")
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SPEC = """\
apiVersion: reportctl/v1
name: r{number:03d}
sources:
  orders:
    kind: sql
    url: {url}
    query: "SELECT nextval('{sequence}') AS n, (SELECT 1 FROM pg_sleep(0.2)) AS slept"
sections:
  - {{id: t, type: table, dataset: orders}}
outputs: [csv]
"""


def _sql(statement: str) -> Any:
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES_URL)
    try:
        with engine.begin() as db:
            result = db.execute(text(statement))
            return result.one() if result.returns_rows else None
    finally:
        engine.dispose()


def _executions(sequence: str) -> int:
    last, called = _sql(f"SELECT last_value, is_called FROM {sequence}")
    return int(last) if called else 0


def _render(project: Path, cached: bool) -> float:
    shutil.rmtree(project / ".reportctl" / "cache", ignore_errors=True)
    shutil.rmtree(project / "out", ignore_errors=True)
    command = [str(REPORTCTL), "render", "specs", "--jobs", "2", "--no-state", "--json"]
    try:
        figures, _output = run_child([*command, *([] if cached else ["--no-cache"])], project / "render.log", project)
    except ChildFailed as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
    return figures["wall"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each case (default 3)")
    parser.add_argument("--reports", type=int, default=50, help="reports in the batch (default 50)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    try:
        _sql("SELECT 1")
    except Exception as exc:  # any failure to connect means the benchmark cannot run
        print(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}", file=sys.stderr)
        return 2
    sequence = f"bench_cache_{uuid.uuid4().hex[:10]}"
    _sql(f"CREATE SEQUENCE {sequence}")
    samples: dict[str, list[float]] = {"cache": [], "no-cache": []}
    queries: dict[str, list[int]] = {"cache": [], "no-cache": []}
    try:
        with tempfile.TemporaryDirectory(prefix="reportctl-bench-cache-") as temporary:
            project = Path(temporary)
            (project / "reportctl.yaml").write_text("timezone: UTC\n")
            (project / "specs").mkdir()
            for number in range(args.reports):
                spec = SPEC.format(number=number, url=POSTGRES_URL, sequence=sequence)
                (project / "specs" / f"r{number:03d}.yaml").write_text(spec)
            for round_number in range(args.rounds):
                order = ["cache", "no-cache"] if round_number % 2 == 0 else ["no-cache", "cache"]
                for case in order:
                    before = _executions(sequence)
                    samples[case].append(_render(project, cached=case == "cache"))
                    queries[case].append(_executions(sequence) - before)
    finally:
        _sql(f"DROP SEQUENCE {sequence}")

    verdict = all(count == 1 for count in queries["cache"])
    result = {
        "reports": args.reports,
        "rounds": args.rounds,
        "seconds": {case: spread(values) for case, values in samples.items()},
        "database_queries": queries,
        "target": "1 database query for the batch with the cache",
        "pass": verdict,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.reports} reports asking one query, `render specs --jobs 2`, {args.rounds} rounds")
    print(f"{'case':<10} {'min s':>7} {'median s':>9} {'max s':>7}  queries the server ran")
    for case, values in samples.items():
        low, middle, high = spread(values)
        print(f"{case:<10} {low:>7.2f} {middle:>9.2f} {high:>7.2f}  {', '.join(map(str, queries[case]))}")
    print(f"{'PASS' if verdict else 'FAIL'}: one database query for the batch with the cache")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
