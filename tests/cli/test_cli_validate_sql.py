"""`reportctl validate` over SQL sources: columns read from the query, a note for SELECT *, and --connect."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CliResult

Cli = Callable[..., CliResult]

SPEC = """\
apiVersion: reportctl/v1
name: orders
parameters:
  region: {{type: string, default: eu}}
sources:
  orders:
    kind: sql
    url: "{url}"
    query: {query}
sections:
  - id: table
    type: table
    dataset: orders
    columns:
      id: {{label: Order}}
      {column}: {{format: "number:2"}}
"""


@pytest.fixture
def shop(project: Path) -> Path:
    with sqlite3.connect(project / "shop.db") as db:
        db.execute("CREATE TABLE orders (id INTEGER, region TEXT, amount REAL, placed TEXT)")
        db.execute("INSERT INTO orders VALUES (1, 'eu', 10.5, '2024-01-01 09:00:00')")
    db.close()
    return project


def at(path: Path) -> str:
    """``path`` as validate prints it: from the working folder."""
    return str(path.relative_to(Path.cwd()))


def write_spec(project: Path, query: str, column: str, url: str = "sqlite:///shop.db") -> Path:
    spec = project / "specs" / "orders.yaml"
    spec.write_text(SPEC.format(url=url, query=query, column=column))
    return spec


def test_a_column_typo_over_a_sql_source_fails_at_its_line(cli: Cli, shop: Path) -> None:
    spec = write_spec(shop, "SELECT o.id, o.amount FROM orders AS o WHERE region = :region", "amout")

    result = cli("validate", str(spec))

    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{at(spec)}:16:14: sections[0].columns.amout: unknown column 'amout' (did you mean 'amount'?); "
        "'orders' has: id, amount",
        "1 problem in 1 of 1 files",
    ]
    fixed = write_spec(shop, "SELECT o.id, o.amount FROM orders AS o WHERE region = :region", "amount")
    assert cli("validate", str(fixed)).stdout == "1 file valid\n"


def test_select_star_is_a_note_once_and_connect_checks_it(cli: Cli, shop: Path) -> None:
    spec = write_spec(shop, "SELECT * FROM orders WHERE region = :region", "amout")
    note = (
        f"{at(spec)}:9:12: sources.orders.query: note: the columns of source 'orders' are not checked: the query "
        "selects * from orders, whose columns only the database knows; 'reportctl validate --connect' asks the database"
    )

    result = cli("validate", str(spec))
    assert (result.exit_code, result.stdout.splitlines()) == (0, [note, "1 file valid (1 note)"])

    connected = cli("validate", "--connect", str(spec))
    assert connected.exit_code == 1
    assert connected.stdout.splitlines() == [
        f"{at(spec)}:16:14: sections[0].columns.amout: unknown column 'amout' (did you mean 'amount'?); "
        "'orders' has: id, region, amount, placed",
        "1 problem in 1 of 1 files",
    ]


def test_a_note_fails_nothing_in_json_and_github_formats(cli: Cli, shop: Path) -> None:
    spec = write_spec(shop, "SELECT * FROM orders", "amount")

    report = json.loads(cli("validate", str(spec), "--format", "json").stdout)
    assert report["valid"] is True
    [problem] = report["files"][0]["problems"]
    assert (problem["line"], problem["severity"]) == (9, "note")

    github = cli("validate", str(spec), "--format", "github")
    assert github.exit_code == 0
    assert github.stdout.startswith(
        f"::notice file={spec.relative_to(shop).as_posix()},line=9,col=12,"
        "title=reportctl validate::sources.orders.query"
    )


def test_a_base_with_select_star_is_noted_once(cli: Cli, shop: Path) -> None:
    (shop / "specs" / "base").mkdir()
    base = shop / "specs" / "base" / "shop.yaml"
    base.write_text(
        "apiVersion: reportctl/v1\nname: shop\nabstract: true\n"
        "sources:\n  orders: {kind: sql, url: 'sqlite:///shop.db', query: SELECT * FROM orders}\n"
    )
    for name in ("one", "two"):
        (shop / "specs" / f"{name}.yaml").write_text(
            f"apiVersion: reportctl/v1\nname: {name}\nextends: base/shop.yaml\n"
            "sections:\n  - {id: t, type: table, dataset: orders}\n"
        )

    result = cli("validate", str(shop / "specs"))

    assert result.exit_code == 0
    assert [line for line in result.stdout.splitlines() if ": note: " in line] == [
        f"{at(base)}:5:56: sources.orders.query: note: the columns of source 'orders' are not checked: the query "
        "selects * from orders, whose columns only the database knows; 'reportctl validate --connect' asks the database"
    ]
    assert result.stdout.endswith("3 files valid (1 note)\n")


def test_columns_of_unknown_type_raise_no_false_errors(cli: Cli, shop: Path) -> None:
    """SQLite's columns have no type until they are read: every step still checks names, and only names."""
    (shop / "regions.csv").write_text("region,name\neu,Europe\nus,Americas\n")
    spec = shop / "specs" / "steps.yaml"
    spec.write_text(
        """\
apiVersion: reportctl/v1
name: steps
sources:
  orders:
    kind: sql
    url: sqlite:///shop.db
    query: SELECT id, upper(region) AS region, amount, placed FROM orders
  regions: {kind: file, path: regions.csv}
datasets:
  named:
    from: orders
    join: {dataset: regions, on: region, how: left}
    where: "lower(region) LIKE 'e%' AND amount > 1"
    derive: {label: "name || ' ' || region", day: "date(placed)"}
  daily:
    from: named
    every: 1d
    on: placed
    group_by: [label]
    aggregate: {total: sum(amount), orders: count(), first: min(day)}
    having: total > 0
    sort: [-total]
  by_sql:
    sql: "SELECT label, upper(label) AS shout, sum(total) AS total FROM daily GROUP BY label"
sections:
  - {id: k, type: kpis, items: [{label: Top, value: "max(daily.total) / count(named)"}]}
  - id: t
    type: table
    dataset: daily
    columns: {label: {}, total: {}, share: {formula: "total / orders"}, first: {format: date}}
  - {id: c, type: chart, chart: bar, dataset: by_sql, x: shout, y: [total]}
"""
    )

    result = cli("validate", str(spec))
    assert (result.exit_code, result.stdout) == (0, "1 file valid\n")

    good = spec.read_text()
    for wrong, right, expected in [
        (
            "lower(regoin)",
            "lower(region)",
            "13:12: datasets.named.where: unknown column 'regoin' (did you mean 'region'?)",
        ),
        ("[lable]", "[label]", "19:16: datasets.daily.group_by[0]: unknown column 'lable' (did you mean 'label'?)"),
        ("sum(amuont)", "sum(amount)", "20:24: datasets.daily.aggregate.total: unknown column 'amuont' (did you mean"),
        (
            "total / ordrs",
            "total / orders",
            "30:54: sections[1].columns.share.formula: unknown column 'ordrs' (did you",
        ),
        ("x: shuot", "x: shout", "31:58: sections[2].x: unknown column 'shuot' (did you mean 'shout'?)"),
        ("max(daily.totl)", "max(daily.total)", "26:53: sections[0].items[0].value: dataset 'daily': unknown column"),
    ]:
        spec.write_text(good.replace(right, wrong))
        result = cli("validate", str(spec))
        assert result.exit_code == 1, wrong
        assert result.stdout.startswith(f"{at(spec)}:{expected}"), result.stdout
        assert result.stdout.endswith("1 problem in 1 of 1 files\n"), result.stdout


@pytest.mark.services
@pytest.mark.parametrize("server_table", ["postgres_url", "mariadb_url"], indirect=True)
def test_connect_asks_the_server(cli: Cli, project: Path, server_table: tuple[str, str]) -> None:
    url, table = server_table
    spec = write_spec(project, f"SELECT * FROM {table} WHERE region = :region", "amout", url=url)

    assert cli("validate", str(spec)).exit_code == 0  # a note only: the columns of * are the database's

    connected = cli("validate", "--connect", str(spec))
    assert connected.exit_code == 1
    assert connected.stdout.splitlines()[0] == (
        f"{at(spec)}:16:14: sections[0].columns.amout: unknown column 'amout' (did you mean 'amount'?); "
        "'orders' has: id, region, amount, placed, day"
    )
    spec.write_text(spec.read_text().replace("amout", "amount"))
    assert cli("validate", "--connect", str(spec)).stdout == "1 file valid\n"

    spec.write_text(spec.read_text().replace("SELECT *", "SELECT nope"))
    bad_sql = cli("validate", "--connect", str(spec))
    assert bad_sql.exit_code == 1
    [problem] = bad_sql.stdout.splitlines()[:-1]
    assert problem.startswith(f"{at(spec)}:9:12: sources.orders.query: source 'orders' (sql ")
    assert "nope" in problem


def test_connect_problems_are_one_line_at_the_option(cli: Cli, shop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPORTCTL_SECRET_DB", "Sup3r-Secret-pw")
    spec = write_spec(shop, "SELECT * FROM orders", "amount", url="postgresql://report:${secret:DB}@127.0.0.1:9/x")
    spec.write_text(spec.read_text().replace("    query:", "    timeout: 2s\n    query:"))

    result = cli("validate", "--connect", str(spec))

    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{at(spec)}:8:10: sources.orders.url: source 'orders' (sql postgresql://report:***@127.0.0.1:9/x): "
        "could not connect to 127.0.0.1:9: connection refused",
        "1 problem in 1 of 1 files",
    ]


def test_connect_binds_null_for_a_parameter_without_default(cli: Cli, shop: Path) -> None:
    spec = write_spec(shop, "SELECT * FROM orders WHERE region = :region AND placed >= :start", "amount")
    spec.write_text(
        spec.read_text().replace(
            "region: {type: string, default: eu}", "region: {type: string}\n  period: {type: period}"
        )
    )

    assert cli("validate", "--connect", str(spec)).stdout == "1 file valid\n"

    spec.write_text(spec.read_text().replace(":start", ":cutoff"))
    result = cli("validate", "--connect", str(spec))
    assert result.exit_code == 1
    assert result.stdout.startswith(
        f"{at(spec)}:10:12: sources.orders.query: source 'orders' (sql sqlite:///shop.db): query uses :cutoff but the "
        "spec has no parameter cutoff (known: end, period_end, period_start, region, start)"
    )


def test_a_parameter_typo_in_a_query_fails_without_connecting(cli: Cli, shop: Path) -> None:
    spec = write_spec(shop, "SELECT * FROM orders WHERE region = :regoin", "amount")

    result = cli("validate", str(spec))

    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{at(spec)}:9:12: sources.orders.query: source 'orders' (sql sqlite:///shop.db): query uses :regoin but the "
        "spec has no parameter regoin (did you mean 'region'?) (known: region)",
        "1 problem in 1 of 1 files",
    ]


@pytest.mark.parametrize("connect", [[], ["--connect"]])
def test_the_sales_example_reads_sqlite_and_validates_clean(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, connect: list[str]
) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2] / "examples" / "sales")

    result = cli("validate", *connect)

    assert (result.exit_code, result.stdout) == (0, "5 files valid\n")  # no note: every query's columns are named
