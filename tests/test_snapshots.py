"""Data snapshots: `render --save-snapshot` and `--from-snapshot`, read back with polars and byte for byte."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from conftest import CliResult
from gitrepo import BASE, GitRepo, committed_project, spec_text
from reportctl.runner import build_document
from reportctl.snapshots import SnapshotError, read_snapshot
from reportctl.spec.loader import load_spec

Cli = Callable[..., CliResult]
FORMATS = "csv,json,html,md"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    return committed_project(tmp_path / "reports", monkeypatch, "Health")


def _render(cli: Cli, *args: str) -> dict[str, object]:
    result = cli("render", "specs/health.yaml", "-f", FORMATS, "--json", *args)
    assert result.exit_code == 0, result.stderr
    run: dict[str, object] = json.loads(result.stdout)
    return run


def _hashes(run: dict[str, object]) -> dict[str, str]:
    artifacts = run["artifacts"]
    assert isinstance(artifacts, list)
    return {Path(a["path"]).name: a["sha256"] for a in artifacts}


def test_a_snapshot_holds_each_source_and_a_manifest(cli: Cli, repo: GitRepo) -> None:
    run = _render(cli, "--save-snapshot", "snap")
    manifest = json.loads((repo.root / "snap" / "manifest.json").read_text())
    metrics = pl.read_parquet(repo.root / "snap" / "metrics.parquet")
    assert manifest == {
        "format": "reportctl-snapshot/v1",
        "spec": {
            "name": "health",
            "hash": load_spec(repo.root / "specs" / "health.yaml").spec_hash,
            "git_commit": repo.git("rev-parse", "HEAD"),
        },
        "run_id": run["run_id"],
        "run_time": "2025-11-30T10:53:20+00:00",
        "parameters": run["parameters"],
        "arguments": {},
        "sources": [
            {
                "name": "metrics",
                "kind": "sample",
                "rows": 400,
                "file": "metrics.parquet",
                "sha256": hashlib.sha256((repo.root / "snap" / "metrics.parquet").read_bytes()).hexdigest(),
            }
        ],
    }
    assert metrics.height == 400 and {"service", "error_rate", "latency_ms"} <= set(metrics.columns)
    assert run["snapshot"] == str(repo.root.resolve() / "snap")
    recorded = json.loads(Path(str(run["manifest"])).read_text())
    assert recorded["snapshot"] == str(repo.root.resolve() / "snap") and recorded["arguments"] == {}


SALES = """\
apiVersion: reportctl/v1
name: sales
sources:
  orders: {kind: file, path: data/orders.csv}
datasets:
  by_region: {from: orders, group_by: [region], aggregate: {orders: count(), units: sum(units)}, sort: [region]}
sections:
  - {id: regions, type: table, dataset: by_region}
outputs: [csv, json, html, md]
"""


def test_render_from_a_snapshot_gives_the_bytes_of_the_live_render(cli: Cli, repo: GitRepo) -> None:
    repo.write("specs/sales.yaml", SALES)
    orders = repo.write("data/orders.csv", "region,units\neu,3\nus,4\neu,5\n")
    live = cli("render", "specs/sales.yaml", "--save-snapshot", "snap", "--json")
    orders.write_text("region,units\neu,1\nap,9\n")  # the live data moves on; the snapshot keeps what was read
    replayed = cli("render", "specs/sales.yaml", "--from-snapshot", "snap", "--json")
    moved = cli("render", "specs/sales.yaml", "--json")
    runs = [json.loads(r.stdout) for r in (live, replayed, moved)]
    assert len(_hashes(runs[0])) == 4 and _hashes(runs[1]) == _hashes(runs[0])
    assert _hashes(runs[2])["sales.csv"] != _hashes(runs[0])["sales.csv"]
    table = pl.read_csv(Path(runs[1]["directory"]) / "sales.csv", comment_prefix="#")
    assert table.rows() == [("eu", 2, 8), ("us", 1, 4)]


def test_build_document_reads_a_snapshot(cli: Cli, repo: GitRepo) -> None:
    _render(cli, "--save-snapshot", "snap")
    (repo.root / "specs" / "base" / "ops.yaml").write_text(BASE.replace("rows: 400", "rows: 5"))
    loaded = load_spec(repo.root / "specs" / "health.yaml")
    now = datetime(2025, 11, 30, 10, 53, 20, tzinfo=UTC)
    (table,) = build_document(loaded, now=now, snapshot=repo.root / "snap").tables()
    assert table.frame["samples"].sum() == 400
    (live,) = build_document(loaded, now=now).tables()
    assert live.frame["samples"].sum() == 5


def test_a_snapshot_of_another_spec_is_refused_naming_both(cli: Cli, repo: GitRepo) -> None:
    _render(cli, "--save-snapshot", "snap")
    repo.write("specs/latency.yaml", spec_text().replace("name: health", "name: latency"))
    result = cli("render", "specs/latency.yaml", "--from-snapshot", "snap")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {repo.root.resolve() / 'snap'}: a snapshot of spec 'health', not of 'latency' "
        f"({repo.root.resolve() / 'specs/latency.yaml'}); use a snapshot saved by rendering 'latency'\n"
    )


def test_a_source_missing_from_the_snapshot_is_named(cli: Cli, repo: GitRepo) -> None:
    _render(cli, "--save-snapshot", "snap")
    text = spec_text().replace(
        "datasets:", "sources:\n  extra: {kind: sample, rows: 10, seed: 1, period: period}\ndatasets:"
    )
    repo.write("specs/health.yaml", text)
    result = cli("render", "specs/health.yaml", "--from-snapshot", "snap")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {repo.root.resolve() / 'snap'}: source 'extra' of health.yaml is not in the snapshot (it has: "
        "metrics); save a new snapshot with --save-snapshot\n"
    )


def test_a_changed_or_missing_snapshot_is_refused(cli: Cli, repo: GitRepo) -> None:
    _render(cli, "--save-snapshot", "snap")
    pl.DataFrame({"service": ["x"]}).write_parquet(repo.root / "snap" / "metrics.parquet")
    changed = cli("render", "specs/health.yaml", "--from-snapshot", "snap")
    assert changed.stderr == (
        f"error: {repo.root.resolve() / 'snap' / 'metrics.parquet'}: changed since the snapshot was saved (sha256 "
        "differs from manifest.json)\n"
    )
    absent = cli("render", "specs/health.yaml", "--from-snapshot", "nowhere")
    assert absent.stderr == (
        "error: nowhere: not a data snapshot (no manifest.json); write one with render --save-snapshot\n"
    )
    with pytest.raises(SnapshotError, match="not a valid snapshot manifest"):
        (repo.root / "snap" / "manifest.json").write_text('{"format": "reportctl-snapshot/v1"}')
        read_snapshot(repo.root / "snap")


def test_save_snapshot_replaces_a_snapshot_but_never_other_files(cli: Cli, repo: GitRepo) -> None:
    _render(cli, "--save-snapshot", "snap")
    _render(cli, "--save-snapshot", "snap", "-p", "period=last_30_days")
    assert json.loads((repo.root / "snap" / "manifest.json").read_text())["arguments"] == {"period": "last_30_days"}
    (repo.root / "notes").mkdir()
    (repo.root / "notes" / "keep.txt").write_text("mine")
    result = cli("render", "specs/health.yaml", "--save-snapshot", "notes")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: {repo.root.resolve() / 'notes'}: exists and is not a data snapshot; give --save-snapshot an empty "
        "or new folder\n"
    )
    assert (repo.root / "notes" / "keep.txt").read_text() == "mine"
    both = cli("render", "specs/health.yaml", "--save-snapshot", "a", "--from-snapshot", "snap")
    assert (both.exit_code, both.stderr) == (
        2,
        "error: --save-snapshot and --from-snapshot: give one; a snapshot is saved from live sources\n",
    )
