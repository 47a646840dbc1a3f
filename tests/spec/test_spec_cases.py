"""Spec loading cases as data: each YAML file in cases/ holds input files and the exact problems expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reportctl.errors import SpecError
from reportctl.spec.loader import load_spec

CASES = sorted((Path(__file__).parent / "cases").glob("*.yaml"))


@pytest.mark.parametrize("case_file", CASES, ids=[c.stem for c in CASES])
def test_case(case_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case: dict[str, Any] = yaml.safe_load(case_file.read_text())
    files = {"reportctl.yaml": "timezone: UTC\n", **case["files"]}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    target = tmp_path / case.get("load", "specs/report.yaml")
    expected = case.get("errors", [])
    if not expected:
        loaded = load_spec(target)
        for key, value in case.get("expect", {}).items():
            actual = loaded.spec.model_dump(by_alias=True, mode="json")
            for part in key.split("."):
                actual = actual[int(part)] if isinstance(actual, list) else actual[part]
            assert actual == value, key
        return
    with pytest.raises(SpecError) as caught:
        load_spec(target)
    lines = [str(p).replace(f"{tmp_path}/", "") for p in caught.value.problems]
    assert lines == expected
