"""The PDF canvas's shortcuts give what fpdf2's own calls and the one-text-at-a-time metrics give."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from fpdf.drawing_primitives import DeviceGray, DeviceRGB
from hypothesis import given, settings
from hypothesis import strategies as st

from reportctl.writers.pdf_canvas import INK, Canvas, FontMetrics, Furniture, text_colour

# digits, separators, currency signs, Latin letters with accents, CJK (drawn with the fallback font)
_TEXTS = st.lists(st.text(alphabet="0123456789 ,.-:%€$£abcXYZäöüßłé漢字한글", max_size=14), max_size=40)


def _canvas() -> Canvas:
    return Canvas("A4", "P", Furniture("Title", "today", "name"), datetime(2026, 12, 4, tzinfo=UTC))


@pytest.fixture(scope="module")
def canvas() -> Iterator[Canvas]:
    canvas = _canvas()
    yield canvas
    canvas.new_page()
    canvas.output()  # closes its font files


@settings(max_examples=60, deadline=None)
@given(texts=_TEXTS, style=st.sampled_from(["", "B"]), size=st.sampled_from([7.4, 7.8, 12.5]))
def test_measured_gives_each_texts_width_and_coverage(
    canvas: Canvas, texts: list[str], style: str, size: float
) -> None:
    metrics = canvas.metrics
    measured = metrics.measured(dict.fromkeys(texts), style, size)
    assert measured == {text: (metrics.width(text, style, size), metrics.covered(text)) for text in texts}


def test_measured_sums_every_digit_of_a_face_whose_digits_differ_in_width() -> None:
    advance = {ord(c): 500 for c in "0123456789 ,."} | {ord("1"): 300, ord("7"): 450}
    fake_pdf = SimpleNamespace(fonts={"dejavu": SimpleNamespace(cmap=dict.fromkeys(advance, 1))})
    metrics = FontMetrics(fake_pdf, lambda style: advance, dict)
    texts = ["1,111", "0,000", "7.17", "10 00"]
    measured = metrics.measured(texts, "", 10)
    assert measured == {text: (metrics.width(text, "", 10), True) for text in texts}
    assert measured["1,111"][0] < measured["0,000"][0]


def test_the_text_colour_is_the_colour_fpdf2_would_set_with_its_operator_built_once() -> None:
    colour = text_colour(INK)
    plain = DeviceRGB(INK[0] / 255, INK[1] / 255, INK[2] / 255)
    assert colour == plain and plain == colour and hash(colour) == hash(plain)
    assert not (colour != plain or plain != colour)  # fpdf2 asks "!="
    assert colour.serialize() == plain.serialize() == "0.1294 0.1451 0.1608 rg"
    assert colour != DeviceRGB(0.5, 0.5, 0.5)
    assert text_colour((0, 0, 0)) == DeviceGray(0)  # black (and greys) stay fpdf2's own grey


def test_text_in_the_fill_colour_is_drawn_without_setting_the_colour_again() -> None:
    """fpdf2 leaves out ``q ... rg ... Q`` around text whose colour the fill colour already is: so does the
    canvas's colour, for the same bytes."""
    canvas = _canvas()
    canvas.new_page()
    canvas.pdf.set_fill_color(*INK)
    canvas.font("", 9, INK)
    canvas.pdf.text(20, 40, "same colour")
    canvas.pdf.set_fill_color(255, 255, 255)
    canvas.pdf.text(20, 50, "other colour")
    stream = canvas.pdf.pages[1].contents.decode("latin-1")
    canvas.output()
    assert stream.count("0.1294 0.1451 0.1608 rg BT") == 1
