"""Recipients: email addresses, ``team:NAME`` and ``list:NAME``, resolved at run time from the project's directory.

The directory is a table of people (email, name, teams, lists), read at each run from ``people.yaml``, a CSV, or a
``sql``/``http`` source named in reportctl.yaml, so a new team member receives the next run with no spec change.
``people.yaml`` may also define ``lists:`` whose entries are addresses, ``team:NAME`` or other ``list:NAME``.

Addresses are plain ASCII ``user@example.com``: no display names, no quoted local parts, and an internationalised
domain written in its ASCII (punycode) form, because that is what every SMTP server accepts without SMTPUTF8.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import AfterValidator

from reportctl.delivery.base import Recipient
from reportctl.errors import did_you_mean

# RFC 5321/5322 in practice: a dot-atom local part and a domain of dot-separated labels; no display names here
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"^{_LOCAL}@{_LABEL}(?:\.{_LABEL})*$")
NAME = r"[A-Za-z0-9_.-]+"
REFERENCE = re.compile(rf"^(team|list):({NAME})$")
NO_DIRECTORY = "no directory: add people.yaml or set directory in reportctl.yaml"
"""The origin of the empty directory used when a project has none."""


def address_problem(text: str) -> str | None:
    """Why ``text`` is not an email address reportctl can send to, or None when it is one."""
    value = text.strip()
    if not value:
        return "an empty address"
    shown = f"'{value}'" if len(value) <= 60 else f"'{value[:40]}...'"
    if "<" in value or ">" in value:
        inner = value.partition("<")[2].partition(">")[0].strip() or "user@example.com"
        return f"{shown} has a display name or angle brackets; write the address alone, e.g. {inner}"
    if "@" not in value:
        return f"{shown} is not an email address (no '@'); write user@example.com, team:NAME or list:NAME"
    if any(c.isspace() for c in value):
        return f"{shown} contains a space; write user@example.com"
    if value.count("@") > 1:
        return f"{shown} has more than one '@'"
    if len(value) > 254:
        return f"{shown} is longer than the 254 characters an address may have"
    local, _, domain = value.partition("@")
    if not local:
        return f"{shown} has nothing before '@'"
    if not domain:
        return f"{shown} has no domain after '@'"
    if len(local) > 64:
        return f"{shown}: the part before '@' is longer than 64 characters"
    if not value.isascii():
        return _non_ascii_problem(shown, local, domain)
    if ".." in value:
        return f"{shown} has two dots in a row"
    if local.startswith(".") or local.endswith("."):
        return f"{shown}: the part before '@' starts or ends with a dot"
    if domain.startswith(".") or domain.endswith("."):
        return f"{shown}: the domain starts or ends with a dot"
    if any(len(label) > 63 for label in domain.split(".")):
        return f"{shown}: a part of the domain is longer than 63 characters"
    if not _ADDRESS.match(value):
        return f"{shown} is not a valid email address; write user@example.com"
    return None


def _non_ascii_problem(shown: str, local: str, domain: str) -> str:
    if not local.isascii():
        return f"{shown}: letters outside ASCII before '@' are not supported; ask for an ASCII alias"
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return f"{shown}: the domain is not a valid internationalised domain name"
    return f"{shown}: write the domain in its ASCII form, {local}@{ascii_domain}"


def entry_problem(text: str) -> str | None:
    """Why a recipient entry as written in a spec is malformed: an address, ``team:NAME`` or ``list:NAME``."""
    if text.strip().startswith(("team:", "list:")):
        if REFERENCE.match(text.strip()):
            return None
        return f"'{text}' is not a valid reference; write team:NAME or list:NAME (letters, digits, '_', '-', '.')"
    return address_problem(text)


@dataclass(frozen=True)
class Person:
    email: str
    name: str = ""
    teams: frozenset[str] = frozenset()
    lists: frozenset[str] = frozenset()


@dataclass
class Directory:
    """People with their teams and lists, plus lists defined by entries; ``origin`` names where they came from."""

    people: Sequence[Person] = ()
    lists: Mapping[str, Sequence[str]] = field(default_factory=dict)
    origin: str = "the directory"
    loader: Callable[[], Directory] | None = None
    """Where the people come from when they are first needed; a directory with a loader starts empty."""

    def _load(self) -> None:
        if self.loader is not None:
            loaded, self.loader = self.loader(), None
            self.people, self.lists, self.origin = loaded.people, loaded.lists, loaded.origin

    def teams(self) -> set[str]:
        self._load()
        return {team for person in self.people for team in person.teams}

    def list_names(self) -> set[str]:
        self._load()
        return set(self.lists) | {name for person in self.people for name in person.lists}

    def resolve(self, entries: Iterable[str], role: str = "to") -> list[Recipient]:
        """Each entry expanded to recipients, without duplicates; a bad entry becomes a recipient with a problem."""
        resolved: dict[str, Recipient] = {}
        for entry in entries:
            expanded = self._expand(entry.strip(), role, seen=set())
            if not expanded:  # only reachable through a list that names nothing but itself
                expanded = [Recipient(entry.strip(), role=role, problem=self._only_itself(entry.strip()))]
            for recipient in expanded:
                key = recipient.address.lower()
                if key not in resolved:
                    resolved[key] = recipient
        return list(resolved.values())

    def _expand(self, entry: str, role: str, seen: set[str]) -> list[Recipient]:
        reference = REFERENCE.match(entry)
        if reference is None:
            return [Recipient(entry, role=role, problem=entry_problem(entry))]
        kind, name = reference.groups()
        self._load()
        if entry in seen:
            return []  # a list that includes itself, directly or not: its members are already there
        seen.add(entry)
        if kind == "team":
            members = [p.email for p in self.people if name in p.teams]
            if not members:
                return [Recipient(entry, role=role, problem=self._missing("team", name, self.teams()))]
        else:
            members = [p.email for p in self.people if name in p.lists] + list(self.lists.get(name, ()))
            if not members:
                return [Recipient(entry, role=role, problem=self._missing("list", name, self.list_names()))]
        expanded: list[Recipient] = []
        for member in members:
            expanded.extend(self._expand(member.strip(), role, seen))
        return expanded

    def _missing(self, kind: str, name: str, known: set[str]) -> str:
        if self.origin == NO_DIRECTORY:
            return f"{kind} '{name}' has no members: {NO_DIRECTORY}"
        if name in known:
            return f"{kind} '{name}' has no members in {self.origin}"
        return f"{kind} '{name}' is not in {self.origin}{_closest(name, known)}; it has no members"

    def _only_itself(self, entry: str) -> str:
        kind, _, name = entry.partition(":")
        return f"{kind} '{name}' has no members in {self.origin}: it only includes itself, directly or through lists"


def _closest(name: str, known: set[str]) -> str:
    """did-you-mean that also catches a difference in case only (team:SRE for sre)."""
    same_but_case = sorted(k for k in known if k.lower() == name.lower())
    if same_but_case:
        return f" (did you mean '{same_but_case[0]}'?)"
    return did_you_mean(name, sorted(known))


def _checked_entry(text: str) -> str:
    problem = entry_problem(text)
    if problem:
        raise ValueError(problem)
    return text.strip()


RecipientEntry = Annotated[str, AfterValidator(_checked_entry)]
"""A recipient as a spec writes it (an address, ``team:NAME`` or ``list:NAME``), checked where it stands."""
