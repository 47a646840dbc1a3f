"""Loading a spec: YAML with positions, extends, the models, plugin options, then cross-reference checks.

Every problem found at one stage is reported together. The stages run in order because a later one needs the
shape the earlier one guarantees: references are only checked in a spec whose structure is valid.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from reportctl.config import Project, find_project
from reportctl.errors import Problem, SpecError
from reportctl.plugins import CHANNELS, SOURCES, WRITERS, PluginError, load_plugin, plugin_names, unknown_plugin_message
from reportctl.spec.extends import load_spec_data
from reportctl.spec.models import Output, SourceOptions, Spec
from reportctl.spec.reading import WORKING_TREE, SpecReader
from reportctl.spec.validation import format_path, problems_from
from reportctl.spec.yamlpos import LocatedDict, position_of


@dataclass(frozen=True)
class LoadedSpec:
    """A valid spec with its plugin options resolved, and what is needed to point back into its files."""

    spec: Spec
    path: Path
    files: tuple[Path, ...]
    data: LocatedDict
    project: Project
    spec_hash: str
    sources: dict[str, SourceOptions]
    outputs: tuple[BaseModel, ...]
    deliveries: tuple[Any, ...] = ()
    """Each ``delivery`` entry validated by its channel's ``Options`` (a ``reportctl.delivery.base.ChannelOptions``)."""
    unchecked: frozenset[str] = frozenset()
    """Sources and datasets left out because their own entries are invalid: while those problems are reported,
    references to them still resolve and their columns count as unknown, so the rest is checked in the same pass."""
    revision: str | None = None
    """The full git commit the spec and its bases were read at (``render --rev``); None for the working tree."""
    ref: str | None = None
    """The revision as it was asked for (a tag, a branch, HEAD~1), when the spec was read at one."""
    contents: tuple[bytes, ...] = ()
    """The bytes of each of ``files`` as read and hashed: what a queued run stores (``reportctl.spec.bundle``)."""
    stored_copy: bool = False
    """Read from the copy of the spec files a queued run stored, not from this machine's files or git."""

    def problem(self, path: tuple[Any, ...], message: str) -> Problem:
        """A problem at ``path`` of this spec, positioned in whichever file the value came from."""
        return Problem(message, path=format_path(path), position=position_of(self.data, path), file=self.path)


def load_spec(
    path: Path, project: Project | None = None, *, check: bool = True, reader: SpecReader = WORKING_TREE
) -> LoadedSpec:
    """The spec at ``path``, validated; ``SpecError`` lists every problem found.

    With ``check`` the cross-references are checked too, including columns where a source's schema is knowable.
    ``reader`` says where the spec and its bases are read from (default the working tree; see ``load_spec_at``).
    """
    loaded, problems = inspect_spec(path, project, check=check, reader=reader)
    errors = [p for p in problems if not p.is_note]
    if errors or loaded is None:
        raise SpecError(errors)
    return loaded


def check_loaded(loaded: LoadedSpec) -> LoadedSpec:
    """A spec read with ``check=False``, its cross-references now checked: what ``load_spec`` would have returned."""
    from reportctl.spec.checks import check_spec

    errors = [p for p in check_spec(loaded) if not p.is_note]
    if errors:
        raise SpecError(errors)
    return loaded


def inspect_spec(
    path: Path,
    project: Project | None = None,
    *,
    check: bool = True,
    connect: bool = False,
    reader: SpecReader = WORKING_TREE,
) -> tuple[LoadedSpec | None, list[Problem]]:
    """The spec at ``path`` and every problem found in one pass, notes included, for ``validate``.

    Structural and reference problems come together: entries that are invalid are set aside and the rest is
    checked. With errors, the spec returned is that partial one (or None), fit for nothing but reporting.
    ``connect`` asks each SQL source's database for its result columns. A file that cannot be read, parsed or
    merged with its bases raises ``SpecError``.
    """
    path = path.resolve()
    project = project or find_project(path)
    data, files = load_spec_data(path, project.root, reader)
    loaded, problems = _validate_structure(path, project, data, tuple(files), reader)
    if check and loaded is not None:
        from reportctl.spec.checks import check_spec

        problems += check_spec(loaded, connect=connect)
    return loaded, problems


def _validate_structure(
    path: Path, project: Project, data: LocatedDict, files: tuple[Path, ...], reader: SpecReader
) -> tuple[LoadedSpec | None, list[Problem]]:
    """The spec with its plugin options, and its structural problems.

    With problems, the spec returned (when there is one) holds only the entries that are valid, so that
    references can be checked in the same pass; it is never rendered.
    """
    abstract = data.get("abstract") is True
    problems: list[Problem] = []
    spec: Spec | None = None
    unchecked: set[str] = set()
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        problems = problems_from(exc, Spec, path, (), data)
        if abstract:  # a base may leave out what the specs extending it supply
            problems = [p for p in problems if not p.message.startswith("missing required key")]
        spec = _valid_part(data, exc, unchecked) if problems else None
    sources = _plugin_options(SOURCES, "kind", data.get("sources"), ("sources",), data, path, problems)
    outputs_data = data.get("outputs")
    if outputs_data is None:
        outputs_data = list(project.config.outputs)
    output_items = (
        [{"format": o} if isinstance(o, str) else o for o in outputs_data] if isinstance(outputs_data, list) else []
    )
    outputs = _plugin_options(WRITERS, "format", dict(enumerate(output_items)), ("outputs",), data, path, problems)
    deliveries = _plugin_options(
        CHANNELS, "channel", _delivery_entries(data.get("delivery"), project), ("delivery",), data, path, problems
    )
    _check_delivery_names(deliveries, data, path, problems)
    if spec is None:
        if problems:
            return None, problems
        # an abstract base with only missing keys: nothing else to validate
        spec = Spec.model_construct(**{k: v for k, v in data.items() if isinstance(k, str)})
    if problems:
        source_entries = data.get("sources")
        if isinstance(source_entries, dict):
            unchecked.update(str(name) for name in source_entries if name not in sources)
        entries_ok = len(deliveries) == len(_delivery_entries(data.get("delivery"), project)) and len(outputs) == len(
            output_items
        )
        if not entries_ok:  # positions of deliveries would shift, and attachments may name a broken output
            deliveries = {}
    contents = tuple(reader.read_bytes(file) for file in files)
    loaded = LoadedSpec(
        spec=spec,
        path=path,
        files=files,
        data=data,
        project=project,
        spec_hash=_digest(files, contents),
        contents=contents,
        sources={str(k): v for k, v in sources.items() if str(k) not in unchecked},
        outputs=tuple(outputs[i] for i in sorted(outputs)),
        deliveries=tuple(deliveries[i] for i in sorted(deliveries)),
        unchecked=frozenset(unchecked),
        revision=reader.revision,
    )
    return loaded, problems


# Collections whose entries pydantic reports one by one: an invalid entry is set aside and the rest checked.
_ENTRIES = ("parameters", "sources", "datasets", "sections")


def _valid_part(data: LocatedDict, exc: ValidationError, unchecked: set[str]) -> Spec | None:
    """The spec without the parts ``exc`` rejects, or None when what is left is not a spec either.

    Rejected sources and datasets are left out and named in ``unchecked``; a rejected parameter stays as a plain
    string parameter and a rejected section as an empty text section, so names and positions still line up.
    """
    from reportctl.spec.models import Parameter

    part: dict[str, Any] = {k: v for k, v in data.items() if isinstance(k, str)}
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        key = loc[0] if loc else None
        if key in _ENTRIES and len(loc) > 1 and isinstance(part.get(key), dict | list):
            entry = loc[1]
            if key == "sections" and isinstance(entry, int):
                part[key] = list(part[key])
                original = part[key][entry] if entry < len(part[key]) else None
                section_id = original.get("id") if isinstance(original, dict) else None
                if not (isinstance(section_id, str) and section_id[:1].isalnum() and section_id.islower()):
                    section_id = f"{entry}-unchecked"
                part[key][entry] = {"id": section_id, "type": "text", "template": ""}
            elif key == "parameters" and isinstance(part[key], dict):
                part[key] = {**part[key], entry: Parameter()}
            elif isinstance(part[key], dict):
                part[key] = {k: v for k, v in part[key].items() if k != entry}
                unchecked.add(str(entry))
        elif key in ("apiVersion", "name"):
            part[str(key)] = {"apiVersion": "reportctl/v1", "name": "unchecked"}[str(key)]
        elif isinstance(key, str):
            part.pop(key, None)
    try:
        return Spec.model_validate(part)
    except ValidationError:
        return None


def _delivery_entries(entries: Any, project: Project) -> dict[int, Any]:
    """The spec's delivery entries by position, each over its channel's defaults from reportctl.yaml."""
    if not isinstance(entries, list):
        return {}
    merged: dict[int, Any] = {}
    for index, entry in enumerate(entries):
        channel = entry.get("channel") if isinstance(entry, dict) else None
        defaults = project.config.channels.get(channel) if isinstance(channel, str) else None
        merged[index] = {**defaults, **entry} if defaults and isinstance(entry, dict) else entry
    return merged


def _check_delivery_names(deliveries: dict[int, Any], root: LocatedDict, file: Path, problems: list[Problem]) -> None:
    """Two deliveries on one channel need ids: the ledger and ``deliver --only`` tell deliveries apart by name."""
    seen: dict[str, int] = {}
    for index in sorted(deliveries):
        name = deliveries[index].name
        if name in seen:
            at = ("delivery", index, "id" if deliveries[index].id else "channel")
            message = (
                f"a second delivery named '{name}' (also delivery[{seen[name]}]); give each delivery on the same"
                " channel its own 'id'"
            )
            problems.append(Problem(message, path=format_path(at), position=position_of(root, at), file=file))
        seen.setdefault(name, index)


def _plugin_options(
    group: str,
    discriminator: str,
    entries: Any,
    prefix: tuple[Any, ...],
    root: LocatedDict,
    file: Path,
    problems: list[Problem],
) -> dict[Any, Any]:
    """Each entry validated by the ``Options`` model of the plugin it names."""
    validated: dict[Any, Any] = {}
    if not isinstance(entries, dict):
        return validated
    for key, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get(discriminator), str):
            continue  # the Spec model has already reported the missing or mistyped discriminator
        name = entry[discriminator]
        at = (*prefix, key)
        if name not in plugin_names(group):
            problems.append(
                Problem(
                    unknown_plugin_message(group, name),
                    path=format_path((*at, discriminator)),
                    position=position_of(root, (*at, discriminator)),
                    file=file,
                )
            )
            continue
        try:
            options_model = load_plugin(group, name).Options
            validated[key] = options_model.model_validate(entry)
        except PluginError as exc:
            problems.append(Problem(str(exc), path=format_path(at), position=position_of(root, at), file=file))
        except ValidationError as exc:
            problems.extend(problems_from(exc, options_model, file, at, root))
    return validated


def spec_hash(files: tuple[Path, ...], reader: SpecReader = WORKING_TREE) -> str:
    """sha256 over the spec and every base it extends, so an edit to a base changes the hash too; the bytes are
    read through ``reader``, so a spec read at a revision hashes as it was then."""
    return _digest(files, tuple(reader.read_bytes(file) for file in files))


def _digest(files: tuple[Path, ...], contents: tuple[bytes, ...]) -> str:
    digest = hashlib.sha256()
    for file, content in zip(files, contents, strict=True):
        digest.update(file.name.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()


def output_formats(loaded: LoadedSpec) -> list[str]:
    return [str(o.model_dump()["format"]) for o in loaded.outputs]


__all__ = ["LoadedSpec", "Output", "inspect_spec", "load_spec", "output_formats", "spec_hash"]
