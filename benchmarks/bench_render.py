"""Rendering 1,000,000 sample rows to CSV and JSON, against polars writing the same frame itself.

Five things are timed, interleaved in each round so that the machine's noise falls on all of them alike:

- raw: ``DataFrame.write_csv`` then ``DataFrame.write_json`` (the calls the csv and json writers make) of the
  frame the ``sample`` source gives for ``specs/passthrough-1m.yaml`` (generated once, before timing), and of
  the 48-row frame of ``specs/grouped-48.yaml`` (computed once with reportctl's datasets pipeline);
- subprocess: ``reportctl render SPEC -o TMP`` as a user runs it, interpreter start and imports included,
  with the child's peak RSS and CPU time from ``os.wait4``;
- in-process: ``load_spec`` + ``render_report`` in this process, after a warm-up round;
- each writer: the csv (json) writer's ``write`` of a document holding the raw baseline's 1M-row frame as its
  one table, in this process (the run's write phase also hashes each file for the manifest; this does not).

Targets: a render takes at most 1.3x the raw writes of its output + 0.5 s, compared on medians with the
subprocess render, the figure users see; and (issue 11) each writer at most 1.15x the polars call
it is measured by (``write_csv``, ``write_json``). Prints a table and a PASS/FAIL line per target and
exits 0 either way; exits 2 only when a render fails or gives the wrong number of rows.

    .venv/bin/python benchmarks/bench_render.py [--rounds 9] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from childproc import ChildFailed, result_header, run_child, summarise

HERE = Path(__file__).resolve().parent
SPECS = {"passthrough": HERE / "specs" / "passthrough-1m.yaml", "grouped": HERE / "specs" / "grouped-48.yaml"}
EXPECTED_ROWS = {"passthrough": 1_000_000, "grouped": 48}
REPORTCTL = Path(sys.executable).with_name("reportctl")
RATIO, ALLOWANCE = 1.3, 0.5
WRITER_RATIO = 1.15
WRITERS = {"csv": "write_csv", "json": "write_json"}
"""Each data writer against the polars call it is measured by (issue 11: within 1.15x of its floor)."""
PHASES = ("sources", "datasets", "document", "write")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds after one warm-up round (default 9)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    say = (lambda _text: None) if args.json else (lambda text: print(text, file=sys.stderr, flush=True))

    import polars as pl

    started = time.perf_counter()
    say("generating the frames for the raw baseline")
    frames = {name: _frame(name) for name in SPECS}
    for name, frame in frames.items():
        if frame.height != EXPECTED_ROWS[name]:
            return _broken(f"the {name} frame has {frame.height} rows, not {EXPECTED_ROWS[name]}")

    with tempfile.TemporaryDirectory(prefix="reportctl-bench-") as temporary:
        folder = Path(temporary)
        cases: dict[str, Callable[[], dict[str, float]]] = {}
        for name in SPECS:
            cases[f"raw/{name}"] = lambda name=name: _raw_writes(frames[name], folder, with_json=name == "passthrough")
            cases[f"subprocess/{name}"] = lambda name=name: _render_subprocess(name, folder)
            cases[f"in-process/{name}"] = lambda name=name: _render_in_process(name, folder)
            cases[f"recorded/{name}"] = lambda name=name: _render_subprocess(name, folder, recorded=True)
        for fmt in WRITERS:
            cases[f"writer/{fmt}"] = lambda fmt=fmt: _writer_alone(fmt, frames["passthrough"], folder)
        samples: dict[str, list[dict[str, float]]] = {case: [] for case in cases}
        try:
            for round_ in range(args.rounds + 1):
                say("warm-up round" if round_ == 0 else f"round {round_} of {args.rounds}")
                order = list(cases)
                shift = round_ % len(order)
                for case in order[shift:] + order[:shift]:
                    gc.collect()
                    figures = cases[case]()
                    if round_:
                        samples[case].append(figures)
        except ChildFailed as exc:
            return _broken(str(exc))

    summary = {case: summarise(runs) for case, runs in samples.items()}
    verdicts = _verdicts(summary)
    result = {
        **result_header("bench_render", polars=pl.__version__),
        "rounds": args.rounds,
        "rows": EXPECTED_ROWS,
        "raw_frame_mib": round(frames["passthrough"].estimated_size() / 2**20, 1),
        "summary": summary,
        "targets": verdicts,
        "seconds": round(time.perf_counter() - started, 1),
        "samples": samples,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_table(result)
    return 0


class _RenderFailed(ChildFailed):
    pass


def _broken(message: str) -> int:
    print(f"bench_render: {message}; no figures", file=sys.stderr)
    return 2


def _frame(name: str) -> Any:
    """The frame reportctl renders for ``name``: the source's rows, or the one dataset computed from them."""
    import polars as pl

    from reportctl.data.pipeline import build_datasets
    from reportctl.data.sources.base import SourceContext
    from reportctl.plugins import SOURCES, load_plugin
    from reportctl.spec.loader import load_spec

    loaded = load_spec(SPECS[name])
    context = SourceContext(
        project_root=loaded.project.root,
        run_time=datetime.now(UTC),
        timezone=loaded.spec.report_timezone(loaded.project.config.timezone),
    )
    inputs = {key: load_plugin(SOURCES, o.kind)(key, o, context).fetch() for key, o in loaded.sources.items()}
    datasets = build_datasets(loaded.spec.datasets, inputs, {})
    frame: pl.DataFrame = (datasets or inputs)[loaded.spec.sections[0].dataset].collect()
    return frame


def _raw_writes(frame: Any, folder: Path, *, with_json: bool) -> dict[str, float]:
    """polars alone: write_csv, then write_json, the calls the csv and json writers make (write_ndjson, which the
    baseline used before, only as a figure)."""
    figures = {}
    target = folder / "raw"
    target.mkdir()
    t = time.perf_counter()
    frame.write_csv(target / "rows.csv")
    figures["write_csv"] = time.perf_counter() - t
    t = time.perf_counter()
    frame.write_json(target / "rows.json")
    figures["write_json"] = time.perf_counter() - t
    figures["wall"] = figures["write_csv"] + figures["write_json"]
    if with_json:
        t = time.perf_counter()
        frame.write_ndjson(target / "rows.ndjson")
        figures["write_ndjson"] = time.perf_counter() - t
    shutil.rmtree(target)
    return figures


def _render_subprocess(name: str, folder: Path, recorded: bool = False) -> dict[str, float]:
    """``reportctl render SPEC -o TMP`` in a child: wall time, its peak RSS and CPU, and the manifest's timings.

    The target is judged on rendering alone (``--no-state``); ``recorded`` also records the run in the state
    store, as a plain ``reportctl render`` does, to show what that costs.
    """
    target = folder / ("recorded" if recorded else "subprocess")
    command = [str(REPORTCTL), "render", str(SPECS[name]), "-o", str(target)] + ([] if recorded else ["--no-state"])
    figures, _ = run_child(command, folder / "render.log")
    timings = _check_output(name, target)
    shutil.rmtree(target)
    # Interpreter start, imports, loading the spec and the manifest's git calls: all outside 'total'.
    figures["outside_render_report"] = figures["wall"] - timings["total"]
    return figures | {phase: timings.get(phase, 0.0) for phase in (*PHASES, "total")}


def _writer_alone(fmt: str, frame: Any, folder: Path) -> dict[str, float]:
    """reportctl's ``fmt`` writer writing ``frame`` (the 1M rows as one table) in this process: the writer alone,
    without the run around it (whose write phase also hashes each file for the manifest)."""
    from reportctl.document import Document, ReportInfo, TableBlock
    from reportctl.plugins import WRITERS, load_plugin

    at = datetime(2026, 11, 27, 8, tzinfo=UTC)
    info = ReportInfo("bench-writer", "Bench", None, "run", at, "UTC", "bench.yaml", "sha256:0")
    document = Document(info, (), (TableBlock("rows", None, (), frame),), formats=(fmt,))
    writer = load_plugin(WRITERS, fmt)()
    target = folder / f"writer-{fmt}"
    target.mkdir()
    t = time.perf_counter()
    (path,) = writer.write(document, target)
    seconds = time.perf_counter() - t
    if path.stat().st_size == 0:
        raise _RenderFailed(f"the {fmt} writer wrote an empty {path.name}")
    shutil.rmtree(target)
    return {"wall": seconds}


def _render_in_process(name: str, folder: Path) -> dict[str, float]:
    from reportctl.runner import render_report
    from reportctl.spec.loader import load_spec

    target = folder / "in-process"
    t = time.perf_counter()
    result = render_report(load_spec(SPECS[name]), output_dir=target)
    wall = time.perf_counter() - t
    _check_output(name, target)
    shutil.rmtree(target)
    return {"wall": wall} | {phase: result.timings.get(phase, 0.0) for phase in (*PHASES, "total")}


def _check_output(name: str, target: Path) -> dict[str, float]:
    """The run's timings from its manifest, after checking that its CSV and JSON hold the expected rows."""
    import polars as pl

    (run,) = (target / f"bench-{name}").iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    formats = sorted(artifact["format"] for artifact in manifest["artifacts"])
    csv_rows = pl.scan_csv(run / f"bench-{name}.csv", comment_prefix="#").select(pl.len()).collect().item()
    expected = EXPECTED_ROWS[name]
    if formats != ["csv", "json"] or csv_rows != expected:
        raise _RenderFailed(f"{name}: wrote {formats} with {csv_rows} CSV rows; expected csv and json, {expected}")
    if name == "grouped":
        (section,) = json.loads((run / f"bench-{name}.json").read_text())["sections"]
        if section["row_count"] != expected or len(section["rows"]) != expected:
            raise _RenderFailed(f"{name}: the JSON holds {len(section['rows'])} rows, not {expected}")
    timings: dict[str, float] = manifest["timings"]
    return timings


def _verdicts(summary: dict[str, Any]) -> list[dict[str, Any]]:
    verdicts = []
    for name in SPECS:
        raw = summary[f"raw/{name}"]["wall"]
        for how in ("subprocess", "in-process"):
            render = summary[f"{how}/{name}"]["wall"]
            budget = RATIO * raw["median"] + ALLOWANCE
            verdicts.append(
                {
                    "target": f"{name} render ({how}) <= {RATIO} x raw writes + {ALLOWANCE} s",
                    "counts": how == "subprocess",
                    "render_median": render["median"],
                    "budget": round(budget, 4),
                    "pass": render["median"] <= budget,
                    "render_min": render["min"],
                    "budget_by_min": round(RATIO * raw["min"] + ALLOWANCE, 4),
                    "pass_by_min": render["min"] <= RATIO * raw["min"] + ALLOWANCE,
                }
            )
    raw = summary["raw/passthrough"]
    for fmt, call in WRITERS.items():
        writer = summary[f"writer/{fmt}"]["wall"]
        verdicts.append(
            {
                "target": f"{fmt} writer (1M rows, in-process) <= {WRITER_RATIO} x raw {call}",
                "counts": True,
                "render_median": writer["median"],
                "budget": round(WRITER_RATIO * raw[call]["median"], 4),
                "pass": writer["median"] <= WRITER_RATIO * raw[call]["median"],
                "render_min": writer["min"],
                "budget_by_min": round(WRITER_RATIO * raw[call]["min"], 4),
                "pass_by_min": writer["min"] <= WRITER_RATIO * raw[call]["min"],
            }
        )
    return verdicts


def _print_table(result: dict[str, Any]) -> None:
    machine, summary = result["machine"], result["summary"]
    print(
        f"bench_render  {result['date']}  nproc {machine['nproc']}, python {machine['python']}, "
        f"polars {machine['polars']}, {result['rounds']} rounds (+1 warm-up), median / min in seconds"
    )
    print(f"raw frame: {result['rows']['passthrough']:,} rows, {result['raw_frame_mib']} MiB in memory\n")
    print(f"{'case':<36}{'median':>9}{'min':>9}")
    rows = [
        ("raw/passthrough", "write_csv", "  raw write_csv, 1M rows"),
        ("raw/passthrough", "write_json", "  raw write_json, 1M rows"),
        ("raw/passthrough", "wall", "raw writes, 1M rows (csv + json)"),
        ("raw/passthrough", "write_ndjson", "  (info) raw write_ndjson, 1M rows"),
        ("subprocess/passthrough", "wall", "render 1M rows, subprocess"),
        ("in-process/passthrough", "wall", "render 1M rows, in-process"),
        ("recorded/passthrough", "wall", "(info) 1M rows, run recorded"),
        ("raw/grouped", "wall", "raw writes, 48 rows (csv + json)"),
        ("subprocess/grouped", "wall", "render 48 rows, subprocess"),
        ("in-process/grouped", "wall", "render 48 rows, in-process"),
        ("recorded/grouped", "wall", "(info) 48 rows, run recorded"),
        ("writer/csv", "wall", "csv writer, 1M rows"),
        ("writer/json", "wall", "json writer, 1M rows"),
    ]
    for case, key, label in rows:
        figure = summary[case][key]
        print(f"{label:<36}{figure['median']:>9.3f}{figure['min']:>9.3f}")

    print("\nsubprocess render, where the time goes (medians; phases from the manifest's timings)")
    keys = ("wall", "outside_render_report", *PHASES, "cpu", "peak_rss_mib")
    print(f"{'':<14}" + "".join(f"{key.removesuffix('_render_report').removesuffix('_mib'):>10}" for key in keys))
    for name in SPECS:
        figures = summary[f"subprocess/{name}"]
        print(f"{name:<14}" + "".join(f"{figures[key]['median']:>10.3f}" for key in keys[:-1]), end="")
        print(f"{figures['peak_rss_mib']['median']:>10.0f}")
    print("  outside = process start, imports, load_spec and the manifest's git calls; cpu = user + sys s;")
    print("  peak_rss = the render process's max RSS in MiB (ru_maxrss from os.wait4)")

    print(
        f"\ntargets: render <= {RATIO} x raw writes + {ALLOWANCE} s, on medians, the subprocess render deciding; "
        f"each writer <= {WRITER_RATIO} x its polars call"
    )
    for verdict in result["targets"]:
        word = ("PASS" if verdict["pass"] else "FAIL") if verdict["counts"] else "info"
        by_min = "pass" if verdict["pass_by_min"] else "fail"
        print(
            f"{word:<5}{verdict['target']}: {verdict['render_median']:.3f} s vs {verdict['budget']:.3f} s"
            f"  (mins: {verdict['render_min']:.3f} vs {verdict['budget_by_min']:.3f}, {by_min})"
        )
    print(f"\n{result['seconds']} s in all")


if __name__ == "__main__":
    sys.exit(main())
