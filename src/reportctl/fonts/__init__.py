"""Fonts shipped with reportctl, so PDFs look the same on every machine and non-Latin text renders.

DejaVu Sans (Latin, Greek, Cyrillic, symbols such as the U+2212 minus and U+2014 dash) is the text face;
Droid Sans Fallback covers CJK (東京) as a fallback. Licences are in the LICENSE-*.txt files beside this module.
"""

from __future__ import annotations

from pathlib import Path

FONT_DIR = Path(__file__).parent
REGULAR = FONT_DIR / "DejaVuSans.ttf"
BOLD = FONT_DIR / "DejaVuSans-Bold.ttf"
ITALIC = FONT_DIR / "DejaVuSans-Oblique.ttf"
BOLD_ITALIC = FONT_DIR / "DejaVuSans-BoldOblique.ttf"
CJK_FALLBACK = FONT_DIR / "DroidSansFallbackFull.ttf"
ALL = (REGULAR, BOLD, ITALIC, BOLD_ITALIC, CJK_FALLBACK)


def font_family(path: Path) -> str:
    """The family name a font file declares (what Excel and mail clients find a font by), else its file name."""
    try:
        from fontTools.ttLib import TTFont

        with TTFont(str(path), lazy=True) as font:
            name = font["name"].getBestFamilyName()
    except Exception:  # an unreadable name table: the file name is the best guess
        name = None
    return str(name or path.stem)
