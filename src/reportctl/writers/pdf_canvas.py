"""The PDF page machinery: an fpdf2 document with the shipped fonts, page furniture and cached text metrics.

Measuring text is done here from the fonts' own advance widths (memoised), since fpdf2's ``get_string_width``
is too slow to call once per table cell; ``draw_text`` falls back to Droid Sans for glyphs DejaVu lacks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from reportctl import fonts
from reportctl.document import Style
from reportctl.formats import format_datetime

Orientation = Literal["P", "L"]

FAMILY = "DejaVu"
FALLBACK = "DroidFallback"
ELLIPSIS = "…"
MM_PER_PT = 25.4 / 72
_ZERO_DIGITS = str.maketrans("123456789", "000000000")

ACCENT = (31, 58, 95)
INK = (33, 37, 41)
MUTED = (108, 117, 125)
RULE = (206, 212, 218)
HEADER_FILL = (226, 232, 240)
STRIPE = (245, 247, 250)
CARD_FILL = (244, 246, 249)
WHITE = (255, 255, 255)
WARNING = (194, 65, 12)
WARNING_FILL = (255, 247, 237)

MARGIN_X = 16.0
MARGIN_TOP = 22.0
MARGIN_BOTTOM = 18.0


@dataclass(frozen=True)
class Furniture:
    """What the header and footer of every page show."""

    title: str
    generated: str
    name: str


class FontMetrics:
    """Advance widths of the text font's styles, with Droid Sans Fallback for glyphs DejaVu lacks (its widths
    asked of ``fallback`` only when such a glyph comes up)."""

    def __init__(self, pdf: Any, face: Callable[[str], Any], fallback: Callable[[], Any]) -> None:
        self._face = face
        self._widths: dict[str, Any] = {}
        self._cmap: dict[int, Any] = pdf.fonts[FAMILY.lower()].cmap
        self._fallback = fallback
        self._cache: dict[tuple[str, str], int] = {}
        self._covered: dict[str, bool] = {}

    def covered(self, text: str) -> bool:
        """True when the text font has every glyph of ``text`` (remembered for text beyond ASCII: a table asks it
        of every cell, and a column of amounts in euros is all non-ASCII)."""
        if text.isascii():
            return True
        found = self._covered.get(text)
        if found is None:
            found = self._covered[text] = all(map(self._cmap.__contains__, map(ord, text)))
        return found

    def units(self, text: str, style: str = "") -> int:
        """The advance width of ``text`` in thousandths of the font size."""
        key = (style, text)
        width = self._cache.get(key)
        if width is None:
            widths, cmap = self._advance(style), self._cmap
            if self.covered(text):
                width = sum(map(widths.__getitem__, map(ord, text)))
            else:
                fallback = self._fallback()
                width = sum(widths[o] if o in cmap else fallback[o] for o in map(ord, text))
            self._cache[key] = width
        return width

    def _advance(self, style: str) -> Any:
        """The advance widths of the text font's ``style`` face (the face added to the PDF on first need)."""
        found = self._widths.get(style)
        if found is None:
            found = self._widths[style] = self._face(style)
        return found

    def width(self, text: str, style: str, size: float) -> float:
        """The width of ``text`` in mm at ``size`` points."""
        return self.units(text, style) * size * MM_PER_PT / 1000

    def measured(self, texts: Iterable[str], style: str, size: float) -> dict[str, tuple[float, bool]]:
        """``width`` and ``covered`` of each of many distinct texts (a table column's), remembering neither.

        Where the face's ten digits are equally wide (tabular figures, as in DejaVu), a text is as wide as its
        "shape", its digits all made 0, and covered when its shape is: a column of 100,000 distinct amounts has
        a few dozen shapes, each measured once."""
        advance = self._advance(style)
        width = advance.__getitem__
        digits = _ZERO_DIGITS if len({advance[ord(d)] for d in "0123456789"}) == 1 else {}
        shapes: dict[str, tuple[int, bool]] = {}
        result: dict[str, tuple[float, bool]] = {}
        for text in texts:
            shape = text.translate(digits)
            found = shapes.get(shape)
            if found is None:
                covered = self.covered(shape)
                found = shapes[shape] = (
                    sum(map(width, map(ord, shape))) if covered else self.units(shape, style),
                    covered,
                )
            result[text] = (found[0] * size * MM_PER_PT / 1000, found[1])  # ``width``'s arithmetic: same floats
        return result

    def fit(self, text: str, style: str, size: float, room: float) -> tuple[str, float]:
        """``text`` cut with an ellipsis to fit ``room`` mm, and its width."""
        width = self.width(text, style, size)
        if width <= room:
            return text, width
        limit = room * 1000 / (size * MM_PER_PT) - self.units(ELLIPSIS, style)
        used, cut = 0, 0
        for index, char in enumerate(text):
            used += self.units(char, style)
            if used > limit:
                cut = index
                break
        short = text[:cut].rstrip() + ELLIPSIS
        return short, self.width(short, style, size)

    def wrap(self, text: str, style: str, size: float, room: float, most: int) -> list[str]:
        """``text`` broken at spaces into at most ``most`` lines of ``room`` mm; a word longer than a line, or
        text beyond the last line, is cut with an ellipsis."""
        lines: list[str] = []
        words = text.split()
        while words and len(lines) < most:
            line = words.pop(0)
            while words and self.width(f"{line} {words[0]}", style, size) <= room:
                line = f"{line} {words.pop(0)}"
            if words and len(lines) == most - 1:
                line = f"{line} {' '.join(words)}"
                words = []
            lines.append(self.fit(line, style, size, room)[0])
        return lines

    def runs(self, text: str) -> list[tuple[str, str]]:
        """``text`` split into (family, text) runs: the text font, or the fallback where it lacks a glyph."""
        result: list[tuple[str, str]] = []
        for char in text:
            family = FAMILY if ord(char) in self._cmap else FALLBACK
            if result and result[-1][0] == family:
                result[-1] = (family, result[-1][1] + char)
            else:
                result.append((family, char))
        return result


class Canvas:
    """One PDF being drawn: page geometry, fonts and the drawing helpers every block uses."""

    def __init__(
        self,
        page_size: str,
        orientation: Orientation,
        furniture: Furniture,
        created: datetime,
        style: Style | None = None,
    ) -> None:
        from fpdf import FPDF

        style = style or Style()
        pdf: Any = FPDF(orientation=orientation, unit="mm", format=page_size)
        # A theme's font takes the text family's place (its bold for bold, the regular face for italics), so the
        # metrics and the fallback for missing glyphs work for it as for DejaVu.
        regular = style.font or fonts.REGULAR
        bold = style.font_bold or (style.font if style.font else fonts.BOLD)
        # Regular and bold are on every report; the italic faces are added on first use (30 ms each to load, and
        # to subset at output), which a report without notes or emphasis never pays.
        self._faces = {
            "": regular, "B": bold, "I": style.font or fonts.ITALIC, "BI": bold if style.font else fonts.BOLD_ITALIC,
        }  # fmt: skip
        self.pdf: Any = pdf
        self._face("")
        self._face("B")
        pdf.set_margins(MARGIN_X, MARGIN_TOP, MARGIN_X)
        pdf.set_auto_page_break(True, margin=MARGIN_BOTTOM)
        pdf.set_creation_date(created)
        # Footers say "Page 3 of 12", drawn once the page count is known (``output``), so no alias is needed:
        # fpdf2's "{nb}" reserves three digits and warns from page 1,000 on.
        pdf.alias_nb_pages(None)
        self.accent = hex_colour(style.accent) if style.accent else ACCENT
        self.logo = style.logo
        pdf.MARKDOWN_LINK_COLOR = self.accent
        pdf.c_margin = 0  # text blocks start exactly at the margin, aligned with headings and rules
        pdf.header = self._header
        self._page_sizes: dict[int, tuple[float, float, float, float]] = {}
        self.metrics = FontMetrics(pdf, self._face, self._fallback_widths)
        self._fallback_added = False
        self._colours: dict[tuple[int, int, int], Any] = {}
        self.base_orientation: Orientation = orientation
        self.page_size = page_size
        self.furniture = furniture

    @property
    def left(self) -> float:
        return float(self.pdf.l_margin)

    @property
    def width(self) -> float:
        """The width between the margins of the current page."""
        return float(self.pdf.epw)

    @property
    def bottom(self) -> float:
        """The lowest y that content may reach on the current page."""
        return float(self.pdf.h - MARGIN_BOTTOM)

    @property
    def y(self) -> float:
        return float(self.pdf.y)

    def orientation(self) -> Orientation:
        return "L" if self.pdf.w > self.pdf.h else "P"

    def page_width(self, orientation: Orientation) -> float:
        """The width between the margins of a page in ``orientation``."""
        short, long = sorted((float(self.pdf.w), float(self.pdf.h)))
        return (long if orientation == "L" else short) - 2 * MARGIN_X

    def new_page(self, orientation: Orientation | None = None) -> None:
        self.pdf.add_page(orientation=orientation or self.orientation())

    def need(self, height: float, orientation: Orientation | None = None) -> None:
        """Start a new page unless ``height`` mm fit below the cursor (and the page has ``orientation``)."""
        wanted = orientation or self.base_orientation
        turn = self.pdf.page == 0 or wanted != self.orientation()
        if turn or (self.y + height > self.bottom and self.y > MARGIN_TOP + 0.5):
            self.new_page(wanted)

    def font(self, style: str = "", size: float = 9, color: tuple[int, int, int] = INK) -> None:
        self._face(style)
        self.pdf.set_font(FAMILY, style, size)
        self.pdf.text_color = self._colours.get(color) or self._colours.setdefault(color, text_colour(color))

    def _face(self, style: str) -> Any:
        """The advance widths of the text family's ``style`` face ("", "B", "I" or "BI"), added on first need."""
        key = FAMILY.lower() + style
        if key not in self.pdf.fonts:
            self.pdf.add_font(FAMILY, style, str(self._faces[style]))
        return self.pdf.fonts[key].cw

    def _fallback_widths(self) -> Any:
        """The fallback font's widths, the font added to the document on first need: Droid Sans Fallback is
        4 MB and takes a third of a second to load, which a report without CJK text never pays."""
        if not self._fallback_added:
            self.pdf.add_font(FALLBACK, "", str(fonts.CJK_FALLBACK))
            self.pdf.set_fallback_fonts([FALLBACK], exact_match=False)
            self._fallback_added = True
        return self.pdf.fonts[FALLBACK.lower()].cw

    def multi_cell(self, width: float, height: float, text: str, **options: Any) -> None:
        """fpdf2's ``multi_cell``, with the fallback font added first when ``text`` needs it."""
        if not self.metrics.covered(text):
            self._fallback_widths()
        if options.get("markdown") and "__" in text:  # fpdf2's italic marker (``markdown_lines`` writes it)
            self._face("I")
            self._face("BI")
        self.pdf.multi_cell(width, height, text, new_x="LMARGIN", new_y="NEXT", **options)

    def draw_text(self, x: float, baseline: float, text: str, style: str = "", size: float = 9) -> None:
        """Draw one line at a baseline with the current font, switching to the fallback font where needed."""
        if self.metrics.covered(text):
            self.pdf.text(x, baseline, text)
            return
        self._fallback_widths()
        for family, run in self.metrics.runs(text):
            self.pdf.set_font(family, style if family == FAMILY else "", size)
            self.pdf.text(x, baseline, run)
            x += self.metrics.width(run, style, size)
        self.pdf.set_font(FAMILY, style, size)

    def rule(self, y: float, color: tuple[int, int, int] = RULE, width: float = 0.2, x: float | None = None) -> None:
        self.pdf.set_draw_color(*color)
        self.pdf.set_line_width(width)
        start = self.left if x is None else x
        self.pdf.line(start, y, start + self.width, y)

    def heading(self, title: str) -> None:
        """A section heading: accent-coloured, with a hairline rule below."""
        self.pdf.ln(3)
        self.font("B", 12.5, self.accent)
        y = self.y
        self.draw_text(self.left, y + 5.2, self.metrics.fit(title, "B", 12.5, self.width)[0], "B", 12.5)
        self.rule(y + 7.6)
        self.pdf.set_y(y + 10.5)

    def _header(self) -> None:
        pdf, furniture = self.pdf, self.furniture
        self._page_sizes[pdf.page] = (pdf.w, pdf.h, pdf.w_pt, pdf.h_pt)
        size = 7.5
        generated = f"Generated {furniture.generated}"
        room = self.width - self.metrics.width(generated, "", size) - 8
        self.font("B", size, self.accent)
        self.draw_text(self.left, 12, self.metrics.fit(furniture.title, "B", size, room)[0], "B", size)
        self.font("", size, MUTED)
        self.pdf.text(pdf.w - MARGIN_X - self.metrics.width(generated, "", size), 12, generated)
        self.rule(14.5)
        pdf.set_y(MARGIN_TOP)

    def _footer(self, number: int, total: int) -> None:
        pdf, size = self.pdf, 7.5
        y = pdf.h - 10
        self.rule(y - 4)
        self.font("", size, MUTED)
        self.draw_text(self.left, y, self.metrics.fit(self.furniture.name, "", size, self.width / 2)[0], "", size)
        count = f"Page {number} of {total}"
        self.draw_text(pdf.w - MARGIN_X - self.metrics.width(count, "", size), y, count, "", size)

    def output(self) -> bytes:
        """The PDF's bytes, with every page's footer drawn now that the page count is known."""
        pdf = self.pdf
        last, total = pdf.page, pdf.pages_count
        current = (pdf.w, pdf.h, pdf.w_pt, pdf.h_pt)
        for number in range(1, total + 1):
            pdf.page = number
            pdf.w, pdf.h, pdf.w_pt, pdf.h_pt = self._page_sizes.get(number, current)
            # fpdf2 writes a font, line width or colour into a page's stream only when it changes; the page we
            # come back to may have ended with other ones, so the footer's are written again
            pdf.current_font_is_set_on_page = False
            pdf.draw_color, pdf.line_width = None, -1.0
            self._footer(number, total)
        pdf.page = last
        pdf.w, pdf.h, pdf.w_pt, pdf.h_pt = current
        return bytes(pdf.output())


def text_colour(color: tuple[int, int, int]) -> Any:
    """fpdf2's colour for ``set_text_color(*color)``; an RGB one with its PDF operator built once. fpdf2's
    ``text()`` sets the text colour anew around every line it draws (``q 0.129 0.145 0.161 rg BT ... ET Q``),
    and formatting those three numbers each time took a sixth of a 10,000-row table's drawing time."""
    from fpdf.drawing_primitives import DeviceRGB, convert_to_device_color

    colour = convert_to_device_color(*color)
    if type(colour) is not DeviceRGB:
        return colour

    class SerializedRGB(DeviceRGB):
        __slots__ = ()
        _operator = colour.serialize()

        def serialize(self) -> str:
            return self._operator

        def __eq__(self, other: object) -> bool:  # equal to the DeviceRGB it stands for, as fpdf2 compares them
            if not isinstance(other, DeviceRGB):
                return False
            return (self.r, self.g, self.b, self.a) == (other.r, other.g, other.b, other.a)

        __hash__ = DeviceRGB.__hash__

    return SerializedRGB(colour.r, colour.g, colour.b)


def hex_colour(text: str) -> tuple[int, int, int]:
    """#rrggbb as an (r, g, b) tuple."""
    red, green, blue = (int(text[i : i + 2], 16) for i in (1, 3, 5))
    return red, green, blue


def shown_time(moment: datetime, timezone: str) -> str:
    """A run time as the reader sees it: in the report's time zone, with its abbreviation."""
    return format_datetime(moment, None, timezone)


_ITALIC_STARS = re.compile(r"(?<![*\w\\])\*(?![*\s])(.+?)(?<![*\s\\])\*(?!\*)")
_ITALIC_UNDERSCORES = re.compile(r"(?<![\w\\])_(?![_\s])(.+?)(?<![_\s\\])_(?!\w)")
_BOLD_UNDERSCORES = re.compile(r"(?<!\\)__(?!\s)(.+?)(?<!\s)__")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|(\d+)[.)])\s+(.*)$")
_HEADING = re.compile(r"^#{1,6}\s+(.*)$")


@dataclass(frozen=True)
class MarkdownLine:
    """A paragraph, list item or heading of a text section, its inline marks in fpdf2's markdown syntax."""

    kind: Literal["paragraph", "bullet", "heading"]
    text: str
    marker: str = "•"


def markdown_lines(markdown: str) -> list[MarkdownLine]:
    """Paragraphs, bullet and numbered list items and headings of simple Markdown, inline marks for fpdf2."""
    result: list[MarkdownLine] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            result.append(MarkdownLine("paragraph", _inline(" ".join(paragraph))))
            paragraph.clear()

    for raw in markdown.splitlines():
        line = raw.strip()
        item = _LIST_ITEM.match(raw)
        heading = _HEADING.match(line)
        if not line:
            flush()
        elif item:
            flush()
            marker = f"{item.group(1)}." if item.group(1) else "•"
            result.append(MarkdownLine("bullet", _inline(item.group(2).strip()), marker))
        elif heading:
            flush()
            result.append(MarkdownLine("heading", _inline(heading.group(1).strip())))
        elif result and result[-1].kind == "bullet" and raw[:1].isspace() and not paragraph:
            last = result[-1]
            result[-1] = MarkdownLine("bullet", f"{last.text} {_inline(line)}", last.marker)
        else:
            paragraph.append(line)
    flush()
    return result


def _inline(text: str) -> str:
    """CommonMark emphasis in fpdf2's markers: ``**bold**``, ``__italic__``; its other markers escaped."""
    text = re.sub(r"(~~|--)", r"\\\1", text)
    text = _BOLD_UNDERSCORES.sub(r"**\1**", text)
    text = _ITALIC_STARS.sub(r"__\1__", text)
    return _ITALIC_UNDERSCORES.sub(r"__\1__", text)
