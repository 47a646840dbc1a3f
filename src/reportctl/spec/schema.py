"""The JSON Schema of the spec, with each installed plugin's options, for editors to validate and complete."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Union

from pydantic import Field, create_model
from pydantic.json_schema import GenerateJsonSchema

from reportctl.plugins import CHANNELS, SOURCES, WRITERS, load_plugin, plugin_names
from reportctl.spec.models import Spec
from reportctl.spec.types import format_duration_spec


class _SpecSchema(GenerateJsonSchema):
    """Defaults as a spec author writes them: durations as '5m', not ISO 8601 'PT5M'."""

    def encode_default(self, dft: Any) -> Any:
        if isinstance(dft, timedelta):
            return format_duration_spec(dft)
        return super().encode_default(dft)


def _tagged(group: str, tag: str) -> Any:
    models = tuple(load_plugin(group, name).Options for name in plugin_names(group))
    if len(models) == 1:
        return models[0]
    return Annotated[Union[models], Field(discriminator=tag)]  # noqa: UP007 - a runtime tuple of types


def spec_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of reportctl/v1 specs."""
    # built at run time from the installed plugins, so spelled as values rather than annotations
    sources_type: Any = dict.__class_getitem__((str, _tagged(SOURCES, "kind")))
    outputs_type: Any = list.__class_getitem__(_tagged(WRITERS, "format")) | None
    delivery_type: Any = list.__class_getitem__(_tagged(CHANNELS, "channel"))
    model = create_model(
        "Spec",
        __base__=Spec,
        sources=(sources_type, Field(default_factory=dict)),
        outputs=(outputs_type, None),
        delivery=(delivery_type, Field(default_factory=list)),
    )
    schema = model.model_json_schema(by_alias=True, schema_generator=_SpecSchema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://reportctl.dev/schema/reportctl-v1.json"
    schema["title"] = "reportctl spec (apiVersion reportctl/v1)"
    return schema
