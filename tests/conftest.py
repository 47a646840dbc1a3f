"""Shared fixtures: a quiet, fixed-width terminal, services that skip (or fail in CI) when absent, a run to deliver.

The delivery fixtures live here rather than in tests/delivery/conftest.py: a second module named ``conftest``
would shadow this one for the tests that import ``CliResult`` from it.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from reportctl.config import Project, ProjectConfig
from reportctl.delivery.base import DeliveryContext
from reportctl.delivery.recipients import Directory, Person
from reportctl.run_record import Artifact

if TYPE_CHECKING:
    from reportctl.state.store import StateStore

POSTGRES_URL = os.environ.get("REPORTCTL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("REPORTCTL_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


@pytest.fixture(autouse=True)
def _secrets_of_this_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test redacts only the secrets it resolves: a value such as 'wrong' resolved by one test must not turn
    into '***' in the paths and messages of the next."""
    import reportctl.secrets

    monkeypatch.setattr(reportctl.secrets, "_resolved", set())


@pytest.fixture(autouse=True)
def _plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # `reportctl --actor NAME` sets REPORTCTL_ACTOR for its process; a test running the CLI in-process must not
    # pass its actor on to the next test (empty: the OS user)
    monkeypatch.setenv("REPORTCTL_ACTOR", "")
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
def server_table(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A uniquely named table with a few orders on the machine's PostgreSQL or MariaDB, dropped afterwards."""
    from sqlalchemy import create_engine, text

    url: str = request.getfixturevalue(request.param)
    table = f"reportctl_orders_{uuid.uuid4().hex[:12]}"
    zoned = "TIMESTAMPTZ" if url.startswith("postgresql") else "DATETIME"
    engine = create_engine(url)
    try:
        with engine.begin() as db:
            db.execute(
                text(
                    f"CREATE TABLE {table} (id INTEGER, region VARCHAR(20), amount DECIMAL(10, 2), "
                    f"placed {zoned}, day DATE)"
                )
            )
            db.execute(
                text(f"INSERT INTO {table} VALUES (:id, :region, :amount, :placed, :day)"),
                [
                    {
                        "id": 1,
                        "region": "eu",
                        "amount": Decimal("10.50"),
                        "placed": datetime(2024, 1, 1, 9),
                        "day": date(2024, 1, 1),
                    },
                    {
                        "id": 2,
                        "region": "us",
                        "amount": Decimal("20.25"),
                        "placed": datetime(2024, 1, 1, 10),
                        "day": date(2024, 1, 1),
                    },
                    {
                        "id": 3,
                        "region": "eu",
                        "amount": Decimal("30.00"),
                        "placed": datetime(2024, 1, 2, 11),
                        "day": date(2024, 1, 2),
                    },
                ],
            )
        yield url, table
    finally:
        with engine.begin() as db:
            db.execute(text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()


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


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """A moto_server of the module's own on a free loopback port (delivery/s3_server.py)."""
    from delivery.s3_server import running_moto_server

    with running_moto_server() as server:
        yield server


@pytest.fixture(scope="module")
def peer(s3: Any) -> Iterator[Any]:
    """An independent boto3 client to read back what reportctl wrote to ``s3``."""
    client = s3.client()
    yield client
    client.close()


@pytest.fixture
def bucket(peer: Any) -> str:
    """A new, empty bucket of the test's own on the module's moto_server."""
    name = f"runs-{uuid.uuid4().hex[:10]}"
    peer.create_bucket(Bucket=name)
    return name


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Explicit test credentials and region, no profile files and no instance metadata: S3 traffic stays on
    loopback (use with ``pytestmark = pytest.mark.usefixtures("aws_environment")``)."""
    from delivery.s3_server import REGION

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)


OTHER_HOST_WORKER = "elsewhere.invalid:4242"
"""A worker on another host: nothing but its silence tells whether it is alive."""


def silence(
    store: StateStore, run_id: str, *, silent_for: timedelta = timedelta(minutes=5), worker: str = OTHER_HOST_WORKER
) -> None:
    """Make ``worker`` the run's worker and its last heartbeat ``silent_for`` ago by the store's clock (heartbeats
    are stamped by the store, so a test can only backdate them in the table)."""
    from sqlalchemy import update

    from reportctl.state.models import Run

    with store._session(write=True) as session:
        session.execute(
            update(Run).where(Run.id == run_id).values(heartbeat_at=store.clock() - silent_for, worker=worker)
        )


@contextmanager
def postgres_schema(base: str) -> Iterator[str]:
    """A PostgreSQL URL whose search path is a schema of its own, dropped afterwards: a fresh, empty store."""
    import sqlalchemy as sa

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


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store URL: a SQLite file, or a PostgreSQL schema of its own dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    with postgres_schema(request.getfixturevalue("postgres_url")) as url:
        yield url


@pytest.fixture
def pg_store_url(postgres_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL store (a schema of its own), for what only a shared server can show."""
    with postgres_schema(postgres_url) as url:
        yield url


RUN_ID = "20261128T090000Z-ab12"
ARTIFACTS = {
    "pdf": ("server-health.pdf", b"%PDF-1.7\n" + b"report body\n" * 200),
    "xlsx": ("server-health.xlsx", b"PK\x03\x04" + bytes(range(256)) * 40),
    "csv": ("latency.csv", b"region,p95_ms\neu,120.5\nus,98.25\n"),
}
PEOPLE = Directory(
    people=[
        Person("ada@example.com", "Ada Lovelace", frozenset({"backend-sre"})),
        Person("grace@example.com", "Grace Hopper", frozenset({"backend-sre"}), frozenset({"weekly"})),
        Person("linus@example.org", "Linus", frozenset({"platform"})),
    ],
    lists={"leadership": ["cto@example.com", "team:platform"]},
    origin="people.yaml",
)


@pytest.fixture
def delivery_context(tmp_path: Path) -> Callable[..., DeliveryContext]:
    """``make(**overrides)``: a completed run of 'server-health' with a pdf, an xlsx and a csv on disk."""
    project = Project(tmp_path, ProjectConfig(), None)
    directory = tmp_path / "out" / "server-health" / RUN_ID
    directory.mkdir(parents=True)
    artifacts = []
    for format, (name, content) in ARTIFACTS.items():
        path = directory / name
        path.write_bytes(content)
        artifacts.append(Artifact(format, path, len(content), hashlib.sha256(content).hexdigest()))

    def make(**overrides: Any) -> DeliveryContext:
        values: dict[str, Any] = {
            "run_id": RUN_ID,
            "report": "server-health",
            "title": "Server health",
            "status": "completed",
            "error": None,
            "parameters": {"region": "eu"},
            "now": datetime(2026, 11, 28, 9, 0, tzinfo=UTC),
            "timezone": "Europe/Berlin",
            "directory": directory,
            "artifacts": tuple(artifacts),
            "project": project,
            "people": PEOPLE,
        }
        values.update(overrides)
        return DeliveryContext(**values)

    return make
