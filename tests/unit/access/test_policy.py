"""The policy evaluator: glob semantics, deny wins, no rule no access, conditions, explain,
and the cached engine against a naive reference evaluator written here from the spec."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keysafe.access import policy as policy_module
from keysafe.access.models import Allow, Deny
from keysafe.access.policy import (
    CAPABILITIES,
    AccessRequest,
    Conditions,
    Policy,
    PolicySet,
    Rule,
    parse_policy,
)
from keysafe.access.policy_glob import compile_glob
from keysafe.access.policy_rules import HourRange
from keysafe.errors import InvalidInput

NOON = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)  # a Monday


def request(
    capability: str = "read",
    path: str = "payments/prod/DB",
    *,
    source: str | None = None,
    now: dt.datetime = NOON,
    mfa_at: dt.datetime | None = None,
) -> AccessRequest:
    return AccessRequest(capability, path, source=source, now=now, mfa_at=mfa_at)


def engine(*texts: str) -> PolicySet:
    return PolicySet(parse_policy(f"p{i}", text) for i, text in enumerate(texts, start=1))


def allow(path: str, caps: str = '"read"', extra: str = "") -> str:
    return f"[[rule]]\npath = {path!r}\ncapabilities = [{caps}]\n{extra}\n"


# --- glob semantics -------------------------------------------------------------------------

GLOB_TABLE = [
    # exact paths match themselves only
    ("payments/prod/DB", "payments/prod/DB", True),
    ("payments/prod/DB", "payments/prod/DB2", False),
    ("payments/prod/DB", "payments/prod", False),
    ("payments/prod", "payments/prod/DB", False),
    # * stays inside one segment, may be empty (the folder form a/b/)
    ("a/b/*", "a/b/x", True),
    ("a/b/*", "a/b/", True),
    ("a/b/*", "a/b", False),
    ("a/b/*", "a/b/x/y", False),
    ("a/*/c", "a/b/c", True),
    ("a/*/c", "a/b/x/c", False),
    ("a/ROOT_*", "a/ROOT_KEY", True),
    ("a/ROOT_*", "a/root_key", False),  # case-sensitive
    ("*", "top", True),
    ("*", "a/b", False),
    # ? is exactly one character, never /
    ("a/?", "a/x", True),
    ("a/?", "a/", False),
    ("a/?", "a/xy", False),
    ("a?b", "a/b", False),
    # ** is zero or more whole segments
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/xb", False),
    ("**/b", "b", True),
    ("**/b", "x/y/b", True),
    ("**/b", "x/yb", False),
    ("a/**", "a/", True),
    ("a/**", "a/x", True),
    ("a/**", "a/x/y", True),
    ("a/**", "a", False),  # a folder rule never matches the folder's own name
    ("a/**", "ab/x", False),
    ("**", "anything/at/all", True),
    ("*/prod/*", "payments/prod/DB", True),
    ("*/prod/*", "payments/staging/DB", False),
    ("*/prod/*", "x/payments/prod/DB", False),
    # regex metacharacters are literal
    ("a.b/(c)+", "a.b/(c)+", True),
    ("a.b/(c)+", "axb/(c)+", False),
    ("a/b/", "a/b/", True),
    ("a/b/", "a/b", False),
]


@pytest.mark.parametrize(("glob", "path", "matches"), GLOB_TABLE)
def test_glob_semantics(glob: str, path: str, matches: bool) -> None:
    assert compile_glob(glob).matches(path) is matches
    # The same through the engine (literal-head index and combined regexes).
    decision = engine(allow(glob)).decide(request("read", path))
    assert bool(decision) is matches


def ref_segment(glob: str, text: str) -> bool:
    """Classic recursive wildcard match inside one segment."""
    if not glob:
        return not text
    if glob[0] == "*":
        return any(ref_segment(glob[1:], text[k:]) for k in range(len(text) + 1))
    if not text:
        return False
    return (glob[0] == "?" or glob[0] == text[0]) and ref_segment(glob[1:], text[1:])


def ref_glob(glob: str, path: str) -> bool:
    """The documented glob semantics over segments, independent of the regex translation."""
    gs, ps = glob.split("/"), path.split("/")

    def match(i: int, j: int) -> bool:
        if i == len(gs):
            return j == len(ps)
        if gs[i] == "**":
            if i == len(gs) - 1:
                return len(ps) - j >= 1  # trailing: everything inside, at least one segment
            return any(match(i + 1, k) for k in range(j, len(ps) + 1))
        return j < len(ps) and ref_segment(gs[i], ps[j]) and match(i + 1, j + 1)

    return match(0, 0)


def test_reference_glob_agrees_with_the_table() -> None:
    for glob, path, matches in GLOB_TABLE:
        assert ref_glob(glob, path) is matches, (glob, path)


GLOB_SEGMENTS = st.sampled_from(["a", "b", "ab", "*", "?", "a*", "*b", "?b", "**"])
PATH_SEGMENTS = st.sampled_from(["a", "b", "ab", "ba", "abb", ""])
GLOBS = st.builds(
    lambda segs, slash: "/".join(segs) + ("/" if slash and segs[-1] != "**" else ""),
    st.lists(GLOB_SEGMENTS, min_size=1, max_size=4),
    st.booleans(),
)
PATHS = st.lists(PATH_SEGMENTS, min_size=1, max_size=5).map("/".join)


def regex_glob(glob: str, path: str) -> bool:
    """The regex translation the engine used before its linear matcher (a second,
    independent reference: fine on small inputs, exponential on hostile ones)."""
    segments = glob.split("/")
    out: list[str] = []
    for i, segment in enumerate(segments):
        if segment == "**":
            out.append(".*" if i == len(segments) - 1 else "(?:.*/)?")
            continue
        out.append(
            "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in segment)
        )
        if i != len(segments) - 1:
            out.append("/")
    return re.fullmatch("".join(out), path, re.DOTALL) is not None


@given(GLOBS, PATHS)
def test_glob_matcher_agrees_with_the_references(glob: str, path: str) -> None:
    assert compile_glob(glob).matches(path) is ref_glob(glob, path) is regex_glob(glob, path)


# Several stars and question marks in one segment, on segments drawn from few letters so
# that blocks recur and partial fits are common (where a greedy matcher would go wrong).
WILD_SEGMENTS = st.text(alphabet="ab*?-", min_size=1, max_size=7).filter(
    lambda s: "**" not in s
) | st.just("**")
WILD_GLOBS = st.lists(WILD_SEGMENTS, min_size=1, max_size=4).map("/".join)
WILD_PATHS = st.lists(st.text(alphabet="ab-", max_size=8), min_size=1, max_size=5).map("/".join)


@given(WILD_GLOBS, WILD_PATHS)
@settings(max_examples=500)
def test_wildcard_heavy_globs_agree_with_the_references(glob: str, path: str) -> None:
    assert compile_glob(glob).matches(path) is ref_glob(glob, path) is regex_glob(glob, path)


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        # The pattern that froze a worker: a regex tries every placement of the dashes
        # before finding that the path goes on (O(n^4) here, O(n^8) below).
        ("app/*-*-*-*-*", "app/" + "-" * 150 + "/x", False),
        ("app/*-*-*-*-*-*-*-*", "app/" + "-" * 150 + "/x", False),
        ("app/*-*-*-*-*", "app/" + "-" * 150 + "x", True),
        ("app/*-*-*-*-*", "app/" + "a-" * 3 + "a" * 150, False),
        ("app/*-*-*-*-*-*-*-*-*-*-*-*-*x", "app/" + "-" * 5000, False),
        ("*a*a*a*a*a*a*a*a*a*b", "a" * 20_000, False),
        ("*ab*ab*ab*ab*ab*ac*b", "ab" * 10_000 + "b", False),
        ("?*?*?*?*?*?*?*?*?x", "a" * 20_000 + "x", True),
        # Many ``**`` against a deep path: cubic and worse for a backtracking regex.
        ("a/**/**/**/**/**/**/c", "a/" + "b/" * 5000 + "d", False),
        ("**/*-*-*/**/*-*-*/**/x", "/".join(["--a-"] * 2000), False),
        ("**/*-*-*/**/*-*-*/**/x", "/".join(["--a-"] * 2000) + "/x", True),
    ],
)
def test_hostile_globs_finish(glob: str, path: str, matches: bool) -> None:
    # pytest-timeout guards this; the matcher does each in milliseconds.
    assert compile_glob(glob).matches(path) is matches
    decision = engine(allow(glob)).decide(request("read", path))
    assert bool(decision) is matches


# --- allow, deny, no rule ------------------------------------------------------------------

PAYMENTS = """\
[[rule]]
path = "payments/prod/*"
capabilities = ["read", "list"]

[[rule]]
path = "payments/prod/ROOT_*"
deny = true
"""


@pytest.mark.parametrize(
    ("capability", "path", "allowed"),
    [
        ("read", "payments/prod/DB", True),
        ("list", "payments/prod/", True),
        ("write", "payments/prod/DB", False),  # only the listed capabilities
        ("admin", "payments/prod/DB", False),
        ("read", "payments/prod/ROOT_KEY", False),  # deny of all capabilities
        ("list", "payments/prod/ROOT_KEY", False),
        ("read", "payments/prod", False),
        ("read", "payments/staging/DB", False),
        ("read", "billing/prod/DB", False),
        ("bogus", "payments/prod/DB", False),
    ],
)
def test_design_example(capability: str, path: str, allowed: bool) -> None:
    decision = engine(PAYMENTS).decide(request(capability, path))
    assert bool(decision) is allowed
    assert decision.reason


def test_no_rule_no_access() -> None:
    assert PolicySet([]).decide(request()) == Deny("no rule grants read on 'payments/prod/DB'")
    decision = engine(allow("billing/*")).decide(request())
    assert isinstance(decision, Deny)
    assert decision.rule is None
    assert "no rule grants read" in decision.reason


def test_deny_names_its_rule_whatever_the_order() -> None:
    deny_first = '[[rule]]\npath = "payments/**"\ndeny = true\ncapabilities = ["read"]\n\n'
    for policies in ([deny_first + allow("payments/prod/*")], [allow("**"), deny_first]):
        decision = engine(*policies).decide(request())
        assert isinstance(decision, Deny)
        assert decision.rule is not None
        assert ": deny read on payments/**" in decision.rule
        assert decision.reason == f"denied by {decision.rule}"


def test_deny_of_listed_capabilities_only() -> None:
    text = (
        allow("a/*", '"read", "write"')
        + '[[rule]]\npath = "a/*"\ndeny = true\ncapabilities = ["write"]\n'
    )
    rules = engine(text)
    assert rules.decide(request("read", "a/x"))
    assert not rules.decide(request("write", "a/x"))


def test_allow_names_the_first_applicable_rule() -> None:
    decision = engine(allow("a/*"), allow("a/**")).decide(request("read", "a/x"))
    assert decision == Allow(
        "allowed by policy p1, rule 1 (line 1): allow read on a/*",
        "policy p1, rule 1 (line 1): allow read on a/*",
    )


def test_duplicate_policy_names_rejected() -> None:
    policy = parse_policy("same", PAYMENTS)
    with pytest.raises(InvalidInput):
        PolicySet([policy, policy])


def test_requests_need_aware_times() -> None:
    with pytest.raises(InvalidInput):
        AccessRequest("read", "a", now=dt.datetime(2026, 1, 1))
    with pytest.raises(InvalidInput):
        AccessRequest("read", "a", now=NOON, mfa_at=dt.datetime(2026, 1, 1))


# --- conditions ------------------------------------------------------------------------------

CIDRS = 'source_cidrs = ["10.0.0.0/8", "2001:db8::/32"]'


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        ("10.1.2.3", True),
        ("10.255.255.255", True),
        ("11.0.0.1", False),
        ("2001:db8::1", True),
        ("2001:db9::1", False),
        ("::ffff:10.1.2.3", True),  # IPv4-mapped IPv6 is the IPv4 address
        (ipaddress.ip_address("10.9.9.9"), True),
        (None, False),
        ("not-an-ip", False),
    ],
)
def test_source_cidrs(source: str | ipaddress.IPv4Address | None, allowed: bool) -> None:
    rules = engine(allow("payments/prod/*", extra=CIDRS))
    req = AccessRequest("read", "payments/prod/DB", source=source, now=NOON)
    assert bool(rules.decide(req)) is allowed


@pytest.mark.parametrize(
    ("mfa_at", "allowed"),
    [
        (NOON - dt.timedelta(minutes=1), True),
        (NOON - dt.timedelta(minutes=15), True),  # the limit is inclusive
        (NOON - dt.timedelta(minutes=15, seconds=1), False),
        (NOON - dt.timedelta(hours=3), False),
        (NOON + dt.timedelta(seconds=30), True),  # clock skew between nodes: fresh
        (None, False),
    ],
)
def test_mfa_step_up(mfa_at: dt.datetime | None, allowed: bool) -> None:
    rules = engine(allow("*/prod/*", extra="mfa_within_minutes = 15"))
    decision = rules.decide(request(mfa_at=mfa_at))
    assert bool(decision) is allowed
    if not allowed:
        assert "requires MFA within 15 minutes" in decision.reason
        assert rules.explain(request(mfa_at=mfa_at)).mfa_required_within == 15


def test_step_up_not_offered_when_other_conditions_fail() -> None:
    rules = engine(allow("*/prod/*", extra=f"mfa_within_minutes = 15\n{CIDRS}"))
    decision = rules.decide(request(source="192.0.2.1"))
    assert not decision
    assert "MFA" not in decision.reason
    assert "conditions do not hold" in decision.reason
    assert rules.explain(request(source="192.0.2.1")).mfa_required_within is None


def test_step_up_names_the_least_demanding_rule() -> None:
    rules = engine(
        allow("*/prod/*", extra="mfa_within_minutes = 5"),
        allow("payments/**", extra="mfa_within_minutes = 60"),
    )
    decision = rules.decide(request(mfa_at=NOON - dt.timedelta(minutes=30)))
    assert decision
    decision = rules.decide(request(mfa_at=NOON - dt.timedelta(minutes=90)))
    assert "requires MFA within 60 minutes" in decision.reason


def test_step_up_not_offered_when_denied() -> None:
    rules = engine(
        allow("*/prod/*", extra="mfa_within_minutes = 5")
        + '[[rule]]\npath = "payments/**"\ndeny = true\n'
    )
    explanation = rules.explain(request())
    assert explanation.mfa_required_within is None
    assert "denied by" in explanation.decision.reason


def at(hour: int, minute: int = 0, day: int = 23, tz: dt.tzinfo = dt.UTC) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=tz)


@pytest.mark.parametrize(
    ("extra", "now", "allowed"),
    [
        ('hours = "08:00-18:00"', at(8), True),
        ('hours = "08:00-18:00"', at(17, 59), True),
        ('hours = "08:00-18:00"', at(18), False),  # the end is exclusive
        ('hours = "08:00-18:00"', at(7, 59), False),
        ('hours = "08:00-18:00"', at(9, tz=ZoneInfo("Asia/Tokyo")), False),  # 00:00 UTC
        ('hours = "22:00-06:00"', at(23), True),
        ('hours = "22:00-06:00"', at(0), True),
        ('hours = "22:00-06:00"', at(5, 59), True),
        ('hours = "22:00-06:00"', at(6), False),
        ('hours = "22:00-06:00"', at(12), False),
        ('hours = "22:00-06:00"', at(21, 59), False),
        ('hours = "00:00-24:00"', at(23, 59), True),
        # Europe/Paris is UTC+1 in November: 07:30 UTC is 08:30 in Paris.
        ('hours = "08:00-18:00"\ntimezone = "Europe/Paris"', at(7, 30), True),
        ('hours = "08:00-18:00"\ntimezone = "Europe/Paris"', at(17, 30), False),
        # 2026-11-23 is a Monday, 2026-11-28 a Saturday.
        ('days = ["mon", "tue", "wed", "thu", "fri"]', at(12), True),
        ('days = ["mon", "tue", "wed", "thu", "fri"]', at(12, day=28), False),
        ('days = ["sat", "sun"]', at(12, day=28), True),
        # 23:30 UTC on Sunday the 22nd is 00:30 on Monday in Paris.
        ('days = ["mon"]\ntimezone = "Europe/Paris"', at(23, 30, day=22), True),
        ('days = ["mon"]', at(23, 30, day=22), False),
        ('hours = "08:00-18:00"\ndays = ["mon"]', at(12), True),
        ('hours = "08:00-18:00"\ndays = ["mon"]', at(12, day=24), False),
        ('hours = "08:00-18:00"\ndays = ["mon"]', at(20), False),
    ],
)
def test_time_conditions(extra: str, now: dt.datetime, allowed: bool) -> None:
    rules = engine(allow("payments/**", extra=extra))
    assert bool(rules.decide(request(now=now))) is allowed


def test_conditional_deny_only_denies_where_it_applies() -> None:
    text = allow("payments/**") + (
        '[[rule]]\npath = "payments/prod/*"\ndeny = true\nsource_cidrs = ["192.0.2.0/24"]\n'
    )
    rules = engine(text)
    assert not rules.decide(request(source="192.0.2.9"))
    assert rules.decide(request(source="10.0.0.1"))
    assert rules.decide(request(source=None))  # the deny's condition fails: it does not apply


# --- explain ---------------------------------------------------------------------------------

EXPLAINED = """\
# payments, read side

[[rule]]
path = "payments/prod/*"
capabilities = ["read", "list"]

[[rule]]
path = "payments/prod/ROOT_*"
deny = true

[[rule]]
path = "payments/**"
capabilities = ["read"]
mfa_within_minutes = 15

[[rule]]
path = "payments/prod/*"
capabilities = ["write"]
"""


def test_explain_names_the_deciding_rule_with_its_line() -> None:
    rules = PolicySet([parse_policy("payments-read", EXPLAINED)])
    explanation = rules.explain(request("read", "payments/prod/ROOT_KEY"))
    assert (
        explanation.deciding == "policy payments-read, rule 2 (line 7): deny payments/prod/ROOT_*"
    )
    assert explanation.decision == rules.decide(request("read", "payments/prod/ROOT_KEY"))
    notes = {o.rule.index: (o.applies, o.note) for o in explanation.outcomes}
    assert notes == {
        1: (True, "applies"),
        2: (True, "applies"),
        3: (False, "condition failed: no MFA in this session (needs MFA within 15 min)"),
        4: (False, "does not cover read"),
    }
    text = "\n".join(explanation.lines())
    assert text.startswith("DENY read on 'payments/prod/ROOT_KEY': denied by policy payments-read")
    assert "deciding rule: policy payments-read, rule 2 (line 7)" in text


def test_explain_stale_mfa_and_no_match() -> None:
    rules = PolicySet([parse_policy("payments-read", EXPLAINED)])
    stale = request("read", "payments/dev/DB", mfa_at=NOON - dt.timedelta(minutes=40))
    explanation = rules.explain(stale)
    assert explanation.deciding is None
    assert explanation.mfa_required_within == 15
    (outcome,) = explanation.outcomes
    assert outcome.note == "condition failed: MFA older than 15 min"
    assert "line 11" in outcome.label
    nothing = rules.explain(request("read", "billing/x"))
    assert nothing.outcomes == ()
    assert "no rule matches this path" in nothing.lines()


# --- the cached engine against a naive reference evaluator -----------------------------------

NETS = ["10.0.0.0/8", "10.1.0.0/16", "192.0.2.0/24", "2001:db8::/32"]
SOURCES = [None, "10.1.2.3", "10.2.0.1", "192.0.2.7", "2001:db8::5", "::ffff:10.1.0.9", "junk"]


def ref_conditions(c: Conditions, req: AccessRequest) -> bool:
    if c.source_cidrs:
        src = req.source
        try:
            ip = ipaddress.ip_address(src) if isinstance(src, str) else src
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if ip is None or not any(ip in n for n in c.source_cidrs):
            return False
    local = req.now.astimezone(ZoneInfo(c.timezone) if c.timezone else dt.UTC)
    if c.hours is not None:
        minute = local.hour * 60 + local.minute
        start, end = c.hours.start, c.hours.end
        inside = start <= minute < end if start < end else (minute >= start or minute < end)
        if not inside:
            return False
    if c.days is not None and local.weekday() not in c.days:
        return False
    if c.mfa_within_minutes is not None:
        if req.mfa_at is None:
            return False
        if (req.now - req.mfa_at).total_seconds() > 60 * c.mfa_within_minutes:
            return False
    return True


def reference(policies: list[Policy], req: AccessRequest) -> tuple[bool, str | None]:
    """Deny wins, then allow, else no access; the first rule of its kind in set order."""
    applicable = [
        (p.name, r)
        for p in policies
        for r in p.rules
        if ref_glob(r.path, req.path)
        and req.capability in r.capabilities
        and ref_conditions(r.conditions, req)
    ]
    for deny in (True, False):
        for name, rule in applicable:
            if rule.deny is deny:
                return not deny, f"policy {name}, rule {rule.index} (line {rule.line}):"
    return False, None


@st.composite
def random_rule(draw: st.DrawFn, index: int) -> Rule:
    deny = draw(st.booleans())
    caps = frozenset(draw(st.lists(st.sampled_from(["read", "write", "list"]), min_size=1)))
    conditional = draw(st.integers(0, 2)) == 0  # a third of the rules have conditions
    conditions = Conditions()
    if conditional:
        hours = draw(st.sampled_from([None, HourRange(480, 1080), HourRange(1320, 360)]))
        days = draw(st.sampled_from([None, frozenset({0, 1, 2, 3, 4}), frozenset({5})]))
        conditions = Conditions(
            tuple(
                ipaddress.ip_network(n) for n in draw(st.lists(st.sampled_from(NETS), max_size=2))
            ),
            draw(st.sampled_from([None, 5, 15])),
            hours,
            days,
            draw(st.sampled_from([None, "Europe/Paris"])) if hours or days else None,
        )
    return Rule(index, 10 * index, draw(GLOBS), caps, deny, conditions)


POLICIES = st.lists(
    st.integers(0, 6).flatmap(lambda n: st.tuples(*(random_rule(i + 1) for i in range(n)))),
    max_size=3,
).map(lambda rule_lists: [Policy(f"p{i}", rules) for i, rules in enumerate(rule_lists)])

REQUESTS = st.builds(
    lambda cap, path, source, minutes, mfa_age: AccessRequest(
        cap,
        path,
        source=source,
        now=NOON + dt.timedelta(minutes=minutes),
        mfa_at=None if mfa_age is None else NOON + dt.timedelta(minutes=minutes - mfa_age),
    ),
    st.sampled_from(["read", "write", "list", "bogus"]),
    PATHS,
    st.sampled_from(SOURCES),
    st.integers(0, 7 * 24 * 60),
    st.none() | st.integers(-1, 30),
)


@settings(max_examples=300)
@given(POLICIES, st.lists(REQUESTS, min_size=1, max_size=30), st.data())
def test_cached_engine_matches_reference(
    policies: list[Policy], requests: list[AccessRequest], data: st.DataObject
) -> None:
    rules = PolicySet(policies, cache_size=data.draw(st.sampled_from([1, 4, 1024])))
    # Each path is asked again with other conditions, so most decisions come from the cache.
    for req in [*requests, *reversed(requests), *requests]:
        decision = rules.decide(req)
        allowed, deciding = reference(policies, req)
        assert bool(decision) is allowed, (req, decision)
        if deciding is None:
            assert decision.rule is None
        else:
            assert decision.rule is not None
            assert decision.rule.startswith(deciding), (decision.rule, deciding)
        explanation = rules.explain(req)
        assert explanation.decision == decision
        # Step-up is offered by decide and explain alike.
        step_up = "requires MFA within" in decision.reason
        assert step_up is (explanation.mfa_required_within is not None), (req, explanation)


@given(POLICIES, REQUESTS, st.integers(0, 10), st.booleans())
def test_deny_always_wins(
    policies: list[Policy], req: AccessRequest, position: int, exact: bool
) -> None:
    # An unconditional deny that matches the request, anywhere in any policy, denies.
    deny = Rule(
        99,
        999,
        req.path if exact and _plain(req.path) else "**",
        frozenset({req.capability} & set(CAPABILITIES)) or frozenset(CAPABILITIES),
        True,
    )
    target = policies[0].rules if policies else ()
    position = min(position, len(target))
    with_deny = Policy("denier", (*target[:position], deny, *target[position:]))
    rules = PolicySet([with_deny, *policies[1:]])
    decision = rules.decide(req)
    assert isinstance(decision, Deny)
    if req.capability != "bogus":
        assert decision.rule is not None
        assert ": deny" in decision.rule


def _plain(path: str) -> bool:
    return bool(path) and "//" not in path and not path.startswith("/")


@given(POLICIES, REQUESTS)
def test_no_allow_no_access(policies: list[Policy], req: AccessRequest) -> None:
    only_denies = [Policy(p.name, tuple(r for r in p.rules if r.deny)) for p in policies]
    assert not PolicySet(only_denies).decide(req)


def test_public_surface() -> None:
    assert sorted(policy_module.__all__) == [
        "AccessRequest",
        "CAPABILITIES",
        "Conditions",
        "Explanation",
        "Policy",
        "PolicySet",
        "Rule",
        "RuleOutcome",
        "parse_policy",
    ]
    assert CAPABILITIES == (
        "read",
        "list",
        "write",
        "delete",
        "destroy",
        "rotate",
        "manage-keys",
        "read-audit",
        "admin",
    )
