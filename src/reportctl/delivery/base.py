"""What a delivery channel is, and what it is given to do its work.

A channel plugin sends one attempt to one batch of recipients and says, per recipient, how it went. Everything
around that is the engine's (``reportctl.delivery.engine``): resolving recipients, the ledger, batching, the rate
limit, concurrency, retries with backoff, and never sending to a recipient twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import Field, model_validator

from reportctl.errors import ReportctlError
from reportctl.spec.delivery import EncryptOptions
from reportctl.spec.types import IDENTIFIER, PositiveDuration, StrictModel

if TYPE_CHECKING:
    from reportctl.artifact_store import ArtifactStore
    from reportctl.config import Project
    from reportctl.delivery.encrypted import EncryptedFiles
    from reportctl.delivery.recipients import Directory
    from reportctl.run_record import Artifact, RunResult
    from reportctl.state.models import RunRecord

When = Literal["success", "failure", "always"]
Status = Literal["sent", "failed", "bounced", "retry"]
"""An attempt's result for one recipient; ``retry`` is a temporary failure the engine tries again."""


# mimetypes knows some of these only on some systems; how an artifact is sent must not depend on the machine
MEDIA_TYPES = {
    ".csv": "text/csv",
    ".gz": "application/gzip",  # a compressed output (sales.csv.gz) is sent as the archive it is, not as text/csv
    ".zst": "application/zstd",
    ".html": "text/html",
    ".json": "application/json",
    ".md": "text/markdown",
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".zip": "application/zip",
}


def media_type(name: str) -> str:
    """The media type of a file an artifact is sent as (attached, uploaded), from its name."""
    import mimetypes

    suffix = Path(name).suffix.lower()
    return MEDIA_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


class ChannelOptions(StrictModel):
    """Options every delivery entry has; each channel plugin's ``Options`` extends this with its own."""

    channel: str = Field(description="Which channel plugin delivers: email, webhook, slack, s3, file, ...")
    id: str | None = Field(
        default=None,
        pattern=IDENTIFIER,
        description="Names this delivery in the ledger and for `deliver --only`; default the channel's name.",
    )
    when: When = Field(default="success", description="Deliver when the run succeeded, failed, or always.")
    retries: int = Field(default=3, ge=0, le=10, description="Tries after the first on a temporary failure.")
    backoff: PositiveDuration = Field(
        default=timedelta(seconds=1), description="Wait before the first retry; doubled for each next (1 s, 2 s, 4 s)."
    )
    encrypt: EncryptOptions | None = Field(
        default=None,
        description="Send the files password-protected: PDF (AES-256) and Excel (agile) encrypted, other formats in "
        "an AES-256 ZIP (encrypt.zip); passwords from secrets, per delivery or per recipient, never in the message.",
    )

    @model_validator(mode="after")
    def _nothing_in_the_clear(self) -> ChannelOptions:
        """An encrypted delivery that names a format it cannot encrypt would send that file in the clear."""
        if self.encrypt is None:
            return self
        if self.encrypt.passwords and self.channel == "file":  # its outbox holds one message and one set of files
            raise ValueError(
                "encrypt.passwords: the file channel writes one outbox message for everyone, so it cannot carry a "
                "password per recipient; use encrypt.password, or an email delivery for per-recipient passwords"
            )
        for name in ("attach", "formats"):
            chosen = [f for f in getattr(self, name, None) or [] if f != "manifest"]
            plain = self.encrypt.unprotected(chosen)
            if plain:
                raise ValueError(
                    f"{name}: {', '.join(plain)} cannot be encrypted on its own (only pdf and xlsx can); add it to "
                    f"encrypt.zip to send it in an AES-256 ZIP, or take it out of {name}"
                )
        return self

    @property
    def name(self) -> str:
        """This delivery's name in the ledger."""
        return self.id or self.channel


@dataclass(frozen=True)
class Recipient:
    """One destination of a delivery, as the ledger records it."""

    address: str
    """What the ledger shows: an email address, a URL with its secrets masked, a Slack channel, an s3:// URL."""
    target: str = ""
    """What the channel sends to when it differs from ``address`` (a URL holding a secret); empty means address."""
    role: str = "to"
    """Email's to, cc or bcc; other channels leave it."""
    problem: str | None = None
    """Why this recipient cannot be sent to (a malformed address, an empty team): recorded as failed, never tried."""

    @property
    def destination(self) -> str:
        return self.target or self.address


@dataclass(frozen=True)
class Outcome:
    """How one attempt went for one recipient; ``response`` is the provider's answer (redacted before storing)."""

    status: Status
    response: str
    retry_after: float | None = None
    """Seconds the provider asked us to wait before retrying (HTTP Retry-After); the engine caps it."""


class TemporaryFailure(Exception):
    """The whole batch failed in a way worth retrying: a connection error, SMTP 4xx, HTTP 5xx, 429, a timeout."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentFailure(Exception):
    """The whole batch failed in a way retrying cannot fix: wrong credentials, HTTP 4xx, a missing bucket."""


class ChannelCheckError(ReportctlError):
    """``reportctl doctor`` found a channel unreachable or misconfigured; the message says what to fix."""


@dataclass(frozen=True)
class DeliveryTarget:
    """The run being delivered: what the channels are told about it."""

    run_id: str
    report: str
    title: str
    status: Literal["completed", "failed"]
    error: str | None
    parameters: Mapping[str, Any]
    now: datetime
    directory: Path | None
    """The run's output folder, OUT/<name>/<run-id>/; None for a run that failed before writing anything."""
    artifacts: tuple[Artifact, ...]
    audience: tuple[str, ...] | None = field(default=None, kw_only=True)
    """A burst variant's recipients (lower-case addresses): the only ones it may be delivered to."""

    @classmethod
    def rendered(cls, result: RunResult, now: datetime) -> DeliveryTarget:
        """A run this process has just rendered."""
        return cls(
            result.run_id,
            result.report,
            result.title or result.report,
            "completed",
            None,
            result.parameters,
            now,
            result.directory,
            tuple(result.artifacts),
            audience=result.audience,
        )

    @classmethod
    def failed(
        cls, run_id: str, report: str, error: str, parameters: Mapping[str, Any], now: datetime
    ) -> DeliveryTarget:
        """A run that failed before it wrote anything: only ``when: failure|always`` deliveries apply."""
        return cls(run_id, report, report, "failed", error, parameters, now, None, ())

    @classmethod
    def recorded(cls, record: RunRecord) -> DeliveryTarget:
        """A run from the state store, its artifacts read back from where it wrote them."""
        import json

        from reportctl.run_record import Artifact

        directory = Path(record.output_dir) if record.output_dir else None
        artifacts = []
        for item in record.artifacts:
            path = Path(str(item["path"]))
            if directory is not None and not path.is_absolute():
                path = directory / path
            url = str(item["url"]) if item.get("url") else None
            artifacts.append(Artifact(str(item["format"]), path, int(item["bytes"]), str(item["sha256"]), url))
        title = record.report
        now = record.scheduled_for or record.started_at or record.created_at
        if directory is not None and (directory / "manifest.json").is_file():
            manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
            title = str(manifest.get("title") or title)
            # the run's time as its first delivery was told it: a later delivery's messages then say the same
            # (an email's Date, ``run.time`` in templates), and a message sent again is the same message
            generated = manifest.get("generated_at")
            now = datetime.fromisoformat(generated) if isinstance(generated, str) else now
        failed = record.state.value == "FAILED"
        return cls(
            record.id,
            record.report,
            title,
            "failed" if failed else "completed",
            record.error,
            record.parameters or {},
            now,
            directory,
            tuple(artifacts),
            audience=record.audience,
        )


@dataclass(frozen=True)
class DeliveryContext(DeliveryTarget):
    """What a channel is given about the run it delivers: the run, and the project around it."""

    timezone: str
    project: Project
    people: Directory
    """Who ``team:NAME`` and ``list:NAME`` are; read on first use."""
    links: dict[str, str] = field(default_factory=dict)
    """Artifact format -> download URL, filled by channels that publish artifacts (s3) for the channels after them."""
    dry_run: bool = False
    encryption: EncryptedFiles | None = None
    """Set when ``artifacts`` are a delivery's encrypted copies: which, and how the password travels."""

    @classmethod
    def of(
        cls, target: DeliveryTarget, *, timezone: str, project: Project, people: Directory, dry_run: bool = False
    ) -> DeliveryContext:
        """``target`` with what channels need of the project."""
        run = {f.name: getattr(target, f.name) for f in fields(DeliveryTarget)}
        return cls(**run, timezone=timezone, project=project, people=people, dry_run=dry_run)

    def artifact(self, format: str) -> Artifact | None:
        """The run's artifact of ``format`` (pdf, xlsx, ...), if it wrote one."""
        return next((a for a in self.artifacts if a.format == format), None)

    def link(self, artifact: Artifact) -> str | None:
        """A URL for ``artifact``: a published link (s3), else the project's ``artifact_base_url`` plus its path,
        else a signed link to where the artifact store keeps it (valid ``artifacts.link_expiry``)."""
        if self.encryption is not None:  # a link would lead to the plain file, or to a copy deleted after sending
            return None
        # a publisher keys the first artifact of a format by the format, and any further ones by file name
        published = self.links.get(artifact.path.name) or self.links.get(artifact.format)
        if published:
            return published
        base = self.project.config.artifact_base_url
        if not base:
            return self._artifact_store.link(artifact.url) if artifact.url and self._artifact_store else None
        try:
            relative = artifact.path.relative_to(self.project.output_dir)
        except ValueError:
            relative = Path(artifact.path.name)
        return base.rstrip("/") + "/" + relative.as_posix()

    @cached_property
    def _artifact_store(self) -> ArtifactStore | None:
        from reportctl.artifact_store import ArtifactStore

        return ArtifactStore.of(self.project)

    def template_values(self) -> dict[str, Any]:
        """What subject and body templates see: title, name, run, parameters, artifacts, links."""
        return {
            "title": self.title,
            "name": self.report,
            "run": {
                "id": self.run_id,
                "date": self.now.date().isoformat(),
                "time": self.now,
                "status": self.status,
                "error": self.error,
            },
            "parameters": dict(self.parameters),
            "params": dict(self.parameters),
            "artifacts": [
                {"format": a.format, "name": a.path.name, "bytes": a.bytes, "sha256": a.sha256, "link": self.link(a)}
                for a in self.artifacts
            ],
            "links": dict(self.links),
            "encryption": self.encryption.note() if self.encryption is not None else None,
        }

    def render(self, template: str, where: str) -> str:
        """``template`` rendered in the sandbox with ``template_values``; ``where`` names it in errors."""
        from reportctl.templating import render_template

        return render_template(
            template,
            self.template_values(),
            where=where,
            timezone=self.timezone,
            limits=self.project.config.templates,
        )


class Channel(Protocol):
    """A delivery channel plugin, registered in the entry-point group ``reportctl.channels``."""

    PLUGIN_NAME: ClassVar[str]
    Options: ClassVar[type[ChannelOptions]]
    PUBLISHES: ClassVar[bool]
    """True for channels whose ``links`` other channels use (s3): the engine runs them first."""
    RESEND_EFFECT: ClassVar[str]
    """What a receiver gets when a send that may have arrived is made again (``deliver --resend-unknown``): how it
    can tell the copy and drop it, or that it cannot. Shown to whoever asked for the resend."""

    batch_size: int
    """Recipients per ``send`` call (email: one envelope)."""
    concurrency: int
    """``send`` calls in flight at once; above 1, ``send`` must be thread-safe."""
    rate_limit: float | None
    """Recipients per second, held over every one-second window; None for no limit."""

    def __init__(self, options: Any, context: DeliveryContext) -> None: ...

    def recipients(self) -> list[Recipient]:
        """Everyone this delivery goes to, resolved now (``team:``/``list:`` through ``context.people``)."""

    def send(self, batch: Sequence[Recipient]) -> Mapping[str, Outcome]:
        """One attempt for ``batch``: an ``Outcome`` per ``Recipient.address``.

        Raise ``TemporaryFailure`` or ``PermanentFailure`` when the whole batch failed alike.
        """

    def preview(self, batch: Sequence[Recipient]) -> str:
        """What ``send`` would send to ``batch``, for ``--dry-run``: the message, without sending anything."""

    def links(self) -> Mapping[str, str]:
        """Artifact format -> URL, once this delivery has been sent (s3 presigned links); others return {}."""

    def close(self) -> None:
        """Release connections; called once after the last ``send``."""

    @classmethod
    def check(cls, options: Any, project: Project) -> str:
        """For ``reportctl doctor``: reach the service without sending anything and say what was found.

        Raise ``ChannelCheckError`` with the fix when it cannot be reached or is misconfigured.
        """
