"""The sql source against a real SQLite file and the machine's PostgreSQL and MariaDB."""

from __future__ import annotations

import socket
import sqlite3
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from reportctl.data.sources.base import SourceContext
from reportctl.data.sources.sql import SqlSource
from reportctl.errors import SourceError

INJECTION = "x' OR '1'='1"


def make_source(root: Path, parameters: dict[str, Any] | None = None, **options: Any) -> SqlSource:
    context = SourceContext(
        project_root=root,
        run_time=datetime(2024, 1, 3, tzinfo=UTC),
        timezone="UTC",
        parameters=parameters or {},
    )
    return SqlSource("orders", SqlSource.Options.model_validate({"kind": "sql", **options}), context)


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def sqlite_project(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    with sqlite3.connect(tmp_path / "data" / "shop.db") as db:
        db.executescript(
            """
            CREATE TABLE orders (id INTEGER, region TEXT, amount REAL, placed TEXT);
            INSERT INTO orders VALUES
                (1, 'eu', 10.5, '2024-01-01 09:00:00'),
                (2, 'us', 20.0, '2024-01-01 10:00:00'),
                (3, 'eu', 30.0, '2024-01-02 11:00:00');
            """
        )
    db.close()
    return tmp_path


def test_sqlite_file_relative_to_the_project(sqlite_project: Path) -> None:
    source = make_source(sqlite_project, url="sqlite:///data/shop.db", query="SELECT * FROM orders ORDER BY id")

    frame = source.fetch().collect()

    assert frame.schema == pl.Schema({"id": pl.Int64, "region": pl.String, "amount": pl.Float64, "placed": pl.String})
    assert frame["amount"].to_list() == [10.5, 20.0, 30.0]
    assert source.describe() == "sql sqlite:///data/shop.db"
    assert source.known_schema() is None


def test_parameters_are_bound_values_never_sql(sqlite_project: Path) -> None:
    query = "SELECT id, :region AS asked FROM orders WHERE region = :region AND placed >= :since ORDER BY id"
    parameters = {"region": "eu", "since": datetime(2024, 1, 1, 12), "unused": object()}

    frame = make_source(sqlite_project, parameters, url="sqlite:///data/shop.db", query=query).fetch().collect()
    assert frame.to_dict(as_series=False) == {"id": [3], "asked": ["eu"]}

    parameters["region"] = INJECTION
    frame = make_source(sqlite_project, parameters, url="sqlite:///data/shop.db", query=query).fetch().collect()
    assert frame.height == 0
    probe = make_source(sqlite_project, {"v": INJECTION}, url="sqlite:///data/shop.db", query="SELECT :v AS v")
    assert probe.fetch().collect()["v"].to_list() == [INJECTION]


def test_missing_parameter(sqlite_project: Path) -> None:
    source = make_source(
        sqlite_project,
        {"region": "eu"},
        url="sqlite:///data/shop.db",
        query="SELECT * FROM orders WHERE id = :foo",
    )

    with pytest.raises(SourceError, match="query uses :foo but the spec has no parameter foo"):
        source.fetch()


def test_bad_sql_gives_the_driver_first_line(sqlite_project: Path) -> None:
    source = make_source(sqlite_project, url="sqlite:///data/shop.db", query="SELEC * FROM orders")

    with pytest.raises(SourceError) as raised:
        source.fetch()
    assert str(raised.value) == ("source 'orders' (sql sqlite:///data/shop.db): near \"SELEC\": syntax error")


def test_sqlite_is_read_only(sqlite_project: Path) -> None:
    source = make_source(sqlite_project, url="sqlite:///data/shop.db", query="DELETE FROM orders")

    with pytest.raises(SourceError, match="attempt to write a readonly database"):
        source.fetch()


def test_sqlite_query_past_the_timeout_is_interrupted(sqlite_project: Path) -> None:
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"
    source = make_source(sqlite_project, url="sqlite:///data/shop.db", query=endless, timeout="0.2s")

    with pytest.raises(SourceError, match=r"the query timed out after 0\.2s"):
        source.fetch()


def test_sqlite_missing_and_outside_files(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    with pytest.raises(SourceError, match=r"database file not found: data/missing\.db$"):
        make_source(project, url="sqlite:///data/missing.db", query="SELECT 1").fetch()
    with pytest.raises(SourceError, match="is outside the reports project; allow it under allow_paths"):
        make_source(project, url=f"sqlite:///{tmp_path}/other.db", query="SELECT 1").fetch()


def test_empty_sqlite_result_keeps_column_names(sqlite_project: Path) -> None:
    source = make_source(sqlite_project, url="sqlite:///data/shop.db", query="SELECT id, region FROM orders WHERE 0")

    assert source.fetch().collect().columns == ["id", "region"]


@pytest.mark.parametrize("scheme", ["postgresql", "mysql", "mariadb"])
def test_unreachable_server_without_leaking_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    port = unused_port()
    monkeypatch.setenv("REPORTCTL_SECRET_DB_PASSWORD", "hunter2-from-env")
    for password in ("Sup3r-Secret-pw", "${secret:DB_PASSWORD}"):
        source = make_source(tmp_path, url=f"{scheme}://report:{password}@127.0.0.1:{port}/test", query="SELECT 1")

        with pytest.raises(SourceError) as raised:
            source.fetch()

        message = str(raised.value)
        assert f"could not connect to 127.0.0.1:{port}: connection refused" in message
        assert f"sql {scheme}://report:***@127.0.0.1:{port}/test" == source.describe()
        for secret in ("Sup3r-Secret-pw", "hunter2-from-env"):
            assert secret not in message
            assert secret not in source.describe()


def test_unset_secret(tmp_path: Path) -> None:
    source = make_source(tmp_path, url="postgresql://report:${secret:NOT_SET_ANYWHERE}@db/test", query="SELECT 1")

    with pytest.raises(SourceError, match="set the environment variable REPORTCTL_SECRET_NOT_SET_ANYWHERE"):
        source.fetch()


def test_unsupported_database_is_refused_early() -> None:
    with pytest.raises(ValidationError, match="unsupported database 'oracle'; use sqlite, postgresql, mysql or"):
        SqlSource.Options.model_validate({"kind": "sql", "url": "oracle://x@db/y", "query": "SELECT 1"})


@pytest.mark.services
@pytest.mark.parametrize("server_table", ["postgres_url", "mariadb_url"], indirect=True)
def test_query_with_parameters_on_a_server(tmp_path: Path, server_table: tuple[str, str]) -> None:
    url, table = server_table
    query = f"SELECT id, amount, placed, day FROM {table} WHERE region = :region AND day >= :since ORDER BY id"

    frame = make_source(tmp_path, {"region": "eu", "since": date(2024, 1, 1)}, url=url, query=query).fetch().collect()

    assert frame["id"].to_list() == [1, 3]
    assert frame["amount"].to_list() == [Decimal("10.50"), Decimal("30.00")]
    assert frame.schema["amount"] == pl.Decimal(38, 2)
    assert frame.schema["day"] == pl.Date
    placed = frame.schema["placed"]
    assert isinstance(placed, pl.Datetime) and placed.time_zone in (None, "UTC")

    injected = make_source(tmp_path, {"region": INJECTION, "since": date(2024, 1, 1)}, url=url, query=query)
    assert injected.fetch().collect().height == 0

    empty = make_source(tmp_path, {"region": "none", "since": date(2024, 1, 1)}, url=url, query=query)
    frame = empty.fetch().collect()
    assert frame.columns == ["id", "amount", "placed", "day"]
    assert frame.schema["id"] == pl.Int64 and frame.schema["day"] == pl.Date


@pytest.mark.services
@pytest.mark.parametrize("server_table", ["postgres_url", "mariadb_url"], indirect=True)
def test_bad_sql_on_a_server(tmp_path: Path, server_table: tuple[str, str]) -> None:
    url, table = server_table
    with pytest.raises(SourceError) as raised:
        make_source(tmp_path, url=url, query=f"SELECT nope FROM {table}").fetch()
    assert "nope" in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.services
def test_postgres_statement_timeout(tmp_path: Path, postgres_url: str) -> None:
    source = make_source(tmp_path, url=postgres_url, query="SELECT pg_sleep(5)", timeout="0.3s")

    with pytest.raises(SourceError, match=r"the query timed out after 0\.3s"):
        source.fetch()


@pytest.mark.services
def test_mariadb_read_timeout(tmp_path: Path, mariadb_url: str) -> None:
    source = make_source(tmp_path, url=mariadb_url, query="SELECT SLEEP(5)", timeout="0.3s")

    with pytest.raises(SourceError, match=r"the query timed out after 0\.3s"):
        source.fetch()


def test_sqlite_periods_compare_with_date_and_datetime_text_columns(tmp_path: Path) -> None:
    """A period bound to SQLite matches date columns and datetime columns stored as text."""
    from zoneinfo import ZoneInfo

    from reportctl.data.sources.sql import SqlOptions

    with sqlite3.connect(tmp_path / "d.db") as db:
        db.execute("CREATE TABLE d (day TEXT, at TEXT)")
        db.executemany(
            "INSERT INTO d VALUES (?, ?)",
            [
                ("2025-12-31", "2025-12-31 23:59:59"),
                ("2026-01-01", "2026-01-01 00:00:00"),
                ("2026-01-31", "2026-01-31 23:00:00"),
                ("2026-02-01", "2026-02-01 00:00:00"),
            ],
        )
    berlin = ZoneInfo("Europe/Berlin")
    context = SourceContext(
        project_root=tmp_path,
        run_time=datetime(2026, 3, 1, tzinfo=UTC),
        timezone="Europe/Berlin",
        parameters={"start": datetime(2026, 1, 1, tzinfo=berlin), "end": datetime(2026, 2, 1, tzinfo=berlin)},
    )

    def rows(column: str) -> list[str]:
        query = f"SELECT {column} FROM d WHERE {column} >= :start AND {column} < :end ORDER BY 1"
        options = SqlOptions(kind="sql", url="sqlite:///d.db", query=query)
        return SqlSource("d", options, context).fetch().collect()[column].to_list()

    assert rows("day") == ["2026-01-01", "2026-01-31"]
    assert rows("at") == ["2026-01-01 00:00:00", "2026-01-31 23:00:00"]


@pytest.mark.parametrize("period_start", ["2026-01-01", "2030-01-01"])
def test_schema_overrides_type_sqlite_text_even_for_an_empty_result(tmp_path: Path, period_start: str) -> None:
    from reportctl.data.sources.sql import SqlOptions

    with sqlite3.connect(tmp_path / "o.db") as db:
        db.execute("CREATE TABLE o (day TEXT, at TEXT, amount TEXT, country TEXT)")
        db.execute("INSERT INTO o VALUES ('2026-01-02', '2026-01-02 10:30:00', '12.5', 'DE')")
    context = SourceContext(
        project_root=tmp_path,
        run_time=datetime(2026, 3, 1, tzinfo=UTC),
        timezone="UTC",
        parameters={"start": date.fromisoformat(period_start)},
    )
    options = SqlOptions(
        kind="sql",
        url="sqlite:///o.db",
        query="SELECT * FROM o WHERE day >= :start",
        schema_overrides={"day": "date", "at": "datetime", "amount": "float", "country": "str"},
    )
    frame = SqlSource("o", options, context).fetch().collect()
    assert frame.schema == pl.Schema(
        {"day": pl.Date(), "at": pl.Datetime("us"), "amount": pl.Float64(), "country": pl.String()}
    )
    if period_start == "2026-01-01":
        assert frame.row(0) == (date(2026, 1, 2), datetime(2026, 1, 2, 10, 30), 12.5, "DE")
    else:
        assert frame.height == 0


def test_schema_overrides_that_do_not_convert_name_the_column(tmp_path: Path) -> None:
    from reportctl.data.sources.sql import SqlOptions

    with sqlite3.connect(tmp_path / "o.db") as db:
        db.execute("CREATE TABLE o (day TEXT)")
        db.execute("INSERT INTO o VALUES ('soon')")
    context = SourceContext(project_root=tmp_path, run_time=datetime(2026, 3, 1, tzinfo=UTC), timezone="UTC")
    options = SqlOptions(kind="sql", url="sqlite:///o.db", query="SELECT day FROM o", schema_overrides={"day": "date"})
    with pytest.raises(
        SourceError,
        match=r"^source 'o' \(sql sqlite:///o.db\): schema_overrides: column 'day' has 'soon', which is not a date$",
    ):
        SqlSource("o", options, context).fetch()


def test_known_schema_names_the_query_columns_typed_by_the_overrides(sqlite_project: Path) -> None:
    query = "SELECT o.id, o.region AS area, amount FROM orders AS o WHERE placed >= :since"
    source = make_source(
        sqlite_project, {"since": None}, url="sqlite:///data/shop.db", query=query, schema_overrides={"amount": "float"}
    )

    assert source.known_schema() == pl.Schema({"id": pl.Null, "area": pl.Null, "amount": pl.Float64})
    with pytest.raises(SourceError, match="query uses :since but the spec has no parameter since"):
        make_source(sqlite_project, {"sinse": None}, url="sqlite:///data/shop.db", query=query).known_schema()


def test_known_schema_is_unknown_for_select_star_with_the_reason(sqlite_project: Path) -> None:
    source = make_source(sqlite_project, url="sqlite:///data/shop.db", query="SELECT * FROM orders")

    assert source.known_schema() is None
    assert source.result_columns().unknown_because == (
        "the query selects * from orders, whose columns only the database knows"
    )


def test_known_schema_checks_overrides_and_repeated_names(sqlite_project: Path) -> None:
    typo = make_source(
        sqlite_project,
        url="sqlite:///data/shop.db",
        query="SELECT id, amount FROM orders",
        schema_overrides={"amout": "float"},
    )
    with pytest.raises(SourceError) as raised:
        typo.known_schema()
    assert raised.value.option == "schema_overrides.amout"
    assert str(raised.value).endswith(
        "schema_overrides names column 'amout', which the query does not return (did you mean 'amount'?); "
        "it returns: id, amount"
    )

    twice = make_source(sqlite_project, url="sqlite:///data/shop.db", query="SELECT o.id, p.id FROM orders o, orders p")
    with pytest.raises(SourceError, match="returns column id more than once; name each one with AS") as raised:
        twice.known_schema()
    assert raised.value.option == "query"


def test_probe_schema_asks_sqlite_without_reading_rows(sqlite_project: Path) -> None:
    query = "SELECT * FROM orders WHERE region = :region -- a trailing comment"
    source = make_source(
        sqlite_project,
        {"region": "eu"},
        url="sqlite:///data/shop.db",
        query=query,
        schema_overrides={"amount": "float"},
    )

    # SQLite gives no types for an empty result: names, and the declared types.
    assert source.probe_schema() == pl.Schema(
        {"id": pl.Null, "region": pl.Null, "amount": pl.Float64, "placed": pl.Null}
    )


def test_probe_schema_problems_name_the_option(sqlite_project: Path) -> None:
    bad = make_source(sqlite_project, url="sqlite:///data/shop.db", query="SELECT nope FROM orders")
    with pytest.raises(SourceError, match="no such column: nope") as raised:
        bad.probe_schema()
    assert raised.value.option == "query"

    missing = make_source(sqlite_project, url="sqlite:///data/gone.db", query="SELECT * FROM orders")
    with pytest.raises(SourceError, match="database file not found") as raised:
        missing.probe_schema()
    assert raised.value.option == "url"

    port = unused_port()
    refused = make_source(
        sqlite_project, url=f"postgresql://report:Sup3r-Secret-pw@127.0.0.1:{port}/test", query="SELECT * FROM x"
    )
    with pytest.raises(SourceError, match="connection refused") as raised:
        refused.probe_schema()
    assert raised.value.option == "url"
    assert "Sup3r-Secret-pw" not in str(raised.value)


@pytest.mark.services
@pytest.mark.parametrize("server_table", ["postgres_url", "mariadb_url"], indirect=True)
def test_probe_schema_on_a_server_reads_types_and_no_rows(tmp_path: Path, server_table: tuple[str, str]) -> None:
    url, table = server_table
    # Evaluated on any row, 1 / (id - id) fails on PostgreSQL: the probe reads none.
    query = f"SELECT *, 1 / (id - id) AS boom FROM {table} WHERE region = :region"

    schema = make_source(tmp_path, {"region": "eu"}, url=url, query=query).probe_schema()

    assert schema.names() == ["id", "region", "amount", "placed", "day", "boom"]
    assert schema["id"] == pl.Int64 and schema["region"] == pl.String and schema["day"] == pl.Date
    assert schema["amount"] == pl.Decimal(38, 2)
    assert isinstance(schema["placed"], pl.Datetime)


def test_known_schema_takes_sqlite_names_as_the_tables_declare_them(tmp_path: Path) -> None:
    """SQLite names a bare table column as its table declares it: 'SELECT orderid' from 'OrderID' gives 'OrderID'."""
    with sqlite3.connect(tmp_path / "cased.db") as db:
        db.execute("CREATE TABLE Orders (OrderID INTEGER, Region TEXT)")
    db.close()
    query = "SELECT orderid, o.region, region AS area, w.n FROM orders o, (SELECT 1 AS n) w"
    source = make_source(tmp_path, url="sqlite:///cased.db", query=query)

    schema = source.known_schema()

    assert schema is not None and schema.names() == ["OrderID", "Region", "area", "n"]
    with sqlite3.connect(tmp_path / "cased.db") as db:
        assert [d[0] for d in db.execute(query).description] == schema.names()
    db.close()
    absent = make_source(tmp_path, url="sqlite:///missing.db", query=query).known_schema()
    assert absent is not None and absent.names() == ["orderid", "region", "area", "n"]  # as written without the file
