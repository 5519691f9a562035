"""Reading policy files: the documented shape, every field, and errors that name the line."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keysafe.access.policy import Conditions, Policy, Rule, parse_policy
from keysafe.access.policy_glob import GlobError, check_glob
from keysafe.access.policy_rules import ALL_CAPABILITIES, CAPABILITIES, DAYS, HourRange
from keysafe.errors import InvalidInput

DESIGN_EXAMPLE = """\
[[rule]]
path = "payments/prod/*"          # glob over secret paths
capabilities = ["read", "list"]

[[rule]]
path = "payments/prod/ROOT_*"
deny = true                       # deny wins over any allow
"""


def test_design_shape_parses() -> None:
    policy = parse_policy("payments-read", DESIGN_EXAMPLE)
    assert policy.name == "payments-read"
    assert policy.source == DESIGN_EXAMPLE
    first, second = policy.rules
    assert (first.index, first.line, first.path) == (1, 1, "payments/prod/*")
    assert first.capabilities == {"read", "list"}
    assert not first.deny
    assert not first.conditions
    assert (second.index, second.line, second.path, second.deny) == (
        2,
        5,
        "payments/prod/ROOT_*",
        True,
    )
    assert second.capabilities == ALL_CAPABILITIES  # a deny without capabilities denies all


def test_every_field() -> None:
    text = """\
description = "ops access"

[[ rule ]]
path = "ops/**"
capabilities = ["read", "list", "write", "delete", "destroy", "rotate",
                "manage-keys", "read-audit", "admin"]
source_cidrs = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]
mfa_within_minutes = 15
hours = "22:00-06:00"
days = ["mon", "Fri"]
timezone = "Europe/Paris"
description = "night shift"

[[rule]]
path = "ops/prod/ROOT_*"
deny = true
capabilities = ["destroy"]
"""
    first, second = parse_policy("ops", text).rules
    assert first.line == 3
    assert first.capabilities == ALL_CAPABILITIES
    assert first.conditions == Conditions(
        (
            ipaddress.ip_network("10.0.0.0/8"),
            ipaddress.ip_network("2001:db8::/32"),
            ipaddress.ip_network("192.0.2.7/32"),
        ),
        15,
        HourRange(22 * 60, 6 * 60),
        frozenset({0, 4}),
        "Europe/Paris",
    )
    assert first.description == "night shift"
    assert second.line == 14
    assert second.capabilities == {"destroy"}


def test_empty_policy_has_no_rules() -> None:
    assert parse_policy("empty", "").rules == ()


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        # TOML syntax: tomllib's position is kept.
        # An unclosed array: tomllib says "at end of document", reported as the last line.
        ('[[rule]]\npath = "a/*"\ncapabilities = ["read"\n', 3, None, "TOML syntax error"),
        ('[[rule]]\npath = \ncapabilities = ["read"]\n', 2, 8, "TOML syntax error"),
        ('[[rule]]\npath = "a"\ncapabilities = ["read"]\npath = "b"\n', 4, None, "TOML syntax"),
        # Unknown capability: the line of the value, also in a multi-line array.
        ('[[rule]]\npath = "a/*"\ncapabilities = ["reed"]\n', 3, 17, "unknown capability 'reed'"),
        (
            '[[rule]]\npath = "a"\ncapabilities = ["read"]\n\n[[rule]]\npath = "b"\n'
            'capabilities = [\n  "list",\n  "manage_keys",\n]\n',
            9,
            3,
            "rule 2: unknown capability 'manage_keys'",
        ),
        # CIDRs.
        (
            '[[rule]]\npath = "a"\ncapabilities = ["read"]\nsource_cidrs = ["10.0.0.0/33"]\n',
            4,
            17,
            "invalid CIDR",
        ),
        (
            '[[rule]]\npath = "a"\ncapabilities = ["read"]\nsource_cidrs = ["10.0.0.1/8"]\n',
            4,
            17,
            "host bits",
        ),
        (
            '[[rule]]\npath = "a"\ncapabilities = ["read"]\nsource_cidrs = ["nope"]\n',
            4,
            17,
            "invalid CIDR",
        ),
        ('[[rule]]\npath = "a"\ncapabilities = ["read"]\nsource_cidrs = []\n', 4, None, "empty"),
        # Paths.
        ('[[rule]]\npath = ""\ncapabilities = ["read"]\n', 2, None, "the path glob is empty"),
        ('[[rule]]\ncapabilities = ["read"]\n', 1, None, "missing 'path'"),
        ('[[rule]]\npath = "a/**b"\ncapabilities = ["read"]\n', 2, None, "whole path segment"),
        ('[[rule]]\npath = "/a"\ncapabilities = ["read"]\n', 2, None, "start with '/'"),
        ('[[rule]]\npath = "a//b"\ncapabilities = ["read"]\n', 2, None, "empty segments"),
        ('[[rule]]\npath = "a/[ab]"\ncapabilities = ["read"]\n', 2, None, "reserved"),
        ('[[rule]]\npath = 3\ncapabilities = ["read"]\n', 2, None, "must be a string"),
        # Hours, days, timezone, MFA.
        (
            '[[rule]]\npath = "a"\ncapabilities = ["read"]\nhours = "25:00-06:00"\n',
            4,
            None,
            "bad hours",
        ),
        ('[[rule]]\npath = "a"\ncapabilities = ["read"]\nhours = "08:00"\n', 4, None, "bad hours"),
        ('[[rule]]\npath = "a"\ncapabilities = ["read"]\nhours = "8-18"\n', 4, None, "bad hours"),
        (
            '[[rule]]\npath = "a"\ncapabilities = ["read"]\nhours = "09:00-09:00"\n',
            4,
            None,
            "bad hours",
        ),
        (
            '[[rule]]\npath = "a"\ncapabilities = ["read"]\nhours = "08:60-09:00"\n',
            4,
            None,
            "bad hours",
        ),
        (
            '[[rule]]\npath = "a"\ncapabilities = ["read"]\ndays = ["mon", "fry"]\n',
            4,
            16,
            "unknown day",
        ),
        (
            '[[rule]]\npath = "a"\ncapabilities = ["read"]\nhours = "08:00-18:00"\n'
            'timezone = "Mars/Olympus"\n',
            5,
            None,
            "unknown timezone",
        ),
        (
            '[[rule]]\npath = "a"\ncapabilities = ["read"]\ntimezone = "UTC"\n',
            4,
            None,
            "only applies",
        ),
        (
            '[[rule]]\npath = "a"\ncapabilities = ["read"]\nmfa_within_minutes = 0\n',
            4,
            None,
            "positive",
        ),
        (
            '[[rule]]\npath = "a"\ncapabilities = ["read"]\nmfa_within_minutes = true\n',
            4,
            None,
            "positive",
        ),
        # Structure.
        ('[[rule]]\npath = "a"\n', 1, None, "needs 'capabilities'"),
        ('[[rule]]\npath = "a"\ncapabilities = []\n', 3, None, "is empty"),
        ('[[rule]]\npath = "a"\ncapabilities = "read"\n', 3, None, "list of strings"),
        ('[[rule]]\npath = "a"\ndeny = "yes"\n', 3, None, "true or false"),
        (
            '[[rule]]\npath = "a"\ndenny = true\ncapabilities = ["read"]\n',
            3,
            None,
            "unknown field 'denny'",
        ),
    ],
)
def test_errors_name_the_line(text: str, line: int, column: int | None, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_policy("team-a", text)
    message = str(info.value)
    assert words in message
    assert message.startswith(f"policy 'team-a', line {line}")
    assert info.value.extra["line"] == line
    if column is not None:
        assert f"line {line}, column {column}:" in message
        assert info.value.extra["column"] == column


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('rule = [{path = "a", capabilities = ["read"]}]\n', "[[rule]] table"),
        ('paths = ["a"]\n', "unknown top-level field 'paths'"),
        ('rule = "a"\n', "[[rule]] tables"),
    ],
)
def test_structure_errors(text: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=r"^policy 'p'") as info:
        parse_policy("p", text)
    assert words in str(info.value)


def test_policy_needs_a_name() -> None:
    with pytest.raises(InvalidInput):
        parse_policy(" ", DESIGN_EXAMPLE)


@pytest.mark.parametrize(
    ("hours", "start", "end"),
    [
        ("08:00-18:00", 480, 1080),
        ("22:00-06:00", 1320, 360),
        ("00:00-24:00", 0, 1440),
        (" 09:30 - 17:45 ", 570, 1065),
    ],
)
def test_hours(hours: str, start: int, end: int) -> None:
    text = f'[[rule]]\npath = "a"\ncapabilities = ["read"]\nhours = "{hours}"\n'
    assert parse_policy("p", text).rules[0].conditions.hours == HourRange(start, end)


@pytest.mark.parametrize(
    ("glob", "ok"),
    [
        ("a", True),
        ("a/b/*", True),
        ("**", True),
        ("a/**/b?", True),
        ("a/", True),
        ("", False),
        ("/a", False),
        ("a//b", False),
        ("a**", False),
        ("a/b**/c", False),
        ("a{b,c}", False),
        ("a\\*", False),
    ],
)
def test_glob_syntax(glob: str, ok: bool) -> None:
    if ok:
        check_glob(glob)
    else:
        with pytest.raises(GlobError):
            check_glob(glob)


# Round trip: any rules written by to_toml read back the same (index and line aside).
SEGMENTS = st.sampled_from(["a", "b", "prod", "*", "?", "a*", "**", 'q"x', "ümlaut", "a b"])
GLOBS = st.lists(SEGMENTS, min_size=1, max_size=4).map("/".join)
NETS = st.sampled_from(["10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32", "::1/128"])


@st.composite
def rules(draw: st.DrawFn, index: int) -> Rule:
    deny = draw(st.booleans())
    caps = draw(st.frozensets(st.sampled_from(CAPABILITIES), min_size=1))
    if deny and draw(st.booleans()):
        caps = ALL_CAPABILITIES
    hours = draw(st.none() | st.tuples(st.integers(0, 1439), st.integers(1, 1440)))
    days = draw(st.none() | st.frozensets(st.integers(0, 6), min_size=1))
    zone = None
    if (hours or days) and draw(st.booleans()):
        zone = "Europe/Paris"
    conditions = Conditions(
        tuple(ipaddress.ip_network(n) for n in draw(st.lists(NETS, unique=True))),
        draw(st.none() | st.integers(1, 10_000)),
        HourRange(*hours) if hours and hours[0] != hours[1] else None,
        days,
        zone if (hours and hours[0] != hours[1]) or days else None,
    )
    return Rule(index, 0, draw(GLOBS), caps, deny, conditions, draw(st.sampled_from(["", "why"])))


@given(st.integers(0, 5).flatmap(lambda n: st.tuples(*(rules(i + 1) for i in range(n)))))
def test_to_toml_round_trip(drawn: tuple[Rule, ...]) -> None:
    policy = Policy("p", drawn)
    back = parse_policy("p", policy.to_toml())
    assert len(back.rules) == len(drawn)
    for original, parsed in zip(drawn, back.rules, strict=True):
        assert parsed.path == original.path
        assert parsed.capabilities == original.capabilities
        assert parsed.deny == original.deny
        assert parsed.conditions == original.conditions
        assert parsed.description == original.description
        assert parsed.index == original.index
    assert back.to_toml() == policy.to_toml()


def test_day_names_are_the_documented_ones() -> None:
    assert DAYS == ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
