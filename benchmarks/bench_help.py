"""``reportctl --help`` against the ``--help`` of a minimal one-command typer app, both in fresh processes.

The two commands run alternately (in ABBA order, so neither always goes first) after two warm-up runs each;
``python -c pass`` is timed alongside as the floor of any Python CLI. Target (from the issue): the median of
``reportctl --help`` at most 1.25x the minimal app's. Prints a table and a PASS/FAIL line and exits 0 either
way; exits 2 only when a command fails.

    .venv/bin/python benchmarks/bench_help.py [--runs 15] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from childproc import ChildFailed, result_header, run_child, summarise

REPORTCTL = Path(sys.executable).with_name("reportctl")
RATIO = 1.25
WARM_UP = 2

MINIMAL_APP = '''\
import typer

app = typer.Typer()


@app.command()
def hello(name: str = "world") -> None:
    """Say hello to NAME."""
    print(f"hello {name}")


if __name__ == "__main__":
    app()
'''


class _CommandFailed(ChildFailed):
    pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each command (default 15)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reportctl-bench-help-") as temporary:
        folder = Path(temporary)
        app = folder / "minimal_app.py"
        app.write_text(MINIMAL_APP)
        commands = {
            "reportctl --help": [str(REPORTCTL), "--help"],
            "minimal typer app --help": [sys.executable, str(app), "--help"],
            "python -c pass": [sys.executable, "-c", "pass"],
        }
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
        try:
            for name, command in commands.items():
                output = ""
                for _ in range(WARM_UP):
                    _, output = run_child(command, folder / "out.txt")
                if name != "python -c pass" and "Usage" not in output:
                    raise _CommandFailed(f"{' '.join(command)} printed no usage: {output[:200]!r}")
            names = list(commands)
            for run in range(args.runs):
                for name in names if run % 2 == 0 else names[::-1]:
                    figures, _ = run_child(commands[name], folder / "out.txt")
                    samples[name].append(figures)
        except ChildFailed as exc:
            print(f"bench_help: {exc}; no figures", file=sys.stderr)
            return 2

    summary = {name: summarise(runs) for name, runs in samples.items()}
    ours, theirs = summary["reportctl --help"]["wall"], summary["minimal typer app --help"]["wall"]
    target = {
        "target": f"reportctl --help <= {RATIO} x minimal typer app --help (medians)",
        "ratio_of_medians": round(ours["median"] / theirs["median"], 3),
        "ratio_of_mins": round(ours["min"] / theirs["min"], 3),
        "pass": ours["median"] <= RATIO * theirs["median"],
    }
    result = {
        **result_header("bench_help", typer=version("typer")),
        "runs": args.runs,
        "summary": summary,
        "targets": [target],
        "seconds": round(time.perf_counter() - started, 1),
        "samples": samples,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_table(result)
    return 0


def _print_table(result: dict[str, Any]) -> None:
    machine = result["machine"]
    print(
        f"bench_help  {result['date']}  nproc {machine['nproc']}, python {machine['python']}, "
        f"typer {machine['typer']}, {result['runs']} runs each, alternating, in fresh processes\n"
    )
    print(f"{'command':<28}{'median s':>10}{'min s':>10}{'cpu s':>10}{'rss MiB':>10}")
    for name, figures in result["summary"].items():
        print(
            f"{name:<28}{figures['wall']['median']:>10.3f}{figures['wall']['min']:>10.3f}"
            f"{figures['cpu']['median']:>10.3f}{figures['peak_rss_mib']['median']:>10.1f}"
        )
    (target,) = result["targets"]
    print(
        f"\n{'PASS' if target['pass'] else 'FAIL'} {target['target']}: ratio {target['ratio_of_medians']:.2f}"
        f" (of mins {target['ratio_of_mins']:.2f})"
    )
    print(f"\n{result['seconds']} s in all")


if __name__ == "__main__":
    sys.exit(main())
