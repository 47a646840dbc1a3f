"""The ``prometheus`` source: a PromQL range or instant query through Prometheus' HTTP API, as a tidy table.

The requests go through the http source (its session, retries, timeouts, secret headers and redirect rules); this
module adds the query's time span and step, the PromQL placeholders and the turning of series into rows.
"""

from __future__ import annotations

import json
import logging
import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import ConfigDict, Field, field_validator, model_validator

from reportctl.data.sources.base import CacheOption, SourceContext, UncheckedColumns, cache_field
from reportctl.data.sources.http import HttpOptions, HttpSource, shown_url
from reportctl.errors import SourceError, did_you_mean
from reportctl.secrets import redact
from reportctl.spec.models import SourceOptions
from reportctl.spec.types import IDENTIFIER, PositiveDuration

if TYPE_CHECKING:
    import polars as pl
    import requests

log = logging.getLogger(__name__)

MAX_POINTS = 11_000
"""Prometheus answers a range query with at most this many points per series."""
DEFAULT_POINTS = 250
"""A range query without ``step`` asks for about this many points over its span."""
DEFAULT_SPAN = timedelta(days=7)
"""The span of a range query without a period or ``start``, as for the sample source."""
_NICE_STEPS = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]
_PLACEHOLDER = re.compile(r"\{\{\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class PrometheusOptions(SourceOptions):
    """Options of the ``prometheus`` source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["prometheus"] = Field(description="Runs a PromQL query against a Prometheus server's HTTP API.")
    url: str = Field(description="The server, e.g. http://prometheus:9090; it may contain ${secret:NAME}.")
    query: str = Field(
        min_length=1,
        description="PromQL; {{ name }} inserts parameter 'name' as a PromQL string (quoted and escaped) or number.",
    )
    type: Literal["range", "instant"] = Field(
        default="range", description="range: a series of points per label set; instant: one point, at end."
    )
    step: PositiveDuration | None = Field(
        default=None, description="Between the points of a range query; default the span / 250, rounded up."
    )
    period: Annotated[str, Field(pattern=IDENTIFIER)] | None = Field(
        default=None, description="A period parameter whose start and end bound the query; default the only one."
    )
    start: datetime | None = Field(default=None, description="Start of a range query (in the report's zone).")
    end: datetime | None = Field(default=None, description="End of the query, the time of an instant query.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Request headers; values may contain ${secret:NAME}, e.g. for a token."
    )
    value_column: Annotated[str, Field(min_length=1)] = Field(default="value", description="The values' column.")
    timeout: PositiveDuration = Field(
        default=timedelta(seconds=30), description="Limit for connecting, each wait, and the query on the server."
    )
    retries: int = Field(default=2, ge=0, le=10, description="Retries on connection errors, 429 and 5xx.")
    follow_redirects: Literal["same-origin", "any", "none"] = Field(
        default="same-origin", description="Which redirects to follow, as for the http source."
    )
    cache: CacheOption = cache_field()

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith("${") and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError(f"expected an http:// or https:// URL, got '{value}'")
        return value

    @model_validator(mode="after")
    def _one_way_to_set_the_span(self) -> PrometheusOptions:
        if self.period is not None and (self.start is not None or self.end is not None):
            raise ValueError("give either 'period' or 'start'/'end', not both")
        if self.type == "instant" and (self.start is not None or self.step is not None):
            raise ValueError("an instant query takes no 'start' or 'step'; 'end' is its time")
        if self.value_column == "timestamp":
            raise ValueError("value_column cannot be 'timestamp', the column of the points' times")
        return self


class PrometheusSource:
    """Series of a PromQL query as rows: timestamp, one column per label (``__name__`` as ``metric``), value."""

    PLUGIN_NAME: ClassVar[str] = "prometheus"
    Options: ClassVar[type[SourceOptions]] = PrometheusOptions

    def __init__(self, name: str, options: PrometheusOptions, context: SourceContext) -> None:
        self.name = name
        self.options = options
        self.context = context

    def describe(self) -> str:
        return f"prometheus {self.options.type} {shown_url(self.options.url)}"

    def known_schema(self) -> pl.Schema | None:
        """None: the label columns are known only once the query answers. What can be checked without asking
        is, so ``validate`` finds a placeholder that names no parameter at the query's line."""
        for name in _PLACEHOLDER.findall(self.options.query):
            self._parameter_value(name)
        return None

    def probe_schema(self) -> pl.Schema:
        """The columns of the query's result now: one query (``validate --connect``)."""
        return self.fetch().collect_schema()

    def unchecked_columns(self) -> UncheckedColumns:
        return UncheckedColumns(
            "query", "a PromQL query's label columns are known only once Prometheus answers", "runs the query once"
        )

    def cache_identity(self) -> dict[str, Any]:
        options = self.options.model_dump(
            mode="json", exclude={"description", "cache", "timeout", "retries", "start", "end", "step", "period"}
        )
        # The request holds the query as sent (placeholders filled) and its start, end and step.
        return {**options, "request": self._request_params()}

    def fetch(self) -> pl.LazyFrame:
        endpoint = "query_range" if self.options.type == "range" else "query"
        api = _PrometheusApi(self, endpoint, self._request_params())
        payload = api.request_json()
        if not isinstance(payload, dict) or payload.get("status") != "success" or "data" not in payload:
            raise self._error("the answer is not a Prometheus API response (no status 'success' and data)")
        for warning in payload.get("warnings") or []:
            log.warning("source '%s' (%s): Prometheus warns: %s", self.name, self.describe(), redact(str(warning)))
        try:
            return self._frame(payload["data"]).lazy()
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise self._error(
                f"the answer's result is not as Prometheus writes it ({type(exc).__name__}: {exc})"
            ) from exc

    def _error(self, cause: str, option: str = "") -> SourceError:
        return SourceError(self.name, self.describe(), redact(cause), option=option)

    # --- the request --------------------------------------------------------------------------------------

    def _request_params(self) -> dict[str, str]:
        """What the API is sent: the query with its placeholders filled, its time span and step, in UTC."""
        # Seconds as a bare number: Prometheus reads '0.5' but not '0.5s'.
        params = {"query": self._query(), "timeout": f"{self.options.timeout.total_seconds():g}"}
        start, end = self._span()
        if self.options.type == "instant":
            return {**params, "time": _api_time(end)}
        step = self.options.step.total_seconds() if self.options.step is not None else _default_step(end - start)
        points = math.floor((end - start).total_seconds() / step) + 1
        if points > MAX_POINTS:
            least = _nice_step((end - start).total_seconds() / (MAX_POINTS - 1))
            raise self._error(
                f"step {step:g}s gives {points} points per series from {start:%Y-%m-%d %H:%M:%S} to "
                f"{end:%Y-%m-%d %H:%M:%S} UTC; Prometheus allows {MAX_POINTS}: set step to {_duration_text(least)} "
                "or more"
            )
        return {**params, "start": _api_time(start), "end": _api_time(end), "step": f"{step:g}"}

    def _span(self) -> tuple[datetime, datetime]:
        """Start and end in UTC: from the options, the period parameter, or the 7 days before the run. The end is
        never later than the run time: Prometheus has no points in the future."""
        options = self.options
        now = self._instant(self.context.run_time)
        period = options.period
        if period is None and options.start is None and options.end is None and "start" in self.context.parameters:
            start, end = self._bound("start"), self._bound("end")
        elif period is not None:
            start, end = self._bound(f"{period}_start", period), self._bound(f"{period}_end", period)
        else:
            end = self._instant(options.end) if options.end is not None else now
            start = self._instant(options.start) if options.start is not None else end - DEFAULT_SPAN
        end = min(end, now)
        if options.type == "range" and end <= start:
            raise self._error(f"the span is empty: end {end.isoformat()} is not after start {start.isoformat()}")
        return start, end

    def _bound(self, key: str, period: str | None = None) -> datetime:
        value = self.context.parameters.get(key)
        if not isinstance(value, datetime):
            where = f"period '{period}'" if period else "the spec's period"
            raise self._error(f"{where} has no {key.rsplit('_', 1)[-1]}: the run has no parameter {key}")
        return self._instant(value)

    def _instant(self, value: datetime) -> datetime:
        """``value`` in UTC; a time without a zone is read in the report's zone."""
        if value.tzinfo is None:
            value = value.replace(tzinfo=ZoneInfo(self.context.timezone))
        return value.astimezone(UTC)

    def _query(self) -> str:
        """The query with each ``{{ name }}`` replaced by the parameter's value as a PromQL literal."""
        rest = _PLACEHOLDER.sub("", self.options.query)
        if "{{" in rest or "}}" in rest:
            raise self._error(
                "the query has '{{' or '}}' outside a placeholder; write {{ name }} for a parameter", "query"
            )
        literals = self._placeholders()
        return _PLACEHOLDER.sub(lambda m: literals[m["name"]], self.options.query)

    def _placeholders(self) -> dict[str, str]:
        """Each parameter the query places, as the PromQL literal it becomes."""
        literals: dict[str, str] = {}
        for name in _PLACEHOLDER.findall(self.options.query):
            value = self._parameter_value(name)
            literal = _promql_literal(value)
            if literal is None:
                raise self._error(
                    f"query uses {{{{ {name} }}}}, a {type(value).__name__}; only text and finite numbers can be "
                    "placed in PromQL (use period, start and end for times)"
                )
            literals[name] = literal
        return literals

    def _parameter_value(self, name: str) -> Any:
        if name not in self.context.parameters:
            hint = did_you_mean(name, self.context.parameters)
            raise self._error(f"query uses {{{{ {name} }}}} but the spec has no parameter {name}{hint}", "query")
        return self.context.parameters[name]

    # --- the answer ---------------------------------------------------------------------------------------

    def _frame(self, data: Any) -> pl.DataFrame:
        """Rows of ``data`` (matrix, vector, scalar or string) in one table; missing labels are null."""
        import polars as pl

        kind = data.get("resultType") if isinstance(data, dict) else None
        result = data.get("result") if isinstance(data, dict) else None
        series: list[tuple[dict[str, str], list[Any]]] = []
        if kind == "matrix" and isinstance(result, list):
            for item in result:
                if "values" not in item and "histograms" in item:
                    raise self._error("the query returns native histograms, which this source does not read")
                series.append((item.get("metric", {}), item.get("values", [])))
        elif kind == "vector" and isinstance(result, list):
            if any("value" not in item and "histogram" in item for item in result):
                raise self._error("the query returns native histograms, which this source does not read")
            series = [(item.get("metric", {}), [item["value"]]) for item in result]
        elif kind in ("scalar", "string") and isinstance(result, list):
            series = [({}, [result])]
        else:
            raise self._error(f"the answer has result type {kind!r}, not matrix, vector, scalar or string")
        value_column = self.options.value_column
        labels = sorted({_label_column(k, value_column) for metric, _ in series for k in metric})
        columns: dict[str, list[Any]] = {"timestamp": [], **{label: [] for label in labels}, value_column: []}
        parse = str if kind == "string" else _sample_value
        for metric, points in series:
            named = {_label_column(k, value_column): v for k, v in metric.items()}
            for time, value in points:
                columns["timestamp"].append(round(float(time) * 1_000_000))
                columns[value_column].append(parse(value))
                for label in labels:
                    columns[label].append(named.get(label))
        schema = {
            "timestamp": pl.Int64(),
            **{label: pl.String() for label in labels},
            value_column: pl.String() if kind == "string" else pl.Float64(),
        }
        frame = pl.DataFrame(columns, schema=schema)
        front = ["metric"] if "metric" in labels else []
        order = ["timestamp", *front, *(c for c in labels if c != "metric"), value_column]
        return frame.with_columns(pl.col("timestamp").cast(pl.Datetime("us", "UTC"))).select(order)


class _PrometheusApi(HttpSource):
    """The http source pointed at one API endpoint, so a Prometheus source has its session, retries, timeouts,
    secret headers and redirect rules; an error answer's message (``{"status": "error", ...}``) is kept."""

    def __init__(self, source: PrometheusSource, endpoint: str, params: dict[str, str]) -> None:
        options = source.options
        base = options.url.rstrip("/")
        http = HttpOptions.model_validate(
            {
                "kind": "http",
                "url": f"{base}/api/v1/{endpoint}",
                "headers": options.headers,
                "params": params,
                "timeout": options.timeout,
                "retries": options.retries,
                "follow_redirects": options.follow_redirects,
            }
        )
        # No parameters: the query is already filled in, and a ':name' in it must stay as written.
        super().__init__(source.name, http, SourceContext(source.context.project_root, source.context.run_time, "UTC"))
        self.source = source

    def describe(self) -> str:
        return self.source.describe()

    def _param(self, name: str, value: str | float | bool) -> str:
        return str(value)  # sent as given: PromQL is not searched for ':name' or ${secret:...}

    def answer_error(self, response: requests.Response) -> str | None:
        return _api_error(response)


def _api_error(response: requests.Response) -> str | None:
    """Prometheus' own message in an error answer, with a hint for too many points; None if there is none."""
    try:
        payload = response.json()
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("status") != "error":
        return None
    error = str(payload.get("error", "no message"))
    message = f"Prometheus says ({payload.get('errorType', 'error')}): {error}"
    if "exceeded maximum resolution" in error:
        message += "; set a larger step"
    return message


def _label_column(label: str, value_column: str) -> str:
    """The column of a label: ``__name__`` is ``metric``; a label named like a fixed column gets ``label_``."""
    if label == "__name__":
        return "metric"
    return f"label_{label}" if label in ("timestamp", "metric", value_column) else label


def _sample_value(text: Any) -> float:
    """A sample value as Prometheus writes it: decimal text, NaN, +Inf or -Inf."""
    return float(text)


def _promql_literal(value: Any) -> str | None:
    """``value`` as PromQL: text as a double-quoted string (escaped as Go reads it), a finite number as written;
    None for anything else (times, booleans, lists), which cannot be placed in a query safely."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        # JSON's escapes (\\ \" \n \uXXXX) are a subset of Go's, which PromQL strings use.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float | Decimal) and math.isfinite(value):
        return str(value)
    return None


def _api_time(value: datetime) -> str:
    """A time as the API takes it: Unix seconds, to the millisecond."""
    return f"{value.timestamp():.3f}"


def _default_step(span: timedelta) -> float:
    """About ``DEFAULT_POINTS`` points over ``span``, on a step a reader recognises (15s, 5m, 1h)."""
    return _nice_step(span.total_seconds() / DEFAULT_POINTS)


def _nice_step(seconds: float) -> float:
    for step in _NICE_STEPS:
        if step >= seconds:
            return float(step)
    return math.ceil(seconds / 86400) * 86400.0


def _duration_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
