"""Small value types shared by the spec models and plugin options."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from reportctl.errors import did_you_mean


class StrictModel(BaseModel):
    """A spec object: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|w|d|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """'90s', '5m', '1h30m', '2d', '1w', a number of seconds, or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 5m, 1h30m or 2d, got {value!r}")
    if isinstance(value, int | float):
        return _seconds(value, value)
    text = str(value).strip().replace(" ", "")
    if not text or _DURATION_PART.sub("", text):
        raise ValueError(f"expected a duration such as 5m, 1h30m or 2d, got {value!r}")
    return _seconds(sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text)), value)


def _seconds(seconds: float, given: Any) -> timedelta:
    """``seconds`` as a duration; past what a timedelta holds (about 2.7 million years), one clear ValueError."""
    try:
        return timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        message = f"{given!r} is longer than any duration reportctl can use; write e.g. 5m, 1h30m or 2d"
        raise ValueError(message) from None


def format_duration_spec(value: timedelta) -> str:
    """The compact spec form of a duration, the inverse of ``parse_duration``."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        count, seconds = divmod(seconds, int(_UNIT_SECONDS[unit]))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# what parse_duration reads: parts such as 1h and 30m, spaces allowed between them; or a number of seconds
_DURATION_TEXT = {
    "type": "string",
    "pattern": r"^\s*(\d+(\.\d+)?\s*(ms|w|d|h|m|s) *)+\s*$",
    "examples": ["5m", "1h30m"],
}

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration_spec, return_type=str),
    WithJsonSchema({"anyOf": [_DURATION_TEXT, {"type": "number", "description": "seconds"}]}),
]


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("expected a positive duration such as 30s or 5m")
    return value


PositiveDuration = Annotated[
    Duration,
    AfterValidator(_positive),
    WithJsonSchema({"anyOf": [_DURATION_TEXT, {"type": "number", "exclusiveMinimum": 0, "description": "seconds"}]}),
]


def check_timezone(value: Any) -> str:
    """An IANA time zone name such as Europe/Berlin."""
    if not isinstance(value, str):
        raise ValueError(f"expected a time zone name such as Europe/Berlin, got {value!r}")
    name = value
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone '{name}'{did_you_mean(name, available_timezones())}; "
            "use an IANA name such as Europe/Berlin or UTC"
        ) from None
    return name


TimeZoneName = Annotated[str, BeforeValidator(check_timezone), WithJsonSchema({"type": "string"})]


def check_locale(value: Any) -> str:
    """A locale such as de_DE or fr-CH, as Babel knows it; returned in Babel's spelling (de_DE)."""
    from babel import Locale, UnknownLocaleError

    if not isinstance(value, str):
        raise ValueError(f"expected a locale such as en_US or de_DE, got {value!r}")
    try:
        return str(Locale.parse(value.replace("-", "_")))
    except (UnknownLocaleError, ValueError):
        raise ValueError(
            f"unknown locale '{value}'; use a language and territory such as en_US, de_DE or ja_JP"
        ) from None


LocaleName = Annotated[
    str, BeforeValidator(check_locale), WithJsonSchema({"type": "string", "examples": ["en_US", "de_DE", "ja_JP"]})
]
HexColour = Annotated[str, Field(pattern=r"^#[0-9A-Fa-f]{6}$")]

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
NAME = r"^[a-z0-9][a-z0-9-]*$"


@dataclass(frozen=True)
class ByPlugin:
    """JSON Schema of an entry checked by the plugin it names in ``tag``, dispatched as the loader does.

    The loader picks the plugin by its entry-point name and validates the whole entry with that plugin's
    ``Options``; the schema says the same with one ``if tag == name then Options`` per installed plugin. It never
    relies on how a plugin declares ``tag`` itself (a plain ``str``, a ``Literal``, one shared by two names), so a
    third-party plugin cannot make the schema unbuildable. Validation is untouched: this only shapes the schema.
    """

    group: str
    tag: str
    name_alone: bool = False
    """The entry may also be the plugin's name alone (``outputs: [csv, json]``)."""

    def __get_pydantic_json_schema__(self, core: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        from reportctl.plugins import load_plugin, plugin_names

        names = list(plugin_names(self.group))
        # the generator itself (not ``handler``, which is bound to this field) files each Options under $defs
        generator = handler.generate_json_schema  # type: ignore[attr-defined]
        supplied: dict[str, Any] = getattr(generator, "supplied", {}).get(self.group, {})
        branches = []
        for name in names:
            options = generator.generate_inner(load_plugin(self.group, name).Options.__pydantic_core_schema__)
            if supplied.get(name):
                # keys the project's defaults give every entry of this plugin (reportctl.yaml channels) are optional
                target = handler.resolve_ref_schema(options)
                required = [key for key in target.get("required", []) if key not in supplied[name]]
                options = {**target, "required": required}
            branches.append(
                {"if": {"properties": {self.tag: {"const": name}}, "required": [self.tag]}, "then": options}
            )
        entry = {"type": "object", "properties": {self.tag: {"enum": names}}, "required": [self.tag], "allOf": branches}
        return {"anyOf": [{"enum": names}, entry]} if self.name_alone else entry


class Theme(StrictModel):
    """How a report looks in PDF, HTML, Excel and email; a spec's keys override the project's one by one."""

    logo: str | None = Field(
        default=None, description="A PNG or SVG file, relative to the project folder, shown at the top of the report."
    )
    accent: HexColour | None = Field(
        default=None, description="The colour (#RRGGBB) of headings, rules, table headers and the first chart series."
    )
    font: str | None = Field(
        default=None,
        description="A TrueType or OpenType file, relative to the project folder, for the report's text; HTML and "
        "email embed or name its family.",
    )
    font_bold: str | None = Field(
        default=None, description="The bold face of 'font' (a file); without it bold text uses 'font'."
    )
    html_template: str | None = Field(
        default=None,
        description='A Jinja template file for the HTML output that extends "report.html" and overrides its '
        "blocks (header, logo, title, parameters, section, kpis, table, footer, style, scripts).",
    )
