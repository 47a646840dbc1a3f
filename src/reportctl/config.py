"""The project: ``reportctl.yaml`` and where it is.

The project root is the nearest folder at or above a spec that holds ``reportctl.yaml``. Without one, the current
folder is the root and the defaults apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, ByteSize, Field, field_validator, model_validator

from reportctl.s3_settings import S3Connection
from reportctl.spec.types import LocaleName, PositiveDuration, StrictModel, Theme, TimeZoneName

if TYPE_CHECKING:
    from reportctl.template_sandbox import TemplateLimits

CONFIG_NAME = "reportctl.yaml"
MIN_SCHEDULER_LEASE = timedelta(seconds=3)


class ArchiveConfig(StrictModel, S3Connection):
    """Where and how retention archives files past their age: an S3 (or S3-compatible) bucket, with the s3
    channel's connection keys. ``url`` is the default archive of every report; a spec's ``retention.archive``
    names another bucket or prefix reached with these same settings."""

    url: str | None = Field(
        default=None,
        description="s3://bucket/prefix/: every report's files past state.retention go to <prefix><report>/<run-id>/ "
        "instead of being deleted; default none (each spec may set retention.archive).",
    )

    @model_validator(mode="before")
    @classmethod
    def _url_alone(cls, value: Any) -> Any:
        """``archive: s3://bucket/prefix/`` means ``{url: s3://bucket/prefix/}``."""
        return {"url": value} if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _s3_location(cls, value: str | None) -> str | None:
        from reportctl.delivery.s3_options import parse_location

        return None if value is None else parse_location(value.strip()).url


class StateConfig(StrictModel):
    """Where runs are recorded and how long their history and files are kept."""

    url: str | None = Field(
        default=None,
        description="Database URL of the state store (sqlite:///path or postgresql://user@host/db; ${secret:NAME} "
        "allowed); default sqlite:///.reportctl/state.db. REPORTCTL_STATE_URL overrides it.",
    )
    history: int = Field(default=100, ge=0, description="Runs kept per report; older finished runs are forgotten.")
    retention: PositiveDuration | None = Field(
        default=timedelta(days=30),
        description="Age after which a finished run's artifacts are deleted (or archived); null keeps them.",
    )
    archive: ArchiveConfig | None = Field(
        default=None,
        description="Archive instead of delete: {url: s3://bucket/prefix/, endpoint_url: ..., ...}; the connection "
        "every retention.archive uses. A spec's retention: overrides history, retention and archive per report.",
    )
    heartbeat_timeout: PositiveDuration = Field(
        default=timedelta(minutes=2), description="A run whose worker is silent this long is failed as 'worker lost'."
    )
    scheduler_lease: PositiveDuration = Field(
        default=timedelta(seconds=15),
        description="How long a daemon's hold on the scheduler lasts unless renewed (every third of it); a standby "
        "daemon takes over within this time after the holder stops. At least 3s.",
    )

    @field_validator("scheduler_lease")
    @classmethod
    def _renewable_lease(cls, value: timedelta) -> timedelta:
        if value < MIN_SCHEDULER_LEASE:
            raise ValueError(
                f"{value.total_seconds():g}s is too short: the lease is renewed every third of it, so it must be "
                f"at least {MIN_SCHEDULER_LEASE.total_seconds():g}s"
            )
        return value


class DirectoryConfig(StrictModel):
    """Where ``team:NAME`` and ``list:NAME`` recipients are looked up, at each run."""

    file: str | None = Field(
        default=None,
        description="people.yaml or a CSV (email, name, teams, lists), relative to the project; default people.yaml "
        "when it exists.",
    )
    source: dict[str, Any] | None = Field(
        default=None,
        description="A source (kind: sql or http, as in specs) whose rows have columns email, name, teams, lists.",
    )


class CacheConfig(StrictModel):
    """The query cache: results of sql and http sources reused by every run of the project for a while."""

    enabled: bool = Field(default=True, description="false: every run queries every source itself.")
    ttl: PositiveDuration = Field(
        default=timedelta(minutes=5), description="How long a result is reused when a source names no cache.ttl."
    )


class LocalExecutor(StrictModel):
    """Runs render on the machine that fires them, in worker processes of the daemon (or of a tick)."""

    kind: Literal["local"] = "local"


Priority = Literal["critical", "standard"]
DEFAULT_QUEUES: dict[Priority, str] = {"critical": "reportctl.critical", "standard": "reportctl.standard"}


class CeleryExecutor(StrictModel):
    """Runs carried by Celery on a Redis broker to ``reportctl worker`` processes on any number of machines."""

    kind: Literal["celery"]
    broker: str = Field(
        description="The Redis broker: redis://host:6379/0, rediss:// for TLS (${secret:NAME} allowed); "
        "REPORTCTL_BROKER_URL overrides it."
    )
    queues: dict[Priority, str] = Field(
        default_factory=lambda: dict(DEFAULT_QUEUES),
        description="The queue of each priority; workers choose theirs with `reportctl worker --queues`.",
    )
    visibility_timeout: PositiveDuration = Field(
        default=timedelta(hours=2),
        description="How long a run taken by a worker that vanished stays invisible before Redis hands it to "
        "another worker; it must exceed the longest report timeout.",
    )

    @field_validator("queues")
    @classmethod
    def _every_priority(cls, value: dict[Priority, str]) -> dict[Priority, str]:
        """A priority left out keeps its default queue."""
        return DEFAULT_QUEUES | value

    @field_validator("broker")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "${secret:")):
            raise ValueError(f"broker must be a redis:// or rediss:// URL, not '{value[:60]}'")
        return value


def _executor_by_name(value: Any) -> Any:
    """``executor: local`` (a name) means ``{kind: local}``."""
    return {"kind": value} if isinstance(value, str) else value


Executor = Annotated[LocalExecutor | CeleryExecutor, Field(discriminator="kind"), BeforeValidator(_executor_by_name)]


class ArtifactStoreConfig(StrictModel, S3Connection):
    """Where every recorded run's files are kept for every machine: an S3 (or S3-compatible) bucket and prefix.

    Each run's artifacts and manifest.json go to <url><report>/<run-id>/ once its folder is in place; its record
    in the state store gives each artifact's s3:// URL. The connection keys are those of the s3 channel.
    """

    url: str = Field(description="The bucket and prefix, s3://bucket/prefix/; runs go to <prefix><report>/<run-id>/.")
    retries: int = Field(
        default=3, ge=0, le=10, description="Tries after the first when an upload fails for a while (1 s, 2 s, 4 s)."
    )
    link_expiry: PositiveDuration = Field(
        default=timedelta(days=7), description="How long `runs show --links` download links stay valid; at most 7d."
    )

    @model_validator(mode="before")
    @classmethod
    def _url_alone(cls, value: Any) -> Any:
        """``artifacts: s3://bucket/prefix/`` means ``{url: s3://bucket/prefix/}``."""
        return {"url": value} if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _s3_location(cls, value: str) -> str:
        from reportctl.delivery.s3_options import parse_location

        parse_location(value.strip())
        return value.strip()

    @model_validator(mode="after")
    def _consistent(self) -> ArtifactStoreConfig:
        from reportctl.extras import missing_extra

        problem = missing_extra("boto3", "the artifact store")
        if problem:
            raise ValueError(problem)
        return self


class TemplateSettings(StrictModel):
    """Bounds on every template render (titles, text sections, delivery subjects, bodies and paths), so a runaway
    or hostile template fails with the limit named instead of filling memory, disk or a receiver's inbox."""

    max_output: ByteSize = Field(
        default=ByteSize(1_000_000),
        gt=0,
        description="The most one template may output, and the largest value it may build: 1MB, 500KB, 2MiB.",
    )
    max_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="The longest one template render may run, in seconds."
    )

    def limits(self) -> TemplateLimits:
        from reportctl.template_sandbox import TemplateLimits

        return TemplateLimits(max_output=int(self.max_output), max_seconds=self.max_seconds)


class AuditConfig(StrictModel):
    """How long the audit log (``reportctl audit``) keeps its entries."""

    retention: PositiveDuration | None = Field(
        default=None,
        description="Age after which audit entries are deleted (e.g. 400d), after each run; null keeps them for ever.",
    )


class ApiConfig(StrictModel):
    """The daemon's HTTP API (``schedule daemon --listen``): who may trigger runs, and how download links are signed.
    Both name secrets (``reportctl secrets set NAME`` or ``REPORTCTL_SECRET_<NAME>``), never values."""

    tokens: list[str] = Field(
        default_factory=list,
        description="Names of the secrets whose values are the bearer tokens POST /runs and POST /alerts accept; an "
        "audit entry names the secret (actor api:NAME). None: every triggering request is refused (401).",
    )
    signing_key: str | None = Field(
        default=None,
        description="Name of the secret that signs artifact download links (HMAC-SHA256); none: GET /runs/ID lists "
        "artifacts without links.",
    )
    link_expiry: PositiveDuration = Field(
        default=timedelta(hours=1), description="How long a signed artifact download link stays valid."
    )

    @field_validator("tokens")
    @classmethod
    def _secret_names(cls, value: list[str]) -> list[str]:
        from reportctl.secrets import SECRET_NAME

        for name in value:
            if not SECRET_NAME.match(name):
                raise ValueError(f"'{name}' is not a secret name; use letters, digits, '_', '-' and '.'")
        return value


class ProjectConfig(StrictModel):
    """Settings shared by every spec of a reports project."""

    timezone: TimeZoneName = Field(default="UTC", description="Report time zone when a spec names none.")
    locale: LocaleName = Field(
        default="en_US", description="How numbers, currencies and dates read when a spec names no locale."
    )
    theme: Theme = Field(default_factory=Theme, description="Logo, accent colour and font of every report.")
    specs: list[str] = Field(default_factory=lambda: ["specs"], description="Folders that hold specs.")
    output_dir: str = Field(default="out", description="Where artifacts go: OUT/<name>/<run-id>/.")
    outputs: list[str] = Field(default_factory=lambda: ["csv", "json"], description="Default output formats.")
    on_error: Literal["fail", "placeholder"] = Field(
        default="fail",
        description="What a section whose data, template, KPI or chart fails does when it sets no on_error: fail "
        "the run, or render a placeholder and deliver the rest.",
    )
    allow_paths: list[str] = Field(
        default_factory=list, description="Folders outside the project that file sources may read."
    )
    state: StateConfig = Field(default_factory=StateConfig, description="The state store: runs, history, retention.")
    audit: AuditConfig = Field(default_factory=AuditConfig, description="The audit log: how long entries are kept.")
    api: ApiConfig = Field(
        default_factory=ApiConfig,
        description="The daemon's HTTP API: {tokens: [secret names], signing_key: secret name, link_expiry: 1h}.",
    )
    channels: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Defaults for every delivery on a channel, e.g. email: {host: smtp.example.com, from: ...}.",
    )
    directory: DirectoryConfig = Field(
        default_factory=DirectoryConfig, description="People, teams and lists for team:NAME and list:NAME recipients."
    )
    cache: CacheConfig = Field(
        default_factory=CacheConfig, description="The query cache under .reportctl/cache, shared by every run."
    )
    policies: str | None = Field(
        default=None,
        description="The row-level policies file (who sees which rows of sources with protected_by), relative to "
        "the project; default policies.yaml when it exists.",
    )
    executor: Executor = Field(
        default_factory=LocalExecutor,
        description="Where runs render: local (worker processes of the daemon) or {kind: celery, broker: "
        "redis://...} (queued for `reportctl worker` processes on any machine).",
    )
    snapshots: bool = Field(
        default=False,
        description="Save every run's source data (Parquet) in OUT/<name>/<run-id>/snapshot/, so `reportctl replay` "
        "can render any run again; a snapshot expires with its run's files.",
    )
    artifact_base_url: str | None = Field(
        default=None,
        description="Where the output folder is served (https://reports.example.com/out/), for links to artifacts "
        "when no s3 delivery publishes them.",
    )
    templates: TemplateSettings = Field(
        default_factory=TemplateSettings,
        description="Limits of every template render: {max_output: 1MB, max_seconds: 5}.",
    )
    artifacts: ArtifactStoreConfig | None = Field(
        default=None,
        description="The artifact store: {url: s3://bucket/prefix/, ...} keeps every recorded run's files there for "
        "every machine (workers on their own disks); `runs show` gives their URLs.",
    )

    @field_validator("outputs")
    @classmethod
    def _known_writers(cls, value: list[str]) -> list[str]:
        from reportctl.plugins import WRITERS, plugin_names, unknown_plugin_message

        for name in value:
            if name not in plugin_names(WRITERS):
                raise ValueError(unknown_plugin_message(WRITERS, name))
        return value

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from reportctl.plugins import CHANNELS, load_plugin, plugin_names, unknown_plugin_message

        for name, defaults in value.items():
            if name not in plugin_names(CHANNELS):
                raise ValueError(unknown_plugin_message(CHANNELS, name))
            fields = load_plugin(CHANNELS, name).Options.model_fields
            known = {f.alias or key for key, f in fields.items()} - {"channel", "id"}
            for key in defaults:
                if key not in known:
                    raise ValueError(f"{name}: '{key}' is not a default a {name} delivery can take")
        return value


@dataclass(frozen=True)
class Project:
    root: Path
    config: ProjectConfig
    config_file: Path | None

    @property
    def output_dir(self) -> Path:
        return (self.root / self.config.output_dir).resolve()

    @property
    def spec_dirs(self) -> list[Path]:
        return [self.root / d for d in self.config.specs]

    @property
    def cache_dir(self) -> Path:
        return self.root / ".reportctl" / "cache"

    @property
    def allowed_paths(self) -> tuple[Path, ...]:
        return tuple((self.root / p).expanduser().resolve() for p in self.config.allow_paths)


def find_config(start: Path) -> Path | None:
    """The nearest ``reportctl.yaml`` at or above ``start``."""
    here = start.resolve()
    for folder in [here, *here.parents] if here.is_dir() else list(here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def load_config(path: Path) -> ProjectConfig:
    """Read and validate ``reportctl.yaml``; problems come back as a ``SpecError`` with positions."""
    from reportctl.spec.validation import validate_model
    from reportctl.spec.yamlpos import load_yaml

    data = load_yaml(read_text(path), path)
    return validate_model(ProjectConfig, {} if data is None else data, path)


def find_project(start: Path | None = None) -> Project:
    """The project that ``start`` (a spec file or folder; default the working folder) belongs to."""
    start = (start or Path.cwd()).resolve()
    config_file = find_config(start)
    if config_file is None:
        root = Path.cwd().resolve()
        return Project(root, ProjectConfig(), None)
    return Project(config_file.parent, load_config(config_file), config_file)


def read_text(path: Path) -> str:
    """A text file's content, or a ``SpecError`` naming the file and what went wrong."""
    from reportctl.errors import Problem, SpecError

    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem("file not found", file=path)]) from None
    except UnicodeDecodeError:
        from reportctl.spec.reading import not_utf8

        raise not_utf8(path.read_bytes(), path) from None  # the text decoder's offsets count from its last chunk
    except OSError as exc:
        raise SpecError([Problem(f"cannot read: {exc.strerror}", file=path)]) from None
