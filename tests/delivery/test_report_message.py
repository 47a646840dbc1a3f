"""The default message of a rendered report, as a reader's mail client gets it: parsed with the standard library's
email parser, and its HTML opened in Chromium."""

from __future__ import annotations

import email
import email.policy
import re
import subprocess
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reportctl.chart_export import find_browser

SPEC = """\
apiVersion: reportctl/v1
name: weekly
title: Weekly <sales>
sources:
  sales: {kind: file, path: data/sales.csv}
sections:
  - id: kpis
    type: kpis
    items:
      - {label: Revenue, value: "sum(sales.amount)", format: "currency:EUR"}
      - {label: Refunded or cancelled orders this week, value: "min(sales.amount)", format: "currency:EUR",
         description: Orders refunded or cancelled in the period}
      - {label: Missing, value: "max(sales.missing)", format: number}
  - {id: notes, type: text, template: "Traffic was **all** within budget."}
  - {id: trend, type: chart, chart: line, dataset: sales, x: day, y: amount, title: Revenue by day}
  - {id: rows, type: table, dataset: sales, title: Orders}
outputs: [pdf, csv, json]
delivery:
  - {channel: file, path: outbox, to: [ada@example.com], from: "Reports <reports@example.com>", attach: [pdf]}
"""


def _message(project: Path, cli: Any) -> EmailMessage:
    (project / "data").mkdir()
    rows = "".join(f"2026-11-{day:02d},{day * 100.5},\n" for day in range(1, 16))
    (project / "data" / "sales.csv").write_text("day,amount,missing\n" + rows)
    (project / "specs" / "weekly.yaml").write_text(SPEC)
    result = cli("render", "specs/weekly.yaml", "--deliver")
    assert result.exit_code == 0, result.stderr
    [path] = list((project / "outbox").rglob("message.eml"))
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.mark.skipif(find_browser() is None, reason="the first chart is drawn by Chromium")
def test_the_default_message_shows_the_report_and_its_first_chart(project: Path, cli: Any) -> None:
    message = _message(project, cli)
    structure = [part.get_content_type() for part in message.walk()]
    assert structure == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "multipart/related",
        "text/html",
        "image/png",
        "application/pdf",
    ]
    assert message["From"] == "Reports <reports@example.com>"
    plain = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    page = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for text in (plain, page):
        assert "€12,060.00" in text  # key figures with their display text
        assert "Refunded or cancelled orders this week" in text
        assert "—" in text  # a key figure without a value
    assert "Traffic was <strong>all</strong> within budget." in page
    assert "Weekly &lt;sales&gt;" in page  # escaped
    assert "The first 10 of 15 rows." in plain and "The first 10 of 15 rows." in page
    [image] = [p for p in message.walk() if p.get_content_type() == "image/png"]
    cid = image["Content-ID"].strip("<>")
    assert f'src="cid:{cid}"' in page
    assert image.get_content()[:8] == b"\x89PNG\r\n\x1a\n"
    # the files a reader can open: the attached PDF; the CSV and JSON are neither attached nor linked
    assert "weekly.pdf" in plain and ", attached" in plain
    assert "weekly.csv" not in plain and "weekly.json" not in plain


@pytest.mark.skipif(find_browser() is None, reason="no Chromium to look at the message with")
def test_a_reader_sees_the_message_with_its_picture(project: Path, cli: Any, tmp_path: Path) -> None:
    message = _message(project, cli)
    page = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    [image] = [p for p in message.walk() if p.get_content_type() == "image/png"]
    cid = image["Content-ID"].strip("<>")
    (tmp_path / "chart.png").write_bytes(image.get_content())
    (tmp_path / "message.html").write_text(page.replace(f"cid:{cid}", "chart.png"))
    shot = tmp_path / "message.png"
    browser = str(find_browser())
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}", "--window-size=700,1600",
         (tmp_path / "message.html").as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert shot.stat().st_size > 10_000
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", (tmp_path / "message.html").as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert re.search(r'<img src="chart.png"[^>]*alt="Revenue by day"', dom)


def test_sending_needs_a_sender_and_validate_says_where(project: Path, cli: Any) -> None:
    spec = SPEC.replace("  - {channel: file", "  - {channel: email, to: [ada@example.com]}\n  - {channel: file")
    (project / "specs" / "weekly.yaml").write_text(spec)
    (project / "data").mkdir()
    (project / "data" / "sales.csv").write_text("day,amount,missing\n2026-11-01,1.0,\n")
    result = cli("validate", "specs/weekly.yaml")
    assert result.exit_code == 1
    assert (
        "specs/weekly.yaml:19:5: delivery[0]: from: a sender is required to send email" in result.stdout + result.stderr
    )


def test_the_theme_reaches_the_message(project: Path, cli: Any) -> None:
    from reportctl import fonts

    (project / "brand").mkdir()
    (project / "brand" / "Body.ttf").write_bytes(fonts.REGULAR.read_bytes())
    Image.new("RGB", (120, 40), (192, 57, 43)).save(project / "brand" / "logo.png")
    (project / "reportctl.yaml").write_text(
        "timezone: UTC\ntheme: {accent: '#c0392b', font: brand/Body.ttf, logo: brand/logo.png}\n"
    )
    message = _message(project, cli)
    page = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "font-family:'DejaVu Sans'," in page
    assert "border-left:3px solid #c0392b" in page
    pictures = [p for p in message.walk() if p.get_content_type() == "image/png"]
    assert "logo" in {p["Content-ID"].strip("<>").split("@")[0] for p in pictures}
