"""How reportctl reaches an S3 (or S3-compatible) store: the settings the s3 channel and the artifact store share."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from reportctl.spec.types import PositiveDuration, format_duration_spec

MAX_LINK_EXPIRY = timedelta(days=7)
"""SigV4 presigned URLs are valid for at most seven days."""


class S3Connection(BaseModel):
    """Endpoint, region, credentials, encryption, addressing, timeout and link expiry of an S3 store (a mixin:
    the s3 channel's options and ``artifacts:`` in reportctl.yaml take these keys alike)."""

    endpoint_url: str | None = Field(
        default=None, description="An S3-compatible endpoint (MinIO, Ceph, R2), e.g. http://minio:9000; default AWS."
    )
    region: str | None = Field(default=None, description="The bucket's region; default from the AWS configuration.")
    access_key_id: str | None = Field(
        default=None, description="Access key id, usually ${secret:NAME}; default boto3's chain (environment, profile)."
    )
    secret_access_key: str | None = Field(
        default=None, description="Secret access key, usually ${secret:NAME}; given together with access_key_id."
    )
    sse: Literal["AES256", "aws:kms"] | None = Field(
        default=None, description="Server-side encryption of the uploaded files: AES256 or aws:kms."
    )
    kms_key_id: str | None = Field(default=None, description="The KMS key for sse: aws:kms; default the bucket's.")
    link_expiry: PositiveDuration = Field(
        default=MAX_LINK_EXPIRY, description="How long presigned download links stay valid; at most 7d."
    )
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto", description="Bucket in the host name (virtual) or in the path (path, for most self-hosted)."
    )
    timeout: PositiveDuration = Field(
        default=timedelta(seconds=30), description="Limit for connecting and for each wait on the server."
    )

    @field_validator("endpoint_url")
    @classmethod
    def _http_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://", "${")):
            raise ValueError(f"expected an http:// or https:// URL such as http://minio:9000, got '{value}'")
        return value

    @field_validator("kms_key_id")
    @classmethod
    def _only_with_kms(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("sse") != "aws:kms":
            raise ValueError("a KMS key applies only with sse: aws:kms; set sse: aws:kms or remove kms_key_id")
        return value

    @field_validator("link_expiry")
    @classmethod
    def _within_sigv4_limit(cls, value: timedelta) -> timedelta:
        if value > MAX_LINK_EXPIRY:
            raise ValueError(f"{format_duration_spec(value)} is too long: S3 presigned links (SigV4) last at most 7d")
        return value

    @model_validator(mode="after")
    def _both_keys(self) -> S3Connection:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give access_key_id and secret_access_key together, or neither to use boto3's defaults")
        return self
