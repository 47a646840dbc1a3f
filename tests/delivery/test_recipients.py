"""Addresses, team:NAME and list:NAME entries, and their resolution against a directory."""

from __future__ import annotations

import pytest

from reportctl.delivery.base import Recipient
from reportctl.delivery.recipients import NO_DIRECTORY, Directory, Person, address_problem, entry_problem

PEOPLE = Directory(
    people=[
        Person("ada@example.com", "Ada", frozenset({"backend-sre"}), frozenset({"weekly"})),
        Person("grace@example.com", "Grace", frozenset({"backend-sre", "platform"})),
        Person("linus@example.org", "Linus", frozenset({"platform"})),
        Person("Margaret@Example.com", "Margaret", frozenset(), frozenset({"weekly"})),
    ],
    lists={
        "leadership": ["cto@example.com", "team:platform"],
        "everyone": ["list:leadership", "team:backend-sre", "list:everyone", "list:weekly"],
        "loop": ["list:loop"],
        "ping": ["list:pong"],
        "pong": ["list:ping", "pong@example.com"],
        "typo": ["team:platfrom"],
        "sloppy": ["bob(at)example.com"],
        "empty": [],
    },
    origin="people.yaml",
)


@pytest.mark.parametrize(
    "address",
    [
        "ada@example.com",
        "first.last+reports@mail.example.co.uk",
        "  padded@example.com  ",
        "o'brien@example.ie",
        "root@localhost",  # a single-label domain: local test servers and intranets use them
        "a" * 64 + "@example.com",
        "xn--bcher-kva@xn--bcher-kva.de",
    ],
)
def test_good_addresses(address: str) -> None:
    assert address_problem(address) is None


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("", "an empty address"),
        ("   ", "an empty address"),
        (
            "ada.example.com",
            "'ada.example.com' is not an email address (no '@'); write user@example.com, team:NAME or list:NAME",
        ),
        ("ada lovelace@example.com", "'ada lovelace@example.com' contains a space; write user@example.com"),
        ("ada@@example.com", "'ada@@example.com' has more than one '@'"),
        ("ada..l@example.com", "'ada..l@example.com' has two dots in a row"),
        ("ada@example..com", "'ada@example..com' has two dots in a row"),
        ("ada@example.com.", "'ada@example.com.': the domain starts or ends with a dot"),
        (".ada@example.com", "'.ada@example.com': the part before '@' starts or ends with a dot"),
        ("@example.com", "'@example.com' has nothing before '@'"),
        ("ada@", "'ada@' has no domain after '@'"),
        ("a" * 65 + "@example.com", f"'{'a' * 40}...': the part before '@' is longer than 64 characters"),
        ("a@" + "b" * 64 + ".com", f"'a@{'b' * 38}...': a part of the domain is longer than 63 characters"),
        ("a@" + ".".join(["b" * 60] * 5), f"'a@{'b' * 38}...' is longer than the 254 characters an address may have"),
        ("ada@exa_mple.com", "'ada@exa_mple.com' is not a valid email address; write user@example.com"),
        (
            "Ada Lovelace <ada@example.com>",
            "'Ada Lovelace <ada@example.com>' has a display name or angle brackets; write the address alone, "
            "e.g. ada@example.com",
        ),
        # unicode domains: SMTP without SMTPUTF8 needs the ASCII form, which the message spells out
        ("jo@bücher.de", "'jo@bücher.de': write the domain in its ASCII form, jo@xn--bcher-kva.de"),
        (
            "jö@example.com",
            "'jö@example.com': letters outside ASCII before '@' are not supported; ask for an ASCII alias",
        ),
    ],
)
def test_bad_addresses(address: str, problem: str) -> None:
    assert address_problem(address) == problem


@pytest.mark.parametrize("entry", ["team:sre", "list:weekly-digest", "team:backend_sre.eu", " ada@example.com "])
def test_good_entries(entry: str) -> None:
    assert entry_problem(entry) is None


@pytest.mark.parametrize("entry", ["team:", "team:backend sre", "list:a/b", "team:sre!"])
def test_malformed_references(entry: str) -> None:
    assert entry_problem(entry) == (
        f"'{entry}' is not a valid reference; write team:NAME or list:NAME (letters, digits, '_', '-', '.')"
    )


def test_an_entry_that_is_neither_is_checked_as_an_address() -> None:
    assert entry_problem("sre") == (
        "'sre' is not an email address (no '@'); write user@example.com, team:NAME or list:NAME"
    )


def addresses(recipients: list[Recipient]) -> list[str]:
    return [r.address for r in recipients]


def test_a_team_is_its_members() -> None:
    assert addresses(PEOPLE.resolve(["team:platform"])) == ["grace@example.com", "linus@example.org"]
    assert all(r.problem is None and r.role == "to" for r in PEOPLE.resolve(["team:platform"]))


def test_a_list_gathers_people_on_it_and_its_entries() -> None:
    assert addresses(PEOPLE.resolve(["list:weekly"])) == ["ada@example.com", "Margaret@Example.com"]
    assert addresses(PEOPLE.resolve(["list:leadership"])) == [
        "cto@example.com",
        "grace@example.com",
        "linus@example.org",
    ]


def test_nested_lists_and_a_list_including_itself_reach_everyone_once() -> None:
    resolved = PEOPLE.resolve(["list:everyone"], role="bcc")

    assert addresses(resolved) == [
        "cto@example.com",
        "grace@example.com",
        "linus@example.org",
        "ada@example.com",
        "Margaret@Example.com",
    ]
    assert {r.role for r in resolved} == {"bcc"}
    assert all(r.problem is None for r in resolved)


def test_lists_that_include_each_other_terminate() -> None:
    assert addresses(PEOPLE.resolve(["list:ping"])) == ["pong@example.com"]


def test_a_list_that_only_includes_itself_is_a_problem() -> None:
    assert PEOPLE.resolve(["list:loop"]) == [
        Recipient(
            "list:loop",
            problem="list 'loop' has no members in people.yaml: it only includes itself, directly or through lists",
        )
    ]


def test_duplicates_across_entries_collapse_without_case() -> None:
    resolved = PEOPLE.resolve(["ADA@example.com", "team:backend-sre", "margaret@example.com", "list:weekly"])

    assert addresses(resolved) == ["ADA@example.com", "grace@example.com", "margaret@example.com"]


def test_an_unknown_team_is_one_recipient_with_a_problem_and_a_hint() -> None:
    assert PEOPLE.resolve(["team:backend-sr", "ada@example.com"]) == [
        Recipient(
            "team:backend-sr",
            problem="team 'backend-sr' is not in people.yaml (did you mean 'backend-sre'?); it has no members",
        ),
        Recipient("ada@example.com"),
    ]


def test_a_team_named_in_the_wrong_case_gets_a_hint() -> None:
    [recipient] = PEOPLE.resolve(["team:PLATFORM"])
    assert recipient.problem == "team 'PLATFORM' is not in people.yaml (did you mean 'platform'?); it has no members"


def test_an_empty_list_has_no_members() -> None:
    assert PEOPLE.resolve(["list:empty"]) == [
        Recipient("list:empty", problem="list 'empty' has no members in people.yaml")
    ]


def test_problems_inside_a_list_stay_with_the_bad_entry() -> None:
    assert PEOPLE.resolve(["list:typo", "list:sloppy"]) == [
        Recipient(
            "team:platfrom",
            problem="team 'platfrom' is not in people.yaml (did you mean 'platform'?); it has no members",
        ),
        Recipient(
            "bob(at)example.com",
            problem="'bob(at)example.com' is not an email address (no '@'); write user@example.com, team:NAME "
            "or list:NAME",
        ),
    ]


def test_a_malformed_address_is_a_recipient_with_a_problem() -> None:
    assert PEOPLE.resolve(["ada@example..com", "team:backend sre"], role="cc") == [
        Recipient("ada@example..com", role="cc", problem="'ada@example..com' has two dots in a row"),
        Recipient(
            "team:backend sre",
            role="cc",
            problem="'team:backend sre' is not a valid reference; write team:NAME or list:NAME "
            "(letters, digits, '_', '-', '.')",
        ),
    ]


def test_without_a_directory_a_team_says_how_to_add_one() -> None:
    [recipient] = Directory(origin=NO_DIRECTORY).resolve(["team:sre"])
    assert recipient.problem == (
        "team 'sre' has no members: no directory: add people.yaml or set directory in reportctl.yaml"
    )
