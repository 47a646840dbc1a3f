"""``${secret:NAME}`` references: resolution and redaction.

Values come from the environment variable ``REPORTCTL_SECRET_<NAME>`` (upper-cased, '-' as '_'). Every value
resolved in this process is remembered so that ``redact`` can remove it from any text before it is shown.
"""

from __future__ import annotations

import os
import re

from reportctl.errors import ReportctlError

SECRET_REFERENCE = re.compile(r"\$\{secret:([A-Za-z0-9_.-]+)\}")
_resolved: set[str] = set()


class SecretError(ReportctlError):
    """A referenced secret is not set."""


def env_name(name: str) -> str:
    return "REPORTCTL_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def resolve_secret(name: str) -> str:
    value = os.environ.get(env_name(name))
    if value is None:
        raise SecretError(f"secret '{name}' is not set; set the environment variable {env_name(name)}")
    if value:
        _resolved.add(value)
    return value


def resolve_secrets(text: str) -> str:
    """``text`` with every ``${secret:NAME}`` replaced by its value."""
    return SECRET_REFERENCE.sub(lambda m: resolve_secret(m.group(1)), text)


def redact(text: str) -> str:
    """``text`` with every secret value resolved so far replaced by '***'."""
    for value in sorted(_resolved, key=len, reverse=True):
        text = text.replace(value, "***")
    return text
