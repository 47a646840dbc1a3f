"""The JSON Schema of the spec, with each installed plugin's options, for editors to validate and complete.

The models say what a complete spec is. A spec file is not always complete: one that ``extends`` a base leaves
out what the base supplies, overrides sections by ``id`` (or drops them with ``remove: true``) and removes an
inherited key with ``null``; an ``abstract`` base may leave required keys to the specs that extend it. So the schema
has two shapes, chosen with ``if``/``then``/``else`` on the file itself:

- a file with neither ``extends`` nor ``abstract: true`` must be a complete spec (``$defs/Spec``);
- otherwise it is an override (``$defs/SpecOverride``): derived from the complete shape by the merge rules of
  ``reportctl.spec.extends`` -- wherever mappings merge, keys are optional and may be ``null``; the ``sections`` list
  merges by ``id``; every other list is replaced whole, so its items stay complete. ``name`` is never inherited,
  so it stays required unless the file is abstract.

Unknown keys, wrong types and bad enum values are errors in both shapes.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from reportctl.plugins import CHANNELS
from reportctl.spec.extends import MERGED_BY_ID
from reportctl.spec.models import Spec
from reportctl.spec.types import format_duration_spec

SCHEMA_ID = "https://reportctl.dev/schema/reportctl-v1.json"
SCHEMA_FILE = "reportctl.schema.json"
"""Where ``init`` writes the schema, at the project root, for the ``# yaml-language-server: $schema=`` line."""
_NULL = {"type": "null"}
_ANNOTATIONS = ("title", "description", "default", "examples")
_REMOVE = {"type": "boolean", "description": "true drops the base's section with this id."}


class _SpecSchema(GenerateJsonSchema):
    """Defaults as a spec author writes them (durations as '5m', not ISO 8601 'PT5M'), and names checked as keys.

    ``supplied`` (plugin group -> plugin name -> keys) is read by ``ByPlugin``: keys a project's defaults supply.
    """

    supplied: ClassVar[dict[str, dict[str, set[str]]]] = {}

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration_spec(dft)
        return super().encode_default(dft)

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        # pydantic says 'keys matching the pattern have these values' and lets any other key through; the model
        # rejects a name that does not match (sources: {bad-name: ...}), so the schema must too
        json_schema = super().dict_schema(schema)
        patterns = json_schema.pop("patternProperties", None)
        if patterns:
            [(pattern, values)] = patterns.items()
            json_schema["propertyNames"] = {**json_schema.get("propertyNames", {}), "pattern": pattern}
            json_schema["additionalProperties"] = values
        return json_schema


def spec_json_schema(channel_defaults: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of reportctl/v1 spec files, complete specs and overrides alike.

    ``channel_defaults`` are a project's ``channels`` settings (reportctl.yaml): the keys they give need not be
    in a spec's delivery entries on that channel.
    """
    supplied = {CHANNELS: {name: set(keys) for name, keys in (channel_defaults or {}).items()}}
    generator = type("_ProjectSpecSchema", (_SpecSchema,), {"supplied": supplied})
    complete = Spec.model_json_schema(by_alias=True, schema_generator=generator)
    defs: dict[str, Any] = complete.pop("$defs")
    # the merge drops a top-level null before the model sees it, in every spec
    optional = set(complete["properties"]) - set(complete["required"])
    complete["properties"] = {
        key: _nullable(value) if key in optional else value for key, value in complete["properties"].items()
    }
    defs["Spec"] = complete
    override = _Overrides(defs).object(complete, top=True)
    override["properties"]["name"] = complete["properties"]["name"]  # never inherited, so null would lose it
    defs["SpecOverride"] = override
    extends_or_abstract = {
        "anyOf": [
            {"properties": {"extends": {"type": "string"}}, "required": ["extends"]},
            {"properties": {"abstract": {"const": True}}, "required": ["abstract"]},
        ]
    }
    abstract = {"properties": {"abstract": {"const": True}}, "required": ["abstract"]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "reportctl spec (apiVersion reportctl/v1)",
        "description": complete.get("description", ""),
        "type": "object",
        "if": extends_or_abstract,
        "then": {"$ref": "#/$defs/SpecOverride", "if": abstract, "else": {"required": ["name"]}},
        "else": {"$ref": "#/$defs/Spec"},
        "$defs": defs,
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null, with its annotations kept outside so editors still show them."""
    outer = {k: v for k, v in schema.items() if k in _ANNOTATIONS}
    inner = {k: v for k, v in schema.items() if k not in _ANNOTATIONS}
    if list(inner) == ["anyOf"]:
        members = inner["anyOf"]
        return {**outer, "anyOf": members if _NULL in members else [*members, _NULL]}
    return {**outer, "anyOf": [inner, _NULL]}


class _Overrides:
    """Derives the override shape of each model from its complete shape, adding ``<Model>Override`` to ``defs``."""

    def __init__(self, defs: dict[str, Any]) -> None:
        self.defs = defs

    def object(self, schema: dict[str, Any], top: bool = False) -> dict[str, Any]:
        """A model whose keys a base may supply: all optional and nullable (a null removes the inherited key)."""
        relaxed = {k: copy.deepcopy(v) for k, v in schema.items() if k not in ("required", "properties")}
        relaxed["properties"] = {
            key: _nullable(self.value(value, by_id=top and key == MERGED_BY_ID))
            for key, value in schema["properties"].items()
        }
        return relaxed

    def value(self, schema: dict[str, Any], by_id: bool = False) -> dict[str, Any]:
        """The override shape of a value that a merge reaches."""
        if "$ref" in schema:
            return {**schema, "$ref": self._ref(schema["$ref"])}
        if "anyOf" in schema or "oneOf" in schema:
            # overrides of different models may look alike (no 'type' tag), so any match will do
            members = schema.get("anyOf", schema.get("oneOf", []))
            rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf", "discriminator")}
            return {**rest, "anyOf": [self.value(m, by_id) for m in members]}
        if schema.get("type") == "array":
            if not by_id:
                return schema  # replaced whole by the merge: its items must be complete
            return {**schema, "items": self._by_id(schema["items"])}
        if "properties" in schema and "allOf" not in schema:
            return self.object(schema)  # a model written out in place rather than under $defs
        if schema.get("type") == "object" and "additionalProperties" in schema:
            return self._mapping(schema)
        if "allOf" in schema:
            return self._dispatch(schema)
        return schema

    def _mapping(self, schema: dict[str, Any]) -> dict[str, Any]:
        """A mapping of names to values (datasets, columns, ...): each entry merges with the base's of that name."""
        values = schema["additionalProperties"]
        return {**schema, "additionalProperties": _nullable(self.value(values)) if isinstance(values, dict) else values}

    def _dispatch(self, schema: dict[str, Any]) -> dict[str, Any]:
        """A plugin entry (see ``ByPlugin``) whose tag the base may supply: with no tag, any plugin's override."""
        branches = [{**b, "then": self.value(b["then"])} for b in schema["allOf"]]
        relaxed = {k: v for k, v in schema.items() if k not in ("required", "allOf")}
        [tag] = schema["properties"]
        untagged = {"if": {"not": {"required": [tag]}}, "then": {"anyOf": [b["then"] for b in branches]}}
        return {**relaxed, "allOf": [*branches, untagged]}

    def _by_id(self, items: dict[str, Any]) -> dict[str, Any]:
        """A section that overrides the base's section with its ``id``: only the id is required."""
        members = items.get("anyOf", items.get("oneOf", [items]))
        variants = []
        for member in members:
            name = member["$ref"].rsplit("/", 1)[-1]
            target = f"{name}Override"
            if target not in self.defs:
                relaxed = self.object(self.defs[name])
                relaxed["properties"]["id"] = self.defs[name]["properties"]["id"]
                relaxed["properties"]["remove"] = _REMOVE
                relaxed["required"] = ["id"]
                self.defs[target] = relaxed
            variants.append({"$ref": f"#/$defs/{target}"})
        return {"anyOf": variants}

    def _ref(self, ref: str) -> str:
        name = ref.rsplit("/", 1)[-1]
        target = self.defs.get(name, {})
        if "properties" not in target:
            return ref  # not a model (an enum, say): the same in both shapes
        if f"{name}Override" not in self.defs:
            self.defs[f"{name}Override"] = {}  # taken before recursing, for models that contain themselves
            self.defs[f"{name}Override"] = self.object(target)
        return f"#/$defs/{name}Override"


def schema_text(channel_defaults: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The schema as ``reportctl schema`` prints it and ``init`` writes it to ``SCHEMA_FILE``."""
    return json.dumps(spec_json_schema(channel_defaults), indent=2) + "\n"
