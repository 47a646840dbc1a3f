"""Encrypted deliveries: the files read back with independent readers (pypdf, msoffcrypto-tool and openpyxl,
pyzipper), and whole runs delivered through the CLI to a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import zipfile
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import msoffcrypto
import openpyxl
import pytest
import pyzipper
import xlsxwriter
from fpdf import FPDF
from pypdf import PdfReader
from pypdf.constants import UserAccessPermissions
from smtp_server import smtp_server

import reportctl.extras
from conftest import CliResult
from reportctl.config import find_project
from reportctl.encryption import encrypt_pdf, encrypt_xlsx, zip_encrypted
from reportctl.state import open_store
from reportctl.state.ledger import DeliveryLedger

Cli = Callable[..., CliResult]
SHARED = "shared-Pass-8675309"
CFO = "cfo-Only-Pass-24601"
SPEC = """\
apiVersion: reportctl/v1
name: finance
title: Finance
sources:
  metrics: {{kind: sample, rows: 60, seed: 7}}
datasets:
  by_service: {{from: metrics, group_by: [service], aggregate: {{samples: count()}}}}
sections:
  - {{id: services, type: table, dataset: by_service}}
outputs: [pdf, xlsx, csv, json]
delivery:
  - channel: email
    host: 127.0.0.1
    port: {port}
    security: none
    from: reports@example.com
    to: [cfo@example.com, ada@example.com, bob@example.com]
    attach: [pdf, xlsx, csv, json]
    encrypt:
{encrypt}
"""
ENCRYPT = """\
      password: "${secret:finance_reports}"
      permissions: [print]
      zip: [csv, json]
      password_travels: by SMS from the finance desk
"""


# --- the files, read back with independent readers ---------------------------------------------------------------


def _pdf(path: Path) -> Path:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica")
    pdf.cell(text="Revenue 1,234,567")
    pdf.output(str(path))
    return path


def test_a_pdf_needs_its_password_and_is_aes_256_with_the_permissions_asked(tmp_path: Path) -> None:
    target = tmp_path / "locked.pdf"
    encrypt_pdf(_pdf(tmp_path / "plain.pdf"), target, password=SHARED, owner_password=None, permissions=["print"])

    reader = PdfReader(target)
    assert reader.is_encrypted
    encryption = reader.trailer["/Encrypt"]
    assert (encryption["/Filter"], encryption["/V"], encryption["/R"]) == ("/Standard", 5, 6)
    assert reader.decrypt("not the password") == 0
    assert reader.decrypt(SHARED) == 1  # the user password
    assert "Revenue 1,234,567" in reader.pages[0].extract_text()
    allowed = UserAccessPermissions(encryption["/P"] & 0xFFFFFFFF)
    assert UserAccessPermissions.PRINT in allowed and UserAccessPermissions.PRINT_TO_REPRESENTATION in allowed
    for denied in ("EXTRACT", "MODIFY", "ADD_OR_MODIFY", "ASSEMBLE_DOC"):
        assert UserAccessPermissions[denied] not in allowed, denied


def test_a_pdf_owner_password_opens_it_as_owner(tmp_path: Path) -> None:
    target = tmp_path / "locked.pdf"
    encrypt_pdf(
        _pdf(tmp_path / "plain.pdf"), target, password=SHARED, owner_password=CFO, permissions=["copy", "annotate"]
    )
    reader = PdfReader(target)
    assert reader.decrypt(CFO) == 2  # the owner password
    allowed = UserAccessPermissions(reader.trailer["/Encrypt"]["/P"] & 0xFFFFFFFF)
    assert UserAccessPermissions.EXTRACT in allowed and UserAccessPermissions.ADD_OR_MODIFY in allowed
    assert UserAccessPermissions.PRINT not in allowed


def test_a_workbook_is_agile_encrypted_and_decrypts_to_the_same_cells(tmp_path: Path) -> None:
    plain, target = tmp_path / "plain.xlsx", tmp_path / "locked.xlsx"
    workbook = xlsxwriter.Workbook(str(plain))
    sheet = workbook.add_worksheet("Revenue")
    sheet.write_row(0, 0, ["region", "revenue"])
    sheet.write_row(1, 0, ["eu", 1234.5])
    workbook.close()

    encrypt_xlsx(plain, target, password=SHARED)

    with target.open("rb") as file:
        office = msoffcrypto.OfficeFile(file)
        assert office.is_encrypted()
        assert (office.format, office.type) == ("ooxml", "agile")
        with pytest.raises(msoffcrypto.exceptions.InvalidKeyError):
            office.load_key(password="not the password", verify_password=True)
    decrypted = io.BytesIO()
    with target.open("rb") as file:
        office = msoffcrypto.OfficeFile(file)
        office.load_key(password=SHARED, verify_password=True)
        office.decrypt(decrypted)
    sheet_read = openpyxl.load_workbook(decrypted)["Revenue"]
    assert [[cell.value for cell in row] for row in sheet_read.iter_rows()] == [["region", "revenue"], ["eu", 1234.5]]


def test_a_zip_opens_with_pyzipper_and_its_password_only(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("region,revenue\neu,1234.5\n")
    (tmp_path / "a.json").write_text('{"rows": 1}')
    target = tmp_path / "bundle.zip"

    zip_encrypted([tmp_path / "a.csv", tmp_path / "a.json"], target, password=SHARED)

    with pyzipper.AESZipFile(target) as bundle:
        bundle.setpassword(SHARED.encode())
        assert bundle.read("a.csv") == b"region,revenue\neu,1234.5\n"
        assert bundle.read("a.json") == b'{"rows": 1}'
    with zipfile.ZipFile(target) as plain, pytest.raises(RuntimeError, match="password required"):
        plain.read("a.csv")
    with pyzipper.AESZipFile(target) as bundle, pytest.raises(RuntimeError, match="Bad password"):
        bundle.read("a.csv", pwd=b"not the password")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# --- whole deliveries through the CLI ----------------------------------------------------------------------------


@pytest.fixture
def spec(project: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    monkeypatch.delenv("REPORTCTL_STATE_URL", raising=False)
    monkeypatch.setenv("REPORTCTL_SECRET_FINANCE_REPORTS", SHARED)
    monkeypatch.setenv("REPORTCTL_SECRET_CFO_REPORTS", CFO)

    def write(port: int, encrypt: str = ENCRYPT) -> Path:
        path = project / "specs" / "finance.yaml"
        path.write_text(SPEC.format(port=port, encrypt=encrypt))
        return path

    return write


def _attachments(message: EmailMessage) -> dict[str, bytes]:
    found = {}
    for part in message.iter_attachments():
        assert isinstance(part, EmailMessage)
        found[str(part.get_filename())] = part.get_payload(decode=True)
    return found


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


def _no_password_anywhere(data: bytes, *passwords: str) -> None:
    """Not in the raw message, nor in any part decoded (base64, quoted-printable)."""
    message = BytesParser(policy=policy.default).parsebytes(data)
    for password in passwords:
        for form in (password.encode(), base64.b64encode(password.encode())):
            assert form not in data
        for part in message.walk():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                assert password.encode() not in payload


def test_email_carries_encrypted_files_and_never_the_password(project: Path, cli: Cli, spec: Any) -> None:
    with smtp_server() as server:
        result = cli("render", str(spec(server.port)), "--deliver", "--json")
        assert result.exit_code == 0, result.stdout + result.stderr
        (received,) = server.messages
    run = json.loads(result.stdout)
    _no_password_anywhere(received.data, SHARED)
    message = received.parsed()
    files = _attachments(message)
    assert sorted(files) == ["finance.pdf", "finance.xlsx", "finance.zip"]  # csv and json only inside the ZIP

    pdf = PdfReader(io.BytesIO(files["finance.pdf"]))
    assert pdf.is_encrypted and pdf.decrypt(SHARED) == 1
    office = msoffcrypto.OfficeFile(io.BytesIO(files["finance.xlsx"]))
    assert office.is_encrypted()
    with pyzipper.AESZipFile(io.BytesIO(files["finance.zip"])) as bundle:
        bundle.setpassword(SHARED.encode())
        assert sorted(bundle.namelist()) == ["finance.csv", "finance.json"]
        directory = Path(run["directory"])
        assert bundle.read("finance.csv") == (directory / "finance.csv").read_bytes()

    text = _text(message)
    assert "Encrypted: finance.pdf (PDF AES-256)" in text
    assert "finance.zip (ZIP AES-256, holding finance.csv, finance.json)" in text
    assert "The password is not in this message: it travels by SMS from the finance desk." in text
    assert "http" not in text  # no link to a plain copy

    # the run's own files stay as written, and no encrypted copy is left behind
    assert not PdfReader(directory / "finance.pdf").is_encrypted
    assert sorted(p.name for p in directory.iterdir()) == [
        "finance.csv",
        "finance.json",
        "finance.pdf",
        "finance.xlsx",
        "manifest.json",
    ]
    # the manifest and the ledger say it went encrypted, and how, never with the password
    manifest_text = (directory / "manifest.json").read_text()
    assert SHARED not in manifest_text
    recorded = json.loads(manifest_text)["encrypted_deliveries"]["email"]
    assert [(f["name"], f["method"]) for f in recorded["files"]] == [
        ("finance.pdf", "PDF AES-256"),
        ("finance.xlsx", "Excel agile encryption, AES-256"),
        ("finance.zip", "ZIP AES-256"),
    ]
    assert recorded["passwords"] == "per delivery"
    with open_store(find_project()) as store:
        entries = DeliveryLedger(store).entries(run["run_id"])
    assert [e.status for e in entries] == ["sent"] * 3
    for entry in entries:
        assert entry.response is not None and SHARED not in entry.response
        assert entry.response.endswith(
            "; encrypted: finance.pdf (PDF AES-256), finance.xlsx (Excel agile encryption, AES-256), "
            "finance.zip (ZIP AES-256)"
        )


def test_a_recipient_with_a_password_of_their_own_gets_a_message_of_their_own(
    project: Path, cli: Cli, spec: Any
) -> None:
    encrypt = ENCRYPT + '      passwords: {cfo@example.com: "${secret:cfo_reports}"}\n'
    with smtp_server() as server:
        result = cli("render", str(spec(server.port, encrypt)), "--deliver")
        assert result.exit_code == 0, result.stdout + result.stderr
        messages = server.messages
    assert sorted(m.rcpt_tos for m in messages) == [["ada@example.com", "bob@example.com"], ["cfo@example.com"]]
    for received in messages:
        _no_password_anywhere(received.data, SHARED, CFO)
        mine, other = (CFO, SHARED) if received.rcpt_tos == ["cfo@example.com"] else (SHARED, CFO)
        message = received.parsed()
        if mine == CFO:  # the CFO's message names no one else
            assert message["To"] == "cfo@example.com"
        files = _attachments(message)
        pdf = PdfReader(io.BytesIO(files["finance.pdf"]))
        assert pdf.decrypt(other) == 0 and pdf.decrypt(mine) == 1
        with pyzipper.AESZipFile(io.BytesIO(files["finance.zip"])) as bundle:
            bundle.setpassword(mine.encode())
            assert bundle.read("finance.csv")


def test_a_missing_secret_is_one_line_naming_the_entry_and_nothing_is_sent(
    project: Path, cli: Cli, spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    encrypt = ENCRYPT + '      passwords: {cfo@example.com: "${secret:cfo_reports}"}\n'
    monkeypatch.delenv("REPORTCTL_SECRET_CFO_REPORTS")
    with smtp_server() as server:
        result = cli("render", str(spec(server.port, encrypt)), "--deliver", "--json")
        assert server.messages == []
    assert result.exit_code == 3
    (row,) = json.loads(result.stdout)["delivery"]["recipients"]
    assert (row["recipient"], row["status"]) == ("(delivery)", "failed")
    assert row["response"].startswith(
        "delivery email: encrypt.passwords.cfo@example.com: secret 'cfo_reports' is not set; set the environment "
        "variable REPORTCTL_SECRET_CFO_REPORTS"
    )
    assert "\n" not in row["response"] and SHARED not in result.stdout + result.stderr
    assert not list(Path(json.loads(result.stdout)["directory"]).glob(".encrypted-*"))


def test_a_dry_run_previews_the_encrypted_message_and_sends_nothing(project: Path, cli: Cli, spec: Any) -> None:
    with smtp_server() as server:
        path = spec(server.port)
        assert cli("render", str(path)).exit_code == 0
        (run,) = (project / "out" / "finance").iterdir()
        result = cli("deliver", run.name, "--dry-run")
        assert server.messages == []
    assert result.exit_code == 0, result.stderr
    assert "finance.zip  application/zip" in result.stdout
    assert "it travels by SMS from the finance desk" in result.stdout
    assert SHARED not in result.stdout
    assert not list(run.glob(".encrypted-*"))


@pytest.mark.parametrize(
    ("encrypt", "expected"),
    [
        (
            '      password: "hunter2-in-the-spec"\n',
            "delivery[0].encrypt.password: a password must come from a secret, not be written in the spec",
        ),
        (
            '      password: "${secret:finance_reports}"\n      passwords: {cfo@example.com: "cfo-in-the-spec"}\n',
            "delivery[0].encrypt.passwords: cfo@example.com: a password must come from a secret",
        ),
        (
            '      password: "${secret:finance_reports}"\n      zip: [csv]\n',
            "delivery[0]: attach: json cannot be encrypted on its own (only pdf and xlsx can); add it to encrypt.zip "
            "to send it in an AES-256 ZIP, or take it out of attach",
        ),
        ("      zip: [csv, json]\n", 'encrypt: no password; set encrypt.password: "${secret:NAME}"'),
    ],
    ids=["literal-password", "literal-recipient-password", "unzipped-json", "no-password"],
)
def test_validate_refuses_what_would_leak(project: Path, cli: Cli, spec: Any, encrypt: str, expected: str) -> None:
    path = spec(2525, encrypt)
    result = cli("validate", str(path))
    assert result.exit_code == 1
    assert expected in result.stdout
    assert "in-the-spec" not in result.stdout  # a literal password is refused without being shown


def test_html_in_an_encrypted_delivery_is_refused_unless_zipped(project: Path, cli: Cli, spec: Any) -> None:
    path = spec(2525)
    text = path.read_text().replace("attach: [pdf, xlsx, csv, json]", "attach: [pdf, html]")
    path.write_text(text.replace("outputs: [pdf, xlsx, csv, json]", "outputs: [pdf, html]"))
    result = cli("validate", str(path))
    assert result.exit_code == 1
    assert "attach: html cannot be encrypted on its own (only pdf and xlsx can); add it to encrypt.zip" in result.stdout
    path.write_text(path.read_text().replace("zip: [csv, json]", "zip: [csv, json, html]"))
    assert cli("validate", str(path)).exit_code == 0


def test_without_the_encrypt_extra_validate_and_render_name_it(
    project: Path, cli: Cli, spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(reportctl.extras, "find_spec", lambda name: None if name == "pyzipper" else real(name))
    path = spec(2525)
    for command in ("validate", "render"):
        result = cli(command, str(path))
        assert result.exit_code == 1
        lines = [line for line in (result.stdout + result.stderr).splitlines() if "pyzipper" in line]
        assert len(lines) == 1
        assert lines[0].endswith(
            "encrypt (AES-256 ZIP bundles) needs pyzipper, which is not installed; pip install 'reportctl[encrypt]'"
        )
    assert not (project / "out").exists()


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "encrypted"


def test_the_shipped_example_delivers_encrypted_files_with_a_secret_from_the_environment(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    project = tmp_path / "encrypted"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("out", "outbox", ".reportctl"))
    monkeypatch.chdir(project)
    monkeypatch.delenv("REPORTCTL_STATE_URL", raising=False)
    monkeypatch.setenv("REPORTCTL_SECRET_FINANCE_REPORTS", SHARED)

    result = cli("render", "specs/weekly-costs.yaml", "--deliver", "--json")

    assert result.exit_code == 0, result.stdout + result.stderr
    run = json.loads(result.stdout)
    outbox = project / "outbox" / "weekly-costs" / run["run_id"]
    assert sorted(p.name for p in outbox.iterdir()) == [
        "message.eml",
        "weekly-costs.pdf",
        "weekly-costs.xlsx",
        "weekly-costs.zip",
    ]
    pdf = PdfReader(outbox / "weekly-costs.pdf")
    assert pdf.decrypt("a long passphrase") == 0 and pdf.decrypt(SHARED) == 1
    assert "Weekly service costs" in pdf.pages[0].extract_text()
    message = BytesParser(policy=policy.default).parsebytes((outbox / "message.eml").read_bytes())
    assert isinstance(message, EmailMessage)
    text = _text(message)
    assert "it travels by SMS from the finance desk" in text
    assert "Not sent, as they cannot be encrypted: weekly-costs.html, weekly-costs.md." in text
    _no_password_anywhere((outbox / "message.eml").read_bytes(), SHARED)
