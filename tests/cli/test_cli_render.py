"""`reportctl render`: exit codes, exact messages, and nothing left behind by a failed run."""

from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from conftest import CliResult

REPORT = """\
apiVersion: reportctl/v1
name: health
title: "Health {{ period.start | format_date }}"
parameters:
  period: {type: period, default: last_7_days}
  region: {type: choice, default: all, choices: [all, eu, us, ap]}
sources:
  metrics: {kind: sample, rows: 2000, seed: 3, period: period}
datasets:
  by_service:
    from: metrics
    where: ":region = 'all' OR region = :region"
    group_by: [service]
    aggregate: {samples: count(), p95: p95(latency_ms)}
sections:
  - {id: intro, type: text, template: "{{ datasets.by_service | length }} services"}
  - {id: kpis, type: kpis, items: [{label: Samples, value: "sum(by_service.samples)", format: integer}]}
  - {id: services, type: table, dataset: by_service, columns: {p95: {format: "number:1 ms"}}}
outputs: [csv, json]
"""

Cli = Callable[..., CliResult]


@pytest.fixture
def spec(project: Path) -> Path:
    path = project / "specs" / "health.yaml"
    path.write_text(REPORT)
    return path


def _runs(project: Path, name: str) -> list[Path]:
    folder = project / "out" / name
    return sorted(folder.iterdir()) if folder.exists() else []


def test_render_writes_artifacts_and_a_manifest(cli: Cli, project: Path, spec: Path) -> None:
    result = cli("render", str(spec))
    assert result.exit_code == 0, result.stderr
    (run,) = _runs(project, "health")
    lines = result.stdout.splitlines()
    assert lines[0] == f"wrote out/health/{run.name}/health.csv ({lines[0].split('(')[1]}"
    assert lines[-1].startswith("rendered health in ") and lines[-1].endswith(f"2 files in out/health/{run.name}")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["run_id"] == run.name and manifest["status"] == "completed"
    assert {a["format"] for a in manifest["artifacts"]} == {"csv", "json"}
    for artifact in manifest["artifacts"]:
        data = (run / artifact["path"]).read_bytes()
        assert artifact["bytes"] == len(data)
        assert artifact["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["parameters"]["region"] == "all"
    assert set(manifest["parameters"]["period"]) == {"name", "start", "end"}
    frame = pl.read_csv(run / "health.csv", comment_prefix="#")
    assert frame.columns == ["service", "samples", "p95"]
    assert frame["samples"].sum() == 2000


def test_render_json_describes_the_run(cli: Cli, project: Path, spec: Path) -> None:
    result = cli("render", str(spec), "--json", "-f", "json", "-p", "region=eu")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "completed"
    assert summary["parameters"]["region"] == "eu"
    (artifact,) = summary["artifacts"]
    assert artifact["format"] == "json"
    assert (
        Path(artifact["path"]).read_bytes()
        and artifact["sha256"] == hashlib.sha256(Path(artifact["path"]).read_bytes()).hexdigest()
    )
    assert Path(summary["directory"]).name == summary["run_id"]


def test_output_folder_option(cli: Cli, project: Path, spec: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    assert cli("render", str(spec), "-o", str(target)).exit_code == 0
    assert len(list((target / "health").iterdir())) == 1


def test_parameter_outside_choices(cli: Cli, project: Path, spec: Path) -> None:
    result = cli("render", str(spec), "-p", "region=mars")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {spec}:6:11: parameters.region: 'mars' is not one of: all, eu, us, ap (from -p region=mars)\n"
    )
    assert _runs(project, "health") == []


def test_parameter_of_the_wrong_type(cli: Cli, project: Path, spec: Path) -> None:
    result = cli("render", str(spec), "-p", "period=fortnight")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {spec}:5:11: parameters.period: unknown period 'fortnight'; use one of")


def test_unknown_parameter(cli: Cli, project: Path, spec: Path) -> None:
    result = cli("render", str(spec), "-p", "regoin=eu")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {spec}: unknown parameter 'regoin' (did you mean 'region'?); the spec has: period, region\n"
    )


def test_malformed_parameter_is_a_usage_error(cli: Cli, project: Path, spec: Path) -> None:
    result = cli("render", str(spec), "-p", "region")
    assert result.exit_code == 2
    assert result.stderr == "error: -p expects KEY=VALUE, got 'region'\n"


def test_unknown_format_is_a_usage_error(cli: Cli, project: Path, spec: Path) -> None:
    result = cli("render", str(spec), "-f", "jsn")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: -f: unknown output format 'jsn' (did you mean 'json'?); "
        "not available, try one of: csv, html, json, md, pdf, png, svg, xlsx\n"
    )
    # a usage error is not a run: nothing is recorded, and `runs list` has nothing to show
    runs = cli("runs", "list", "--json")
    assert runs.exit_code == 0, runs.stderr
    assert json.loads(runs.stdout) == []


def test_missing_spec_file(cli: Cli, project: Path) -> None:
    result = cli("render", "specs/nope.yaml")
    assert result.exit_code == 1
    assert result.stderr == f"error: {project}/specs/nope.yaml: file not found\n"


def test_missing_option_value_is_a_usage_error(cli: Cli, project: Path, spec: Path) -> None:
    result = cli("render", str(spec), "-p")
    assert result.exit_code == 2


def _spec_with_source(project: Path, source: str) -> Path:
    path = project / "specs" / "broken.yaml"
    path.write_text(
        "apiVersion: reportctl/v1\nname: broken\n"
        f"sources:\n  data: {source}\n"
        "sections:\n  - {id: t, type: table, dataset: data}\n"
    )
    return path


def test_missing_data_file_fails_before_writing(cli: Cli, project: Path) -> None:
    spec = _spec_with_source(project, "{kind: file, path: data/missing.csv}")
    result = cli("render", str(spec))
    assert result.exit_code == 1
    # Found at validate time: the file source's schema is read before any data.
    assert result.stderr == (
        f"error: {spec}:4:9: sources.data: source 'data' (csv data/missing.csv): file not found: data/missing.csv\n"
    )
    assert not (project / "out").exists()


def test_malformed_csv_row(cli: Cli, project: Path) -> None:
    (project / "data").mkdir()
    (project / "data" / "sales.csv").write_text("region,amount\neu,10\nus,20,30\n")
    spec = _spec_with_source(project, "{kind: file, path: data/sales.csv}")
    result = cli("render", str(spec))
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "source 'data' (csv data/sales.csv): malformed CSV in data/sales.csv at line 3" in result.stderr
    assert not (project / "out").exists()


def test_sql_error_names_the_source(cli: Cli, project: Path) -> None:
    with sqlite3.connect(project / "shop.db") as db:
        db.execute("CREATE TABLE orders (id INTEGER, amount REAL)")
    spec = _spec_with_source(project, '{kind: sql, url: "sqlite:///shop.db", query: "SELECT * FROM order"}')
    result = cli("render", str(spec))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: source 'data' (sql sqlite:///shop.db): ")
    assert result.stderr.count("\n") == 1
    assert not (project / "out").exists()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_database_never_shows_the_password(cli: Cli, project: Path) -> None:
    port = _closed_port()
    url = f"postgresql://report:s3cr3t-pw@127.0.0.1:{port}/test"
    spec = _spec_with_source(project, f'{{kind: sql, url: "{url}", query: "SELECT 1 AS x", timeout: 2s}}')
    result = cli("render", str(spec))
    assert result.exit_code == 1
    assert "s3cr3t-pw" not in result.stderr + result.stdout
    assert result.stderr == (
        f"error: source 'data' (sql postgresql://report:***@127.0.0.1:{port}/test): "
        f"could not connect to 127.0.0.1:{port}: connection refused\n"
    )
    assert not (project / "out").exists()


def test_a_failing_writer_leaves_no_artifacts(
    cli: Cli, project: Path, spec: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reportctl.writers.json import JsonWriter

    def explode(self: object, document: object, directory: Path) -> list[Path]:
        (directory / "half-written.json").write_text("{")
        raise OSError("disk full")

    monkeypatch.setattr(JsonWriter, "write", explode)
    result = cli("render", str(spec))
    assert result.exit_code == 1
    assert result.stderr == "error: json writer failed: disk full\n"
    assert _runs(project, "health") == []


def test_a_name_typo_in_a_template_stops_render_before_any_data_is_read(cli: Cli, project: Path, spec: Path) -> None:
    spec.write_text(REPORT.replace("{{ datasets.by_service | length }} services", "{{ datasets.by_servic.rows }}"))
    result = cli("render", str(spec))
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {spec}:16:39: sections[0].template: unknown dataset 'by_servic' (did you mean 'by_service'?);"
        " defined: by_service, metrics\n"
    )


def test_template_error_at_render_time_points_into_the_spec(cli: Cli, project: Path, spec: Path) -> None:
    # what only evaluation finds (here a division by zero) fails at render, at the template's place
    spec.write_text(REPORT.replace("{{ datasets.by_service | length }} services", "{{ 1 // 0 }}"))
    result = cli("render", str(spec))
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"error: {spec}:16:39: sections[0].template: ZeroDivisionError: integer division or modulo by zero\n"
    )


def test_abstract_specs_do_not_render(cli: Cli, project: Path) -> None:
    path = project / "specs" / "base.yaml"
    path.write_text("apiVersion: reportctl/v1\nname: base\nabstract: true\n")
    result = cli("render", str(path))
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {path}:3:11: abstract: an abstract spec is a base for others; render a spec extending it\n"
    )
