"""Floating-point aggregates give the same bits every run, whatever the threads do; and still the right values.

The repeated computations below gave several distinct results per aggregate before sums were reduced in a
canonical order (Polars combines the partial sums of its threads in the order they finish).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
import pytest

from reportctl.data.canonical import canonical_aggregates, orders_its_rows
from reportctl.data.expressions import evaluate_kpi
from reportctl.data.pipeline import build_datasets
from reportctl.spec.models import Dataset

ROWS, GROUPS, RUNS = 300_000, 8, 20


def _metrics() -> pl.DataFrame:
    rng = np.random.default_rng(7)
    start = np.datetime64("2026-11-27T00:00:00", "us")
    return pl.DataFrame(
        {
            "ts": start + rng.integers(0, 86_400_000_000, ROWS).astype("timedelta64[us]"),
            "service": np.array([f"svc-{i:02d}" for i in range(GROUPS)])[rng.integers(0, GROUPS, ROWS)],
            # a wide range of magnitudes, so that the order of additions shows in the last digits
            "error_rate": rng.lognormal(-6, 2, ROWS),
            "latency_ms": rng.normal(250, 80, ROWS),
        }
    )


DATASETS = {
    "by_service": {
        "from": "metrics",
        "group_by": ["service"],
        "aggregate": {
            "total": "sum(error_rate)",
            "mean": "mean(error_rate)",
            "avg": "avg(latency_ms)",
            "spread": "std(latency_ms)",
            "var": "var(error_rate)",
            "ratio": "sum(error_rate * latency_ms) / sum(latency_ms)",
        },
    },
    # a percentile beside sums makes Polars aggregate group by group (deterministic): kept apart from them
    "percentiles": {"from": "metrics", "group_by": ["service"], "aggregate": {"p95": "p95(latency_ms)"}},
    "hourly": {"from": "metrics", "every": "1h", "aggregate": {"error_rate": "mean(error_rate)"}},
    "overall": {"from": "metrics", "aggregate": {"total": "sum(error_rate)", "spread": "stddev(error_rate)"}},
    "shares": {"sql": "SELECT ts, error_rate / SUM(error_rate) OVER () AS share FROM metrics"},
    # a GROUP BY inside the query hands its rows on in no fixed order: the whole-frame sum sorts them first
    "shares_of_groups": {
        "sql": "WITH g AS (SELECT service, SUM(error_rate) AS total FROM metrics GROUP BY service)"
        " SELECT service, total / SUM(total) OVER () AS share FROM g ORDER BY service"
    },
    "unordered": {"sql": "SELECT service, AVG(latency_ms) AS latency FROM metrics GROUP BY service"},
    "by_sql": {
        "sql": "SELECT service, SUM(error_rate) AS total, AVG(error_rate) AS mean, VARIANCE(latency_ms) AS var,"
        " STDDEV(latency_ms) AS spread FROM metrics GROUP BY service ORDER BY service"
    },
}


def _compute(frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
    datasets = {name: Dataset.model_validate(spec) for name, spec in DATASETS.items()}
    built = build_datasets(datasets, {"metrics": frame.lazy()}, {})
    return dict(zip(built, pl.collect_all(list(built.values())), strict=True))


def _bits(frame: pl.DataFrame) -> str:
    return frame.write_csv(float_precision=None)


def test_every_aggregation_gives_one_result_over_twenty_runs() -> None:
    frame = _metrics()
    seen: dict[str, set[str]] = {}
    kpis: set[Any] = set()
    for _ in range(RUNS):
        for name, result in _compute(frame).items():
            seen.setdefault(name, set()).add(_bits(result))
        kpis.add(evaluate_kpi("sum(m.error_rate) / count(m) + avg(m.latency_ms)", {"m": frame}, {}))
    assert {name: len(results) for name, results in seen.items()} == dict.fromkeys(DATASETS, 1)
    assert len(kpis) == 1


def test_canonical_sums_are_close_to_the_exact_sums() -> None:
    frame = _metrics()
    result = _compute(frame)["by_service"]
    for row in result.iter_rows(named=True):
        values = frame.filter(pl.col("service") == row["service"])
        rates = values["error_rate"].to_list()
        latency = values["latency_ms"].to_numpy()
        assert row["total"] == pytest.approx(math.fsum(rates), rel=1e-13)
        assert row["mean"] == pytest.approx(math.fsum(rates) / len(rates), rel=1e-13)
        assert row["avg"] == pytest.approx(float(np.mean(latency)), rel=1e-13)
        assert row["spread"] == pytest.approx(float(np.std(latency, ddof=1)), rel=1e-12)
        assert row["var"] == pytest.approx(float(np.var(rates, ddof=1)), rel=1e-12)


def test_sql_semantics_are_kept_nulls_types_empty_groups_distinct() -> None:
    frame = pl.LazyFrame(
        {
            "k": [1, 1, 2, 3, 3, 3],
            "x": [3.0, None, None, 1.5, 2.5, 2.5],
            "n": pl.Series([1, 2, 3, 4, 5, 6], dtype=pl.Int32),
        }
    )
    query = (
        "SELECT k, SUM(x) AS s, SUM(n) AS sn, AVG(x) AS a, STDDEV(x) AS sd, VAR(n) AS v, SUM(DISTINCT x) AS sdx,"
        " COUNT(x) AS c FROM t GROUP BY k ORDER BY k"
    )
    plain = pl.SQLContext(t=frame).execute(query).collect()
    canonical = pl.SQLContext(t=frame).execute(canonical_aggregates(query)).collect()
    assert canonical.schema == plain.schema
    assert canonical.to_dicts() == plain.to_dicts()
    assert canonical["s"].to_list() == [3.0, None, 6.5]  # all-null group: NULL, not 0
    assert canonical["sdx"].to_list() == [3.0, None, 4.0]
    empty = canonical_aggregates("SELECT SUM(x) AS s, AVG(x) AS a, STDDEV(x) AS sd FROM t WHERE k > 9")
    assert pl.SQLContext(t=frame).execute(empty).collect().row(0) == (None, None, None)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("avg(x)", "ARRAY_MEAN(ARRAY_AGG((x)))"),
        (
            "round(SUM(x * 2), 2) AS s",
            "round((CASE WHEN COUNT((x * 2)) > 0 THEN ARRAY_SUM(ARRAY_AGG((x * 2))) END), 2) AS s",
        ),
        (
            "x / sum(x) OVER ( )",
            "x / (CASE WHEN COUNT((x)) OVER () > 0 THEN ARRAY_SUM(ARRAY_AGG((x)) OVER ()) END)",
        ),
        (
            "sum(DISTINCT x)",
            "(CASE WHEN COUNT(DISTINCT (x)) > 0 THEN ARRAY_SUM(ARRAY_AGG(DISTINCT (x) ORDER BY (x))) END)",
        ),
        ("mean(x)", "mean(x)"),  # not Polars SQL: the dialect renames it to avg before this runs
    ],
)
def test_rewrites_each_order_sensitive_call(sql: str, expected: str) -> None:
    assert canonical_aggregates(sql) == expected


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'sum(x)', \"sum(x)\", -- sum(x)\n count(*), min(x), max(x), quantile_cont(x, 0.95) FROM t",
        "sum(x) OVER w",  # named, partitioned and ordered windows: not made deterministic yet
        "sum(x) OVER (PARTITION BY k)",
        "avg(x) OVER (ORDER BY t)",
        "sum(DISTINCT x) OVER ()",  # COUNT(DISTINCT ...) OVER is not Polars SQL
        "covar(x, y) + sum(x, y)",  # two arguments: not one of ours
        "sum()",
    ],
)
def test_leaves_everything_else_verbatim(sql: str) -> None:
    assert canonical_aggregates(sql) == sql


def test_whole_queries_sum_each_groups_values_sorted() -> None:
    assert canonical_aggregates("SELECT SUM(x) OVER () FROM t", by_value=True) == (
        "SELECT (CASE WHEN COUNT((x)) OVER () > 0 THEN ARRAY_SUM(ARRAY_AGG((x) ORDER BY (x)) OVER ()) END) FROM t"
    )


def test_a_sql_dataset_without_order_by_comes_ordered_by_every_column() -> None:
    frame = pl.LazyFrame({"k": [3, 1, 2, 1, 3], "x": [1.0, 2.0, 3.0, 4.0, 5.0]})
    dataset = Dataset.model_validate({"sql": "SELECT k, SUM(x) AS s FROM t GROUP BY k"})
    result = build_datasets({"d": dataset}, {"t": frame}, {})["d"].collect()
    assert result.rows() == [(1, 6.0), (2, 3.0), (3, 6.0)]


@pytest.mark.parametrize(
    ("sql", "ordered"),
    [
        ("SELECT k FROM t ORDER BY k", True),
        ("select k from t order  by 1 limit 3", True),
        ("SELECT ROW_NUMBER() OVER (ORDER BY k) AS n FROM t", False),
        ("WITH s AS (SELECT k FROM t ORDER BY k) SELECT k FROM s", False),
        ("SELECT 'order by' AS note FROM t -- ORDER BY k", False),
    ],
)
def test_orders_its_rows_only_with_a_top_level_order_by(sql: str, ordered: bool) -> None:
    assert orders_its_rows(sql) is ordered
