"""The query cache: what a sql or http source returned, shared by every process of a project for a while.

An entry is one Arrow IPC file under ``.reportctl/cache/``, named by the SHA-256 of what identifies the result:
the source's kind and options (secrets as written, never resolved), the values of the parameters it binds, the
report's zone and the reportctl version. It is fresh while younger than the reading source's TTL (its file's
modification time is when it was stored).

Single flight: a process that misses takes an exclusive ``flock`` on one of 256 lock files (chosen by the key),
looks again, and only then queries; the others wait on the lock and find the entry when it is released. The
kernel releases a ``flock`` when its process dies, so a killed process cannot leave a key locked. A waiter gives
up after the source's own time limit and reads the source itself, without storing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from reportctl import __version__
from reportctl.digests import json_value

if TYPE_CHECKING:
    from collections.abc import Iterator

    import polars as pl

__all__ = ["CacheRead", "QueryCache", "cache_hits", "cache_key"]

CACHE_FORMAT = 1
_LOCK_STRIPES = 256
_POLL_SECONDS = 0.05
_KEEP_UNUSED = timedelta(days=1)
"""Entries not stored again for this long (or their TTL, when longer) are removed when another is stored."""
_STALE_TEMPORARY = 3600.0


@dataclass(frozen=True)
class CacheRead:
    """How one source was read: ``hit`` from the cache, ``stored`` queried and saved, ``live`` queried only."""

    source: str
    outcome: Literal["hit", "stored", "live"]
    age_seconds: float | None = None
    """How old the entry was, for a hit."""

    def as_dict(self) -> dict[str, Any]:
        age = None if self.age_seconds is None else round(self.age_seconds, 1)
        return {"source": self.source, "cache": self.outcome, "age_seconds": age}

    def describe(self) -> str:
        if self.outcome == "hit":
            from reportctl.formats import format_duration

            return f"{self.source} from cache ({format_duration(round(self.age_seconds or 0.0))} old)"
        return f"{self.source} queried"


def cache_hits(sources: list[dict[str, Any]]) -> str:
    """The sources a run read from the cache, as ``render`` reports them: '; t from cache (11s old)', or ''."""
    hits = [
        CacheRead(entry["source"], "hit", entry.get("age_seconds")).describe()
        for entry in sources
        if entry.get("cache") == "hit"
    ]
    return f"; {', '.join(hits)}" if hits else ""


def cache_key(identity: Mapping[str, Any]) -> str:
    """The entry's name: the SHA-256 of the identity as canonical JSON, with the cache format and version."""
    document = {"format": CACHE_FORMAT, "reportctl": __version__, **identity}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=json_value)
    return hashlib.sha256(text.encode()).hexdigest()


class QueryCache:
    """Entries in ``directory``; every method is safe to call from several processes and threads at once."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def read(
        self,
        source: str,
        identity: Mapping[str, Any],
        ttl: timedelta,
        query: Callable[[], pl.LazyFrame],
        *,
        wait: float,
    ) -> tuple[pl.DataFrame, CacheRead]:
        """The fresh entry for ``identity``, or ``query()`` collected and stored for the processes that come next.

        ``wait`` is how many seconds to wait for another process querying the same key before querying too.
        """
        key = cache_key(identity)
        entry = self.directory / f"{key}.arrow"
        found = self._fresh(source, entry, ttl)
        if found is not None:
            return found
        with self._lock(key, wait) as held:
            found = self._fresh(source, entry, ttl)
            if found is not None:
                return found
            frame = query().collect()
            if not held:
                return frame, CacheRead(source, "live")
            self._store(entry, frame, ttl)
            return frame, CacheRead(source, "stored")

    def clear(self, older_than: timedelta | None = None) -> tuple[int, int]:
        """Remove entries (only those stored longer ago than ``older_than`` when given): (entries, bytes)."""
        cutoff = time.time() - older_than.total_seconds() if older_than is not None else None
        removed = size = 0
        for path in self._entries():
            try:
                stat = path.stat()
                if cutoff is not None and stat.st_mtime > cutoff:
                    continue
                path.unlink()
            except FileNotFoundError:
                continue
            removed += 1
            size += stat.st_size
        return removed, size

    def _entries(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return [p for p in self.directory.iterdir() if p.suffix == ".arrow" and p.is_file()]

    def _fresh(self, source: str, entry: Path, ttl: timedelta) -> tuple[pl.DataFrame, CacheRead] | None:
        import polars as pl

        try:
            age = time.time() - entry.stat().st_mtime
        except FileNotFoundError:
            return None
        if not 0 <= age < ttl.total_seconds():
            return None
        try:
            frame = pl.read_ipc(entry.read_bytes())
        except (OSError, pl.exceptions.PolarsError):
            return None  # removed or damaged since: query instead
        return frame, CacheRead(source, "hit", age)

    @contextmanager
    def _lock(self, key: str, wait: float) -> Iterator[bool]:
        """Hold the key's lock, waiting at most ``wait`` seconds; yields whether it is held."""
        locks = self.directory / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        stripe = int(key[:8], 16) % _LOCK_STRIPES
        with open(locks / f"{stripe:03d}.lock", "a+b") as handle:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(_POLL_SECONDS)
            try:
                yield True
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _store(self, entry: Path, frame: pl.DataFrame, ttl: timedelta) -> None:
        """Write the entry whole (a temporary file renamed over it), then remove what has long been unused."""
        temporary = entry.with_name(f".{entry.stem}.{os.getpid()}.tmp")
        try:
            frame.write_ipc(temporary, compression="uncompressed")
            os.replace(temporary, entry)
        except OSError:
            temporary.unlink(missing_ok=True)
            return  # a full disk makes the cache miss next time, never the run fail
        self._prune(max(_KEEP_UNUSED, ttl))

    def _prune(self, unused: timedelta) -> None:
        now = time.time()
        for path in self.directory.iterdir():
            try:
                age = now - path.stat().st_mtime
                if (path.suffix == ".arrow" and age > unused.total_seconds()) or (
                    path.suffix == ".tmp" and age > _STALE_TEMPORARY
                ):
                    path.unlink()
            except (FileNotFoundError, IsADirectoryError):
                continue
