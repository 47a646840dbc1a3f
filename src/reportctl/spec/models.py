"""The spec language, apiVersion reportctl/v1, as pydantic models.

These models check shape and types. Cross-references (datasets naming sources, sections naming datasets,
columns that exist) are checked by ``reportctl.spec.checks`` once the shape is known to be right.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from reportctl.cron import parsed_cron
from reportctl.cron_presets import EXAMPLES as PRESET_EXAMPLES
from reportctl.cron_presets import preset_cron
from reportctl.plugins import CHANNELS, SOURCES, WRITERS
from reportctl.spec.alerts import AlertMapping
from reportctl.spec.delivery import DeliveryEntry
from reportctl.spec.retention import Retention
from reportctl.spec.types import (
    IDENTIFIER,
    NAME,
    ByPlugin,
    Duration,
    LocaleName,
    StrictModel,
    Theme,
    TimeZoneName,
)

API_VERSION = "reportctl/v1"

ParameterType = Literal["string", "int", "float", "bool", "date", "datetime", "duration", "choice", "period"]


def _one_or_many(value: Any) -> Any:
    """One name where a list of names goes: ``y: revenue`` is ``y: [revenue]``."""
    return [value] if isinstance(value, str) else value


class Parameter(StrictModel):
    """A typed input to the report, bound into queries and available to templates."""

    type: ParameterType = "string"
    default: Any = None
    choices: list[Any] | None = None
    label: str | None = None
    description: str | None = None
    required: bool | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _choice_needs_choices(self) -> Parameter:
        if self.type == "choice" and not self.choices:
            raise ValueError("a parameter of type choice needs a non-empty 'choices' list")
        return self


class SourceOptions(BaseModel):
    """Options common to every source; each source plugin extends this with its own (strict) model."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: str = Field(description="Which source plugin reads the data: file, sql, http, prometheus, sample, ...")
    description: str | None = None
    protected_by: str | list[str] | None = Field(
        default=None,
        description="Row-level security: the column (or columns) whose values policies.yaml allows each viewer.",
    )


class Join(StrictModel):
    dataset: str = Field(description="The source or dataset to join with.")
    on: list[str] | None = None
    left_on: list[str] | None = None
    right_on: list[str] | None = None
    how: Literal["inner", "left", "right", "full", "semi", "anti", "cross"] = "left"
    suffix: str = "_right"

    @field_validator("on", "left_on", "right_on", mode="before", json_schema_input_type=str | list[str] | None)
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return _one_or_many(value)

    @model_validator(mode="after")
    def _keys(self) -> Join:
        if self.how == "cross":
            if self.on or self.left_on or self.right_on:
                raise ValueError("a cross join takes no 'on', 'left_on' or 'right_on'")
        elif self.on is None and (self.left_on is None or self.right_on is None):
            raise ValueError("a join needs 'on', or both 'left_on' and 'right_on'")
        elif self.on is not None and (self.left_on or self.right_on):
            raise ValueError("give either 'on' or 'left_on'/'right_on', not both")
        elif self.left_on is not None and self.right_on is not None and len(self.left_on) != len(self.right_on):
            raise ValueError("'left_on' and 'right_on' must name the same number of columns")
        return self


class Dataset(StrictModel):
    """A table computed lazily with Polars from a source, another dataset, or SQL over them.

    Steps apply in this order: from, join, where, derive, every/group_by/aggregate, having, sort, limit, select.
    """

    from_: str | None = Field(default=None, alias="from", description="A source or dataset name.")
    sql: str | None = Field(default=None, description="Polars SQL over sources and datasets, by name.")
    join: list[Join] = Field(default_factory=list)
    where: str | None = Field(default=None, description="A SQL boolean expression; :name binds a parameter.")
    derive: dict[str, str] = Field(default_factory=dict, description="New columns from SQL expressions.")
    every: Duration | None = Field(default=None, description="Bucket the time column into windows.")
    on: str | None = Field(default=None, description="The time column that 'every' buckets.")
    group_by: list[str] = Field(default_factory=list)
    aggregate: dict[str, str] = Field(default_factory=dict, description="name: p95(latency_ms), count(), ...")
    having: str | None = None
    sort: list[str] = Field(default_factory=list, description="Columns; a leading - sorts descending.")
    limit: int | None = Field(default=None, ge=0)
    select: list[str] | None = None
    description: str | None = None

    @field_validator("join", mode="before", json_schema_input_type=Join | list[Join])
    @classmethod
    def _join_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value

    @field_validator("group_by", "sort", mode="before", json_schema_input_type=str | list[str])
    @classmethod
    def _str_list(cls, value: Any) -> Any:
        return _one_or_many(value)

    @field_validator("select", mode="before", json_schema_input_type=str | list[str] | None)
    @classmethod
    def _str_list_or_none(cls, value: Any) -> Any:
        return _one_or_many(value)

    @model_validator(mode="after")
    def _one_input(self) -> Dataset:
        if (self.from_ is None) == (self.sql is None):
            raise ValueError("a dataset needs exactly one of 'from' or 'sql'")
        if self.sql is not None and (self.join or self.where or self.derive or self.group_by or self.aggregate):
            raise ValueError("a 'sql' dataset takes no join, where, derive, group_by or aggregate; write them in SQL")
        if self.every is not None and not (self.group_by or self.aggregate):
            raise ValueError("'every' buckets rows for aggregation; add 'aggregate' (and optionally 'group_by')")
        if self.having is not None and not self.aggregate:
            raise ValueError("'having' filters aggregated rows; add 'aggregate'")
        if self.every is not None and self.every <= timedelta(0):
            raise ValueError("'every' must be a positive duration")
        return self


class Column(StrictModel):
    label: str | None = None
    format: str | None = Field(default=None, description="number:N [unit], percent, currency:EUR, date, ...")
    formula: str | None = Field(default=None, description="An expression over other columns; a live formula in Excel.")
    hidden: bool = False


class _Section(StrictModel):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    title: str | None = None
    on_error: Literal["fail", "placeholder"] | None = Field(
        default=None,
        description="When its data, template, KPI or chart fails: fail the run, or render a placeholder saying what "
        "failed and deliver the rest (COMPLETED_WITH_WARNINGS); default the project's on_error (fail).",
    )


class TextSection(_Section):
    type: Literal["text"]
    template: str = Field(
        description="Markdown with Jinja: {{ datasets.x | length }}, {{ period.start | format_date }}"
    )


class Kpi(StrictModel):
    label: str
    value: str = Field(description="An aggregate over a dataset column, e.g. max(by_service.p95_latency).")
    format: str | None = None
    description: str | None = None


class KpisSection(_Section):
    type: Literal["kpis"]
    items: list[Kpi] = Field(min_length=1)


class TableSection(_Section):
    type: Literal["table"]
    dataset: str
    columns: dict[str, Column] = Field(default_factory=dict)
    max_rows: int | None = Field(default=None, ge=1)
    fail_on_empty: bool = False
    empty_message: str = "No data for this period"


class ChartSection(_Section):
    type: Literal["chart"]
    dataset: str
    chart: Literal["line", "bar", "area", "scatter", "pie", "donut", "heatmap"]
    x: str
    y: list[str] = Field(min_length=1)
    series: str | None = Field(default=None, description="A column whose values become separate series.")
    stacked: bool = False
    x_label: str | None = None
    y_label: str | None = None
    format: str | None = None
    fail_on_empty: bool = False

    @field_validator("y", mode="before", json_schema_input_type=str | Annotated[list[str], Field(min_length=1)])
    @classmethod
    def _y_list(cls, value: Any) -> Any:
        return _one_or_many(value)


Section = Annotated[TextSection | KpisSection | TableSection | ChartSection, Field(discriminator="type")]


class Output(BaseModel):
    """An output format and its writer's options; each writer validates its own."""

    model_config = ConfigDict(extra="allow", frozen=True)

    format: str


class Burst(StrictModel):
    """One variant of the report per recipient group, filtered by the policies for that group (see docs/security.md)."""

    by: Literal["team", "recipient"] = Field(
        default="team",
        description="team: each team:NAME or list:NAME recipient entry is a group, an address alone a group of one; "
        "recipient: every recipient gets a variant of their own.",
    )


class Schedule(StrictModel):
    """When the report runs: a cron, or a preset (``every``) read as the cron it means when the spec is loaded.

    ``every`` comes before ``cron`` because pydantic validates fields in order: ``cron``'s validator sees the preset.
    """

    every: str | None = Field(
        default=None,
        description="A preset instead of a cron, read as the cron it means; see docs/scheduling.md#presets.",
        examples=[*PRESET_EXAMPLES, "month on first monday at 09:00"],
    )
    cron: str = Field(
        default="",
        validate_default=True,
        description="Five-field cron expression, e.g. '0 9 * * MON'; give it or every, not both.",
    )
    timezone: TimeZoneName = "UTC"
    jitter: Duration = timedelta(0)
    overlap: Literal["skip", "queue"] = "skip"
    misfire_grace: Duration = timedelta(hours=1)
    priority: Literal["critical", "standard"] = "standard"
    retries: int = Field(default=0, ge=0, le=20)
    timeout: Duration | None = None
    enabled: bool = True
    parameters: dict[str, Any] = Field(default_factory=dict)
    rev: str | None = Field(
        default=None,
        description="Run the spec as at this git revision (a tag or commit), so edits reach the schedule only when "
        "released; default the working tree.",
    )

    @field_validator("every")
    @classmethod
    def _every(cls, value: str | None) -> str | None:
        if value is not None:
            preset_cron(value)  # raises the one-line error when the preset is not in the grammar
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str, info: ValidationInfo) -> str:
        if "every" not in info.data:  # the preset was refused, and that error says what to write
            return value
        every = info.data["every"]
        if every is not None:
            if value:
                raise ValueError(f"give cron '{value}' or every '{every}', not both (null drops one a base spec gives)")
            return preset_cron(every)
        if not value:
            raise ValueError(
                "missing required key 'cron' (or 'every'), e.g. cron: '0 9 * * MON' or every: 'day at 08:00'"
            )
        if len(value.split()) != 5 or parsed_cron(value) is None:
            raise ValueError(
                f"invalid cron expression '{value}'; use five fields: minute hour day-of-month month day-of-week, "
                "e.g. '0 9 * * MON'"
            )
        return value


class Spec(StrictModel):
    """A report definition."""

    api_version: Literal["reportctl/v1"] = Field(alias="apiVersion")
    name: Annotated[str, Field(pattern=NAME, max_length=100)]
    title: str | None = Field(default=None, description="A template; defaults to the name.")
    description: str | None = None
    version: str | None = None
    owner: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    abstract: bool = False
    extends: str | None = None
    timezone: TimeZoneName | None = Field(default=None, description="Defaults to the schedule's, then the project's.")
    locale: LocaleName | None = Field(
        default=None,
        description="How numbers, currencies and dates read (de_DE: 1.234,56 €); defaults to the project's.",
    )
    theme: Theme | None = Field(default=None, description="Logo, accent colour and font; defaults to the project's.")
    parameters: dict[Annotated[str, Field(pattern=IDENTIFIER)], Parameter] = Field(default_factory=dict)
    sources: dict[Annotated[str, Field(pattern=IDENTIFIER)], Annotated[SourceOptions, ByPlugin(SOURCES, "kind")]] = (
        Field(default_factory=dict)
    )
    datasets: dict[Annotated[str, Field(pattern=IDENTIFIER)], Dataset] = Field(default_factory=dict)
    sections: list[Section] = Field(default_factory=list)
    outputs: list[Annotated[Output, ByPlugin(WRITERS, "format")]] | None = Field(
        default=None, description="Defaults to the project's outputs."
    )
    schedule: Schedule | None = None
    burst: Burst | None = None
    delivery: list[Annotated[DeliveryEntry, ByPlugin(CHANNELS, "channel")]] = Field(default_factory=list)
    retention: Retention | None = Field(
        default=None,
        description="Runs kept and files' age, archive: {keep_runs: 100, artifacts: 90d, archive: s3://b/p/}; "
        "default the project's.",
    )
    alerts: AlertMapping | None = Field(
        default=None,
        description="How an Alertmanager notification (POST /alerts/SPEC) maps to parameters and the period: "
        "{parameters: {service: '{{ labels.service }}'}, period: incident, before: 30m, after: 10m}.",
    )

    @field_validator(
        "outputs",
        mode="before",
        json_schema_input_type=list[Annotated[Output, ByPlugin(WRITERS, "format", True)]] | None,
    )
    @classmethod
    def _output_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"format": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("labels", mode="before", json_schema_input_type=dict[str, str | float])
    @classmethod
    def _label_values_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v if isinstance(v, str | bool) else str(v) for k, v in value.items()}
        return value

    def report_timezone(self, default: str) -> str:
        """The zone periods and timestamps are shown in: the spec's, else its schedule's, else ``default``."""
        if self.timezone:
            return self.timezone
        if self.schedule:
            return self.schedule.timezone
        return default
