"""The ``s3`` channel: uploads a run's artifacts to S3 or any S3-compatible store and publishes presigned links.

It runs before the other channels (``PUBLISHES``), whose messages then link to the uploaded files. The engine does
the retries, so the client makes a single attempt per request. ``make_client``, ``upload_file``,
``object_arguments`` and ``presigned_link`` serve the project's artifact store too (``reportctl.artifact_store``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from reportctl.delivery.base import (
    ChannelCheckError,
    ChannelOptions,
    DeliveryContext,
    Outcome,
    PermanentFailure,
    Recipient,
    TemporaryFailure,
)
from reportctl.delivery.keys import contained
from reportctl.delivery.s3_options import (
    MANIFEST,
    PART_SIZE,
    Location,
    S3Options,
    content_type,
    is_template,
    parse_location,
)
from reportctl.digests import file_sha256
from reportctl.net import exception_chain
from reportctl.spec.types import format_duration_spec

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from reportctl.config import Project


_CREDENTIAL_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "403"}
)
_TEMPORARY_CODES = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling"})
_NO_CREDENTIALS = (
    "no S3 credentials found; set access_key_id and secret_access_key (e.g. ${secret:S3_SECRET_KEY}), "
    "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or an AWS profile"
)


@dataclass(frozen=True)
class Upload:
    """One file to upload: an artifact, or the run's manifest."""

    format: str
    path: Path
    bytes: int
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name


class S3Channel:
    """Uploads each artifact to <prefix><file name>, one recipient: the bucket and prefix."""

    PLUGIN_NAME: ClassVar[str] = "s3"
    Options: ClassVar[type[ChannelOptions]] = S3Options
    PUBLISHES: ClassVar[bool] = True
    RESEND_EFFECT: ClassVar[str] = "the files were uploaded again to the same keys, replacing the first upload"

    def __init__(self, options: S3Options, context: DeliveryContext) -> None:
        self.options = options
        self.context = context
        self.batch_size = 1
        self.concurrency = 1
        self.rate_limit: float | None = None
        self._client: S3Client | None = None

    def recipients(self) -> list[Recipient]:
        from reportctl.templating import TemplateError

        try:
            location = self._location()
            self._uploads()
        except (TemplateError, PermanentFailure) as exc:
            return [Recipient(self.options.url.strip(), problem=str(exc))]
        return [Recipient(location.url)]

    def send(self, batch: Sequence[Recipient]) -> Mapping[str, Outcome]:
        outcomes = {}
        for recipient in batch:
            location = _location_or_failure(recipient.destination)
            uploads = self._uploads()
            client = self._s3()
            for upload in uploads:
                upload_file(
                    client, upload.path, location.bucket, location.prefix + upload.name, self._extra_args(upload)
                )
            from reportctl.formats import format_bytes

            size = format_bytes(sum(u.bytes for u in uploads))
            outcomes[recipient.address] = Outcome("sent", f"uploaded {_files(len(uploads))} ({size}) to {location.url}")
        return outcomes

    def preview(self, batch: Sequence[Recipient]) -> str:
        from reportctl.formats import format_bytes

        uploads = self._uploads()
        endpoint = self.options.endpoint_url or f"AWS S3 ({self.options.region or 'default region'})"
        encryption = f", encrypted with {self.options.sse}" if self.options.sse else ""
        expiry = format_duration_spec(self.options.link_expiry)
        lines = []
        for recipient in batch:
            location = _location_or_failure(recipient.destination)
            lines.append(
                f"upload {_files(len(uploads))} to {location.url} at {endpoint}{encryption}; links valid for {expiry}"
            )
            rows = [(location.url + u.name, content_type(u.name), format_bytes(u.bytes)) for u in uploads]
            widths = [max((len(row[i]) for row in rows), default=0) for i in (0, 1)]
            lines += [f"  {key.ljust(widths[0])}  {kind.ljust(widths[1])}  {size}" for key, kind, size in rows]
        return "\n".join(lines)

    def links(self) -> Mapping[str, str]:
        """Artifact format -> presigned GET URL, computed locally from the options and the run (no request)."""
        location = self._location()
        client = self._s3()
        expires = int(self.options.link_expiry.total_seconds())
        links: dict[str, str] = {}
        for upload in self._uploads():
            url = presigned_link(client, location.bucket, location.prefix + upload.name, expires)
            # several artifacts of one format (a CSV per table): the first keeps the format, the rest their file name
            links[upload.name if upload.format in links else upload.format] = url
        return links

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    @classmethod
    def check(cls, options: Any, project: Project) -> str:
        """Ask for the bucket (HEAD) without writing anything."""
        from botocore.exceptions import BotoCoreError, ClientError

        settings = options if isinstance(options, S3Options) else S3Options.model_validate(options)
        bucket = settings.url.strip().removeprefix("s3://").partition("/")[0]
        if is_template(bucket):
            raise ChannelCheckError(
                f"url '{settings.url}': the bucket is a template, so it cannot be checked before a run; "
                "write the bucket literally and template only the prefix"
            )
        try:
            client = make_client(settings)
        except (BotoCoreError, ValueError) as exc:
            raise ChannelCheckError(f"cannot set up the S3 client: {exc}") from exc
        endpoint = client.meta.endpoint_url
        try:
            client.head_bucket(Bucket=bucket)
        except (BotoCoreError, ClientError) as exc:
            raise ChannelCheckError(str(_failure(exc, bucket, endpoint))) from exc
        finally:
            client.close()
        return f"bucket '{bucket}' reachable at {endpoint}"

    def _location(self) -> Location:
        """The url rendered for this run; PermanentFailure when it renders to something that is not s3://."""
        where = f"delivery {self.options.name}: url"
        rendered = self.context.render(self.options.url, where=where).strip()
        return _location_or_failure(contained(rendered, self.options.url.strip(), where))

    def _uploads(self) -> list[Upload]:
        """The files this delivery uploads, in the run's order, the manifest last."""
        wanted = self.options.formats
        artifacts = list(self.context.artifacts)
        if wanted is not None:
            written = {a.format for a in artifacts}
            missing = [f for f in wanted if f != MANIFEST and f not in written]
            if missing:
                raise PermanentFailure(
                    f"formats lists {', '.join(missing)} but the run wrote no such artifact "
                    f"(it wrote {', '.join(sorted(written)) or 'none'})"
                )
            artifacts = [a for a in artifacts if a.format in wanted]
        uploads = [Upload(a.format, a.path, a.bytes, a.sha256) for a in artifacts]
        directory = self.context.directory
        manifest = directory / "manifest.json" if directory is not None else None
        wants_manifest = wanted is None or MANIFEST in wanted
        listed = manifest is not None and any(u.name == manifest.name for u in uploads)
        if manifest is not None and wants_manifest and not listed and manifest.is_file():
            uploads.append(Upload(MANIFEST, manifest, manifest.stat().st_size, file_sha256(manifest)))
        return uploads

    def _extra_args(self, upload: Upload) -> dict[str, Any]:
        return object_arguments(upload.name, upload.sha256, self.context.run_id, self.options)

    def _s3(self) -> S3Client:
        from botocore.exceptions import BotoCoreError

        if self._client is None:
            try:
                self._client = make_client(self.options)
            except (BotoCoreError, ValueError) as exc:
                raise PermanentFailure(f"cannot set up the S3 client: {exc}") from exc
        return self._client


class S3Connection(Protocol):
    """How to reach a bucket: what ``make_client`` needs of the s3 channel's options or of the artifact store's."""

    @property
    def endpoint_url(self) -> str | None: ...
    @property
    def region(self) -> str | None: ...
    @property
    def access_key_id(self) -> str | None: ...
    @property
    def secret_access_key(self) -> str | None: ...
    @property
    def addressing_style(self) -> Literal["auto", "path", "virtual"]: ...
    @property
    def timeout(self) -> timedelta: ...
    @property
    def sse(self) -> Literal["AES256", "aws:kms"] | None: ...
    @property
    def kms_key_id(self) -> str | None: ...


def make_client(options: S3Connection) -> S3Client:
    """An S3 client for ``options``: one attempt per request, their timeouts, SigV4 and addressing style."""
    import boto3
    from botocore.config import Config

    seconds = options.timeout.total_seconds()
    session = boto3.session.Session(
        aws_access_key_id=options.access_key_id,
        aws_secret_access_key=options.secret_access_key,
        region_name=options.region,
    )
    config = Config(
        connect_timeout=seconds,
        read_timeout=seconds,
        # total_max_attempts counts the first request; the engine retries whole deliveries with its own backoff
        retries={"mode": "standard", "total_max_attempts": 1},
        s3={"addressing_style": options.addressing_style},
        signature_version="s3v4",
    )
    return session.client("s3", endpoint_url=options.endpoint_url, config=config)


def upload_file(client: S3Client, path: Path, bucket: str, key: str, extra_args: Mapping[str, Any]) -> None:
    """Put the file ``path`` at ``key`` (multipart above ``PART_SIZE``); a failure is raised as a
    ``TemporaryFailure`` (worth retrying) or a ``PermanentFailure`` saying what to fix."""
    from boto3.exceptions import S3UploadFailedError
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import BotoCoreError, ClientError

    config = TransferConfig(
        multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE, preferred_transfer_client="classic"
    )
    try:
        client.upload_file(str(path), bucket, key, ExtraArgs=dict(extra_args), Config=config)
    except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
        raise _failure(exc, bucket, client.meta.endpoint_url) from exc
    except OSError as exc:
        raise PermanentFailure(f"cannot read {path}: {exc.strerror or exc}") from exc


def download_file(client: S3Client, bucket: str, key: str, path: Path) -> tuple[int, str, str | None]:
    """Write the object ``key`` to the file ``path``: its size, the sha256 of what was read, and the sha256 its
    upload recorded in the object's metadata (None when it has none). A failure is raised as for ``upload_file``."""
    import hashlib
    from contextlib import closing

    from botocore.exceptions import BotoCoreError, ClientError

    digest = hashlib.sha256()
    size = 0
    try:
        answer = client.get_object(Bucket=bucket, Key=key)
        with closing(answer["Body"]) as body, path.open("wb") as file:
            for chunk in body.iter_chunks(PART_SIZE):
                file.write(chunk)
                digest.update(chunk)
                size += len(chunk)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchKey":
            endpoint = client.meta.endpoint_url
            raise PermanentFailure(f"no such object at {endpoint} (deleted, or expired by a lifecycle rule?)") from exc
        raise _failure(exc, bucket, client.meta.endpoint_url, reading=True) from exc
    except BotoCoreError as exc:
        raise _failure(exc, bucket, client.meta.endpoint_url, reading=True) from exc
    except OSError as exc:
        raise PermanentFailure(f"cannot write {path}: {exc.strerror or exc}") from exc
    return size, digest.hexdigest(), answer.get("Metadata", {}).get("sha256")


def object_arguments(name: str, sha256: str, run_id: str, options: S3Connection) -> dict[str, Any]:
    """The object's Content-Type, its metadata (sha256 and run id) and the server-side encryption asked for."""
    extra: dict[str, Any] = {"ContentType": content_type(name), "Metadata": {"sha256": sha256, "run-id": run_id}}
    if options.sse:
        extra["ServerSideEncryption"] = options.sse
    if options.kms_key_id:
        extra["SSEKMSKeyId"] = options.kms_key_id
    return extra


def presigned_link(client: S3Client, bucket: str, key: str, expires_in: int) -> str:
    """A presigned https GET URL for ``key``, valid ``expires_in`` seconds; computed locally, no request."""
    from botocore.exceptions import BotoCoreError

    try:
        return client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in)
    except BotoCoreError as exc:
        raise _failure(exc, bucket, client.meta.endpoint_url) from exc


def _location_or_failure(url: str) -> Location:
    try:
        return parse_location(url)
    except ValueError as exc:
        raise PermanentFailure(f"url: {exc}") from exc


def _failure(
    exc: BaseException, bucket: str, endpoint: str, *, reading: bool = False
) -> TemporaryFailure | PermanentFailure:
    """What an S3 error means for the delivery: worth retrying, or needing a fix (which one, without secrets);
    ``reading`` for a download (the artifact store's), else an upload."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    chain = exception_chain(exc)
    error = next((e for e in chain if isinstance(e, ClientError)), None)
    if error is not None:
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        # HEAD answers (doctor's check) carry no error code, only the status
        if code in ("NoSuchBucket", "404"):
            return PermanentFailure(f"bucket '{bucket}' does not exist at {endpoint}; create it or fix url")
        if status == 301:
            headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            region = headers.get("x-amz-bucket-region", "another region")
            return PermanentFailure(f"bucket '{bucket}' is in {region}; set region: {region}")
        if code in _CREDENTIAL_CODES or status == 403:
            return PermanentFailure(
                f"{endpoint} refused the credentials for bucket '{bucket}' ({code or status}); fix access_key_id and "
                "secret_access_key (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), or the key's right to "
                + ("read" if reading else "write")
                + " the bucket"
            )
        if code in _TEMPORARY_CODES or status >= 500 or status == 429:
            return TemporaryFailure(f"{endpoint} answered {status} {code}".strip())
        message = str(error.response.get("Error", {}).get("Message", "")).strip()
        return PermanentFailure(
            f"{endpoint} refused the {'download from' if reading else 'upload to'} bucket '{bucket}': "
            f"{status} {code} {message}".strip()
        )
    if any(isinstance(e, NoCredentialsError | PartialCredentialsError) for e in chain):
        return PermanentFailure(_NO_CREDENTIALS)
    if any(isinstance(e, ConnectionError | HTTPClientError) for e in chain):
        return TemporaryFailure(f"cannot reach {endpoint}: {exc}")
    return PermanentFailure(f"S3 request for bucket '{bucket}' at {endpoint} failed: {exc}")


def _files(count: int) -> str:
    return f"{count} file" if count == 1 else f"{count} files"
