"""The file source against real files in a temporary project."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pydantic import ValidationError

from reportctl.data.sources.base import SourceContext
from reportctl.data.sources.file import FileSource
from reportctl.errors import SourceError

SALES = pl.DataFrame({"region": ["eu", "us"], "amount": [10, 20], "day": [date(2024, 1, 1), date(2024, 1, 2)]})


def make_source(root: Path, allowed: tuple[Path, ...] = (), **options: Any) -> FileSource:
    context = SourceContext(
        project_root=root, run_time=datetime(2024, 1, 3, tzinfo=UTC), timezone="UTC", allowed_paths=allowed
    )
    return FileSource("sales", FileSource.Options.model_validate({"kind": "file", **options}), context)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("name", "writer"),
    [
        ("sales.csv", lambda df, p: df.write_csv(p)),
        ("sales.tsv", lambda df, p: df.write_csv(p, separator="\t")),
        ("sales.parquet", lambda df, p: df.write_parquet(p)),
        ("sales.ndjson", lambda df, p: df.write_ndjson(p)),
        ("sales.jsonl", lambda df, p: df.write_ndjson(p)),
        ("sales.json", lambda df, p: df.write_json(p)),
    ],
)
def test_reads_each_format(tmp_path: Path, name: str, writer: Any) -> None:
    (tmp_path / "data").mkdir()
    writer(SALES, tmp_path / "data" / name)
    source = make_source(tmp_path, path=f"data/{name}", schema_overrides={"day": "date"})

    assert_frame_equal(source.fetch().collect(), SALES)
    assert source.known_schema() == SALES.schema


def test_csv_options_separator_nulls_and_types(tmp_path: Path) -> None:
    write(tmp_path / "data.txt", "id;score;when\n1;NA;2024-01-01T10:00:00\n2;2.5;2024-01-02T11:30:00\n")
    source = make_source(
        tmp_path,
        path="data.txt",
        format="csv",
        separator=";",
        null_values=["NA"],
        schema_overrides={"id": "str"},
    )

    frame = source.fetch().collect()

    assert frame.schema == pl.Schema({"id": pl.String, "score": pl.Float64, "when": pl.Datetime("us")})
    assert frame["score"].to_list() == [None, 2.5]
    assert frame["when"][1] == datetime(2024, 1, 2, 11, 30)


def test_glob_concatenates_matches_in_sorted_order(tmp_path: Path) -> None:
    write(tmp_path / "data" / "2024-02.csv", "month,amount\n2,20\n")
    write(tmp_path / "data" / "2024-01.csv", "month,amount\n1,10\n")
    write(tmp_path / "data" / "notes.txt", "not data")

    frame = make_source(tmp_path, path="data/*.csv").fetch().collect()

    assert frame.to_dict(as_series=False) == {"month": [1, 2], "amount": [10, 20]}


def test_glob_files_with_different_columns_are_named(tmp_path: Path) -> None:
    write(tmp_path / "data" / "a.csv", "month,amount\n1,10\n")
    write(tmp_path / "data" / "b.csv", "month,total\n2,20\n")

    with pytest.raises(SourceError, match=r"data/b\.csv has columns month, total but data/a\.csv has month, amount"):
        make_source(tmp_path, path="data/*.csv").fetch()


def test_glob_without_matches_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no files match data/\*\.csv"):
        make_source(tmp_path, path="data/*.csv").fetch()


def test_missing_file(tmp_path: Path) -> None:
    source = make_source(tmp_path, path="data/sales.csv")

    with pytest.raises(SourceError) as raised:
        source.fetch()
    assert str(raised.value) == "source 'sales' (csv data/sales.csv): file not found: data/sales.csv"
    with pytest.raises(SourceError, match="file not found"):
        source.known_schema()


def test_path_outside_project_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    outside = write(tmp_path / "elsewhere" / "sales.csv", "a\n1\n")

    for path in (str(outside), "../elsewhere/sales.csv", "../elsewhere/*.csv"):
        with pytest.raises(SourceError, match="is outside the reports project; allow it under allow_paths"):
            make_source(project, path=path).fetch()


def test_symlink_out_of_project_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    outside = write(tmp_path / "secret.csv", "a\n1\n")
    (project / "link.csv").symlink_to(outside)

    with pytest.raises(SourceError, match=rf"path {outside} is outside the reports project"):
        make_source(project, path="link.csv").fetch()


def test_allowed_paths_admit_an_outside_folder(tmp_path: Path) -> None:
    project = tmp_path / "project"
    outside = write(tmp_path / "shared" / "sales.csv", "a\n1\n")

    frame = make_source(project, allowed=(tmp_path / "shared",), path=str(outside)).fetch().collect()

    assert frame["a"].to_list() == [1]


def test_malformed_csv_row_names_source_file_and_line(tmp_path: Path) -> None:
    rows = "a,b,c,d\n" + "1,2,3,4\n" * 5 + "9,10,11,12,13\n"
    write(tmp_path / "data" / "sales.csv", rows)

    with pytest.raises(SourceError) as raised:
        make_source(tmp_path, path="data/sales.csv").fetch()

    assert raised.value.source == "sales"
    assert str(raised.value) == (
        "source 'sales' (csv data/sales.csv): malformed CSV in data/sales.csv at line 7: expected 4 fields, found 5"
    )


def test_unparsable_csv_value_names_line_and_column(tmp_path: Path) -> None:
    write(tmp_path / "sales.csv", "id,amount\n1,10\n2,lots\n")

    with pytest.raises(SourceError, match=r"at line 3: could not read 'lots' as i64 in column 'amount'"):
        make_source(tmp_path, path="sales.csv", schema_overrides={"amount": "int"}).fetch()


def test_invalid_utf8_and_the_lossy_encoding(tmp_path: Path) -> None:
    (tmp_path / "names.csv").write_bytes(b"name\ncaf\xe9\n")

    with pytest.raises(SourceError, match="at line 2: not valid UTF-8; set encoding: utf8-lossy"):
        make_source(tmp_path, path="names.csv").fetch()
    frame = make_source(tmp_path, path="names.csv", encoding="utf8-lossy").fetch().collect()
    assert frame["name"].to_list() == ["caf\ufffd"]


def test_unclosed_quote(tmp_path: Path) -> None:
    write(tmp_path / "notes.csv", 'id,note\n1,"never closed\n2,fine\n')

    with pytest.raises(SourceError, match="a quoted field is never closed"):
        make_source(tmp_path, path="notes.csv").fetch()


def test_folder_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()

    with pytest.raises(SourceError, match="data is a folder; name a file, or a glob such as folder/"):
        make_source(tmp_path, path="data", format="csv").fetch()


def test_invalid_ndjson_names_the_line(tmp_path: Path) -> None:
    write(tmp_path / "events.ndjson", '{"a": 1}\n{"a": 2\n')

    with pytest.raises(SourceError, match=r"invalid JSON in events\.ndjson at line 2, column 8"):
        make_source(tmp_path, path="events.ndjson").fetch()


def test_corrupt_parquet_fails_in_fetch(tmp_path: Path) -> None:
    write(tmp_path / "broken.parquet", "not parquet")

    with pytest.raises(SourceError, match=r"cannot read broken\.parquet"):
        make_source(tmp_path, path="broken.parquet").fetch()


def test_empty_csv(tmp_path: Path) -> None:
    write(tmp_path / "empty.csv", "")

    with pytest.raises(SourceError, match=r"empty\.csv is empty"):
        make_source(tmp_path, path="empty.csv").fetch()


def test_options_are_checked_against_the_format() -> None:
    with pytest.raises(ValidationError, match="set format to one of: csv, json, ndjson, parquet, tsv"):
        FileSource.Options.model_validate({"kind": "file", "path": "data/sales.xlsx"})
    with pytest.raises(ValidationError, match="separator apply only to csv and tsv files, not parquet"):
        FileSource.Options.model_validate({"kind": "file", "path": "x.parquet", "separator": ";"})
    with pytest.raises(ValidationError, match="extra_forbidden"):
        FileSource.Options.model_validate({"kind": "file", "path": "x.csv", "sheet": 1})
