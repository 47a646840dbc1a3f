"""The email a delivery sends: Markdown body as plain text and HTML, attachments or links, and its headers.

Shared by the ``email`` channel, which sends it, and the ``file`` channel, which writes it as an ``.eml``. The
message is deterministic (Message-ID, Date, MIME boundaries), so writing or sending it again gives the same bytes.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from reportctl.delivery.base import (
    ChannelOptions,
    DeliveryContext,
    DeliveryTarget,
    PermanentFailure,
    Recipient,
    media_type,
)
from reportctl.delivery.recipients import Directory, RecipientEntry, address_problem
from reportctl.formats import format_bytes

if TYPE_CHECKING:
    from markdown_it.token import Token

    from reportctl.run_record import Artifact

# Only what would change the text's look; raw HTML needs no escape, the renderer escapes it.
LOCAL_SENDER = "reportctl@localhost"
"""The From of outbox messages written without a sender; the email channel refuses to send without one."""
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]])")
_FONT = "-apple-system,BlinkMacSystemFont,'Segoe UI',Helvetica,Arial,sans-serif"
_MONO = "SFMono-Regular,Consolas,'Liberation Mono',Menlo,monospace"
# Email clients drop <style> blocks and classes, so every element the Markdown renderer emits gets inline styles.
_STYLES = {
    "h1": "margin:0 0 16px;font-size:22px;line-height:1.3;color:#1f2328;",
    "h2": "margin:24px 0 12px;font-size:18px;line-height:1.3;color:#1f2328;",
    "h3": "margin:20px 0 8px;font-size:16px;line-height:1.3;color:#1f2328;",
    "p": "margin:0 0 12px;",
    "a": "color:#0969da;text-decoration:underline;",
    "ul": "margin:0 0 12px;padding-left:24px;",
    "ol": "margin:0 0 12px;padding-left:24px;",
    "li": "margin:0 0 4px;",
    "blockquote": "margin:0 0 12px;padding:0 12px;border-left:4px solid #d0d7de;color:#57606a;",
    "code": f"font-family:{_MONO};font-size:13px;background:#f6f8fa;padding:1px 4px;",
    "pre": f"font-family:{_MONO};font-size:13px;background:#f6f8fa;padding:12px;white-space:pre-wrap;",
    "table": "border-collapse:collapse;margin:0 0 12px;",
    "th": "border:1px solid #d0d7de;padding:6px 8px;background:#f6f8fa;text-align:left;",
    "td": "border:1px solid #d0d7de;padding:6px 8px;",
    "hr": "border:0;border-top:1px solid #d0d7de;margin:16px 0;",
}
_LAYOUT = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title></head>
<body style="margin:0;padding:0;background:#f4f5f7;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background:#f4f5f7;">
<tr><td align="center" style="padding:24px 12px;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="max-width:640px;\
background:#ffffff;border:1px solid #d0d7de;border-radius:6px;">
<tr><td style="padding:24px;font-family:{font};font-size:15px;line-height:1.5;color:#1f2328;">
{body}</td></tr></table>
<p style="margin:12px 0 0;font-family:{font};font-size:12px;color:#57606a;">Sent by reportctl, run {run_id}</p>
</td></tr></table>
</body></html>
"""


class MessageOptions(ChannelOptions):
    """Options of channels that compose an email: recipients, subject, body, attachments, sender."""

    to: list[RecipientEntry] = Field(
        default_factory=list, description="Recipients: addresses, team:NAME or list:NAME; a single string is one."
    )
    cc: list[RecipientEntry] = Field(default_factory=list, description="Copied recipients, shown in the Cc header.")
    bcc: list[RecipientEntry] = Field(
        default_factory=list, description="Blind-copied recipients, never shown in any header."
    )
    subject: str = Field(
        default="{{ title }}", description="Subject template (Jinja), e.g. '{{ title }} for {{ run.date }}'."
    )
    body: str | None = Field(
        default=None,
        description="Body template in Markdown (Jinja); default: title, run date, and the files with sizes and links.",
    )
    attach: list[str] | None = Field(
        default=None,
        description="Formats to attach, e.g. [pdf, xlsx]; [] attaches none; default every format the run wrote.",
    )
    from_: str | None = Field(
        default=None,
        alias="from",
        description="Sender: an address, optionally with a name, e.g. 'Reports <reports@example.com>'; required to "
        "send email (here or as channels.email.from in reportctl.yaml); outbox files without one are from "
        "reportctl@localhost.",
    )
    reply_to: str | None = Field(default=None, description="Where replies go, when not to the sender.")

    @field_validator("to", "cc", "bcc", mode="before", json_schema_input_type=RecipientEntry | list[RecipientEntry])
    @classmethod
    def _one_entry_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("from_", "reply_to")
    @classmethod
    def _mailbox(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # A name may go before the address ("Reports <reports@example.com>"); the address itself must be bare.
        address = value.rpartition("<")[2].partition(">")[0] if "<" in value else value
        problem = address_problem(address)
        if problem:
            raise ValueError(problem)
        return value

    @property
    def sender(self) -> str:
        """The bare sender address, for the SMTP envelope."""
        return parseaddr(self.mailbox)[1]

    @property
    def mailbox(self) -> str:
        """The From header: the configured sender, or a local placeholder for outbox files written without one."""
        return self.from_ or LOCAL_SENDER


def resolve_recipients(
    options: MessageOptions, people: Directory, audience: Sequence[str] | None = None
) -> list[Recipient]:
    """to, then cc, then bcc, resolved now; an address in several roles is kept once, in its first role. A burst
    variant's ``audience`` keeps only its group, so its message names no one else."""
    resolved: dict[str, Recipient] = {}
    for role, entries in (("to", options.to), ("cc", options.cc), ("bcc", options.bcc)):
        for recipient in people.resolve(entries, role=role):
            if audience is None or recipient.address.lower() in audience:
                resolved.setdefault(recipient.address.lower(), recipient)
    return list(resolved.values())


def attached_formats(options: MessageOptions, context: DeliveryContext) -> list[str]:
    """The formats to attach: ``attach`` as written, else every format the run wrote."""
    if options.attach is not None:
        return list(options.attach)
    return list(dict.fromkeys(a.format for a in context.artifacts))


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class MessageContent:
    """What every recipient of a delivery gets alike; ``text`` is the Markdown, which reads well as plain text.
    ``inline`` are pictures the HTML shows by ``cid:`` (the first chart, the logo), sent with it."""

    subject: str
    text: str
    html: str
    attachments: tuple[Attachment, ...]
    inline: tuple[tuple[str, Attachment], ...] = ()


def render_content(
    context: DeliveryContext, options: MessageOptions, *, attach: Sequence[str], max_attachment_size: int | None
) -> MessageContent:
    """Subject, body and attachments; an artifact above ``max_attachment_size`` becomes a link in the body.

    Raises ``PermanentFailure`` for a template error, an unreadable artifact, or a too-large one without a link.
    """
    from reportctl.templating import TemplateError

    where = f"delivery.{options.name}"
    failed = context.status == "failed"
    wanted = [] if failed else [a for a in context.artifacts if a.format in attach]
    too_large = [a for a in wanted if max_attachment_size is not None and a.bytes > max_attachment_size]
    for artifact in too_large:
        if context.link(artifact) is None:
            assert max_attachment_size is not None
            raise PermanentFailure(
                f"{artifact.path.name} ({format_bytes(artifact.bytes)}) is above the {where}.max_attachment_size of "
                f"{format_bytes(max_attachment_size)} and has no link; add an s3 delivery before it, or set "
                "artifact_base_url in reportctl.yaml, or raise max_attachment_size"
            )
    attachments = tuple(_attachment(a) for a in wanted if a not in too_large)
    preview = _preview(context) if options.body is None and not failed else None
    inline: tuple[tuple[str, Attachment], ...] = ()
    try:
        subject = " ".join(context.render(options.subject, where=f"{where}.subject").split())
        if preview is not None:
            text, body, inline = _report_body(context, preview, attachments, too_large)
        elif options.body is None:
            text = _default_body(context, attachments, too_large)
            body = markdown_html(text)
        else:
            text = context.render(options.body, where=f"{where}.body").strip() + "\n"
            if too_large:
                text += "\nToo large to attach:\n\n" + "".join(_artifact_line(context, a, "") for a in too_large)
            body = markdown_html(text)
    except TemplateError as exc:
        raise PermanentFailure(str(exc)) from None
    # which files are protected and how the password comes (never the password), unless the body said it already
    if context.encryption is not None and context.encryption.note() not in text:
        note = "\n\n".join(_markdown_text(part) for part in context.encryption.note().split("\n\n"))
        text = text.rstrip("\n") + "\n\n" + note + "\n"
        body += markdown_html(note)
    # the theme's font by name, for readers who have it (mail clients load no web fonts), then the usual stack
    family = preview.get("font") if preview is not None else None
    font = f"'{family}',{_FONT}" if isinstance(family, str) and family.replace(" ", "").isalnum() else _FONT
    page = _LAYOUT.format(title=html.escape(subject), font=font, body=body, run_id=context.run_id)
    return MessageContent(subject or context.title, text, page, attachments, inline)


def compose_message(
    context: DeliveryContext, options: MessageOptions, recipients: Sequence[Recipient], content: MessageContent
) -> EmailMessage:
    """The message for ``recipients``: To and Cc by role (never Bcc), and an ID that depends only on who gets it.

    The Message-ID is made of the run, the delivery and the batch's addresses: the engine sends a batch that may have
    arrived again as the same batch (``deliver --resend-unknown``), so the copy has the same Message-ID.
    """
    message = EmailMessage(policy=SMTP)
    to = [r.address for r in recipients if r.role == "to"]
    cc = [r.address for r in recipients if r.role == "cc"]
    message["From"] = options.mailbox
    # A message with only blind recipients still needs a destination header (RFC 5322 3.6.3).
    message["To"] = ", ".join(to) if to or cc else "undisclosed-recipients:;"
    if cc:
        message["Cc"] = ", ".join(cc)
    if options.reply_to:
        message["Reply-To"] = options.reply_to
    message["Subject"] = content.subject
    message["Date"] = format_datetime(context.now)
    identity = "\0".join([context.run_id, options.name, *sorted(r.address.lower() for r in recipients)])
    digest = hashlib.sha256(identity.encode()).hexdigest()
    domain = options.sender.rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<reportctl.{digest[:32]}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: autoresponders must not answer
    message["X-Reportctl-Run"] = context.run_id
    message.set_content(content.text, subtype="plain")
    message.add_alternative(content.html, subtype="html")
    if content.inline:
        page = message.get_body(("html",))
        assert isinstance(page, EmailMessage)
        for cid, picture in content.inline:
            maintype, _, subtype = picture.content_type.partition("/")
            page.add_related(picture.data, maintype=maintype, subtype=subtype, cid=f"<{cid}>", filename=picture.name)
    for attachment in content.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(attachment.data, maintype=maintype, subtype=subtype, filename=attachment.name)
    # The generator would pick random boundaries; fixed ones make a resent or rewritten message byte-identical.
    for number, part in enumerate(p for p in message.walk() if p.is_multipart()):
        part.set_boundary(f"=_reportctl_{digest[32:56]}_{number}")
    for part in message.walk():
        if part is not message:
            del part["MIME-Version"]  # EmailMessage repeats it on every part; it belongs only at the top
    return message


def describe_message(message: EmailMessage, envelope: Sequence[Recipient]) -> str:
    """A readable preview: headers, who gets it, the plain-text part and the attachments (names and sizes only)."""
    shown = ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "Auto-Submitted", "X-Reportctl-Run")
    lines = [f"{name}: {message[name]}" for name in shown if message[name] is not None]
    lines.append("Envelope: " + ", ".join(f"{r.address} ({r.role})" for r in envelope))
    body = message.get_body(("plain",))
    lines += ["", body.get_content().rstrip() if isinstance(body, EmailMessage) else "", ""]
    attachments = list(message.iter_attachments())
    lines.append("Attachments:" if attachments else "Attachments: none")
    for part in attachments:
        size = len(part.get_payload(decode=True) or b"")
        lines.append(f"  {part.get_filename()}  {part.get_content_type()}  {format_bytes(size)}")
    return "\n".join(lines) + "\n"


def markdown_html(text: str) -> str:
    """Markdown to HTML with raw HTML escaped and inline styles on every element, for email clients."""
    from markdown_it import MarkdownIt

    markdown = MarkdownIt("commonmark", {"html": False}).enable(["table"])
    tokens = markdown.parse(text)
    _style(tokens)
    return str(markdown.renderer.render(tokens, markdown.options, {}))


def _style(tokens: Sequence[Token]) -> None:
    for token in tokens:
        if token.children:
            _style(token.children)
        if token.nesting >= 0 and token.tag in _STYLES:
            own = token.attrGet("style")  # table cells carry their alignment here
            if own == "text-align:right" and token.tag == "td":
                own += ";white-space:nowrap"  # a number and its unit stay on one line in a narrow message
            token.attrSet("style", _STYLES[token.tag] + (f"{own};" if own else ""))


def _attachment(artifact: Artifact) -> Attachment:
    try:
        data = artifact.path.read_bytes()
    except OSError as exc:
        raise PermanentFailure(f"cannot read {artifact.path} to attach it: {exc.strerror or exc}") from None
    return Attachment(artifact.path.name, media_type(artifact.path.name), data)


def _default_body(context: DeliveryContext, attachments: Sequence[Attachment], too_large: Sequence[Artifact]) -> str:
    when = context.now.astimezone(ZoneInfo(context.timezone))
    title = _markdown_text(context.title)
    stamp = f"{when:%Y-%m-%d %H:%M} {context.timezone}"
    if context.status == "failed":
        error = context.error or "no error was recorded"
        fence = "~~~~" if "```" in error else "```"
        return (
            f"# {title}\n\nThe run of {stamp} failed, run {context.run_id}:\n\n{fence}\n{error}\n{fence}\n\n"
            "No files were attached.\n"
        )
    head = f"# {title}\n\nReport of {stamp}, run {context.run_id}.\n\n"
    warning = failed_sections_line(context)
    head += f"**{_markdown_text(warning)}**\n\n" if warning else ""
    if not context.artifacts:
        return head + "The run wrote no files.\n"
    return head + _files_markdown(context, attachments, too_large)


def failed_sections(context: DeliveryTarget) -> list[dict[str, str]]:
    """The sections the run rendered as placeholders (``on_error: placeholder``), from its manifest's
    ``warnings``: [{section, error}]; none for a run without them or without a manifest."""
    if context.directory is None:
        return []
    try:
        manifest = json.loads((context.directory / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    warnings = manifest.get("warnings") if isinstance(manifest, dict) else None
    return [w for w in warnings if isinstance(w, dict) and "section" in w] if isinstance(warnings, list) else []


def failed_sections_line(context: DeliveryContext) -> str | None:
    """'The report has 2 sections that could not be rendered: trend, latency.' for a run with placeholders."""
    failed = failed_sections(context)
    if not failed:
        return None
    names = ", ".join(str(w["section"]) for w in failed)
    many = len(failed) != 1
    return f"The report has {len(failed)} section{'s' if many else ''} that could not be rendered: {names}."


def _add_failed_sections(context: DeliveryContext, text: list[str], page: list[str]) -> None:
    """The line naming the sections that could not be rendered, in bold under the report's facts."""
    warning = failed_sections_line(context)
    if warning:
        text.append(f"**{_markdown_text(warning)}**\n")
        page.append(f'<p style="{_STYLES["p"]}color:#9a6700;font-weight:bold;">{html.escape(warning)}</p>')


def _preview(context: DeliveryContext) -> dict[str, Any] | None:
    """The report's preview the run kept in its manifest, or None (a run of an older version, or no files)."""
    if context.directory is None:
        return None
    try:
        manifest = json.loads((context.directory / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    preview = manifest.get("preview") if isinstance(manifest, dict) else None
    return preview if isinstance(preview, dict) else None


def _report_body(
    context: DeliveryContext,
    preview: dict[str, Any],
    attachments: Sequence[Attachment],
    too_large: Sequence[Artifact],
) -> tuple[str, str, tuple[tuple[str, Attachment], ...]]:
    """The default message of a rendered report: (plain text, HTML, inline pictures). Title and parameters, the
    key figures as cards, the text sections, the first chart, the first rows of the first table, and the files,
    each said to be attached or linked (a file neither attached nor linked is not listed)."""
    accent = preview.get("accent") or "#0072b2"
    inline: list[tuple[str, Attachment]] = []
    domain = f"{context.run_id}.reportctl"

    def picture(key: str, name: str) -> str | None:
        relative = preview.get(key)
        relative = relative.get("file") if isinstance(relative, dict) else relative
        if not isinstance(relative, str) or context.directory is None:
            return None
        try:
            data = (context.directory / relative).read_bytes()
        except OSError:
            return None
        cid = f"{name}@{domain}"
        inline.append((cid, Attachment(f"{name}.png", "image/png", data)))
        return cid

    title = str(preview.get("title") or context.title)
    facts = [f"{label}: {value}" for label, value in preview.get("parameters", [])]
    facts.append(f"Generated {preview.get('generated', '')}")
    text = [f"# {_markdown_text(title)}\n"]
    page = []
    logo = picture("logo", "logo")
    if logo:
        page.append(f'<img src="cid:{logo}" alt="" height="40" style="float:right;height:40px;margin:0 0 8px 16px;">')
    page.append(
        f'<h1 style="{_STYLES["h1"]}border-bottom:3px solid {accent};padding-bottom:8px;">{html.escape(title)}</h1>'
    )
    if preview.get("description"):
        text.append(f"{_markdown_text(preview['description'])}\n")
        page.append(f'<p style="{_STYLES["p"]}color:#57606a;">{html.escape(preview["description"])}</p>')
    text.append(" · ".join(_markdown_text(f) for f in facts) + "\n")
    page.append(f'<p style="{_STYLES["p"]}font-size:13px;color:#57606a;">{html.escape(" · ".join(facts))}</p>')
    _add_failed_sections(context, text, page)

    kpis = preview.get("kpis") or []
    if kpis:
        text.append("".join(f"- **{_markdown_text(k['label'])}:** {_markdown_text(k['value'])}\n" for k in kpis))
        page.append(_kpi_cards(kpis, accent))
    for section in preview.get("texts") or []:
        heading = f"## {_markdown_text(section['title'])}\n\n" if section.get("title") else ""
        text.append(heading + section["markdown"].strip() + "\n")
        page.append(markdown_html(heading + section["markdown"]))
    chart = preview.get("chart")
    cid = picture("chart", "chart")
    if cid and isinstance(chart, dict):
        alt = html.escape(str(chart.get("title") or "Chart"))
        if chart.get("title"):
            page.append(f'<h2 style="{_STYLES["h2"]}">{alt}</h2>')
        page.append(
            f'<img src="cid:{cid}" alt="{alt}" width="592" style="display:block;width:100%;max-width:592px;'
            'height:auto;margin:0 0 12px;border:0;">'
        )
    table = preview.get("table")
    if isinstance(table, dict):
        markdown = _table_markdown(table)
        text.append(markdown)
        page.append(markdown_html(markdown))
    files = _files_markdown(context, attachments, too_large)
    text.append(files)
    page.append(markdown_html(files))
    return "\n".join(text), "\n".join(page) + "\n", tuple(inline)


def _kpi_cards(kpis: Sequence[dict[str, Any]], accent: str) -> str:
    """Key figures as cards, three to a row, in a layout table (mail clients know no grid or flex)."""
    cell = (
        f"padding:10px 12px;border:1px solid #d0d7de;border-left:3px solid {accent};border-radius:4px;"
        "vertical-align:top;width:33%;"
    )
    rows = []
    for start in range(0, len(kpis), 3):
        cells = []
        for kpi in kpis[start : start + 3]:
            note = (
                f'<div style="font-size:12px;color:#57606a;">{html.escape(kpi["description"])}</div>'
                if kpi.get("description")
                else ""
            )
            cells.append(
                f'<td style="{cell}"><div style="font-size:12px;color:#57606a;">{html.escape(kpi["label"])}</div>'
                f'<div style="font-size:22px;font-weight:600;line-height:1.3;">{html.escape(kpi["value"])}</div>'
                f"{note}</td>"
            )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="8" border="0" '
        'style="margin:0 -8px 12px;border-collapse:separate;">' + "".join(rows) + "</table>"
    )


def _table_markdown(table: dict[str, Any]) -> str:
    """The first rows of the first table as a Markdown table, with how many of its rows they are."""
    columns, numeric, rows = table["columns"], table["numeric"], table["rows"]
    title = f"## {_markdown_text(table['title'])}\n\n" if table.get("title") else ""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(_markdown_text(c).replace("|", "\\|") or " " for c in cells) + " |\n"

    lines = [line(columns), "|" + "|".join(" ---: " if n else " --- " for n in numeric) + "|\n"]
    lines += [line(row) for row in rows]
    shown = f"The first {len(rows)} of {table['total']:,} rows." if table["total"] > len(rows) else ""
    return title + "".join(lines) + (f"\n{shown}\n" if shown else "")


def _files_markdown(context: DeliveryContext, attachments: Sequence[Attachment], too_large: Sequence[Artifact]) -> str:
    """The files of the run a reader can open: attached, or linked; one neither attached nor linked is left out."""
    attached = {a.name for a in attachments}
    lines = []
    for artifact in context.artifacts:
        if artifact.path.name in attached:
            lines.append(_artifact_line(context, artifact, ", attached"))
        elif context.link(artifact):
            note = ", linked (too large to attach)" if artifact in too_large else ", linked"
            lines.append(_artifact_line(context, artifact, note))
    if not lines:
        return "No files are attached or linked.\n"
    return "## Files\n\n" + "".join(lines)


def _artifact_line(context: DeliveryContext, artifact: Artifact, note: str) -> str:
    link = context.link(artifact)
    name = _markdown_text(artifact.path.name)
    shown = f"[{name}](<{link}>)" if link else name
    return f"- {shown}, {format_bytes(artifact.bytes)}{compression_note(artifact)}{note}\n"


def compression_note(artifact: Artifact) -> str:
    """``, gzip-compressed`` for a compressed output (``compress:``), so readers know to unpack it; else empty."""
    return f", {artifact.compression}-compressed" if artifact.compression else ""


def _markdown_text(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))
