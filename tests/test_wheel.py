"""The package as users get it: a wheel built with ``python -m build`` installs into a clean venv (the core only,
no extras) and renders a report with a chart in a project outside the repository, fonts and templates included."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pdfplumber
import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = """\
apiVersion: reportctl/v1
name: outside
title: Outside the repository
locale: de_DE
sources:
  metrics: {kind: sample, rows: 500, seed: 3}
datasets:
  daily:
    from: metrics
    every: 1d
    on: timestamp
    aggregate: {p95_latency: p95(latency_ms)}
sections:
  - {id: kpis, type: kpis, items: [{label: Worst p95, value: "max(daily.p95_latency)", format: "number:1 ms"}]}
  - {id: trend, type: chart, chart: line, dataset: daily, x: timestamp, y: p95_latency}
  - {id: table, type: table, dataset: daily}
outputs: [pdf, html, xlsx]
"""


def _run(*command: str | Path, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The venv the wheel went into, with nothing else installed."""
    folder = tmp_path_factory.mktemp("wheel")
    built = _run(sys.executable, "-m", "build", "--wheel", "--outdir", folder / "dist", ROOT)
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = (folder / "dist").glob("reportctl-*.whl")
    venv.create(folder / "venv", with_pip=True, system_site_packages=False)
    pip = _run(folder / "venv" / "bin" / "python", "-m", "pip", "install", "--quiet", wheel)
    if pip.returncode != 0 and "No matching distribution" in pip.stderr:
        if os.environ.get("REPORTCTL_REQUIRE_SERVICES") == "1":
            pytest.fail(f"pip cannot reach the packages the wheel needs: {pip.stderr[-500:]}")
        pytest.skip("pip cannot reach the packages the wheel needs")
    assert pip.returncode == 0, pip.stderr[-2000:]
    return folder / "venv"


def test_the_wheel_carries_the_package_data(installed: Path) -> None:
    listing = "import reportctl, pathlib; print(*(p.name for p in pathlib.Path(reportctl.__file__).parent.rglob('*')))"
    files = _run(installed / "bin" / "python", "-c", listing)
    names = set(files.stdout.split())
    assert {"DejaVuSans.ttf", "report.html", "py.typed", "server-health.yaml"} <= names


def test_the_core_install_has_no_extras(installed: Path) -> None:
    for module in ("boto3", "psycopg", "pymysql"):
        found = _run(installed / "bin" / "python", "-c", f"import importlib.util as u; print(u.find_spec('{module}'))")
        assert found.stdout.strip() == "None", module


def test_the_installed_wheel_renders_a_report_with_a_chart_outside_the_repository(
    installed: Path, tmp_path: Path
) -> None:
    project = tmp_path / "reports"
    (project / "specs").mkdir(parents=True)
    (project / "reportctl.yaml").write_text("timezone: Europe/Berlin\n")
    (project / "specs" / "outside.yaml").write_text(SPEC)
    rendered = _run(installed / "bin" / "reportctl", "render", "specs/outside.yaml", "--no-state", cwd=project)
    assert rendered.returncode == 0, rendered.stderr
    [pdf] = (project / "out" / "outside").rglob("outside.pdf")
    with pdfplumber.open(pdf) as document:
        assert sum(len(page.images) for page in document.pages) == 1
        assert " ms" in (document.pages[0].extract_text() or "")
    assert not (project / ".reportctl").exists()
