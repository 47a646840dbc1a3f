"""``extends``: a spec as the deep merge of its bases and itself.

Mappings merge key by key and the child wins; ``null`` removes a key it inherited. ``sections`` merge by ``id``:
a child section with a known id overrides the base's in place (``remove: true`` drops it), a new id is appended.
``name``, ``abstract`` and ``extends`` are never inherited. Positions travel with the values, so a problem in an
inherited value points into the base file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reportctl.errors import Problem, SpecError
from reportctl.spec.reading import WORKING_TREE, SpecReader, read_spec_text
from reportctl.spec.yamlpos import LocatedDict, LocatedList, load_yaml

NOT_INHERITED = ("name", "abstract", "extends")


def load_spec_data(path: Path, project_root: Path, reader: SpecReader = WORKING_TREE) -> tuple[LocatedDict, list[Path]]:
    """The merged, located data of the spec at ``path`` and the files it was built from (the spec first), each
    read through ``reader`` (the working tree, or a git commit)."""
    return _load(path.resolve(), project_root, (), reader)


def _load(
    path: Path, project_root: Path, chain: tuple[Path, ...], reader: SpecReader
) -> tuple[LocatedDict, list[Path]]:
    data = load_yaml(read_spec_text(reader, path), reader.label(path))
    if not isinstance(data, LocatedDict):
        message = f"a spec must be a YAML mapping (apiVersion: reportctl/v1, name: ...){reader.where()}"
        raise SpecError([Problem(message, file=reader.label(path))])
    reference = data.get("extends")
    if reference is None:
        return _merge_into(LocatedDict(), data, path), [path]
    if not isinstance(reference, str):
        raise SpecError([_problem(data, "extends", "expected the path of a base spec, e.g. base/ops.yaml", path)])
    parent = _find_base(reference, path, project_root, reader)
    if parent is None:
        raise SpecError(
            [
                _problem(
                    data,
                    "extends",
                    f"base spec '{reference}' not found next to {path.name} or in the project{reader.where()}",
                    path,
                )
            ]
        )
    if parent in (*chain, path):
        cycle = " -> ".join(p.name for p in (*chain, path, parent))
        raise SpecError([_problem(data, "extends", f"extends cycle: {cycle}; remove one of the links", path)])
    base, files = _load(parent, project_root, (*chain, path), reader)
    for key in NOT_INHERITED:
        base.pop(key, None)
    return _merge_into(base, data, path), [path, *files]


def _find_base(reference: str, spec: Path, project_root: Path, reader: SpecReader) -> Path | None:
    for folder in (spec.parent, project_root, project_root / "specs"):
        candidate = (folder / reference).resolve()
        if reader.is_file(candidate):
            return candidate
    return None


def _problem(data: LocatedDict, key: str, message: str, file: Path) -> Problem:
    return Problem(message, path=key, position=data.value_positions.get(key), file=file)


def _merge_into(base: LocatedDict, child: LocatedDict, file: Path, top: bool = True) -> LocatedDict:
    merged = _copy(base)
    merged.position = child.position
    problems: list[Problem] = []
    for key, value in child.items():
        if value is None:
            merged.pop(key, None)
            merged.key_positions.pop(key, None)
            merged.value_positions.pop(key, None)
            continue
        old = merged.get(key)
        if top and key == "sections" and isinstance(value, LocatedList):
            new: Any = _merge_sections(old if isinstance(old, list) else LocatedList(), value, file, problems)
        elif isinstance(old, LocatedDict) and isinstance(value, LocatedDict):
            new = _merge_into(old, value, file, top=False)
        else:
            new = value
        merged[key] = new
        merged.key_positions[key] = child.key_positions[key]
        merged.value_positions[key] = child.value_positions[key]
    if problems:
        raise SpecError(problems)
    return merged


def _section_id(section: Any) -> str | None:
    value = section.get("id") if isinstance(section, dict) else None
    return value if isinstance(value, str) else None


def _merge_sections(base: Any, child: LocatedList, file: Path, problems: list[Problem]) -> LocatedList:
    merged = LocatedList()
    merged.position = child.position
    positions = list(getattr(base, "item_positions", [None] * len(base)))
    items = list(base)
    index_of = {_section_id(s): i for i, s in enumerate(items) if _section_id(s) is not None}
    removed: set[int] = set()
    for child_index, (section, position) in enumerate(zip(child, child.item_positions, strict=True)):
        section_id = _section_id(section)
        remove = isinstance(section, dict) and section.get("remove") is True
        if section_id in index_of:
            i = index_of[section_id]
            if remove:
                removed.add(i)
            elif isinstance(section, LocatedDict) and section.get("type", items[i].get("type")) == items[i].get("type"):
                items[i] = _merge_into(items[i], section, file, top=False)
                positions[i] = position
            else:
                items[i], positions[i] = section, position
        elif remove and section_id is not None:
            problems.append(
                Problem(
                    f"section '{section_id}' has remove: true, but no base spec has a section with that id",
                    path=f"sections[{child_index}].remove",
                    position=section.value_positions.get("remove") if isinstance(section, LocatedDict) else position,
                    file=file,
                )
            )
        else:
            # a repeated id within one file is reported by the checks, not merged away here
            items.append(section)
            positions.append(position)
    for i, (section, position) in enumerate(zip(items, positions, strict=True)):
        if i in removed:
            continue
        kept = section
        if isinstance(section, LocatedDict) and "remove" in section:
            kept = _copy(section)
            kept.pop("remove")
        merged.append(kept)
        merged.item_positions.append(position)
    return merged


def _copy(data: LocatedDict) -> LocatedDict:
    copy = LocatedDict(data)
    copy.position = data.position
    copy.key_positions = dict(data.key_positions)
    copy.value_positions = dict(data.value_positions)
    return copy
