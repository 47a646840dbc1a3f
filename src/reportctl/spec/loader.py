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

    def problem(self, path: tuple[Any, ...], message: str) -> Problem:
        """A problem at ``path`` of this spec, positioned in whichever file the value came from."""
        return Problem(message, path=format_path(path), position=position_of(self.data, path), file=self.path)


def load_spec(path: Path, project: Project | None = None, *, check: bool = True) -> LoadedSpec:
    """The spec at ``path``, validated; ``SpecError`` lists every problem found.

    With ``check`` the cross-references are checked too, including columns where a source's schema is knowable.
    """
    path = path.resolve()
    project = project or find_project(path)
    data, files = load_spec_data(path, project.root)
    loaded = _validate_structure(path, project, data, tuple(files))
    if check:
        from reportctl.spec.checks import check_spec

        problems = [p for p in check_spec(loaded) if not p.is_note]
        if problems:
            raise SpecError(problems)
    return loaded


def _validate_structure(path: Path, project: Project, data: LocatedDict, files: tuple[Path, ...]) -> LoadedSpec:
    abstract = data.get("abstract") is True
    problems: list[Problem] = []
    spec: Spec | None = None
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        problems = problems_from(exc, Spec, path, (), data)
        if abstract:  # a base may leave out what the specs extending it supply
            problems = [p for p in problems if not p.message.startswith("missing required key")]
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
    if problems:
        raise SpecError(problems)
    if spec is None:  # an abstract base with only missing keys: nothing else to validate
        spec = Spec.model_construct(**{k: v for k, v in data.items() if isinstance(k, str)})
    return LoadedSpec(
        spec=spec,
        path=path,
        files=files,
        data=data,
        project=project,
        spec_hash=spec_hash(files),
        sources={str(k): v for k, v in sources.items()},
        outputs=tuple(outputs[i] for i in sorted(outputs)),
        deliveries=tuple(deliveries[i] for i in sorted(deliveries)),
    )


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


def spec_hash(files: tuple[Path, ...]) -> str:
    """sha256 over the spec and every base it extends, so an edit to a base changes the hash too."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def output_formats(loaded: LoadedSpec) -> list[str]:
    return [str(o.model_dump()["format"]) for o in loaded.outputs]


__all__ = ["LoadedSpec", "Output", "load_spec", "output_formats", "spec_hash"]
