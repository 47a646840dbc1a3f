"""The datasets pipeline: steps, dependency order, SQL datasets, and checks without data.

Every expected value is worked out here by hand or with plain Python/numpy from the small frames below.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest

from reportctl.data.pipeline import build_datasets, check_datasets
from reportctl.errors import DatasetError
from reportctl.spec.models import Dataset

BERLIN = ZoneInfo("Europe/Berlin")
# 25-minute steps across midnight and the DST change in Berlin (2024-03-31 02:00 CET -> 03:00 CEST).
TIMES = [datetime(2024, 3, 30, 22, 10, tzinfo=UTC) + timedelta(minutes=25 * i) for i in range(10)]
SERVICES = ["api", "db", "api", "web", "db", "api", "api", "db", "web", "api"]
LATENCY = [120.0, 80.0, 300.0, 45.0, 95.0, 210.0, 150.0, 60.0, 55.0, 400.0]
REGIONS = ["eu", "us", "eu", "eu", "us", "us", "eu", "eu", "us", "eu"]


def _metrics() -> pl.LazyFrame:
    return pl.LazyFrame(
        {"ts": TIMES, "service": SERVICES, "region": REGIONS, "latency_ms": LATENCY},
        schema_overrides={"ts": pl.Datetime("us", "Europe/Berlin")},
    )


ORDERS = {"order_id": [1, 2, 3, 4], "customer_id": [10, 20, 10, 30], "amount": [5.0, 7.0, 11.0, 13.0]}
CUSTOMERS = {"id": [10, 20, 40], "name": ["ann", "it's", "dee"], "amount": [100.0, 200.0, 400.0]}


def _inputs() -> dict[str, pl.LazyFrame]:
    return {"metrics": _metrics(), "orders": pl.LazyFrame(ORDERS), "customers": pl.LazyFrame(CUSTOMERS)}


def _datasets(**specs: dict[str, Any]) -> dict[str, Dataset]:
    return {name: Dataset.model_validate(spec) for name, spec in specs.items()}


def _build(params: dict[str, Any] | None = None, **specs: dict[str, Any]) -> dict[str, pl.DataFrame]:
    built = build_datasets(_datasets(**specs), _inputs(), params or {})
    assert all(isinstance(frame, pl.LazyFrame) for frame in built.values())
    return {name: frame.collect() for name, frame in built.items()}


# --- where, derive --------------------------------------------------------------------------------


def test_where_binds_a_tz_aware_datetime_and_a_string_with_a_quote() -> None:
    start = datetime(2024, 3, 31, 1, 0, tzinfo=BERLIN)  # 00:00 UTC
    result = _build(
        {"start": start, "who": "it's"},
        recent={"from": "metrics", "where": "ts >= :start AND region = 'eu'"},
        named={"from": "customers", "where": "name = :who"},
    )
    expected = [t for t, r in zip(TIMES, REGIONS, strict=True) if t >= start and r == "eu"]
    assert result["recent"]["ts"].to_list() == expected
    assert result["recent"].columns == ["ts", "service", "region", "latency_ms"]
    assert result["named"]["id"].to_list() == [20]


def test_derive_chain_uses_earlier_derives() -> None:
    result = _build(
        {"factor": 2},
        d={
            "from": "orders",
            "derive": {"doubled": "amount * :factor", "plus_one": "doubled + 1", "big": "plus_one > 20"},
        },
    )["d"]
    assert result["doubled"].to_list() == [a * 2 for a in ORDERS["amount"]]
    assert result["plus_one"].to_list() == [a * 2 + 1 for a in ORDERS["amount"]]
    assert result["big"].to_list() == [a * 2 + 1 > 20 for a in ORDERS["amount"]]


# --- group_by, aggregate, every -------------------------------------------------------------------


def test_group_by_aggregate_sorted_by_keys_when_no_sort() -> None:
    result = _build(
        by_service={
            "from": "metrics",
            "group_by": "service",
            "aggregate": {"p95_latency": "p95(latency_ms)", "n": "count()", "worst": "max(latency_ms)"},
        }
    )["by_service"]
    groups: dict[str, list[float]] = defaultdict(list)
    for service, latency in zip(SERVICES, LATENCY, strict=True):
        groups[service].append(latency)
    assert result["service"].to_list() == sorted(groups)
    assert result["p95_latency"].to_list() == pytest.approx([np.percentile(groups[s], 95) for s in sorted(groups)])
    assert result["n"].to_list() == [len(groups[s]) for s in sorted(groups)]
    assert result["worst"].to_list() == [max(groups[s]) for s in sorted(groups)]


def test_aggregate_without_group_by_is_one_row_even_over_no_rows() -> None:
    result = _build(
        {"never": "nobody"},
        all_rows={"from": "metrics", "aggregate": {"n": "count()", "total": "sum(latency_ms)"}},
        none={
            "from": "metrics",
            "where": "service = :never",
            "aggregate": {"n": "count()", "total": "sum(latency_ms)"},
        },
    )
    assert result["all_rows"].rows() == [(len(LATENCY), sum(LATENCY))]
    assert result["none"].rows() == [(0, None)]


def test_group_by_alone_gives_distinct_keys_in_order() -> None:
    result = _build(pairs={"from": "metrics", "group_by": ["region", "service"]})["pairs"]
    assert result.rows() == sorted(set(zip(REGIONS, SERVICES, strict=True)))


def test_having_filters_aggregated_rows() -> None:
    result = _build(
        {"min": 2},
        busy={"from": "metrics", "group_by": "service", "aggregate": {"n": "count()"}, "having": "n > :min"},
    )["busy"]
    assert result.rows() == [("api", SERVICES.count("api")), ("db", SERVICES.count("db"))]


@pytest.mark.parametrize("every", ["1h", "1d"])
def test_every_buckets_the_time_column_in_its_time_zone(every: str) -> None:
    def bucket(t: datetime) -> datetime:
        local = t.astimezone(BERLIN)
        if every == "1h":
            return local.replace(minute=0, second=0, microsecond=0)
        return datetime(local.year, local.month, local.day, tzinfo=BERLIN)

    result = _build(
        buckets={"from": "metrics", "every": every, "aggregate": {"n": "count()", "total": "sum(latency_ms)"}}
    )["buckets"]
    expected: dict[datetime, list[float]] = defaultdict(list)
    for t, latency in zip(TIMES, LATENCY, strict=True):
        expected[bucket(t)].append(latency)
    assert result.columns == ["ts", "n", "total"]
    assert result["ts"].to_list() == sorted(expected)
    assert result["n"].to_list() == [len(expected[b]) for b in sorted(expected)]
    assert result["total"].to_list() == [sum(expected[b]) for b in sorted(expected)]
    assert len(expected) == (4 if every == "1h" else 2)


def test_every_with_group_by_and_an_explicit_column() -> None:
    metrics = _metrics().with_columns(other=pl.lit(datetime(2020, 1, 1)), at=pl.col("ts"))
    datasets = _datasets(
        b={"from": "metrics", "every": "1d", "on": "at", "group_by": "region", "aggregate": {"n": "count()"}}
    )
    result = build_datasets(datasets, {"metrics": metrics}, {})["b"].collect()
    days = {t.astimezone(BERLIN).date() for t in TIMES}
    expected = sorted(
        (datetime(d.year, d.month, d.day, tzinfo=BERLIN), region, n)
        for d in days
        for region in ("eu", "us")
        if (
            n := sum(1 for t, r in zip(TIMES, REGIONS, strict=True) if t.astimezone(BERLIN).date() == d and r == region)
        )
    )
    assert result.columns == ["at", "region", "n"]
    assert result.rows() == expected


# --- join -----------------------------------------------------------------------------------------


def test_left_join_with_left_on_right_on_and_suffix() -> None:
    result = _build(
        d={
            "from": "orders",
            "join": {
                "dataset": "customers",
                "left_on": "customer_id",
                "right_on": "id",
                "suffix": "_customer",
            },
        }
    )["d"]
    assert result.columns == ["order_id", "customer_id", "amount", "name", "amount_customer"]
    assert result.rows() == [
        (1, 10, 5.0, "ann", 100.0),
        (2, 20, 7.0, "it's", 200.0),
        (3, 10, 11.0, "ann", 100.0),
        (4, 30, 13.0, None, None),
    ]


def test_inner_join_on_a_shared_column_with_the_default_suffix() -> None:
    result = _build(
        people={
            "from": "customers",
            "derive": {"customer_id": "id"},
            "select": ["customer_id", "name", "amount"],
        },
        d={"from": "orders", "join": [{"dataset": "people", "on": "customer_id", "how": "inner"}]},
    )["d"]
    assert result.columns == ["order_id", "customer_id", "amount", "name", "amount_right"]
    assert result.select("order_id", "name", "amount_right").rows() == [
        (1, "ann", 100.0),
        (2, "it's", 200.0),
        (3, "ann", 100.0),
    ]


# --- sort, limit, select --------------------------------------------------------------------------


def test_sort_descending_puts_nulls_last_then_limit_and_select() -> None:
    frame = pl.LazyFrame({"g": ["b", "a", "a", "b", "a"], "v": [3, None, 5, None, 1], "w": [1, 2, 3, 4, 5]})
    datasets = _datasets(
        desc={"from": "t", "sort": "-v"},
        multi={"from": "t", "sort": ["g", "-v"]},
        top={"from": "t", "sort": ["-v"], "limit": 2, "select": ["w", "v"]},
    )
    result = {name: f.collect() for name, f in build_datasets(datasets, {"t": frame}, {}).items()}
    assert result["desc"]["v"].to_list() == [5, 3, 1, None, None]
    assert result["desc"]["w"].to_list() == [3, 1, 5, 2, 4]  # ties keep their order
    assert result["multi"].select("g", "v").rows() == [("a", 5), ("a", 1), ("a", None), ("b", 3), ("b", None)]
    assert result["top"].rows() == [(3, 5), (1, 3)]


# --- sql ------------------------------------------------------------------------------------------

JOIN_SQL = (
    "SELECT o.order_id, c.name FROM orders o JOIN customers c ON o.customer_id = c.id "
    "WHERE c.name = :who OR o.amount > :min ORDER BY o.order_id"
)


def test_sql_dataset_over_two_inputs_with_bound_parameters() -> None:
    result = _build({"who": "it's", "min": 10.0}, joined={"sql": JOIN_SQL})["joined"]
    # Order 2 is "it's"'s; order 3 has amount 11 > 10; order 4 (13) has no customer: the inner join drops it.
    assert result.rows() == [(2, "it's"), (3, "ann")]


def test_an_injection_shaped_string_stays_a_string_in_sql() -> None:
    result = _build({"who": "x' OR '1'='1", "min": 100.0}, joined={"sql": JOIN_SQL})["joined"]
    assert result.height == 0
    echoed = _build({"who": "'); DROP TABLE orders; --"}, e={"sql": "SELECT :who AS who FROM orders LIMIT 1"})["e"]
    assert echoed.rows() == [("'); DROP TABLE orders; --",)]


@pytest.mark.parametrize("zone", [None, "UTC"])
def test_sql_datetime_parameters_match_naive_and_utc_columns(zone: str | None) -> None:
    utc = [t.astimezone(UTC) for t in TIMES]
    frame = pl.LazyFrame({"ts": [t.replace(tzinfo=None) for t in utc] if zone is None else utc})
    start = datetime(2024, 3, 31, 1, 30, tzinfo=BERLIN)  # 00:30 UTC; naive columns hold UTC wall-clock times
    datasets = _datasets(recent={"sql": "SELECT ts, :start AS since FROM events WHERE ts >= :start"})
    result = build_datasets(datasets, {"events": frame}, {"start": start})["recent"].collect()
    assert result.height == sum(1 for t in TIMES if t >= start) == 4
    assert result.schema["since"] == pl.Datetime("us", zone)


def test_sql_datasets_may_read_datasets_and_take_sort_limit_select() -> None:
    result = _build(
        report={"sql": "SELECT customer_id, total FROM by_customer", "sort": "-total", "limit": 2},
        by_customer={"from": "orders", "group_by": "customer_id", "aggregate": {"total": "sum(amount)"}},
    )
    assert result["report"].rows() == [(10, 16.0), (30, 13.0)]
    assert list(result) == ["report", "by_customer"]


# --- dependencies and errors ----------------------------------------------------------------------


def test_datasets_are_built_in_dependency_order_whatever_their_order_in_the_spec() -> None:
    result = _build(
        top={"from": "by_customer", "sort": "-total", "limit": 1},
        by_customer={"from": "enriched", "group_by": "name", "aggregate": {"total": "sum(amount)"}},
        enriched={
            "from": "orders",
            "join": {"dataset": "customers", "left_on": "customer_id", "right_on": "id"},
        },
    )
    assert result["top"].rows() == [("ann", 16.0)]


def test_a_cycle_is_an_error() -> None:
    with pytest.raises(DatasetError, match=r"dataset 'b': from: datasets depend on each other in a cycle: a -> b -> a"):
        build_datasets(_datasets(a={"from": "b"}, b={"from": "a"}), _inputs(), {})
    with pytest.raises(DatasetError, match=r"cycle: s -> s"):
        build_datasets(_datasets(s={"sql": "SELECT * FROM s"}), _inputs(), {})


def test_an_unknown_input_is_an_error_with_a_suggestion() -> None:
    with pytest.raises(
        DatasetError, match=r"^dataset 'daily': from: unknown source or dataset 'metric' \(did you mean"
    ):
        build_datasets(_datasets(daily={"from": "metric"}), _inputs(), {})


def test_planning_errors_name_the_dataset_and_field() -> None:
    with pytest.raises(DatasetError, match=r"^dataset 'x': aggregate\.p: unknown function 'p955'; try one of"):
        build_datasets(_datasets(x={"from": "orders", "aggregate": {"p": "p955(amount)"}}), _inputs(), {})
    with pytest.raises(DatasetError, match=r"^dataset 'x': where: unknown parameter ':region'"):
        build_datasets(_datasets(x={"from": "orders", "where": "name = :region"}), _inputs(), {})


def test_nothing_is_computed_until_the_caller_collects() -> None:
    failing = pl.LazyFrame({"x": ["not a number"]}).with_columns(pl.col("x").cast(pl.Int64))
    datasets = _datasets(d={"from": "src", "where": "x > 1", "aggregate": {"n": "count()"}})
    built = build_datasets(datasets, {"src": failing}, {})
    with pytest.raises(pl.exceptions.InvalidOperationError):
        built["d"].collect()


# --- check_datasets -------------------------------------------------------------------------------

METRICS_COLUMNS = "ts, service, region, latency_ms"


def test_check_attributes_each_problem_to_its_field() -> None:
    datasets = _datasets(
        by_service={
            "from": "metrics",
            "group_by": "service",
            "aggregate": {"ok": "count()", "p95_latency": "p95(latency)"},
        },
        filtered={"from": "metrics", "where": "regoin = 'eu'"},
        derived={"from": "metrics", "derive": {"a": "latency_ms * 2", "b": "c + 1"}},
        grouped={"from": "metrics", "group_by": ["service", "servce"], "aggregate": {"n": "count()"}},
        sorted={"from": "metrics", "sort": ["-latency_ms", "zz"]},
        picked={"from": "metrics", "select": ["service", "nope"]},
        joined={"from": "orders", "join": {"dataset": "customers", "left_on": "customer", "right_on": "id"}},
        bucketed={"from": "metrics", "every": "1h", "on": "service", "aggregate": {"n": "count()"}},
        listed={
            "from": "metrics",
            "group_by": "service",
            "aggregate": {"bad": "max(latency_ms) + latency_ms"},
        },
        had={"from": "metrics", "group_by": "service", "aggregate": {"n": "count()"}, "having": "sum(n) > 1"},
        daily={"from": "metric"},
        query={"sql": "SELECT latncy FROM metrics"},
        sql_param={"sql": "SELECT * FROM orders WHERE amount > :minimum"},
        no_time={"from": "orders", "every": "1d", "aggregate": {"n": "count()"}},
        late_having={
            "from": "orders",
            "group_by": "customer_id",
            "aggregate": {"n": "count()"},
            "having": "m > 1",
        },
    )
    check = check_datasets(datasets, {name: f.collect_schema() for name, f in _inputs().items()}, {})
    problems = dict(check.problems)
    assert len(problems) == len(check.problems)
    assert problems == {
        "datasets.by_service.aggregate.p95_latency": (
            f"unknown column 'latency' (did you mean 'latency_ms'?); columns are: {METRICS_COLUMNS}"
        ),
        "datasets.filtered.where": (
            f"unknown column 'regoin' (did you mean 'region'?); columns are: {METRICS_COLUMNS}"
        ),
        "datasets.derived.derive.b": f"unknown column 'c'; columns are: {METRICS_COLUMNS}, a",
        "datasets.grouped.group_by[1]": (
            f"unknown column 'servce' (did you mean 'service'?); columns are: {METRICS_COLUMNS}"
        ),
        "datasets.sorted.sort[1]": f"unknown column 'zz'; columns are: {METRICS_COLUMNS}",
        "datasets.picked.select[1]": f"unknown column 'nope'; columns are: {METRICS_COLUMNS}",
        "datasets.joined.join[0].left_on": (
            "unknown column 'customer' (did you mean 'customer_id'?); columns are: order_id, customer_id, amount"
        ),
        "datasets.bucketed.on": "column 'service' is String, not a Date or Datetime; 'every' buckets time",
        "datasets.listed.aggregate.bad": (
            "'max(latency_ms) + latency_ms' gives a list per group, not one value; "
            "every column must be inside an aggregate function, e.g. max(x) + min(x)"
        ),
        "datasets.had.having": (
            "'sum(n) > 1' uses sum() where only columns of the aggregated rows can be used; "
            "add it to 'aggregate' and refer to it by name"
        ),
        "datasets.daily.from": "unknown source or dataset 'metric' (did you mean 'metrics'?)",
        "datasets.sql_param.sql": "unknown parameter ':minimum'; parameters are: (none)",
        "datasets.no_time.every": (
            "no Date or Datetime column to bucket; name one with 'on'; columns are: order_id, customer_id, amount"
        ),
        "datasets.late_having.having": "unknown column 'm'; columns are: customer_id, n",
        "datasets.query.sql": (f"unknown column 'latncy' (did you mean 'latency_ms'?); columns are: {METRICS_COLUMNS}"),
    }
    assert all(check.schemas[name] is None for name in datasets)


def test_check_returns_the_schemas_datasets_will_have() -> None:
    datasets = _datasets(
        hourly={
            "from": "metrics",
            "every": "1h",
            "group_by": "service",
            "aggregate": {"p95": "p95(latency_ms)"},
        },
        top={"from": "hourly", "select": ["service", "p95"]},
        totals={"sql": "SELECT count(*) AS n FROM orders"},
    )
    check = check_datasets(datasets, {name: f.collect_schema() for name, f in _inputs().items()}, {})
    assert check.problems == []
    assert check.schemas == {
        "hourly": pl.Schema({"ts": pl.Datetime("us", "Europe/Berlin"), "service": pl.String, "p95": pl.Float64}),
        "top": pl.Schema({"service": pl.String, "p95": pl.Float64}),
        "totals": pl.Schema({"n": pl.Int64}),
    }


def test_unknown_schemas_skip_column_checks_but_not_names_parameters_or_cycles() -> None:
    datasets = _datasets(
        remote_view={"from": "remote", "where": "anything > :start", "select": ["anything"]},
        after={"from": "remote_view", "sort": "-whatever"},
        bad_param={"from": "remote", "where": "x = :nope"},
        bad_name={"from": "remote", "join": {"dataset": "remot", "on": "id"}},
        a={"from": "b"},
        b={"from": "a"},
    )
    check = check_datasets(datasets, {"remote": None}, {"start": datetime(2024, 1, 1, tzinfo=UTC)})
    assert check.problems == [
        ("datasets.bad_name.join[0].dataset", "unknown source or dataset 'remot' (did you mean 'remote'?)"),
        ("datasets.b.from", "datasets depend on each other in a cycle: a -> b -> a"),
        ("datasets.bad_param.where", "unknown parameter ':nope'; parameters are: :start"),
    ]
    assert check.schemas == dict.fromkeys(datasets)
