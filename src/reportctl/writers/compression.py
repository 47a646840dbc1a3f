"""Compressed outputs: ``compress: gzip | zstd`` on the csv and json writers.

A compressed file is named after the plain one with ``.gz`` or ``.zst`` added (``sales.csv.gz``) and written as a
stream: the writer hands its bytes to the compressor chunk by chunk, so a large table is never held whole in
memory, compressed or not. The bytes are deterministic, as every writer's are: gzip is written without a file name
and with mtime 0, zstd has no time in its frames, so the same document gives the same file.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Literal

from pydantic import Field

from reportctl.writers.base import WriterOptions

Compression = Literal["gzip", "zstd"]
SUFFIXES: dict[Compression, str] = {"gzip": ".gz", "zstd": ".zst"}
MEDIA_TYPES: dict[Compression, str] = {"gzip": "application/gzip", "zstd": "application/zstd"}
GZIP_LEVEL = 6
"""gzip's own default trade of time for size (the command's ``-6``)."""
ZSTD_LEVEL = 3
"""zstd's default level: faster than gzip -6 and smaller."""


class CompressibleOptions(WriterOptions):
    """Options of a writer whose files may be compressed as they are written."""

    compress: Compression | None = Field(
        default=None,
        description="Compress each file as it is written: gzip (name.csv.gz) or zstd (name.csv.zst); default none.",
    )


def compressed_path(path: Path, compress: Compression | None) -> Path:
    """Where the file ``path`` goes once compressed: ``path`` with ``.gz`` or ``.zst`` added."""
    return path if compress is None else path.with_name(path.name + SUFFIXES[compress])


def compression_of(name: str | Path) -> Compression | None:
    """How a file is compressed, from its name (``sales.csv.gz``: gzip); None for a plain file."""
    suffix = Path(name).suffix.lower()
    return next((kind for kind, known in SUFFIXES.items() if known == suffix), None)


def plain_name(name: str) -> str:
    """The name of a compressed file without its compression suffix (``sales.csv.gz``: ``sales.csv``)."""
    kind = compression_of(name)
    return name if kind is None else name[: -len(SUFFIXES[kind])]


@contextmanager
def compressed_output(path: Path, compress: Compression | None) -> Iterator[IO[bytes]]:
    """A binary file to write ``path``'s content to, compressed on the way when ``compress`` says so."""
    with path.open("wb") as raw:
        if compress is None:
            yield raw
        elif compress == "gzip":
            # filename "" and mtime 0: nothing of the moment or the place in the header, so equal input, equal bytes
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=0) as stream:
                yield stream  # type: ignore[misc]
        else:
            import zstandard

            compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
            with compressor.stream_writer(raw, closefd=False) as stream:
                yield stream


@contextmanager
def decompressed_input(path: Path) -> Iterator[IO[bytes]]:
    """The plain content of the file ``path``, decompressed as it is read when its name says it is compressed."""
    compress = compression_of(path)
    with path.open("rb") as raw:
        if compress is None:
            yield raw
        elif compress == "gzip":
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                yield stream  # type: ignore[misc]
        else:
            import zstandard

            with zstandard.ZstdDecompressor().stream_reader(raw, closefd=False) as stream:
                yield stream


def read_plain_bytes(path: Path) -> bytes:
    """The whole plain content of ``path`` (decompressed when its name says so); for readers that need it all."""
    with decompressed_input(path) as stream:
        return stream.read()
