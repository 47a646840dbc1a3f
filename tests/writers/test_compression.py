"""Compressed outputs (``compress: gzip | zstd``): read back with the standard gzip module and zstandard's own
decompressor, then polars or json; the same document gives the same bytes; the manifest and the messages say so."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import zstandard
from polars.testing import assert_frame_equal
from pydantic import ValidationError
from writer_documents import report_info

from reportctl.config import find_project
from reportctl.delivery.base import DeliveryContext, media_type
from reportctl.document import Document, TableBlock, TableColumn
from reportctl.errors import SpecError
from reportctl.runner import render_report
from reportctl.spec.loader import load_spec
from reportctl.writers.compression import compression_of, plain_name
from reportctl.writers.csv import CsvOptions, CsvWriter
from reportctl.writers.json import JsonOptions, JsonWriter


def _document(rows: int = 5000) -> Document:
    frame = pl.DataFrame(
        {"service": [f"svc-{i % 37}" for i in range(rows)], "latency_ms": [i * 0.5 for i in range(rows)]}
    )
    columns = tuple(TableColumn(name, name) for name in frame.columns)
    return Document(report_info(), (), (TableBlock("latency", "Latency", columns, frame),))


def _decompress(path: Path) -> bytes:
    """The plain bytes, by readers independent of reportctl's writer code."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        return gzip.decompress(data)
    assert path.suffix == ".zst"
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()


@pytest.mark.parametrize(("compress", "suffix"), [("gzip", ".gz"), ("zstd", ".zst")])
def test_csv_compressed_holds_the_plain_csv(tmp_path: Path, compress: str, suffix: str) -> None:
    document = _document()
    plain_dir, packed_dir = tmp_path / "plain", tmp_path / "packed"
    plain_dir.mkdir()
    packed_dir.mkdir()
    [plain] = CsvWriter().write(document, plain_dir)
    [packed] = CsvWriter(CsvOptions(compress=compress)).write(document, packed_dir)
    assert packed.name == plain.name + suffix
    assert compression_of(packed) == compress and plain_name(packed.name) == plain.name
    assert _decompress(packed) == plain.read_bytes()
    assert packed.stat().st_size < plain.stat().st_size / 3
    assert_frame_equal(pl.read_csv(io.BytesIO(_decompress(packed))), pl.read_csv(plain))
    assert not list(packed_dir.glob(".*")), "no temporary file is left beside the output"


def test_csv_metadata_header_is_compressed_too(tmp_path: Path) -> None:
    [packed] = CsvWriter(CsvOptions(compress="gzip", metadata="header")).write(_document(10), tmp_path)
    text = gzip.decompress(packed.read_bytes()).decode()
    assert text.startswith("# report: ")
    assert pl.read_csv(io.BytesIO(text.encode()), comment_prefix="#").height == 10


@pytest.mark.parametrize("compress", ["gzip", "zstd"])
def test_json_compressed_holds_the_plain_json(tmp_path: Path, compress: str) -> None:
    document = _document()
    (tmp_path / "plain").mkdir()
    (tmp_path / "packed").mkdir()
    [plain] = JsonWriter(JsonOptions(indent=2)).write(document, tmp_path / "plain")
    [packed] = JsonWriter(JsonOptions(indent=2, compress=compress)).write(document, tmp_path / "packed")
    assert packed.name == "server-health.json" + (".gz" if compress == "gzip" else ".zst")
    assert _decompress(packed) == plain.read_bytes()
    rows = json.loads(_decompress(packed))["sections"][0]["rows"]
    assert len(rows) == 5000 and rows[1] == {"service": "svc-1", "latency_ms": 0.5}
    assert [p.name for p in (tmp_path / "packed").iterdir()] == [packed.name], "the rows' part file is gone"


@pytest.mark.parametrize("compress", ["gzip", "zstd"])
def test_same_document_same_bytes(tmp_path: Path, compress: str) -> None:
    document = _document()
    digests = set()
    for attempt in ("a", "b"):
        folder = tmp_path / attempt
        folder.mkdir()
        [path] = CsvWriter(CsvOptions(compress=compress)).write(document, folder)
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1


def test_gzip_header_has_no_time_and_no_file_name(tmp_path: Path) -> None:
    [path] = CsvWriter(CsvOptions(compress="gzip")).write(_document(3), tmp_path)
    header = path.read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] & 0x08 == 0, "FNAME flag set: the file name would be in the header"
    assert header[4:8] == b"\x00\x00\x00\x00", "MTIME is not 0"


def test_unknown_compression_is_refused() -> None:
    with pytest.raises(ValidationError, match="'gzip' or 'zstd'"):
        CsvOptions.model_validate({"compress": "bz2"})


def test_compressed_files_are_sent_as_archives() -> None:
    assert media_type("sales.csv.gz") == "application/gzip"
    assert media_type("sales.json.zst") == "application/zstd"


SPEC = """\
apiVersion: reportctl/v1
name: packed
sources:
  metrics: {kind: sample, rows: 500, seed: 1}
datasets:
  by_service: {from: metrics, group_by: [service], aggregate: {n: count()}}
sections:
  - {id: table, type: table, dataset: by_service}
outputs: [{format: csv, compress: gzip}, {format: json, compress: zstd}, html]
"""


def test_manifest_records_each_file_compression_size_and_digest(project: Path) -> None:
    path = project / "specs" / "packed.yaml"
    path.write_text(SPEC)
    result = render_report(load_spec(path, find_project(path)), now=datetime(2026, 12, 1, 9, tzinfo=UTC))
    manifest = json.loads(result.manifest.read_text())
    entries = {entry["path"]: entry for entry in manifest["artifacts"]}
    assert set(entries) == {"packed.csv.gz", "packed.json.zst", "packed.html"}
    assert entries["packed.csv.gz"]["compression"] == "gzip"
    assert entries["packed.json.zst"]["compression"] == "zstd"
    assert "compression" not in entries["packed.html"]
    for name, entry in entries.items():
        written = (result.directory / name).read_bytes()
        assert entry["bytes"] == len(written)
        assert entry["sha256"] == hashlib.sha256(written).hexdigest()
    assert {a.format for a in result.artifacts} == {"csv", "json", "html"}, "attach: [csv] still finds the file"
    assert pl.read_csv(io.BytesIO(_decompress(result.directory / "packed.csv.gz"))).height > 0


def test_validate_names_the_bad_compression(project: Path) -> None:
    path = project / "specs" / "packed.yaml"
    path.write_text(SPEC.replace("compress: gzip", "compress: zip"))
    with pytest.raises(SpecError) as caught:
        load_spec(path, find_project(path))
    message = str(caught.value)
    assert "packed.yaml:9:" in message and "outputs[0].compress" in message and "gzip, zstd" in message


def test_email_and_slack_messages_say_a_file_is_compressed(
    delivery_context: Callable[..., DeliveryContext], tmp_path: Path
) -> None:
    from reportctl.delivery.email import EmailOptions
    from reportctl.delivery.message import render_content
    from reportctl.delivery.slack import SlackChannel, SlackOptions
    from reportctl.run_record import Artifact

    path = tmp_path / "latency.csv.gz"
    path.write_bytes(gzip.compress(b"region,p95\neu,1\n", mtime=0))
    packed = Artifact("csv", path, path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    context = delivery_context(artifacts=(packed,))
    options = EmailOptions.model_validate(
        {"channel": "email", "to": ["ada@example.com"], "host": "127.0.0.1", "from": "reports@example.com"}
    )

    content = render_content(context, options, attach=["csv"], max_attachment_size=None)

    assert f"- latency.csv.gz, {packed.bytes} B, gzip-compressed, attached" in content.text
    [attachment] = content.attachments
    assert (attachment.name, attachment.content_type) == ("latency.csv.gz", "application/gzip")
    slack = SlackChannel(
        SlackOptions.model_validate({"channel": "slack", "webhook_url": "https://h.example/x"}), context
    )
    assert slack._default_text().splitlines()[-1] == f"• latency.csv.gz ({packed.bytes} B, gzip-compressed)"
