"""What a source plugin is, and what it is given to do its work."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from reportctl.spec.models import SourceOptions

if TYPE_CHECKING:
    import polars as pl


@dataclass(frozen=True)
class SourceContext:
    """Everything a source may depend on besides its own options.

    ``parameters`` holds the bind values of this run by name (a period parameter ``p`` contributes ``p_start``
    and ``p_end``, and when it is the spec's only period also ``start`` and ``end``).
    """

    project_root: Path
    run_time: datetime
    timezone: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    allowed_paths: tuple[Path, ...] = ()


class Source(Protocol):
    """A plugin that reads one table. Register it under the entry-point group ``reportctl.sources``."""

    PLUGIN_NAME: ClassVar[str]
    Options: ClassVar[type[SourceOptions]]

    def __init__(self, name: str, options: Any, context: SourceContext) -> None: ...

    def describe(self) -> str:
        """A short description for messages, e.g. 'sql postgresql://app@db/test'; never contains a secret."""
        ...

    def known_schema(self) -> pl.Schema | None:
        """The columns and types without reading the data, or None when they cannot be known cheaply."""
        ...

    def fetch(self) -> pl.LazyFrame:
        """The data; raises ``SourceError`` naming this source and the cause."""
        ...
