"""The CSV writer, checked by reading its files back with polars."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pydantic import ValidationError
from writer_documents import REGIONS, SINCE, last_7_days, report_info

from reportctl.document import Document, KpiBlock, KpiValue, ParameterValue, TableBlock, TableColumn, TextBlock
from reportctl.errors import RenderError
from reportctl.writers.csv import CsvWriter

BERLIN = "Europe/Berlin"


def metrics_frame() -> pl.DataFrame:
    """Aware datetimes across a DST change, dates, nulls, NaN, and text that CSV must quote."""
    return pl.DataFrame(
        {
            "service": ["#api", "web, edge", 'db "primary"\nreplica', None],
            "ts": pl.Series(
                [
                    datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
                    datetime(2026, 3, 29, 1, 30, 0, 250000, tzinfo=UTC),
                    None,
                    datetime(2026, 11, 28, 13, 5, tzinfo=UTC),
                ]
            ).dt.convert_time_zone(BERLIN),
            "day": [date(2026, 3, 29), None, date(2026, 11, 28), date(2026, 1, 1)],
            "latency_ms": [120.5, float("nan"), None, 1e-7],
            "requests": [10, None, 30, 40],
            "ok": [True, False, None, True],
        }
    )


def make_document(*tables: TableBlock) -> Document:
    info = report_info(timezone=BERLIN, title="Server health\nweek 48", description="Latency by service")
    region = ParameterValue("region", "Region", "string", "eu\\west")  # a backslash, which the metadata escapes
    parameters = (last_7_days(), region, SINCE, REGIONS)
    text = TextBlock("summary", None, "All good.")
    kpis = KpiBlock("kpis", None, (KpiValue("Worst p95", 310.25, "number:0 ms"),))
    return Document(info, parameters, (text, kpis, *tables))


def table(frame: pl.DataFrame, table_id: str = "by_service", title: str | None = "By service") -> TableBlock:
    columns = tuple(TableColumn(name, name.replace("_", " ").title()) for name in frame.columns)
    return TableBlock(table_id, title, columns, frame)


def read_back(path: Path, separator: str = ",") -> pl.DataFrame:
    return pl.read_csv(path, comment_prefix="#", try_parse_dates=True, separator=separator)


def comments(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    pairs = [line[2:].split(": ", 1) for line in lines if line.startswith("# ")]
    return {key: value for key, value in pairs}


def test_single_table_round_trips(tmp_path: Path) -> None:
    frame = metrics_frame()
    paths = CsvWriter(CsvWriter.Options()).write(make_document(table(frame)), tmp_path)

    assert paths == [tmp_path / "server-health.csv"]
    back = read_back(paths[0])
    expected = frame.with_columns(pl.col("ts").dt.convert_time_zone("UTC"))
    assert_frame_equal(back, expected)
    assert back["ts"].dt.convert_time_zone(BERLIN).to_list() == frame["ts"].to_list()


def test_plain_rfc_4180_by_default_that_default_readers_open(tmp_path: Path) -> None:
    frame = pl.DataFrame({"service": ["api", "web, edge", 'db "primary"'], "requests": [10, None, 30]})
    [path] = CsvWriter().write(make_document(table(frame)), tmp_path)
    raw = path.read_bytes()
    assert raw.startswith(b"service,requests\r\n")  # the header first, records ending in CRLF
    assert raw.count(b"\r\n") == frame.height + 1 and b"#" not in raw.split(b"\r\n")[0]
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["service", "requests"] and len(rows) == frame.height + 1
    assert pl.read_csv(path).columns == ["service", "requests"]  # no comment_prefix needed
    assert_frame_equal(pl.read_csv(path), frame)


def test_header_has_names_and_datetimes_have_offsets(tmp_path: Path) -> None:
    frame = metrics_frame().select("ts", "requests", "service")
    [path] = CsvWriter().write(make_document(table(frame)), tmp_path)
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    assert lines[:3] == [
        "ts,requests,service",
        "2026-03-29T01:30:00+01:00,10,#api",
        '2026-03-29T03:30:00.250+02:00,,"web, edge"',
    ]


def test_text_that_looks_like_a_comment_is_quoted(tmp_path: Path) -> None:
    frame = pl.DataFrame({"#tag": ["#1", "two"], "n": [1, 2]})
    [path] = CsvWriter({"metadata": "header"}).write(make_document(table(frame)), tmp_path)
    assert path.read_text().splitlines()[-3:] == ['"#tag","n"', '"#1",1', '"two",2']
    assert_frame_equal(read_back(path), frame)


def test_metadata_comments(tmp_path: Path) -> None:
    [path] = CsvWriter({"metadata": "header"}).write(make_document(table(metrics_frame())), tmp_path)
    meta = comments(path)
    assert meta == {
        "report": "server-health",
        "title": "Server health\\nweek 48",
        "generated_at": "2026-11-28T09:00:01+00:00",
        "timezone": BERLIN,
        "spec_hash": "sha256:0123",
        "parameter.period": "2026-11-21T00:00:00+00:00/2026-11-28T00:00:00+00:00",
        "parameter.region": "eu\\\\west",
        "parameter.since": "2026-01-01",
        "parameter.regions": '["eu", "us"]',
        "table": "by_service",
        "table_title": "By service",
        "rows": "4",
    }
    assert datetime.fromisoformat(meta["generated_at"]) == datetime(2026, 11, 28, 9, 0, 1, tzinfo=UTC)
    assert path.read_text().startswith("# report: server-health\n# title: Server health\\nweek 48\n")


def test_several_tables_get_one_file_each(tmp_path: Path) -> None:
    first, second = metrics_frame(), pl.DataFrame({"n": [1, 2]})
    document = make_document(table(first, "by_service"), table(second, "totals", None))
    paths = CsvWriter({"metadata": True}).write(document, tmp_path)
    assert paths == [tmp_path / "server-health.by_service.csv", tmp_path / "server-health.totals.csv"]
    assert_frame_equal(read_back(paths[1]), second)
    assert comments(paths[1])["table"] == "totals"
    assert "table_title" not in comments(paths[1])


def test_no_tables_writes_nothing(tmp_path: Path) -> None:
    assert CsvWriter().write(make_document(), tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_only_the_table_columns_in_their_order(tmp_path: Path) -> None:
    frame = metrics_frame()
    block = TableBlock("t", None, (TableColumn("requests", "Requests"), TableColumn("service", "Service")), frame)
    [path] = CsvWriter().write(make_document(block), tmp_path)
    assert_frame_equal(read_back(path), frame.select("requests", "service"))


def test_separator_and_no_metadata(tmp_path: Path) -> None:
    frame = metrics_frame()
    [path] = CsvWriter({"separator": ";", "metadata": False}).write(make_document(table(frame)), tmp_path)
    assert not path.read_text().startswith("#")
    assert path.read_text().splitlines()[0] == '"service";"ts";"day";"latency_ms";"requests";"ok"'
    assert_frame_equal(read_back(path, ";"), frame.with_columns(pl.col("ts").dt.convert_time_zone("UTC")))


@pytest.mark.parametrize("separator", ["", ";;", '"', "#", "\n", "é"])
def test_bad_separator_is_refused(separator: str) -> None:
    with pytest.raises(ValidationError, match="separator must be one ASCII character"):
        CsvWriter.Options(separator=separator)


def test_values_csv_has_no_type_for(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "took": [timedelta(seconds=90), None],
            "naive": [datetime(2026, 1, 1, 12, 0), None],
            "tags": [["a", "b"], None],
        }
    )
    [path] = CsvWriter().write(make_document(table(frame)), tmp_path)
    back = pl.read_csv(path, comment_prefix="#")
    assert back.rows() == [(90.0, "2026-01-01T12:00:00", '["a","b"]'), (None, None, None)]


def test_second_write_is_byte_identical(tmp_path: Path) -> None:
    document = make_document(table(metrics_frame()))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    [first] = CsvWriter().write(document, tmp_path / "a")
    [second] = CsvWriter().write(document, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()


def test_large_table_round_trips(tmp_path: Path) -> None:
    rows = 200_000
    rng = np.random.default_rng(7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "ts": pl.datetime_range(start, start + timedelta(seconds=rows - 1), "1s", eager=True, time_zone=BERLIN),
            "value": rng.normal(100, 15, rows),
            "count": rng.integers(0, 1_000_000, rows),
            "service": pl.Series(rng.integers(0, 50, rows)).cast(pl.String),
        }
    )
    [path] = CsvWriter({"metadata": "header"}).write(make_document(table(frame)), tmp_path)
    back = read_back(path).with_columns(pl.col("ts").dt.convert_time_zone(BERLIN), pl.col("service").cast(pl.String))
    assert_frame_equal(back, frame)
    assert comments(path)["rows"] == str(rows)


def test_failure_is_a_render_error_and_leaves_no_file(tmp_path: Path) -> None:
    frame = pl.DataFrame({"a": [1]})
    missing = TableBlock("t", None, (TableColumn("nope", "Nope"),), frame)
    with pytest.raises(RenderError, match=r"^csv: cannot write server-health.csv \(table 't'\): ") as caught:
        CsvWriter().write(make_document(missing), tmp_path)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []

    objects = table(pl.DataFrame({"o": [object()]}, schema={"o": pl.Object}))
    with pytest.raises(RenderError, match="column 'o' holds Python objects"):
        CsvWriter().write(make_document(objects), tmp_path)

    with pytest.raises(RenderError, match="csv: cannot write"):
        CsvWriter().write(make_document(table(frame)), tmp_path / "does-not-exist")


def test_registered_as_a_writer_plugin() -> None:
    [entry] = [ep for ep in entry_points(group="reportctl.writers") if ep.name == "csv"]
    assert entry.load() is CsvWriter
    assert CsvWriter.PLUGIN_NAME == "csv"
    assert CsvWriter.Options(format="csv").separator == ","
