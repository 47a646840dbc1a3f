"""What every ``delivery`` entry has; the rest of an entry is checked by its channel plugin's ``Options`` model.

``reportctl.spec.loader`` merges the project's ``channels.<name>`` defaults under each entry and validates the result
with the plugin named by ``channel`` (email, webhook, slack, s3, file, or a third-party channel).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reportctl.spec.types import IDENTIFIER


class DeliveryEntry(BaseModel):
    """One entry of a spec's ``delivery`` list, before its channel's options are checked."""

    model_config = ConfigDict(extra="allow", frozen=True)

    channel: str = Field(description="Which channel plugin delivers: email, webhook, slack, s3, file, ...")
    id: str | None = Field(default=None, pattern=IDENTIFIER, description="Names this delivery; default the channel.")


NATIVELY_ENCRYPTED = ("pdf", "xlsx")
"""Formats an encrypted delivery protects file by file; every other format it sends must travel in its ZIP."""
PdfPermission = Literal[
    "print", "print_low_res", "copy", "modify", "annotate", "fill_forms", "copy_for_accessibility", "assemble"
]
_ENCRYPT_MODULES = {
    "pypdf": "PDF encryption",
    "cryptography": "AES-256",
    "msoffcrypto": "Excel encryption",
    "pyzipper": "AES-256 ZIP bundles",
}


def _secret_reference(value: str) -> str:
    """``value`` when it is exactly one ``${secret:NAME}``; a password written into the spec is refused unseen."""
    from reportctl.secrets import SECRET_REFERENCE

    if not SECRET_REFERENCE.fullmatch(value.strip()):
        raise ValueError(
            "a password must come from a secret, not be written in the spec (it would be in version "
            'control and logs); write "${secret:NAME}" and set it with `reportctl secrets set NAME` or '
            "REPORTCTL_SECRET_<NAME>"
        )
    return value.strip()


class EncryptOptions(BaseModel):
    """A delivery's ``encrypt``: its files go password-protected, the password by another way than the message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    password: str | None = Field(
        default=None,
        description='The password of every recipient without one in passwords: "${secret:NAME}", never the value.',
    )
    passwords: dict[str, str] = Field(
        default_factory=dict,
        description='Per recipient (an address, as the ledger shows it) -> "${secret:NAME}"; each such recipient '
        "gets a message of their own.",
    )
    owner_password: str | None = Field(
        default=None,
        description='PDF only: the password that lifts the permissions, "${secret:NAME}"; default a random one per '
        "file, so the permissions hold for everyone.",
    )
    permissions: list[PdfPermission] = Field(
        default_factory=lambda: list[PdfPermission](["print"]),
        description="PDF: what a reader may do without the owner password: print, print_low_res, copy, modify, "
        "annotate, fill_forms, copy_for_accessibility, assemble; [] for none.",
    )
    zip: list[str] = Field(
        default_factory=list,
        description="Formats (csv, json, html, md, ...) sent together in one AES-256 ZIP, <report>.zip, instead of "
        "as files of their own.",
    )
    password_travels: str | None = Field(
        default=None,
        description='How recipients get the password, said in the message (e.g. "by SMS from the finance desk"); '
        "default: sent separately.",
    )

    @field_validator("password", "owner_password")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return None if value is None else _secret_reference(value)

    @field_validator("passwords")
    @classmethod
    def _secrets(cls, value: dict[str, str]) -> dict[str, str]:
        checked = {}
        for recipient, secret in value.items():
            try:
                checked[recipient.strip().lower()] = _secret_reference(secret)
            except ValueError as exc:
                raise ValueError(f"{recipient}: {exc}") from None
        return checked

    @model_validator(mode="after")
    def _usable(self) -> EncryptOptions:
        from reportctl.extras import missing_extra

        if self.password is None and not self.passwords:
            raise ValueError(
                'encrypt: no password; set encrypt.password: "${secret:NAME}" for the whole delivery, or '
                "encrypt.passwords with one per recipient"
            )
        for module, needed_by in _ENCRYPT_MODULES.items():
            problem = missing_extra(module, f"encrypt ({needed_by})")
            if problem:
                raise ValueError(problem)
        return self

    def unprotected(self, formats: list[str]) -> list[str]:
        """Which of ``formats`` this delivery could send only in the clear: neither encrypted alone nor zipped."""
        return [f for f in formats if f not in NATIVELY_ENCRYPTED and f not in self.zip]
