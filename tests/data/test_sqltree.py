"""The result columns of a SQL query, read from its syntax tree in each database's dialect."""

from __future__ import annotations

import pytest

from reportctl.data.sqltree import SqlDialect, TableReferences, query_parameters, result_columns, table_references

DIALECTS: list[SqlDialect | None] = ["sqlite", "postgres", "mysql", None]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("SELECT id, amount FROM orders", ["id", "amount"]),
        ("SELECT o.id, o.placed AS at FROM orders AS o", ["id", "at"]),
        ("SELECT id FROM orders WHERE placed >= :start AND (:region = 'all' OR region = :region)", ["id"]),
        ("SELECT id, sum(amount) AS total FROM orders GROUP BY id ORDER BY 2 DESC LIMIT 5;", ["id", "total"]),
        ("WITH big AS (SELECT id, amount AS a FROM orders WHERE amount > 10) SELECT * FROM big", ["id", "a"]),
        ("WITH t (x, y) AS (SELECT 1, 2) SELECT t.* FROM t", ["x", "y"]),
        ("WITH a AS (SELECT 1 AS v), b AS (SELECT * FROM a) SELECT b.*, 2 AS w FROM b", ["v", "w"]),
        ("SELECT s.* FROM (SELECT id, o.region FROM orders o) AS s", ["id", "region"]),
        ("SELECT * FROM (SELECT 1 AS k) AS s JOIN (SELECT 2 AS m) AS u ON 1 = 1", ["k", "m"]),
        ("SELECT id AS key FROM orders UNION ALL SELECT ref FROM refunds", ["key"]),
        ("(SELECT a FROM t) EXCEPT (SELECT b FROM u)", ["a"]),
        ("SELECT CASE WHEN amount > 10 THEN 'big' ELSE 'small' END AS size FROM orders -- why\n", ["size"]),
    ],
)
def test_names_read_from_the_query(query: str, names: list[str], dialect: SqlDialect | None) -> None:
    assert result_columns(query, dialect).names == tuple(names)


@pytest.mark.parametrize(
    ("dialect", "names"),
    [
        ("postgres", ("mixed", "Quoted", "up")),
        ("sqlite", ("Mixed", "Quoted", "Up")),
        ("mysql", ("Mixed", "Quoted", "Up")),
    ],
)
def test_postgresql_folds_unquoted_names(dialect: SqlDialect, names: tuple[str, ...]) -> None:
    quote = "`" if dialect == "mysql" else '"'
    query = f"SELECT Mixed, {quote}Quoted{quote}, lower(x) AS Up FROM t"
    assert result_columns(query, dialect).names == names


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("SELECT * FROM orders", "the query selects * from orders, whose columns only the database knows"),
        ("SELECT s.*, o.* FROM (SELECT 1 AS k) s JOIN orders o ON 1 = 1", "the query selects o.* from orders AS o"),
        (
            "SELECT region, count(*) FROM orders GROUP BY region",
            "result column 2 (COUNT(*)) has no name; name it with AS",
        ),
        ("SELECT 1", "result column 1 (1) has no name; name it with AS"),
        ("SELECT id FROM WHERE", "the query could not be parsed near 'WHERE' (line 1, column 20)"),
        ("SELECT 1 AS a; SELECT 2 AS b", "the query is not a single SELECT"),
        ("DELETE FROM orders", "the query is not a single SELECT"),
    ],
)
def test_names_the_text_cannot_give(query: str, reason: str) -> None:
    found = result_columns(query, "sqlite")
    assert found.names is None
    assert found.unknown_because.startswith(reason)


def test_table_references_in_text_order_without_functions_or_other_schemas() -> None:
    refs = table_references(
        "WITH w AS (SELECT * FROM late) SELECT * FROM w JOIN read_csv('x.csv') AS f ON true "
        "JOIN other.remote AS r ON true, early WHERE :since < now() AND x IN (SELECT x FROM inner_one)"
    )
    assert refs == TableReferences(("late", "w", "early", "inner_one"), frozenset({"w"}))


def test_a_sql_dataset_that_cannot_be_parsed_is_a_problem_at_its_sql() -> None:
    import polars as pl

    from reportctl.data.pipeline import check_datasets
    from reportctl.spec.models import Dataset

    datasets = {
        "broken": Dataset.model_validate({"sql": "SELECT id FROM orders WHERE"}),
        "after": Dataset.model_validate({"from": "broken"}),
    }
    check = check_datasets(datasets, {"orders": pl.Schema({"id": pl.Int64})}, {})

    assert check.problems == [("datasets.broken.sql", "the SQL could not be parsed near 'WHERE' (line 1, column 27)")]
    assert check.schemas == {"broken": None, "after": None}


def test_query_parameters_outside_strings_and_casts() -> None:
    query = "SELECT a::int AS b, ':not_one' AS s FROM t WHERE x >= :start AND y = :region AND z < :start -- :gone"
    assert query_parameters(query, "postgres") == ("start", "region")
    assert query_parameters("SELECT FROM WHERE :x", "sqlite") is None


def test_without_a_dialect_a_mixed_case_name_is_unknown() -> None:
    """Behind a ${secret:...} URL the database, and so whether it folds unquoted names, is unknown."""
    assert result_columns('SELECT userId AS "userId", lower_one FROM t', None).names == ("userId", "lower_one")
    found = result_columns("SELECT userId FROM t", None)
    assert found.names is None
    assert found.unknown_because.startswith("whether 'userId' comes back as 'userid' depends on the database")
