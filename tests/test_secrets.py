"""Secrets from the environment and the OS keyring, the `secrets` commands, and redaction."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import keyring
import keyring.backend
import pytest
from keyring.backends import fail
from keyring.errors import PasswordDeleteError

from conftest import CliResult
from reportctl.secrets import SecretError, redact, resolve_secret, resolve_secrets

Cli = Callable[..., CliResult]


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring in a dict: this machine has no OS keyring, and tests must not touch a real one."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[tuple[str, str], str] = {}

    def set_password(self, service: str, username: str, password: str) -> None:
        self.values[(service, username)] = password

    def get_password(self, service: str, username: str) -> str | None:
        return self.values.get((service, username))

    def delete_password(self, service: str, username: str) -> None:
        if self.values.pop((service, username), None) is None:
            raise PasswordDeleteError("not found")


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


def test_the_environment_wins_over_the_keyring(memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch) -> None:
    memory_keyring.set_password("reportctl", "sales-db", "from-keyring")
    assert resolve_secret("sales-db") == "from-keyring"
    monkeypatch.setenv("REPORTCTL_SECRET_SALES_DB", "from-env")
    assert resolve_secrets("postgresql://r:${secret:sales-db}@db/sales") == "postgresql://r:from-env@db/sales"
    assert redact("password from-env and from-keyring") == "password *** and ***"


def test_a_missing_secret_names_both_ways_to_set_it(memory_keyring: MemoryKeyring) -> None:
    with pytest.raises(SecretError) as caught:
        resolve_secret("hook.key")
    assert str(caught.value) == (
        "secret 'hook.key' is not set; set the environment variable REPORTCTL_SECRET_HOOK_KEY "
        "or run `reportctl secrets set hook.key`"
    )


def test_without_a_keyring_backend_the_message_says_so(no_keyring: None) -> None:
    with pytest.raises(SecretError, match=r"\(this machine has no OS keyring backend\)$"):
        resolve_secret("token")


def test_set_get_show_delete(cli: Cli, memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    result = cli("secrets", "set", "api")
    assert (result.exit_code, result.stdout) == (0, "stored secret 'api' in the OS keyring\n")
    assert memory_keyring.values[("reportctl", "api")] == "s3cret"
    result = cli("secrets", "get", "api")
    assert (result.exit_code, result.stdout) == (0, "secret 'api' is set, from the OS keyring\n")
    assert "s3cret" not in result.stdout
    assert cli("secrets", "get", "api", "--show").stdout == "s3cret\n"
    assert cli("secrets", "delete", "api").stdout == "deleted secret 'api' from the OS keyring\n"
    result = cli("secrets", "get", "api")
    assert result.exit_code == 1
    assert result.stdout == "secret 'api' is not set (neither REPORTCTL_SECRET_API nor the OS keyring)\n"
    result = cli("secrets", "delete", "api")
    assert (result.exit_code, result.stderr) == (1, "error: secret 'api' is not in the OS keyring\n")


def test_set_without_a_keyring_backend(cli: Cli, no_keyring: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret"))
    result = cli("secrets", "set", "api")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: this machine has no OS keyring backend; set the environment variable REPORTCTL_SECRET_API instead\n"
    )


def test_bad_names_are_refused(cli: Cli, memory_keyring: MemoryKeyring) -> None:
    result = cli("secrets", "get", "no spaces")
    assert result.exit_code == 1
    assert result.stderr == "error: 'no spaces' is not a valid secret name; use letters, digits, '_', '-' and '.'\n"


def test_a_keyring_secret_reaches_a_source_and_never_its_messages(
    cli: Cli, memory_keyring: MemoryKeyring, project: object
) -> None:
    from pathlib import Path

    assert isinstance(project, Path)
    memory_keyring.set_password("reportctl", "db", "hunter2")
    spec = project / "specs" / "s.yaml"
    spec.write_text(
        "apiVersion: reportctl/v1\nname: s\nsources:\n"
        "  d: {kind: sql, url: 'postgresql://report:${secret:db}@127.0.0.1:9/x', query: 'SELECT 1', timeout: 2s}\n"
        "sections:\n  - {id: t, type: table, dataset: d}\n"
    )
    result = cli("render", str(spec), "--no-state")
    assert result.exit_code == 1
    assert "hunter2" not in result.stderr + result.stdout
    assert "report:***@127.0.0.1:9" in result.stderr
