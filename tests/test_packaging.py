"""What the distribution says about itself: its licence and the file that holds it, and that it ships types."""

from __future__ import annotations

import importlib.metadata
from importlib.resources import files
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_licence_is_declared_and_its_text_is_there() -> None:
    metadata = importlib.metadata.metadata("reportctl")
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "Permission is hereby granted, free of charge" in text


def test_the_package_ships_its_types() -> None:
    """mypy reads reportctl's annotations in a user's plugin only with a py.typed marker (PEP 561)."""
    assert files("reportctl").joinpath("py.typed").is_file()
    assert "Typing :: Typed" in (importlib.metadata.metadata("reportctl").get_all("Classifier") or [])
