"""``${secret:NAME}`` references: resolution from the environment or the OS keyring, and redaction.

A value comes from the environment variable ``REPORTCTL_SECRET_<NAME>`` (upper-cased, other characters as '_'),
else from the OS keyring (service "reportctl", ``reportctl secrets set NAME``). Every value resolved in this
process is remembered so that ``redact`` can remove it from any text before it is shown or stored.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from reportctl.errors import ReportctlError

SECRET_REFERENCE = re.compile(r"\$\{secret:([A-Za-z0-9_.-]+)\}")
SECRET_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_PASSWORD_IN_URL = re.compile(r"(//[^/:@\s]+:)[^@/\s]+@")
KEYRING_SERVICE = "reportctl"
_resolved: set[str] = set()
_names_read: ContextVar[set[str] | None] = ContextVar("reportctl_secret_names_read", default=None)


class SecretError(ReportctlError):
    """A referenced secret is not set, or the keyring cannot be used."""


def env_name(name: str) -> str:
    return "REPORTCTL_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def check_name(name: str) -> str:
    if not SECRET_NAME.match(name):
        raise SecretError(f"'{name}' is not a valid secret name; use letters, digits, '_', '-' and '.'")
    return name


def resolve_secret(name: str) -> str:
    """The secret's value, from the environment first, then the OS keyring."""
    value = os.environ.get(env_name(name))
    if value is None:
        value = _keyring_call("get_password", name, quiet_without_backend=True)
    if value is None:
        hint = "" if keyring_backend() else " (this machine has no OS keyring backend)"
        raise SecretError(
            f"secret '{name}' is not set; set the environment variable {env_name(name)}"
            f" or run `reportctl secrets set {name}`{hint}"
        )
    if value:
        _resolved.add(value)
    names = _names_read.get()
    if names is not None:
        names.add(name)
    return value


@contextmanager
def names_read() -> Iterator[set[str]]:
    """The names of the secrets resolved inside the block (in this context: this thread or task), for a run's audit
    entry. A context variable rather than a module set, so two runs in one process never see each other's names."""
    names: set[str] = set()
    token = _names_read.set(names)
    try:
        yield names
    finally:
        _names_read.reset(token)


def resolve_secrets(text: str) -> str:
    """``text`` with every ``${secret:NAME}`` replaced by its value."""
    return SECRET_REFERENCE.sub(lambda m: resolve_secret(m.group(1)), text)


def redact(text: str) -> str:
    """``text`` with every secret value resolved so far replaced by '***'."""
    for value in sorted(_resolved, key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def mask_url_passwords(text: str) -> str:
    """``text`` with every password written into a URL (``postgresql://user:pw@host``) shown as ***."""
    return _PASSWORD_IN_URL.sub(r"\1***@", text)


def keyring_backend() -> str | None:
    """The OS keyring backend's name, or None when this machine has none that keyring recommends."""
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    return None if isinstance(backend, fail.Keyring) else type(backend).__name__


def store_secret(name: str, value: str) -> None:
    """Keep ``value`` in the OS keyring under ``name``."""
    _keyring_call("set_password", check_name(name), value)


def stored_secret(name: str) -> str | None:
    """The value kept in the OS keyring under ``name``, or None."""
    result: str | None = _keyring_call("get_password", check_name(name))
    return result


def delete_secret(name: str) -> None:
    """Remove ``name`` from the OS keyring; an error when it is not there."""
    from keyring.errors import PasswordDeleteError

    try:
        _keyring_call("delete_password", check_name(name))
    except PasswordDeleteError:
        raise SecretError(f"secret '{name}' is not in the OS keyring") from None


def _keyring_call(method: str, name: str, *args: str, quiet_without_backend: bool = False) -> Any:
    import keyring
    from keyring.errors import KeyringError, NoKeyringError, PasswordDeleteError

    try:
        return getattr(keyring, method)(KEYRING_SERVICE, name, *args)
    except NoKeyringError:
        if quiet_without_backend:
            return None
        raise SecretError(
            f"this machine has no OS keyring backend; set the environment variable {env_name(name)} instead"
        ) from None
    except PasswordDeleteError:
        raise
    except KeyringError as exc:
        raise SecretError(f"the OS keyring failed for secret '{name}': {exc}; set {env_name(name)} instead") from None
