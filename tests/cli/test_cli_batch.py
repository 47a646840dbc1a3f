"""``reportctl render SPEC_OR_DIR ... --jobs N``: many reports, each in a worker process; one failing report does
not stop the others, and the exit code is the worst of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SPEC = """\
apiVersion: reportctl/v1
name: {name}
sources:
  s: {{kind: sample, rows: 50, seed: {seed}}}
sections:
  - {{id: t, type: table, dataset: s}}
outputs: [csv, json]
"""
BASE = """\
apiVersion: reportctl/v1
name: base
abstract: true
sources:
  s: {kind: sample, rows: 5}
"""


def _project(project: Path) -> None:
    for number in range(3):
        (project / "specs" / f"r{number}.yaml").write_text(SPEC.format(name=f"r{number}", seed=number))
    (project / "specs" / "base").mkdir()
    (project / "specs" / "base" / "base.yaml").write_text(BASE)  # abstract: a base, never rendered


def test_a_folder_renders_every_report_in_processes_and_records_each_run(project: Path, cli: Any) -> None:
    _project(project)
    result = cli("render", "specs", "--jobs", "2")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "rendering 3 reports with 2 processes"
    assert sorted(line.split()[1] for line in lines[1:4]) == ["r0", "r1", "r2"]
    assert lines[-1] == "3 of 3 reports rendered"
    runs = json.loads(cli("runs", "list", "--json").stdout)
    assert sorted(r["report"] for r in runs) == ["r0", "r1", "r2"]
    assert all(r["state"] == "COMPLETED" for r in runs)


def test_a_failing_report_does_not_stop_the_others_and_sets_the_exit_code(project: Path, cli: Any) -> None:
    _project(project)
    (project / "specs" / "r1.yaml").write_text(SPEC.format(name="r1", seed=1).replace("dataset: s", "dataset: nope"))
    result = cli("render", "specs", "--jobs", "2", "--no-state")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {project / 'specs' / 'r1.yaml'}:6:35: sections[0].dataset: unknown dataset 'nope'; defined: s\n"
    )  # as a single render says it
    assert sorted(line.split()[1] for line in result.stdout.splitlines() if line.startswith("rendered ")) == [
        "r0",
        "r2",
    ]
    assert result.stdout.splitlines()[-1] == "2 of 3 reports rendered, 1 failed"
    assert sorted(p.name for p in (project / "out").iterdir()) == ["r0", "r2"]


def test_json_gives_one_object_per_report(project: Path, cli: Any) -> None:
    _project(project)
    result = cli("render", "specs/r0.yaml", "specs/r2.yaml", "--json", "--no-state", "-j", "1")
    assert result.exit_code == 0, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(o["report"] for o in objects) == ["r0", "r2"]
    assert all(o["exit_code"] == 0 and o["error"] is None and o["artifacts"] for o in objects)


def test_one_spec_without_jobs_renders_as_before(project: Path, cli: Any) -> None:
    _project(project)
    result = cli("render", "specs/r0.yaml", "--no-state")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1].startswith("rendered r0 in ")
    assert "processes" not in result.stdout


def test_a_batch_takes_no_snapshot_options(project: Path, cli: Any) -> None:
    _project(project)
    result = cli("render", "specs", "--save-snapshot", "snap")
    assert (result.exit_code, result.stderr) == (
        2,
        "error: --save-snapshot, --from-snapshot and --dry-run take one spec, not a batch\n",
    )


def test_workers_of_the_console_script_do_not_import_the_command_line(project: Path) -> None:
    """A spawned worker runs the parent's main module again unless it is a package's ``__main__``: the console
    script says it is ``reportctl.__main__``, so the command line (typer, every command) is imported once, by the
    parent, and the worker imports only what rendering needs."""
    import os
    import subprocess
    import sys

    _project(project)
    script = Path(sys.executable).with_name("reportctl")
    environment = os.environ | {"PYTHONPROFILEIMPORTTIME": "1"}  # every process's imports, on the shared stderr
    done = subprocess.run(
        [str(script), "render", "specs", "--jobs", "1", "--no-state"],
        cwd=project, env=environment, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert imported.count("reportctl.cli") == 1  # the parent's
    assert imported.count("reportctl.runner") == 1  # the worker's: the parent of a batch never renders
