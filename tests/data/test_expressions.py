"""Spec expressions: parameters bound as typed literals, the aggregate dialect, KPIs and formula columns.

Expected values are computed independently here with plain Python, ``statistics`` and numpy.
"""

from __future__ import annotations

import math
import statistics
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest

from reportctl.data.expressions import (
    ExpressionError,
    bind_sql,
    check_formulas,
    check_kpi,
    compile_aggregate,
    compile_expression,
    evaluate_kpi,
    formula_columns,
    with_parameters,
)
from reportctl.data.sqltext import sql_literal
from reportctl.data.sqltree import table_references

BERLIN = ZoneInfo("Europe/Berlin")
HOURS_UTC = [datetime(2024, 3, 1, hour, tzinfo=UTC) for hour in range(8)]
NAMES = ["a", "it's", "x' OR '1'='1", "b", "it's", "a\\", "c", "x"]


def _events() -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "ts": HOURS_UTC,
            "ts_berlin": [t.astimezone(BERLIN) for t in HOURS_UTC],
            "ts_naive": [t.replace(tzinfo=None) for t in HOURS_UTC],
            "name": NAMES,
            "value": [float(i) for i in range(8)],
        },
        schema_overrides={"ts_berlin": pl.Datetime("us", "Europe/Berlin")},
    )


def _filter(text: str, params: dict[str, Any]) -> pl.DataFrame:
    compiled = compile_expression(text, params)
    return with_parameters(_events(), [compiled], lambda f: f.filter(compiled.expr)).collect()


# --- parameters -----------------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["ts", "ts_berlin", "ts_naive"])
def test_a_tz_aware_parameter_compares_as_an_instant_with_any_datetime_column(column: str) -> None:
    start = datetime(2024, 3, 1, 6, 30, tzinfo=BERLIN)  # 05:30 UTC
    result = _filter(f"{column} >= :start", {"start": start})
    expected = [t for t in HOURS_UTC if t >= start]
    assert result["ts"].to_list() == expected
    assert len(expected) == 2
    assert result.columns == ["ts", "ts_berlin", "ts_naive", "name", "value"]  # parameter columns are dropped


def test_string_parameters_with_quotes_and_injection_shapes_stay_values() -> None:
    assert _filter("name = :who", {"who": "it's"})["value"].to_list() == [1.0, 4.0]
    assert _filter("name = :who", {"who": "x' OR '1'='1"})["value"].to_list() == [2.0]
    assert _filter("name = :who", {"who": "a\\"})["value"].to_list() == [5.0]
    assert _filter("name = :who", {"who": "' OR 1=1 --"}).height == 0


def test_parameters_of_other_types_and_several_at_once() -> None:
    result = _filter("value BETWEEN :low AND :high AND (:region = 'all' OR name = :region)", {
        "low": 2, "high": 5.5, "region": "all",
    })  # fmt: skip
    assert result["value"].to_list() == [2.0, 3.0, 4.0, 5.0]
    days = compile_expression("d >= :day", {"day": date(2024, 1, 2)})
    frame = pl.LazyFrame({"d": [date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 3)]})
    assert with_parameters(frame, [days], lambda f: f.filter(days.expr)).collect().height == 2
    window = compile_expression("ts + :window", {"window": timedelta(hours=1)})
    shifted = with_parameters(_events(), [window], lambda f: f.select(window.expr.alias("t"))).collect()
    assert shifted["t"][0] == HOURS_UTC[1]


def test_colons_inside_strings_and_casts_are_not_parameters() -> None:
    compiled = compile_expression("name = ':who' AND CAST(value AS INT)::varchar <> 'x'", {})
    assert compiled.params == {}
    assert compiled.input_columns == ["name", "value"]


def test_unknown_parameter_names_it_and_lists_the_known_ones() -> None:
    with pytest.raises(ExpressionError, match=r"unknown parameter ':regoin' \(did you mean 'region'\?\); "):
        compile_expression("region = :regoin", {"region": "eu", "p_start": 1})
    with pytest.raises(ExpressionError, match=r"parameters are: :p_start, :region$"):
        compile_expression("region = :nothing_like_it", {"region": "eu", "p_start": 1})


def test_parse_errors_are_one_line_with_the_parser_reason() -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression("x >", {})
    assert str(info.value) == "cannot parse 'x >': Expected: an expression, found: the end of the expression"
    with pytest.raises(ExpressionError, match=r"^cannot parse 'sum\(x': Expected: \)"):
        compile_expression("sum(x", {})


# --- aggregates -----------------------------------------------------------------------------------

VALUES = [3.0, 1.0, None, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
PRESENT = [v for v in VALUES if v is not None]


def _aggregate(text: str, frame: pl.LazyFrame | None = None, params: dict[str, Any] | None = None) -> Any:
    frame = frame if frame is not None else pl.LazyFrame({"x": VALUES})
    compiled = compile_aggregate(text, params or {})
    return with_parameters(frame, [compiled], lambda f: f.select(compiled.expr.alias("v"))).collect().item()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("count()", len(VALUES)),
        ("count(*)", len(VALUES)),
        ("count(x)", len(PRESENT)),
        ("sum(x)", sum(PRESENT)),
        ("mean(x)", statistics.mean(PRESENT)),
        ("avg(x)", statistics.mean(PRESENT)),
        ("median(x)", statistics.median(PRESENT)),
        ("min(x)", min(PRESENT)),
        ("max(x)", max(PRESENT)),
        ("std(x)", statistics.stdev(PRESENT)),
        ("var(x)", statistics.variance(PRESENT)),
        ("n_unique(x)", len(set(PRESENT))),
        ("first(x)", VALUES[0]),
        ("last(x)", VALUES[-1]),
        ("p50(x)", float(np.percentile(PRESENT, 50))),
        ("p90(x)", float(np.percentile(PRESENT, 90))),
        ("p95(x)", float(np.percentile(PRESENT, 95))),
        ("P99(x)", float(np.percentile(PRESENT, 99))),
        ("p5(x)", float(np.percentile(PRESENT, 5))),
        ("p999(x)", float(np.percentile(PRESENT, 99.9))),
        ("sum(x) / count(x)", sum(PRESENT) / len(PRESENT)),
        ("max(x) - min(x) + 1", max(PRESENT) - min(PRESENT) + 1),
        ("sum(x * 2)", 2 * sum(PRESENT)),
    ],
)
def test_each_aggregate_matches_a_hand_computed_value(text: str, expected: float) -> None:
    assert _aggregate(text) == pytest.approx(expected)


def test_p95_is_linear_interpolation_between_closest_ranks() -> None:
    # 9 values sorted: rank (n - 1) * 0.95 = 7.6 lies between the 8th (6.0) and 9th (9.0) values.
    ordered = sorted(PRESENT)
    position = (len(ordered) - 1) * 0.95
    low = math.floor(position)
    expected = ordered[low] + (ordered[low + 1] - ordered[low]) * (position - low)
    assert _aggregate("p95(x)") == pytest.approx(expected)


def test_aggregates_of_no_rows_follow_sql() -> None:
    empty = pl.LazyFrame(schema={"x": pl.Float64})
    assert _aggregate("count()", empty) == 0
    assert _aggregate("sum(x)", empty) is None
    assert _aggregate("p95(x)", empty) is None


def test_ratio_of_aggregates_per_group() -> None:
    frame = pl.LazyFrame({"g": ["a", "a", "b", "b", "b"], "errors": [1, 2, 0, 5, 1], "requests": [10, 30, 5, 5, 10]})
    compiled = compile_aggregate("sum(errors) / sum(requests)", {})
    result = frame.group_by("g").agg(compiled.expr.alias("rate")).sort("g").collect()
    assert result["rate"].to_list() == pytest.approx([3 / 40, 6 / 20])


def test_a_parameter_outside_the_aggregate_is_one_value_per_group() -> None:
    frame = pl.LazyFrame({"g": ["a", "a", "b"], "x": [1.0, 3.0, 10.0]})
    compiled = compile_aggregate("sum(x) / :scale + sum(x * :scale)", {"scale": 2})
    result = with_parameters(frame, [compiled], lambda f: f.group_by("g").agg(compiled.expr.alias("v")))
    assert result.sort("g").collect()["v"].to_list() == pytest.approx([4 / 2 + 8, 10 / 2 + 20])


def test_unknown_and_non_aggregate_functions_are_explained() -> None:
    with pytest.raises(ExpressionError, match=r"^unknown function 'p955'; try one of avg, count, .*p95"):
        compile_aggregate("p955(latency)", {})
    with pytest.raises(ExpressionError, match=r"unknown function 'medain'; try one of"):
        compile_aggregate("medain(latency) + max(latency)", {})
    with pytest.raises(ExpressionError, match=r"^'latency' is not an aggregate; wrap columns in one of"):
        compile_aggregate("latency", {})
    with pytest.raises(ExpressionError, match=r"unknown function 'lowerr' \(did you mean 'lower'\?\)"):
        compile_expression("lowerr(name) = 'x'", {})
    with pytest.raises(ExpressionError, match=r"uses sum\(\) where only columns of the aggregated rows"):
        compile_expression("sum(x) > 3", {}, aggregates=False)


# --- SQL binding ----------------------------------------------------------------------------------


def test_bind_sql_writes_typed_literals_and_strings_stay_strings() -> None:
    frame = pl.LazyFrame({"name": NAMES, "ts": HOURS_UTC})
    context = pl.SQLContext(frames={"t": frame}, eager=False)
    for value in ["x' OR '1'='1", "it's", "a\\", "'; DROP TABLE t; --"]:
        sql = bind_sql("SELECT name FROM t WHERE name = :who", {"who": value})
        assert context.execute(sql, eager=False).collect()["name"].to_list() == [n for n in NAMES if n == value]
    start = datetime(2024, 3, 1, 7, tzinfo=BERLIN)  # 06:00 UTC
    sql = bind_sql("SELECT ts, :start AS s FROM t WHERE ts >= :start", {"start": start})
    result = context.execute(sql, eager=False).collect()
    assert result["ts"].to_list() == [t for t in HOURS_UTC if t >= start]
    assert result.schema["s"] == pl.Datetime("us", "UTC")
    assert bind_sql("SELECT ':who', \"a:b\" -- :who\nFROM t", {}) == "SELECT ':who', \"a:b\" -- :who\nFROM t"


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        (None, "NULL"),
        (True, "TRUE"),
        (-5, "CAST(-5 AS BIGINT)"),
        (0.25, "CAST(0.25 AS DOUBLE)"),
        (Decimal("-1.50"), "(-1.50)"),
        ("it's", "'it''s'"),
        (date(2024, 1, 2), "CAST('2024-01-02' AS DATE)"),
        (datetime(2024, 1, 2, 3, 4, 5), "CAST('2024-01-02 03:04:05' AS TIMESTAMP)"),
        (datetime(2024, 1, 2, 3, tzinfo=BERLIN), "CAST('2024-01-02 02:00:00+00:00' AS TIMESTAMPTZ)"),
        (timedelta(minutes=1), "INTERVAL '60000000 microseconds'"),
    ],
)
def test_sql_literals(value: object, literal: str) -> None:
    assert sql_literal(value) == literal


@pytest.mark.parametrize("value", [float("nan"), float("inf"), [1, 2], timedelta(seconds=-1)])
def test_values_without_a_safe_sql_literal_are_refused(value: object) -> None:
    with pytest.raises(ExpressionError, match=r"parameter ':v' cannot be used in SQL"):
        bind_sql("SELECT :v", {"v": value})


def test_table_references_skip_ctes_function_froms_and_strings() -> None:
    refs = table_references(
        "WITH recent AS (SELECT * FROM metrics WHERE extract(day FROM ts) = 1) "
        "SELECT * FROM recent r, regions AS g JOIN services s ON r.id = s.id "
        "WHERE name <> 'FROM nowhere' AND id IN (SELECT id FROM allowed)"
    )
    assert refs.tables == ("metrics", "recent", "regions", "services", "allowed")
    assert refs.ctes == {"recent"}


# --- KPIs and formulas ----------------------------------------------------------------------------

BY_SERVICE = pl.DataFrame({"service": ["api", "db", "web"], "p95_latency": [310.0, 120.5, None]})
ORDERS = pl.DataFrame({"amount": [10.0, 25.0, 7.5, 30.0]})
TOTALS = pl.DataFrame({"total": [72.5], "orders": [4]})
DATASETS = {"by_service": BY_SERVICE, "orders": ORDERS, "totals": TOTALS}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max(by_service.p95_latency)", 310.0),
        ("count(by_service)", 3),
        ("count(by_service.p95_latency)", 2),
        ("sum(orders.amount) / count(orders)", (10.0 + 25.0 + 7.5 + 30.0) / 4),
        ("totals.total", 72.5),
        ("totals.total / totals.orders", 72.5 / 4),
        ("round(p50(orders.amount), 1)", round(float(np.percentile([10.0, 25.0, 7.5, 30.0], 50)), 1)),
        ("max(by_service.p95_latency) - :slo", 310.0 - 250),
        ("count(orders) - count(by_service)", 1),
        (":slo / 2", 125),
    ],
)
def test_kpi_values(text: str, expected: float) -> None:
    assert evaluate_kpi(text, DATASETS, {"slo": 250}) == pytest.approx(expected)


def test_kpis_over_empty_datasets() -> None:
    empty = {"orders": ORDERS.clear()}
    assert evaluate_kpi("count(orders)", empty, {}) == 0
    assert evaluate_kpi("max(orders.amount)", empty, {}) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max(by_servic.p95_latency)", r"unknown dataset 'by_servic' \(did you mean 'by_service'\?\)"),
        (
            "max(by_service.p95)",
            r"dataset 'by_service': unknown column 'p95'.*columns are: service, p95_latency",
        ),
        ("sum(orders)", r"'sum\(orders\)' needs a column: sum\(orders.<column>\)"),
        ("count(*)", r"names no dataset"),
        ("sum(orders.amount + totals.total)", r"reads several datasets \(orders, totals\)"),
        ("p955(orders.amount)", r"unknown function 'p955'"),
        ("max(orders.amount) >", r"cannot parse"),
    ],
)
def test_kpi_errors(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        evaluate_kpi(text, DATASETS, {})


def test_check_kpi_uses_schemas_when_known() -> None:
    schemas: dict[str, pl.Schema | None] = {"orders": ORDERS.schema, "remote": None}
    assert check_kpi("sum(orders.amount)", schemas, {}) == []
    assert check_kpi("sum(remote.anything)", schemas, {}) == []
    assert check_kpi("sum(orders.amont)", schemas, {}) == [
        "dataset 'orders': unknown column 'amont' (did you mean 'amount'?); columns are: amount"
    ]
    assert check_kpi("sum(nowhere.x)", schemas, {})[0].startswith("unknown dataset 'nowhere'")


def test_formula_columns_are_added_in_order() -> None:
    frame = pl.DataFrame({"p95_latency": [310.0, 120.5], "revenue": [100.0, 90.0], "orders": [4, 3]})
    result = formula_columns(
        frame,
        {"vs_baseline": "p95_latency - 250", "per_order": "revenue / orders", "scaled": "per_order * :k"},
        {"k": 2},
    )
    assert result.columns == ["p95_latency", "revenue", "orders", "vs_baseline", "per_order", "scaled"]
    assert result["vs_baseline"].to_list() == [60.0, -129.5]
    assert result["per_order"].to_list() == pytest.approx([25.0, 30.0])
    assert result["scaled"].to_list() == pytest.approx([50.0, 60.0])


def test_formula_problems_name_the_column() -> None:
    frame = pl.DataFrame({"p95_latency": [1.0]})
    with pytest.raises(
        ExpressionError, match=r"^formula of column 'vs': unknown column 'p95'; columns are: p95_latency$"
    ):
        formula_columns(frame, {"vs": "p95 - 250"}, {})
    assert check_formulas(frame.schema, {"ok": "p95_latency * 2", "bad": "ok +", "worse": ":nope"}, {}) == [
        ("bad", "cannot parse 'ok +': Expected: an expression, found: the end of the expression"),
        ("worse", "unknown parameter ':nope'; parameters are: (none)"),
    ]
