"""Shared fixtures: a quiet, fixed-width terminal, services that skip (or fail in CI) when absent."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get("REPORTCTL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("REPORTCTL_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("TERM", "dumb")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip when the service is absent, except under REPORTCTL_REQUIRE_SERVICES=1 (CI), where that fails."""
    if _reachable(host, port):
        return
    reason = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("REPORTCTL_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and REPORTCTL_REQUIRE_SERVICES=1 requires it")
    pytest.skip(reason)


@pytest.fixture
def postgres_url() -> str:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


@pytest.fixture
def mariadb_url() -> str:
    require_service("MariaDB", "127.0.0.1", 3306)
    return MARIADB_URL


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty reports project (a folder with reportctl.yaml) as the working directory."""
    (tmp_path / "reportctl.yaml").write_text("timezone: UTC\n")
    (tmp_path / "specs").mkdir()
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run reportctl in-process, as the console script would, and capture what it prints."""
    from reportctl.cli import app
    from reportctl.cli.output import run_app

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = run_app(app, list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store URL: a SQLite file, or a PostgreSQL schema of its own dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    import sqlalchemy as sa

    base = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        yield f"{base}?options=-csearch_path%3D{schema}"
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    finally:
        admin.dispose()
