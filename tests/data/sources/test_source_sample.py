"""The sample source: deterministic, well-shaped synthetic metrics."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pydantic import ValidationError

from reportctl.data.sources.base import SourceContext
from reportctl.data.sources.sample import SampleSource
from reportctl.errors import SourceError

RUN_TIME = datetime(2024, 5, 1, 10, 37, 12, tzinfo=UTC)
SCHEMA = pl.Schema(
    {
        "timestamp": pl.Datetime("us", "UTC"),
        "service": pl.String,
        "region": pl.String,
        "host": pl.String,
        "latency_ms": pl.Float64,
        "error_rate": pl.Float64,
        "cpu": pl.Float64,
        "memory": pl.Float64,
    }
)


def make_source(parameters: dict[str, Any] | None = None, timezone: str = "UTC", **options: Any) -> SampleSource:
    context = SourceContext(project_root=Path("."), run_time=RUN_TIME, timezone=timezone, parameters=parameters or {})
    return SampleSource("metrics", SampleSource.Options.model_validate({"kind": "sample", **options}), context)


def fetch(**options: Any) -> pl.DataFrame:
    return make_source(**options).fetch().collect()


def test_same_options_give_the_same_frame() -> None:
    first = fetch(rows=5_000, seed=7)

    assert_frame_equal(first, fetch(rows=5_000, seed=7))
    assert not first.equals(fetch(rows=5_000, seed=8))


def test_another_span_gives_other_values() -> None:
    this_week = fetch(rows=2_000, start="2026-11-16", end="2026-11-23")
    last_week = fetch(rows=2_000, start="2026-11-09", end="2026-11-16")

    assert_frame_equal(this_week, fetch(rows=2_000, start="2026-11-16", end="2026-11-23"))
    assert this_week["latency_ms"].to_list() != last_week["latency_ms"].to_list()


def test_row_count_and_schema() -> None:
    source = make_source(rows=1234)

    frame = source.fetch().collect()

    assert frame.height == 1234
    assert frame.schema == SCHEMA
    assert source.known_schema() == SCHEMA
    assert fetch(rows=0).schema == SCHEMA
    assert fetch().height == 10_000


def test_values_are_in_range_and_look_like_metrics() -> None:
    frame = fetch(rows=100_000)

    assert frame["latency_ms"].min() > 0
    assert frame["error_rate"].is_between(0, 1).all()
    assert frame["cpu"].is_between(0, 100).all()
    assert frame["memory"].is_between(0, 100).all()
    assert frame["error_rate"].median() < 0.005
    assert (frame["error_rate"] > 0.01).any(), "incidents push some error rates past 1%"
    by_service = frame.group_by("service").agg(pl.col("latency_ms").median()).sort("latency_ms")
    assert by_service["service"].to_list()[0] == "auth"
    assert by_service["service"].to_list()[-1] == "checkout"
    assert set(frame["service"]) == {"api", "auth", "billing", "checkout", "search", "web"}
    assert set(frame["region"]) == {"eu", "us", "ap"}


def test_hosts_belong_to_their_service_and_region() -> None:
    frame = fetch(rows=2_000, services=["api", "ledger"], regions=["eu", "mars"], hosts_per_service=2)

    assert set(frame["host"]) == {f"{s}-{r}-{i}" for s in ("api", "ledger") for r in ("eu", "mars") for i in (1, 2)}
    prefix = pl.concat_str("service", "region", separator="-") + "-"
    assert frame.select(pl.col("host").str.starts_with(prefix).all()).item()


def test_default_span_is_the_week_before_the_run_hour() -> None:
    frame = fetch(rows=1_000)

    end = datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert frame["timestamp"][0] == end - timedelta(days=7)
    assert frame["timestamp"].max() < end
    assert frame["timestamp"].is_sorted()
    gaps = frame["timestamp"].diff().drop_nulls()
    assert gaps.min() == gaps.max() == timedelta(days=7) / 1_000


def test_start_and_end_options_in_the_report_time_zone() -> None:
    frame = fetch(rows=48, start=datetime(2024, 1, 1), end=datetime(2024, 1, 3), timezone="Europe/Berlin")

    assert frame["timestamp"][0] == datetime(2023, 12, 31, 23, tzinfo=UTC)
    assert frame["timestamp"][-1] == datetime(2024, 1, 2, 22, tzinfo=UTC)


def test_period_parameter_bounds_the_timestamps() -> None:
    parameters = {"week_start": date(2024, 3, 4), "week_end": datetime(2024, 3, 11, tzinfo=UTC), "start": 1}

    frame = fetch(rows=500, period="week", parameters=parameters)

    assert frame["timestamp"].min() == datetime(2024, 3, 4, tzinfo=UTC)
    assert frame["timestamp"].max() < datetime(2024, 3, 11, tzinfo=UTC)


def test_period_without_values_and_empty_span() -> None:
    with pytest.raises(SourceError, match="period 'week' has no start: the run has no parameter week_start"):
        make_source(period="week").fetch()
    with pytest.raises(SourceError, match="the span is empty"):
        make_source(start=datetime(2024, 1, 2, tzinfo=UTC), end=datetime(2024, 1, 1, tzinfo=UTC)).fetch()


def test_options_are_checked() -> None:
    with pytest.raises(ValidationError, match="less than or equal to 50000000"):
        SampleSource.Options.model_validate({"kind": "sample", "rows": 50_000_001})
    with pytest.raises(ValidationError, match="give either 'period' or 'start'/'end', not both"):
        SampleSource.Options.model_validate({"kind": "sample", "period": "p", "start": "2024-01-01T00:00:00"})
    with pytest.raises(ValidationError, match="at least 1 item"):
        SampleSource.Options.model_validate({"kind": "sample", "services": []})
