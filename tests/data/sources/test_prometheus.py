"""The prometheus source against a real Prometheus (Debian's package) scraping an exporter the tests run."""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
import pytest
from pydantic import ValidationError

from conftest import CliResult
from data.sources.prometheus_server import EXPORTED, PrometheusServer, free_port, running_prometheus
from reportctl.data.sources.base import SourceContext
from reportctl.data.sources.prometheus import PrometheusOptions, PrometheusSource
from reportctl.errors import SourceError

Cli = Callable[..., CliResult]


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    with running_prometheus() as server:
        yield server


def make_source(
    run_time: datetime | None = None, parameters: dict[str, Any] | None = None, **options: Any
) -> PrometheusSource:
    context = SourceContext(
        project_root=Path("."),
        run_time=run_time or datetime.now(UTC),
        timezone="Europe/Berlin",
        parameters=parameters or {},
    )
    return PrometheusSource("metrics", PrometheusOptions.model_validate({"kind": "prometheus", **options}), context)


def served(metric: str) -> dict[tuple[str, str], float]:
    return {(service, region): value for (name, service, region), value in EXPORTED.items() if name == metric}


def by_labels(frame: pl.DataFrame, value: str = "value") -> dict[tuple[str, str], float]:
    return {(row["service"], row["region"]): row[value] for row in frame.iter_rows(named=True)}


def test_instant_query_has_a_row_per_series_and_a_column_per_label(prometheus: PrometheusServer) -> None:
    frame = make_source(url=prometheus.url, query="demo_latency_seconds", type="instant").fetch().collect()

    assert frame.columns == ["timestamp", "metric", "instance", "job", "region", "service", "value"]
    assert frame.schema["timestamp"] == pl.Datetime("us", "UTC")
    assert frame.schema["value"] == pl.Float64()
    assert by_labels(frame) == served("demo_latency_seconds")
    assert set(frame["metric"]) == {"demo_latency_seconds"}
    assert set(frame["job"]) == {"exporter"}
    assert frame["timestamp"].n_unique() == 1


def test_range_query_has_a_point_per_step_for_each_series(prometheus: PrometheusServer) -> None:
    end = prometheus.ready_at
    source = make_source(
        url=prometheus.url, query="demo_requests_total", start=end - timedelta(seconds=1), end=end, step="0.5s"
    )

    frame = source.fetch().collect()

    assert frame.columns == ["timestamp", "metric", "instance", "job", "region", "service", "value"]
    assert by_labels(frame) == served("demo_requests_total")
    for _, points in frame.group_by("service", "region"):
        times = points["timestamp"].sort()
        assert times[-1] == end
        assert set(times.diff().drop_nulls()) <= {timedelta(milliseconds=500)}


def test_nan_and_infinity_arrive_as_floats(prometheus: PrometheusServer) -> None:
    frame = make_source(url=prometheus.url, query="demo_saturation_ratio", type="instant").fetch().collect()

    values = by_labels(frame)
    assert math.isnan(values["api", "eu"])
    assert values["web", "eu"] == math.inf


def test_labels_missing_from_a_series_are_null(prometheus: PrometheusServer) -> None:
    query = 'demo_latency_seconds{region="us"} or sum by (service) (demo_requests_total)'

    frame = make_source(url=prometheus.url, query=query, type="instant").fetch().collect()

    rows = {(r["service"], r["region"], r["metric"]): r["value"] for r in frame.iter_rows(named=True)}
    assert rows == {("api", "us", "demo_latency_seconds"): 0.5, ("api", None, None): 1200.0, ("web", None, None): 300.0}


def test_a_parameter_is_placed_as_an_escaped_promql_string(prometheus: PrometheusServer) -> None:
    query = "demo_latency_seconds{service={{ service }}} > {{ floor }}"

    web = make_source(parameters={"service": "web", "floor": 1}, url=prometheus.url, query=query, type="instant")
    assert by_labels(web.fetch().collect()) == {("web", "eu"): 1.75}

    hostile = make_source(
        parameters={"service": 'web"} or vector(1) or demo_latency_seconds{service="\\', "floor": 0},
        url=prometheus.url,
        query=query,
        type="instant",
    )
    assert hostile.fetch().collect().height == 0  # one label value that no series has, not a second selector


def test_placeholders_that_cannot_be_placed(prometheus: PrometheusServer) -> None:
    with pytest.raises(SourceError, match=r"query uses \{\{ sevice \}\} but the spec has no parameter sevice \(did"):
        make_source(parameters={"service": "api"}, url=prometheus.url, query="up{service={{ sevice }}}").fetch()
    with pytest.raises(SourceError, match=r"a bool; only text and finite numbers can be placed in PromQL"):
        make_source(parameters={"on": True}, url=prometheus.url, query="up > {{ on }}").fetch()


def test_scalar_string_and_empty_results(prometheus: PrometheusServer) -> None:
    scalar = make_source(url=prometheus.url, query="scalar(sum(demo_requests_total))", type="instant")
    assert scalar.fetch().collect()["value"].to_list() == [1500.0]

    text = make_source(url=prometheus.url, query='"hello"', type="instant").fetch().collect()
    assert text.schema == pl.Schema({"timestamp": pl.Datetime("us", "UTC"), "value": pl.String()})
    assert text["value"].to_list() == ["hello"]

    empty = make_source(url=prometheus.url, query="no_such_metric", value_column="latency").fetch().collect()
    assert empty.schema == pl.Schema({"timestamp": pl.Datetime("us", "UTC"), "latency": pl.Float64()})


def test_the_period_parameter_is_the_default_span_and_never_reaches_past_the_run(prometheus: PrometheusServer) -> None:
    run = prometheus.ready_at
    period = {"start": run - timedelta(seconds=4), "end": run + timedelta(days=1)}

    source = make_source(run, period, url=prometheus.url, query="demo_latency_seconds", step="2s")

    frame = source.fetch().collect()
    assert frame["timestamp"].max() == run
    request = source.cache_identity()["request"]
    assert request == {
        "query": "demo_latency_seconds",
        "timeout": "30",
        "start": f"{run.timestamp() - 4:.3f}",
        "end": f"{run.timestamp():.3f}",
        "step": "2",
    }


def test_a_promql_syntax_error_is_prometheus_own_message(prometheus: PrometheusServer) -> None:
    with pytest.raises(SourceError) as raised:
        make_source(url=prometheus.url, query="sum(rate(demo_requests_total[5m])").fetch()

    assert str(raised.value) == (
        f"source 'metrics' (prometheus range {prometheus.url}): Prometheus says (bad_data): "
        "1:34: parse error: unclosed left parenthesis"
    )


def test_too_many_points_suggests_a_step() -> None:
    source = make_source(url="http://127.0.0.1:9", query="up", period=None, step="1s")

    with pytest.raises(SourceError, match=r"step 1s gives 604801 points per series .*; Prometheus allows 11000: "):
        source.fetch()
    with pytest.raises(SourceError, match=r"set step to 1m or more$"):
        source.fetch()


def test_an_unreachable_server_is_the_http_source_message() -> None:
    port = free_port()

    with pytest.raises(SourceError) as raised:
        make_source(url=f"http://127.0.0.1:{port}", query="up", type="instant", retries=0).fetch()

    assert str(raised.value) == (
        f"source 'metrics' (prometheus instant http://127.0.0.1:{port}): connection refused by 127.0.0.1:{port}"
    )


def test_options_are_checked() -> None:
    def check(**options: Any) -> None:
        PrometheusOptions.model_validate({"kind": "prometheus", "url": "http://p:9090", "query": "up", **options})

    with pytest.raises(ValidationError, match="an instant query takes no 'start' or 'step'"):
        check(type="instant", step="1m")
    with pytest.raises(ValidationError, match="give either 'period' or 'start'/'end', not both"):
        check(period="window", end="2026-01-01T00:00:00")
    with pytest.raises(ValidationError, match="expected an http:// or https:// URL"):
        check(url="prometheus:9090")
    with pytest.raises(ValidationError, match="Input should be 'range' or 'instant'"):
        check(type="matrix")


# --- what a real Prometheus rarely says: a small fake answers with Prometheus' documented envelopes ---------------


class _Canned(BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, tuple[int, Any]]] = {}
    seen: ClassVar[list[dict[str, str]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers))
        status, payload = self.answers[self.path.split("?", 1)[0]]
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def fake() -> Iterator[str]:
    _Canned.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    httpd.daemon_threads = False
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        thread.join()
        httpd.server_close()


def test_warnings_are_logged_and_a_secret_header_is_sent(
    fake: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPORTCTL_SECRET_PROM_TOKEN", "tok-3e9a")
    result = [{"metric": {"job": "a"}, "value": [1767225600.5, "-Inf"]}]
    _Canned.answers = {
        "/api/v1/query": (
            200,
            {
                "status": "success",
                "data": {"resultType": "vector", "result": result},
                "warnings": ["remote read of store eu failed"],
            },
        ),
    }
    source = make_source(url=fake, query="up", type="instant", headers={"Authorization": "Bearer ${secret:PROM_TOKEN}"})

    with caplog.at_level(logging.WARNING, logger="reportctl.data.sources.prometheus"):
        frame = source.fetch().collect()

    assert frame.rows() == [(datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC), "a", -math.inf)]
    assert _Canned.seen[0]["Authorization"] == "Bearer tok-3e9a"
    assert [r.getMessage() for r in caplog.records] == [
        f"source 'metrics' (prometheus instant {fake}): Prometheus warns: remote read of store eu failed"
    ]


def test_the_server_limit_on_points_and_a_malformed_answer(fake: str) -> None:
    error = (
        "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
    )
    _Canned.answers = {
        "/api/v1/query_range": (400, {"status": "error", "errorType": "bad_data", "error": error}),
        "/api/v1/query": (200, {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}),
    }

    with pytest.raises(SourceError, match=r"Prometheus says \(bad_data\): exceeded .*; set a larger step$"):
        make_source(url=fake, query="up", step="1h").fetch()
    with pytest.raises(SourceError, match=r"the answer's result is not as Prometheus writes it \(KeyError: 'value'\)$"):
        make_source(url=fake, query="up", type="instant").fetch()


# --- validate and render -----------------------------------------------------------------------------------


def _spec(project: Path, url: str, start: datetime, end: datetime) -> Path:
    spec = project / "specs" / "latency.yaml"
    spec.write_text(
        "apiVersion: reportctl/v1\n"
        "name: latency\n"
        "parameters:\n"
        "  service: {type: string, default: api}\n"
        "sources:\n"
        "  latency:\n"
        "    kind: prometheus\n"
        f"    url: {url}\n"
        "    query: 'demo_latency_seconds{service={{ service }}}'\n"
        f"    start: '{start.isoformat()}'\n"
        f"    end: '{end.isoformat()}'\n"
        "    step: 1s\n"
        "datasets:\n"
        "  by_region:\n"
        "    from: latency\n"
        "    group_by: [region]\n"
        "    aggregate: {worst: max(value), points: count(value)}\n"
        "    sort: [region]\n"
        "sections:\n"
        "  - {id: regions, type: table, dataset: by_region}\n"
        "outputs: [csv, json]\n"
    )
    return spec


def test_validate_notes_the_unknown_label_columns_and_connect_runs_the_query(
    cli: Cli, project: Path, prometheus: PrometheusServer
) -> None:
    end = prometheus.ready_at
    spec = _spec(project, prometheus.url, end - timedelta(seconds=2), end)

    result = cli("validate", str(spec))
    assert result.exit_code == 0, result.stdout
    assert result.stdout.splitlines() == [
        "specs/latency.yaml:9:12: sources.latency.query: note: the columns of source 'latency' are not checked: a "
        "PromQL query's label columns are known only once Prometheus answers; 'reportctl validate --connect' runs "
        "the query once",
        "1 file valid (1 note)",
    ]
    assert cli("validate", str(spec), "--connect").stdout == "1 file valid\n"

    spec.write_text(spec.read_text().replace("{{ service }}", "{{ sevice }}"))
    typo = cli("validate", str(spec))
    assert typo.exit_code == 1
    assert typo.stdout.splitlines()[0] == (
        f"specs/latency.yaml:9:12: sources.latency.query: source 'latency' (prometheus range {prometheus.url}): "
        "query uses {{ sevice }} but the spec has no parameter sevice (did you mean 'service'?)"
    )


def test_render_to_csv_and_json(cli: Cli, project: Path, prometheus: PrometheusServer) -> None:
    end = prometheus.ready_at
    spec = _spec(project, prometheus.url, end - timedelta(seconds=2), end)

    result = cli("render", str(spec), "-p", "service=api", "-o", str(project / "out"), "--no-state", "--no-cache")

    assert result.exit_code == 0, result.stderr
    [csv] = (project / "out").glob("latency/*/*.csv")
    frame = pl.read_csv(csv)
    assert frame.columns == ["region", "worst", "points"]
    assert frame["region"].to_list() == ["eu", "us"]
    assert frame["worst"].to_list() == [0.25, 0.5]
    assert frame["points"].to_list() == [3, 3]
    [document] = (project / "out").glob("latency/*/latency.json")
    [table] = json.loads(document.read_text())["sections"]
    assert table["rows"] == [{"region": "eu", "worst": 0.25, "points": 3}, {"region": "us", "worst": 0.5, "points": 3}]


def test_a_promql_error_is_one_line_in_render_and_at_the_query_in_validate_connect(
    cli: Cli, project: Path, prometheus: PrometheusServer
) -> None:
    end = prometheus.ready_at
    spec = _spec(project, prometheus.url, end - timedelta(seconds=2), end)
    spec.write_text(spec.read_text().replace("'demo_latency_seconds{", "'sum(demo_latency_seconds{"))
    message = (
        f"source 'latency' (prometheus range {prometheus.url}): Prometheus says (bad_data): 1:40: parse error: "
        "unclosed left parenthesis"
    )

    rendered = cli("render", str(spec), "-o", str(project / "out"), "--no-state", "--no-cache")
    assert (rendered.exit_code, rendered.stderr) == (1, f"error: {message}\n")

    validated = cli("validate", str(spec), "--connect")
    assert validated.exit_code == 1
    assert validated.stdout.splitlines()[0] == f"specs/latency.yaml:7:5: sources.latency: {message}"


def test_a_second_render_reads_the_query_cache(cli: Cli, project: Path, prometheus: PrometheusServer) -> None:
    end = prometheus.ready_at
    spec = _spec(project, prometheus.url, end - timedelta(seconds=2), end)

    first = cli("render", str(spec), "-f", "csv", "-o", str(project / "out"), "--no-state")
    second = cli("render", str(spec), "-f", "csv", "-o", str(project / "out"), "--no-state")
    other = cli("render", str(spec), "-f", "csv", "-o", str(project / "out"), "--no-state", "-p", "service=web")

    assert (first.exit_code, second.exit_code, other.exit_code) == (0, 0, 0)
    assert "from cache" not in first.stdout
    assert "; latency from cache (" in second.stdout
    assert "from cache" not in other.stdout  # another label value is another query, so another entry
