"""Locale and theme: the spec's keys over the project's, checked by validate before any render."""

from __future__ import annotations

from pathlib import Path

import pytest

from reportctl.assemble import report_style
from reportctl.config import find_project
from reportctl.errors import SpecError
from reportctl.spec.checks import check_spec
from reportctl.spec.loader import load_spec

SPEC = """\
apiVersion: reportctl/v1
name: styled
sources:
  s: {kind: sample, rows: 3}
sections:
  - {id: t, type: table, dataset: s}
"""


def _write(project: Path, config: str, spec_extra: str = "") -> Path:
    (project / "reportctl.yaml").write_text(config)
    path = project / "specs" / "styled.yaml"
    path.write_text(SPEC + spec_extra)
    return path


def _problems(path: Path) -> list[str]:
    loaded = load_spec(path, find_project(path), check=False)
    return [str(p) for p in check_spec(loaded) if p.severity == "error"]


def test_the_spec_overrides_the_projects_theme_key_by_key(project: Path) -> None:
    (project / "brand").mkdir()
    (project / "brand" / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    path = _write(
        project,
        "locale: de-DE\ntheme: {logo: brand/logo.svg, accent: '#aa0000'}\n",
        "locale: fr_CH\ntheme: {accent: '#00aa00'}\n",
    )
    style = report_style(load_spec(path, find_project(path)))
    assert (style.locale, style.accent, style.logo, style.font) == (
        "fr_CH",
        "#00aa00",
        project / "brand" / "logo.svg",
        None,
    )


def test_without_a_theme_the_defaults_apply(project: Path) -> None:
    path = _write(project, "timezone: UTC\n")
    style = report_style(load_spec(path, find_project(path)))
    assert (style.locale, style.accent, style.logo) == ("en_US", None, None)


def test_an_unknown_locale_names_the_key_and_examples(project: Path) -> None:
    path = _write(project, "timezone: UTC\n", "locale: xx_YY\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path, find_project(path))
    assert "locale" in str(caught.value)
    assert "unknown locale 'xx_YY'; use a language and territory such as en_US, de_DE or ja_JP" in str(caught.value)


def test_a_bad_accent_colour_is_refused(project: Path) -> None:
    path = _write(project, "timezone: UTC\n", "theme: {accent: blue}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path, find_project(path))
    assert "theme.accent" in str(caught.value)


def test_theme_files_must_exist_in_the_project_and_be_of_a_usable_kind(project: Path) -> None:
    (project / "logo.gif").write_bytes(b"GIF89a")
    path = _write(
        project,
        "theme: {font: fonts/missing.ttf}\n",
        "theme: {logo: logo.gif, font_bold: ../outside.ttf}\n",
    )
    problems = _problems(path)
    assert any("reportctl.yaml" in p and "theme.font: file 'fonts/missing.ttf' not found;" in p for p in problems)
    assert any("theme.logo" in p and "'logo.gif' is not a PNG or SVG file" in p for p in problems)
    assert any("theme.font_bold" in p and "outside the project folder" in p for p in problems)
