"""Nobody hands out more than they hold: the grant checker, table-driven, and its
soundness against the policy engine itself (hypothesis): whenever the checker says a
caller holds what it grants, every request the granted policies allow is allowed by the
caller's own policies too."""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keysafe.access.glob_automata import (
    TooComplex,
    ends_meet,
    find_path,
    glob_automaton,
    literal_ends,
)
from keysafe.access.grants import check_grant, implies
from keysafe.access.models import Allow, Deny
from keysafe.access.policy import AccessRequest, Conditions, Policy, PolicySet, Rule, parse_policy
from keysafe.access.policy_glob import compile_glob
from keysafe.access.policy_rules import HourRange

NOON = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)  # a Monday


def rule(path: str, caps: str = "read", extra: str = "", *, deny: bool = False) -> str:
    quoted = ", ".join(f'"{c}"' for c in caps.split(",") if c)
    head = f"[[rule]]\npath = {path!r}\n" + ("deny = true\n" if deny else "")
    return head + (f"capabilities = [{quoted}]\n" if quoted else "") + extra + "\n"


def policies(*texts: str) -> list[Policy]:
    return [parse_policy(f"p{i}", text) for i, text in enumerate(texts, start=1)]


TEAM = rule("team/*") + rule("team/ROOT_*", "", deny=True)
CIDR = 'source_cidrs = ["10.0.0.0/8"]\n'

# (caller's policies, granted policies, held?)
TABLE: list[tuple[list[str], list[str], bool]] = [
    # Exactly what one holds, or a narrower path.
    ([rule("team/*")], [rule("team/*")], True),
    ([rule("team/*")], [rule("team/app")], True),
    ([rule("team/*")], [rule("team/app*")], True),
    ([rule("team/**")], [rule("team/*/x")], True),
    ([rule("team/**")], [rule("team/*")], True),
    ([rule("app/??")], [rule("app/ab")], True),
    ([rule("app/??")], [rule("app/a?")], True),
    # Broader, another capability, another path: not held.
    ([rule("team/*")], [rule("team/**")], False),
    ([rule("team/*")], [rule("team/*", "write")], False),
    ([rule("team/*")], [rule("other/*")], False),
    ([rule("app/??")], [rule("app/a*")], False),
    ([rule("a/b/")], [rule("a/b/*")], False),
    ([rule("team/*")], [rule("team")], False),
    # Admin areas are paths like any other.
    ([rule("sys/policy", "admin")], [rule("sys/policy", "admin")], True),
    ([rule("sys/policy", "admin")], [rule("sys/*", "admin")], False),
    ([rule("sys/policy", "admin")], [rule("**", "read,admin")], False),
    (
        [rule("**", "read,list,write,delete,destroy,rotate,manage-keys,read-audit,admin")],
        [rule("x/**", "admin") + rule("**", "read")],
        True,
    ),
    # A union of the caller's rules and policies covers together.
    ([rule("a/*") + rule("a/*/**")], [rule("a/**")], True),
    ([rule("team/*"), rule("team/*", "list")], [rule("team/*", "read,list")], True),
    # The caller's denies: granted paths it may not use are not held, unless the granted
    # policies take them back too (deny wins in a set, across its policies).
    ([TEAM], [rule("team/app")], True),
    ([TEAM], [rule("team/*")], False),
    ([TEAM], [TEAM], True),
    ([TEAM], [rule("team/*"), rule("team/ROOT_*", "", deny=True)], True),
    ([TEAM], [rule("team/*") + rule("team/ROOT_A*", "", deny=True)], False),
    ([TEAM], [rule("team/*") + rule("team/ROOT_*", "write", deny=True)], False),
    # A granted deny alone grants nothing.
    ([rule("team/*")], [rule("**", "", deny=True)], True),
    ([], [rule("**", "", deny=True)], True),
    ([], [rule("x", "read")], False),
    # Conditions: the caller's rule covers only a granted rule at least as strict.
    ([rule("team/*", "read", CIDR)], [rule("team/*")], False),
    ([rule("team/*", "read", CIDR)], [rule("team/*", "read", CIDR)], True),
    (
        [rule("team/*", "read", CIDR)],
        [rule("team/*", "read", 'source_cidrs = ["10.1.0.0/16"]\n')],
        True,
    ),
    (
        [rule("team/*", "read", CIDR)],
        [rule("team/*", "read", 'source_cidrs = ["192.168.0.0/16"]\n')],
        False,
    ),
    ([rule("team/*", "read", CIDR)], [rule("team/*", "read", 'source_cidrs = ["::/0"]\n')], False),
    (
        [rule("t/*", "read", "mfa_within_minutes = 15\n")],
        [rule("t/*", "read", "mfa_within_minutes = 5\n")],
        True,
    ),
    (
        [rule("t/*", "read", "mfa_within_minutes = 15\n")],
        [rule("t/*", "read", "mfa_within_minutes = 30\n")],
        False,
    ),
    ([rule("t/*", "read", "mfa_within_minutes = 15\n")], [rule("t/*")], False),
    (
        [rule("t/*", "read", 'hours = "08:00-18:00"\n')],
        [rule("t/*", "read", 'hours = "09:00-17:00"\n')],
        True,
    ),
    (
        [rule("t/*", "read", 'hours = "08:00-18:00"\n')],
        [rule("t/*", "read", 'hours = "07:00-12:00"\n')],
        False,
    ),
    (
        [rule("t/*", "read", 'hours = "22:00-06:00"\n')],
        [rule("t/*", "read", 'hours = "23:00-01:00"\n')],
        True,
    ),
    (
        [rule("t/*", "read", 'hours = "08:00-18:00"\n')],
        [rule("t/*", "read", 'hours = "09:00-17:00"\ntimezone = "Europe/Paris"\n')],
        False,
    ),
    (
        [rule("t/*", "read", 'days = ["mon", "tue"]\n')],
        [rule("t/*", "read", 'days = ["mon"]\n')],
        True,
    ),
    (
        [rule("t/*", "read", 'days = ["mon"]\n')],
        [rule("t/*", "read", 'days = ["mon", "sun"]\n')],
        False,
    ),
    ([rule("t/*")], [rule("t/*", "read", CIDR + "mfa_within_minutes = 5\n")], True),
    # A caller's conditional deny might apply: refused, unless the grant takes it back
    # whenever it applies.
    ([rule("t/*") + rule("t/S", "", CIDR, deny=True)], [rule("t/*")], False),
    (
        [rule("t/*") + rule("t/S", "", CIDR, deny=True)],
        [rule("t/*") + rule("t/S", "", CIDR, deny=True)],
        True,
    ),
    (
        [rule("t/*") + rule("t/S", "", CIDR, deny=True)],
        [rule("t/*") + rule("t/S", "", deny=True)],
        True,
    ),
]


@pytest.mark.parametrize(("held", "granted", "expected"), TABLE)
def test_table(held: list[str], granted: list[str], expected: bool) -> None:
    decision = check_grant(policies(*held), policies(*granted))
    assert bool(decision) is expected, decision


def test_a_refusal_names_the_capability_the_path_and_an_example() -> None:
    held = policies(rule("sys/policy", "admin") + rule("team/*", "read"))
    granted = [parse_policy("grab", rule("team/*", "read") + rule("**", "read,write,admin"))]
    decision = check_grant(held, granted)
    assert isinstance(decision, Deny)
    assert decision.reason.startswith("you do not hold read on '**' (policy grab, rule 2)")
    assert "e.g. " in decision.reason
    denied = check_grant(policies(TEAM), [parse_policy("wide", rule("team/*"))])
    assert isinstance(denied, Deny)
    assert "'team/ROOT_' is denied to you by policy p1, rule 2" in denied.reason


def test_implies_is_conservative_across_address_families() -> None:
    v4 = Conditions((ipaddress.ip_network("10.0.0.0/8"),))
    v6 = Conditions((ipaddress.ip_network("fd00::/8"),))
    assert implies(v4, v4)
    assert implies(v4, Conditions())
    assert not implies(v6, v4)
    assert not implies(Conditions(), v4)
    window = Conditions(hours=HourRange(480, 1080))
    assert not implies(Conditions(), window)


def test_the_automata_give_up_instead_of_guessing() -> None:
    many = [glob_automaton("a*b*c*d*e*f*/" * 3 + "x")]
    with pytest.raises(TooComplex):
        find_path(many, [glob_automaton("**/a*c*e*/**/x")], limit=5)
    held = [Policy("h", (Rule(1, 1, "a/**", frozenset({"read"})),))]
    assert isinstance(
        check_grant(held, [Policy("g", (Rule(1, 1, "a/b", frozenset({"read"})),))]), Allow
    )


def test_a_decision_past_its_work_budget_refuses() -> None:
    text = "".join(rule(f"t{i}/*/s-*", "read,write") for i in range(60))
    big = policies(text)
    assert check_grant(big, big)
    refused = check_grant(big, big, budget=2_000)
    assert isinstance(refused, Deny)
    assert "too large or complex" in refused.reason


# --- the automata against the glob matcher ------------------------------------------------

GLOB_SEGMENTS = st.sampled_from(["a", "b", "ab", "*", "?", "a*", "*b", "?b", "**", "a?*"])
GLOBS = st.builds(
    lambda segs, slash: "/".join(segs) + ("/" if slash and segs[-1] != "**" else ""),
    st.lists(GLOB_SEGMENTS, min_size=1, max_size=4),
    st.booleans(),
)
# Every path over a small alphabet (x stands for characters no glob names).
ALL_PATHS = ["".join(p) for n in range(1, 6) for p in itertools.product("ab/x", repeat=n)]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(GLOBS, min_size=1, max_size=2), st.lists(GLOBS, max_size=3))
def test_find_path_agrees_with_the_matcher(inside: list[str], outside: list[str]) -> None:
    match_in = [compile_glob(g) for g in inside]
    match_out = [compile_glob(g) for g in outside]

    def wanted(path: str) -> bool:
        return all(r.matches(path) for r in match_in) and not any(
            r.matches(path) for r in match_out
        )

    found = find_path([glob_automaton(g) for g in inside], [glob_automaton(g) for g in outside])
    if found is None:
        assert not any(wanted(p) for p in ALL_PATHS)
    else:
        assert found
        assert wanted(found)


# --- soundness against the policy engine ------------------------------------------------

NETS = ["10.0.0.0/8", "10.1.0.0/16", "192.168.0.0/16"]
SOURCES = ["10.1.2.3", "10.200.0.1", "192.168.1.1", "8.8.8.8", None]


@st.composite
def random_rule(draw: st.DrawFn, index: int) -> Rule:
    deny = draw(st.integers(0, 3)) == 0
    caps = frozenset(draw(st.lists(st.sampled_from(["read", "write"]), min_size=1)))
    conditions = Conditions()
    if draw(st.integers(0, 2)) == 0:
        hours = draw(st.sampled_from([None, HourRange(480, 1080), HourRange(540, 1020)]))
        conditions = Conditions(
            tuple(
                ipaddress.ip_network(n) for n in draw(st.lists(st.sampled_from(NETS), max_size=2))
            ),
            draw(st.sampled_from([None, 5, 15])),
            hours,
            days := draw(st.sampled_from([None, frozenset({0, 1}), frozenset({0})])),
            draw(st.sampled_from([None, "Europe/Paris"])) if hours or days else None,
        )
    return Rule(index, index, draw(GLOBS), caps, deny, conditions)


def random_policies(name: str) -> st.SearchStrategy[list[Policy]]:
    return st.lists(
        st.integers(1, 4).flatmap(lambda n: st.tuples(*(random_rule(i + 1) for i in range(n)))),
        min_size=1,
        max_size=2,
    ).map(lambda lists: [Policy(f"{name}{i}", rules) for i, rules in enumerate(lists)])


REQUESTS = st.builds(
    lambda cap, path, source, minutes, mfa_age: AccessRequest(
        cap,
        path,
        source=source,
        now=NOON + dt.timedelta(minutes=minutes),
        mfa_at=None if mfa_age is None else NOON + dt.timedelta(minutes=minutes - mfa_age),
    ),
    st.sampled_from(["read", "write"]),
    st.sampled_from(ALL_PATHS[:340]),
    st.sampled_from(SOURCES),
    st.integers(0, 3 * 24 * 60),
    st.none() | st.integers(0, 20),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(random_policies("h"), random_policies("g"), st.lists(REQUESTS, min_size=1, max_size=40))
def test_held_means_every_granted_request_is_allowed_to_the_caller(
    held: list[Policy], granted: list[Policy], requests: list[AccessRequest]
) -> None:
    if not check_grant(held, granted):
        return
    mine, given_set = PolicySet(held), PolicySet(granted)
    for req in requests:
        if given_set.decide(req):
            assert mine.decide(req), (req, given_set.decide(req))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(random_policies("h"))
def test_granting_exactly_what_one_holds_is_always_allowed(held: list[Policy]) -> None:
    assert check_grant(held, held), [r.summary() for p in held for r in p.rules]


@settings(max_examples=300)
@given(GLOBS, GLOBS)
def test_the_literal_ends_pre_test_never_hides_a_shared_path(a: str, b: str) -> None:
    shared = find_path([glob_automaton(a), glob_automaton(b)])
    if shared is not None:
        assert ends_meet(literal_ends(a), literal_ends(b)), (a, b, shared)
