"""Password-protected copies of a run's files: PDF (AES-256), Excel (agile encryption) and AES-256 ZIP bundles.

Each function reads plain files and writes one encrypted file atomically (a temporary name beside it, renamed once
complete), so a reader never finds half an encrypted file. The libraries come with ``reportctl[encrypt]``; they are
imported here, when a file is encrypted, so specs without encryption never load them.

PDFs are encrypted with pypdf rather than fpdf2's ``set_encryption``: fpdf2 encrypts only a document it is writing,
and a delivery encrypts a file the run wrote earlier (possibly on another machine), once per password.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path

from reportctl.atomic import replacing

PDF_PERMISSIONS = {
    "print": ("PRINT", "PRINT_TO_REPRESENTATION"),
    "print_low_res": ("PRINT",),
    "copy": ("EXTRACT",),
    "modify": ("MODIFY",),
    "annotate": ("ADD_OR_MODIFY",),
    "fill_forms": ("FILL_FORM_FIELDS",),
    "copy_for_accessibility": ("EXTRACT_TEXT_AND_GRAPHICS",),
    "assemble": ("ASSEMBLE_DOC",),
}
"""What a PDF reader may do without the owner password, by the names a spec uses (fpdf2's, lower-case), as
pypdf's ``UserAccessPermissions`` flags."""

METHODS = {"pdf": "PDF AES-256", "xlsx": "Excel agile encryption, AES-256", "zip": "ZIP AES-256"}
"""How each kind of encrypted file is protected, as messages, the ledger and the manifest say it."""

# bits 7-8 and 13-32 of /P are reserved and must be 1 (ISO 32000-2, table 22)
_RESERVED_BITS = ("R7", "R8", *(f"R{bit}" for bit in range(13, 33)))


def encrypt_pdf(
    source: Path, target: Path, *, password: str, owner_password: str | None, permissions: Sequence[str]
) -> None:
    """``source`` as a PDF that opens only with ``password`` (AES-256, revision 6), allowing ``permissions``.

    Without an ``owner_password`` a random one is made for this file, so no one can lift the permissions.
    """
    from pypdf import PdfReader, PdfWriter
    from pypdf.constants import UserAccessPermissions

    flags = UserAccessPermissions(0)
    for name in [*_RESERVED_BITS, *(flag for p in permissions for flag in PDF_PERMISSIONS[p])]:
        flags |= UserAccessPermissions[name]
    writer = PdfWriter(clone_from=PdfReader(source))
    writer.encrypt(
        password,
        owner_password or secrets.token_urlsafe(32),
        permissions_flag=flags,
        algorithm="AES-256",
    )
    with replacing(target) as file:
        writer.write(file)


def encrypt_xlsx(source: Path, target: Path, *, password: str) -> None:
    """``source`` as a workbook that Excel opens only with ``password`` (ECMA-376 agile encryption)."""
    from msoffcrypto.format.ooxml import OOXMLFile

    with source.open("rb") as plain, replacing(target) as file:
        OOXMLFile(plain).encrypt(password, file)


def zip_encrypted(sources: Sequence[Path], target: Path, *, password: str) -> None:
    """``sources`` in one ZIP whose entries open only with ``password`` (WinZip AES-256, which 7-Zip and most
    archive tools read; the plain ``zipfile`` module cannot)."""
    import pyzipper

    with (
        replacing(target) as file,
        pyzipper.AESZipFile(file, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES) as bundle,
    ):
        bundle.setpassword(password.encode())
        bundle.setencryption(pyzipper.WZ_AES, nbits=256)
        for source in sources:
            bundle.write(source, arcname=source.name)
