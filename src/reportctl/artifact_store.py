"""The artifact store: every recorded run's files kept in one S3 bucket, readable from every machine.

``artifacts: {url: s3://bucket/prefix/}`` in reportctl.yaml. With ``executor: celery`` each worker writes a run's
folder to its own disk, where the daemon's machine, an operator's laptop or another worker cannot read it. With an
artifact store, a run's artifacts, the pictures its messages show (``preview/``) and then its manifest.json (last,
so a folder with a manifest is complete) go to ``<prefix><report>/<run-id>/<file>`` as soon as the folder is in
place and before anything is delivered; the run's record in the state store gives each artifact's ``s3://`` URL.
Download links are signed on demand (``runs show --links``): they expire and grant access, so they are never stored.

A machine that delivers a run it did not render (the daemon's reaper finishing a lost worker's run, ``reportctl
deliver RUN`` on an operator's laptop) fetches the files from there into its own ``OUT/<report>/<run-id>/``
(``run_on_this_machine``), each checked against the size and sha256 the run recorded.

It talks to S3 with the s3 channel's client and transfer code (``reportctl.delivery.s3``): the same credentials
chain, endpoints, server-side encryption and multipart uploads.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from reportctl.errors import DeliveryError, ReportctlError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from reportctl.config import ArtifactStoreConfig, Project
    from reportctl.delivery.s3_options import Location
    from reportctl.run_record import Artifact, RunResult

FIRST_BACKOFF = 1.0
"""Seconds before the first retry of an upload or download that failed for a while; doubled for each next one."""


_T = TypeVar("_T")


class ArtifactStoreError(ReportctlError):
    """A run's files could not be kept in the artifact store, or a stored file cannot be linked; the run fails."""


class ArtifactFetchError(DeliveryError):
    """A rendered run's file could not be fetched from the artifact store to deliver it; nothing was sent (exit 3)."""


class _Failed(Exception):
    """A request to the store failed for good; the message is 'URL: why', secrets masked."""


@dataclass(frozen=True)
class StoredRun:
    """A run's folder as uploaded: its artifacts (each with its ``url``) and where its manifest went."""

    folder: str
    """s3://bucket/prefix/<report>/<run-id>/"""
    artifacts: list[Artifact]
    manifest: str
    files: int
    bytes: int

    def describe(self) -> str:
        """The timeline's note: how many files went where."""
        from reportctl.formats import format_bytes

        files = f"{self.files} file" if self.files == 1 else f"{self.files} files"
        return f"stored {files} ({format_bytes(self.bytes)}) in {self.folder}"


class ArtifactStore:
    """The project's artifact store: uploads runs' folders and signs links to what it holds."""

    def __init__(
        self, settings: ArtifactStoreConfig, config_file: Path | None, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.settings = settings
        self.config_file = str(config_file or "reportctl.yaml")
        self.where = f"artifacts.url in {self.config_file}"
        self._sleep = sleep
        self._client: S3Client | None = None
        self._resolved: ArtifactStoreConfig | None = None

    @classmethod
    def of(cls, project: Project) -> ArtifactStore | None:
        """The store ``reportctl.yaml`` configures under ``artifacts:``, or None when it configures none."""
        settings = project.config.artifacts
        return None if settings is None else cls(settings, project.config_file)

    def __enter__(self) -> ArtifactStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def folder(self, report: str, run_id: str) -> Location:
        """Where a run's files go: ``<prefix><report>/<run-id>/``."""
        from reportctl.delivery.s3_options import parse_location

        base = parse_location(self.settings.url)
        return base._replace(prefix=f"{base.prefix}{report}/{run_id}/")

    def keep(self, result: RunResult) -> StoredRun:
        """Upload the run's artifacts, then its manifest.json; the artifacts come back with their ``url``.

        An upload that fails for a while (connection, 5xx, throttling) is tried again ``retries`` times after 1 s,
        2 s, 4 s ...; one that retrying cannot fix raises ``ArtifactStoreError`` at once, saying what to fix. What
        was uploaded before a failure is deleted again (as far as the store lets us), so a failed run leaves nothing.
        """
        from reportctl.delivery.s3 import object_arguments
        from reportctl.digests import file_sha256

        location = self.folder(result.report, result.run_id)
        files: list[tuple[Path, str]] = []
        artifacts = []
        for artifact in result.artifacts:
            key = location.prefix + artifact.path.relative_to(result.directory).as_posix()
            files.append((artifact.path, artifact.sha256))
            artifacts.append(replace(artifact, url=f"s3://{location.bucket}/{key}"))
        # the message's pictures (preview/), so a delivery made on another machine shows the same
        files += [(path, file_sha256(path)) for path in _preview_files(result.directory)]
        files.append((result.manifest, file_sha256(result.manifest)))
        uploaded: list[str] = []
        try:
            for path, sha256 in files:
                key = location.prefix + path.relative_to(result.directory).as_posix()
                extra = object_arguments(path.name, sha256, result.run_id, self._connection())
                self._upload(path, location.bucket, key, extra)
                uploaded.append(key)
        except ArtifactStoreError:
            self._forget(location.bucket, uploaded)
            raise
        total = sum(path.stat().st_size for path, _ in files)
        return StoredRun(location.url, artifacts, location.url + result.manifest.name, len(files), total)

    def link(self, url: str) -> str:
        """A presigned https download link to the stored file ``url`` (s3://bucket/key), valid ``link_expiry``."""
        from reportctl.delivery.base import PermanentFailure, TemporaryFailure
        from reportctl.delivery.s3 import presigned_link

        bucket, _, key = url.removeprefix("s3://").partition("/")
        if not url.startswith("s3://") or not key:
            raise ArtifactStoreError(f"'{url}' is not the s3:// URL of a stored file")
        try:
            return presigned_link(self._s3(), bucket, key, int(self.settings.link_expiry.total_seconds()))
        except (PermanentFailure, TemporaryFailure) as exc:
            raise ArtifactStoreError(f"cannot sign a link to {url} ({self.where}): {exc}") from exc

    def fetch(self, url: str, into: Path, *, size: int | None = None, sha256: str | None = None) -> None:
        """Download the stored file ``url`` (s3://bucket/key) to ``into``, checked against ``size`` and ``sha256``
        (by default the sha256 its upload recorded on the object). Tried again as uploads are; a file that cannot be
        fetched or does not match raises ``ArtifactFetchError`` ('URL: why'), and nothing is left at ``into``."""
        from reportctl.delivery.s3 import download_file

        bucket, _, key = url.removeprefix("s3://").partition("/")
        if not url.startswith("s3://") or not key:
            raise ArtifactFetchError(f"'{url}' is not the s3:// URL of a stored file")
        try:
            try:
                got, digest, recorded = self._retrying(lambda: download_file(self._s3(), bucket, key, into), url)
            except _Failed as exc:
                raise ArtifactFetchError(str(exc)) from exc
            except ArtifactStoreError as exc:  # no client: a secret not set, a bad setting
                raise ArtifactFetchError(_masked(f"{url}: {exc}")) from exc
            if size is not None and got != size:
                raise ArtifactFetchError(_masked(f"{url}: the store holds {got} bytes, the run recorded {size}"))
            expected = sha256 or recorded
            if expected and digest != expected:
                raise ArtifactFetchError(
                    _masked(f"{url}: its sha256 is {digest[:12]}..., the run recorded {expected[:12]}...")
                )
        except BaseException:
            into.unlink(missing_ok=True)
            raise

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _upload(self, path: Path, bucket: str, key: str, extra: dict[str, object]) -> None:
        from reportctl.delivery.s3 import upload_file

        try:
            self._retrying(lambda: upload_file(self._s3(), path, bucket, key, extra), f"s3://{bucket}/{key}")
        except _Failed as exc:
            raise ArtifactStoreError(
                f"cannot keep the run's files in the artifact store ({self.where}): {exc}"
            ) from exc

    def _retrying(self, request: Callable[[], _T], url: str) -> _T:
        """``request``, tried again after 1 s, 2 s, 4 s ... while it fails for a while, at most ``retries`` times;
        ``_Failed`` ('URL: why', secrets masked) when it fails for good."""
        from reportctl.delivery.base import PermanentFailure, TemporaryFailure

        attempt = 0
        while True:
            try:
                return request()
            except PermanentFailure as exc:
                raise _Failed(_masked(f"{url}: {exc}")) from exc
            except TemporaryFailure as exc:
                if attempt >= self.settings.retries:
                    tries = f" after {attempt + 1} tries" if attempt else ""
                    raise _Failed(_masked(f"{url}: {exc}{tries}")) from exc
                self._sleep(FIRST_BACKOFF * 2**attempt)
                attempt += 1

    def _forget(self, bucket: str, keys: list[str]) -> None:
        """Delete what a failed upload left; a store that refused the upload may well refuse this too."""
        if not keys:
            return
        with contextlib.suppress(Exception):
            self._s3().delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True})

    def _connection(self) -> ArtifactStoreConfig:
        """The settings with every ``${secret:NAME}`` resolved (they never leave this object)."""
        from reportctl.secrets import SECRET_REFERENCE, SecretError, resolve_secrets

        if self._resolved is not None:
            return self._resolved
        values = {}
        for name in ("endpoint_url", "region", "access_key_id", "secret_access_key", "kms_key_id"):
            value = getattr(self.settings, name)
            if isinstance(value, str) and SECRET_REFERENCE.search(value):
                try:
                    values[name] = resolve_secrets(value)
                except SecretError as exc:
                    raise ArtifactStoreError(f"artifacts.{name} in {self.config_file}: {exc}") from exc
        self._resolved = self.settings.model_copy(update=values)
        return self._resolved

    def _s3(self) -> S3Client:
        from botocore.exceptions import BotoCoreError

        from reportctl.delivery.s3 import make_client

        if self._client is None:
            try:
                self._client = make_client(self._connection())
            except (BotoCoreError, ValueError) as exc:
                raise ArtifactStoreError(f"cannot set up the S3 client ({self.where}): {exc}") from exc
        return self._client


def stored_folder(artifacts: list[dict[str, object]]) -> str | None:
    """The s3:// folder a recorded run's files were stored in, read back from its artifacts' ``url`` and ``path``
    (a URL is the folder followed by the artifact's path in it); None when they were not stored."""
    for artifact in artifacts:
        url, path = artifact.get("url"), artifact.get("path")
        if isinstance(url, str) and isinstance(path, str) and url.endswith("/" + Path(path).as_posix()):
            return url[: len(url) - len(Path(path).as_posix())]
    return None


def _preview_files(directory: Path) -> list[Path]:
    """The files under the run's ``preview/`` folder: the pictures its messages show."""
    from reportctl.preview import PREVIEW_FOLDER

    folder = directory / PREVIEW_FOLDER
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else []


def _masked(text: str) -> str:
    """``text`` with every resolved secret and every password written into a URL shown as ***."""
    from reportctl.secrets import mask_url_passwords, redact

    return redact(mask_url_passwords(text))
