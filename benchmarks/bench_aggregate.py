"""What reducing sums in a canonical order costs: the datasets pipeline with and without it, same data, same process.

Sums, means and variances are rewritten by ``reportctl.data.canonical`` so that their floating-point results
do not depend on thread scheduling. The baseline is the aggregation as it was before: the same pipeline with
that rewrite replaced by the identity (the SQL handed to Polars unchanged). Each round times both, in an order
that alternates from round to round, after one warm-up round; each time is ``build_datasets`` plus collecting
the dataset. Also counted: how many distinct results each variant gave over the rounds (bit for bit).

Workloads:

- grouped-48: the dataset of ``specs/grouped-48.yaml`` (1,000,000 sample rows, every 1h by service, 48 rows:
  count, p95 and two means);
- sums-8: 1,000,000 rows in 8 groups: sum, mean and std of a lognormal column (Polars' parallel partial sums);
- sums-1000: the same rows in 1,000 groups;
- sql-8: the sums-8 aggregates as a ``sql:`` dataset with GROUP BY.

Prints a table (or one JSON object with ``--json``) and exits 0; exits 2 when the two variants disagree beyond
1e-9 relative (the rewrite would then be wrong and its cost meaningless).

    .venv/bin/python benchmarks/bench_aggregate.py [--rounds 7] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from childproc import result_header

HERE = Path(__file__).resolve().parent
ROWS = 1_000_000
VARIANTS = ("baseline", "canonical")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds after one warm-up round (default 7)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    say = (lambda _text: None) if args.json else (lambda text: print(text, file=sys.stderr, flush=True))

    import polars as pl
    import polars.testing

    started = time.perf_counter()
    say("generating the frames")
    workloads = _workloads()
    samples: dict[str, dict[str, list[float]]] = {name: {v: [] for v in VARIANTS} for name in workloads}
    results: dict[str, dict[str, set[str]]] = {name: {v: set() for v in VARIANTS} for name in workloads}
    last: dict[str, dict[str, Any]] = {name: {} for name in workloads}
    for round_ in range(args.rounds + 1):
        say("warm-up round" if round_ == 0 else f"round {round_} of {args.rounds}")
        for name, run in workloads.items():
            order = VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                gc.collect()
                with _canonical(variant == "canonical"):
                    t = time.perf_counter()
                    frame = run()
                    elapsed = time.perf_counter() - t
                if round_:
                    samples[name][variant].append(elapsed)
                    results[name][variant].add(frame.write_csv(float_precision=None))
                    last[name][variant] = frame
    for name in workloads:
        baseline, canonical = last[name]["baseline"], last[name]["canonical"]
        try:
            polars.testing.assert_frame_equal(baseline, canonical, check_dtypes=False, rel_tol=1e-9, abs_tol=0)
        except AssertionError as exc:
            print(f"bench_aggregate: {name}: the variants disagree: {exc}", file=sys.stderr)
            return 2

    summary = {
        name: {
            variant: {
                "min": round(min(times), 4),
                "median": round(statistics.median(times), 4),
                "max": round(max(times), 4),
                "distinct_results": len(results[name][variant]),
            }
            for variant, times in variants.items()
        }
        for name, variants in samples.items()
    }
    result = {
        **result_header("bench_aggregate", polars=pl.__version__),
        "rounds": args.rounds,
        "threads": pl.thread_pool_size(),
        "summary": summary,
        "seconds": round(time.perf_counter() - started, 1),
        "samples": samples,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_table(result)
    return 0


@contextmanager
def _canonical(enabled: bool) -> Iterator[None]:
    """The pipeline as it is (enabled), or with the canonical rewrite replaced by the identity (the baseline)."""
    from reportctl.data import canonical, steps

    if enabled:
        yield
        return
    rewrite = canonical.canonical_aggregates
    canonical.canonical_aggregates = steps.canonical_aggregates = _identity  # type: ignore[assignment]
    try:
        yield
    finally:
        canonical.canonical_aggregates = steps.canonical_aggregates = rewrite  # type: ignore[assignment]


def _identity(sql: str, *, by_value: bool = False) -> str:
    return sql


def _workloads() -> dict[str, Callable[[], Any]]:
    import numpy as np
    import polars as pl

    from reportctl.data.pipeline import build_datasets
    from reportctl.data.sources.base import SourceContext
    from reportctl.plugins import SOURCES, load_plugin
    from reportctl.spec.loader import load_spec
    from reportctl.spec.models import Dataset

    loaded = load_spec(HERE / "specs" / "grouped-48.yaml")
    context = SourceContext(
        project_root=loaded.project.root,
        run_time=datetime.now(UTC),
        timezone=loaded.spec.report_timezone(loaded.project.config.timezone),
    )
    sample = {key: load_plugin(SOURCES, o.kind)(key, o, context).fetch().collect() for key, o in loaded.sources.items()}

    rng = np.random.default_rng(42)
    values = rng.lognormal(-6, 2, ROWS)
    synthetic = {
        "eight": pl.DataFrame({"key": rng.integers(0, 8, ROWS), "value": values}),
        "thousand": pl.DataFrame({"key": rng.integers(0, 1000, ROWS), "value": values}),
    }
    aggregates = {"total": "sum(value)", "mean": "mean(value)", "spread": "std(value)"}
    sql = (
        "SELECT key, SUM(value) AS total, AVG(value) AS mean, STDDEV(value) AS spread FROM rows"
        " GROUP BY key ORDER BY key"
    )

    def run(frames: dict[str, pl.DataFrame], name: str, spec: dict[str, Any] | Dataset) -> Callable[[], Any]:
        dataset = spec if isinstance(spec, Dataset) else Dataset.model_validate(spec)

        def compute() -> Any:
            lazy = {key: frame.lazy() for key, frame in frames.items()}
            return build_datasets({name: dataset}, lazy, {})[name].collect()

        return compute

    return {
        "grouped-48": run(sample, "hourly", loaded.spec.datasets["hourly"]),
        "sums-8": run(
            {"rows": synthetic["eight"]}, "d", {"from": "rows", "group_by": ["key"], "aggregate": aggregates}
        ),
        "sums-1000": run(
            {"rows": synthetic["thousand"]}, "d", {"from": "rows", "group_by": ["key"], "aggregate": aggregates}
        ),
        "sql-8": run({"rows": synthetic["eight"]}, "d", {"sql": sql}),
    }


def _print_table(result: dict[str, Any]) -> None:
    print(f"datasets pipeline, {ROWS:,} rows, {result['rounds']} rounds, {result['threads']} Polars threads")
    print(f"{'workload':<12} {'variant':<10} {'min':>8} {'median':>8} {'max':>8} {'distinct':>9} {'ratio':>6}")
    for name, variants in result["summary"].items():
        base = variants["baseline"]["median"]
        for variant, figures in variants.items():
            ratio = figures["median"] / base if base else float("nan")
            print(
                f"{name:<12} {variant:<10} {figures['min']:>8.3f} {figures['median']:>8.3f} {figures['max']:>8.3f}"
                f" {figures['distinct_results']:>9} {ratio:>6.2f}"
            )
    print(f"({result['seconds']} s in all)")


if __name__ == "__main__":
    sys.exit(main())
