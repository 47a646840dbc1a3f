"""Plugin discovery through entry points.

Built-in sources and writers register in pyproject.toml exactly as third-party plugins do, so there is one
path for both. A plugin is a class with a ``PLUGIN_NAME`` and a pydantic ``Options`` model.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from reportctl.errors import ReportctlError, did_you_mean, one_of

SOURCES = "reportctl.sources"
WRITERS = "reportctl.writers"
CHANNELS = "reportctl.channels"

_KIND = {SOURCES: "source kind", WRITERS: "output format", CHANNELS: "delivery channel"}


class PluginError(ReportctlError):
    """A plugin is unknown, registered twice, or fails to load."""


@cache
def _registered() -> dict[str, tuple[EntryPoint, ...]]:
    """reportctl's groups of entry points, read once: each ``entry_points(group=...)`` reads every installed
    distribution's metadata again (20-40 ms a render did that five times)."""
    everything = entry_points()
    return {group: tuple(everything.select(group=group)) for group in _KIND}


@cache
def plugin_names(group: str) -> tuple[str, ...]:
    """Names registered in ``group``, sorted; duplicates are an error."""
    names = [ep.name for ep in _registered()[group]]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PluginError(f"{_KIND[group]} {', '.join(duplicates)} registered more than once; uninstall one")
    return tuple(sorted(names))


def unknown_plugin_message(group: str, name: str) -> str:
    names = plugin_names(group)
    return f"unknown {_KIND[group]} '{name}'{did_you_mean(name, names)}; not available, try one of: {one_of(names)}"


@cache
def load_plugin(group: str, name: str) -> Any:
    """The class registered as ``name`` in ``group``."""
    for ep in _registered()[group]:
        if ep.name == name:
            try:
                return ep.load()
            except Exception as exc:  # a broken third-party plugin must not look like our bug
                raise PluginError(f"{_KIND[group]} '{name}' failed to load from {ep.value}: {exc}") from exc
    raise PluginError(unknown_plugin_message(group, name))


def forget_plugins() -> None:
    """Read the installed entry points again on the next lookup (after a plugin was installed in this process)."""
    _registered.cache_clear()
    plugin_names.cache_clear()
    load_plugin.cache_clear()
