"""A real git repository in a temporary folder, for tests of history, revisions, snapshots and replay."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

BASE = """\
apiVersion: reportctl/v1
name: ops-base
abstract: true
parameters:
  period: {type: period, default: last_7_days}
sources:
  metrics: {kind: sample, rows: 400, seed: 7, period: period}
outputs: [csv, json]
"""

SPEC = """\
apiVersion: reportctl/v1
name: health
title: "{title}"
extends: base/ops.yaml
datasets:
  by_service:
    from: metrics
    where: "error_rate > {threshold}"
    group_by: [service]
    aggregate: {{samples: count(), worst: max(latency_ms)}}
    sort: [service]
sections:
  - {{id: intro, type: text, template: "{{{{ datasets.by_service | length }}}} services"}}
  - {{id: services, type: table, dataset: by_service}}
"""


def spec_text(title: str = "Health", threshold: str = "0.0") -> str:
    """The test spec: integer aggregates only (count, max), so its bytes never depend on float summation order."""
    return SPEC.format(title=title, threshold=threshold)


class GitRepo:
    """A reports project under git: ``reportctl.yaml``, ``specs/``; commits as a fixed author."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "reportctl.yaml").write_text("timezone: UTC\n")
        (root / "specs" / "base").mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str, date: str | None = None) -> str:
        env = {"GIT_CONFIG_NOSYSTEM": "1", "HOME": str(self.root), "PATH": "/usr/bin:/bin"}
        if date is not None:
            env |= {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
        done = subprocess.run(
            ["git", "-c", "user.name=Ada Lovelace", "-c", "user.email=ada@example.com", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        return done.stdout.strip()

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def commit(self, message: str, *, date: str = "2026-11-01T10:00:00+00:00") -> str:
        """Commit everything, at ``date`` (author and committer), and return the full commit id."""
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message, date=date)
        return self.git("rev-parse", "HEAD")


EPOCH = "1764500000"  # 2025-11-30T10:53:20Z, the run time of every render in these tests


def committed_project(root: Path, monkeypatch: pytest.MonkeyPatch, title: str = "Health v1") -> GitRepo:
    """A repository with the spec and its base in one commit, as the working folder, the run time pinned."""
    repo = GitRepo(root)
    repo.write("specs/base/ops.yaml", BASE)
    repo.write("specs/health.yaml", spec_text(title))
    repo.commit("first version")
    monkeypatch.chdir(repo.root)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    return repo
