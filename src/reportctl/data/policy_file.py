"""The models of policies.yaml (``reportctl.data.policies`` reads the file and applies it); apart so that a run
without a viewer or a protected source does not build them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from reportctl.spec.types import StrictModel

EVERYONE = "*"
Value = str | int | float | bool


def _allowance(value: Any) -> Any:
    """'all', or column -> values (one value alone stands for a list of it); one message for any other shape."""
    if value == "all":
        return value
    if not isinstance(value, dict):
        raise ValueError("write 'all', or a mapping of protected columns to the values allowed, e.g. {team: [ops]}")
    allowed = {}
    for column, values in value.items():
        items = values if isinstance(values, list) else [values]
        for item in items:
            if isinstance(item, dict | list) or item is None:
                raise ValueError(f"{column}: allow values are plain strings, numbers or booleans, e.g. [ops, web]")
        allowed[column] = items
    return allowed


class Rule(StrictModel):
    """Who the rule is for, and which values of protected columns they may see."""

    who: list[str] = Field(
        min_length=1, description="Addresses, team:NAME, list:NAME (from the people directory), or '*' for everyone."
    )
    allow: Annotated[dict[str, list[Value]] | Literal["all"], BeforeValidator(_allowance)] = Field(
        description="Protected column -> the values its rows may hold for these viewers; 'all' for every row.",
        json_schema_extra={"examples": [{"team": ["frontend", "platform"]}, "all"]},
    )

    @field_validator("who")
    @classmethod
    def _entries(cls, value: list[str]) -> list[str]:
        from reportctl.delivery.recipients import entry_problem

        for entry in value:
            problem = entry_problem(entry) if entry.strip() != EVERYONE else None
            if problem:
                raise ValueError(f"{problem} (or '*' for everyone)")
        return [entry.strip() for entry in value]


class PoliciesFile(StrictModel):
    """policies.yaml: who may see which rows of the project's protected sources."""

    require_viewer: bool = Field(
        default=False,
        description="true: a spec reading a protected source renders only for a viewer (--as USER), never unfiltered.",
    )
    rules: list[Rule] = Field(default_factory=list, description="Evaluated together: a viewer gets every match.")
